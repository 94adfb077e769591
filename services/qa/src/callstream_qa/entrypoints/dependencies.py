"""What the QA routers share: the caller of each role set, the unit of work (or, for the contacts import,
the database session) per request and the visibility rule. The container is the app's
(`app.state.container`, set by `create_app`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from callstream_qa.bootstrap import Container
from callstream_qa.service_layer import common
from callstream_qa.service_layer.unit_of_work import UnitOfWork

_bearer = HTTPBearer(auto_error=False)
READERS = ("qa", "agent", "team_lead", "manager")
OVERSEERS = ("qa", "manager")  # see everything (admin too)


@dataclass(frozen=True)
class Caller:
    role: str
    subject: str
    person_id: str  # agent id of an agent; the evaluator id of a QA user when bound
    team_id: str

    def sees_all(self) -> bool:
        return self.role in (*OVERSEERS, "admin")

    def may_see(self, agent_id: str, team_id: str) -> bool:
        if self.sees_all():
            return True
        if self.role == "agent":
            return agent_id == self.person_id
        if self.role == "team_lead":
            return team_id == self.team_id
        return False


def container(request: Request) -> Container:
    found: Container = request.app.state.container
    return found


def caller_of(*roles: str) -> Callable[..., Caller]:
    """A dependency allowing `roles` (and admin): the caller, with a bound token's person and team. The
    scopes are TokenAuth.require's, so /openapi.json lists the same roles per route."""
    # the same bearer scopes TokenAuth.require declares: OpenAPI shows which role may call the route
    bearer_of_roles = Security(_bearer, scopes=sorted(set(roles) | {"admin"}))

    def dependency(request: Request,
                   credentials: HTTPAuthorizationCredentials | None = bearer_of_roles) -> Caller:
        c = container(request)
        principal = c.auth.require(*roles)(credentials)
        binding = c.bindings.get(credentials.credentials if credentials else "")
        return Caller(principal.role, principal.subject, binding.person_id if binding else "",
                      binding.team_id if binding else "")

    return dependency


as_qa = Depends(caller_of("qa"))
as_reader = Depends(caller_of(*READERS))
as_agent = Depends(caller_of("agent"))
as_lead = Depends(caller_of("qa", "manager", "team_lead"))
as_qa_manager = Depends(caller_of("qa", "manager"))


def _session(request: Request) -> Iterator[Session]:
    """The request's one session (shared by `as_db` and `as_uow`); closing it rolls back what was not
    committed (a refused request)."""
    with container(request).sessions() as session:
        yield session


_request_session = Depends(_session, scope="function")


def _db(session: Session = _request_session) -> Iterator[Session]:
    """For `POST /contacts`, which stores through the adapter the topic consumer uses (adapters.contacts):
    the request is its transaction."""
    yield session
    session.commit()  # not reached when the route raised: the close above rolls back


def _uow(request: Request, session: Session = _request_session) -> UnitOfWork:
    """The use cases on a unit of work commit it themselves."""
    return container(request).units_of_work(session)


# scope="function": the transaction commits BEFORE the response is sent (the next request sees it).
as_db = Depends(_db, scope="function")
as_uow = Depends(_uow, scope="function")


def visible(caller: Caller, agent_id: str, team_id: str) -> None:
    if not caller.may_see(agent_id, team_id):
        # 404, not 403: an agent must not learn which evaluation ids exist for others.
        raise common.NotFound("not found (or not visible to this caller)")
