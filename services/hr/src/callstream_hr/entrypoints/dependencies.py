"""What the HR routers share: the unit of work per request, the caller of each role set, and the error
answers of the use cases."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta

from fastapi import Depends, FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from callstream_core.auth import Principal, TokenAuth, TokenTable
from callstream_core.db import utc
from callstream_core.http_errors import AsciiJSONResponse
from callstream_hr.service_layer.common import Caller
from callstream_hr.service_layer.errors import HrError
from callstream_hr.service_layer.planning import HistorySource, TargetSource
from callstream_hr.service_layer.unit_of_work import UnitOfWork

_bearer = HTTPBearer(auto_error=False)


@dataclass(frozen=True)
class Web:
    """What `bootstrap` hands the routers."""

    units_of_work: Callable[[], AbstractContextManager[UnitOfWork]]
    auth: TokenAuth
    team_scopes: TokenTable[str]  # a team-lead token's team (TEAM_LEAD_SCOPES)
    history: HistorySource | None  # the KPI API, when configured
    targets: TargetSource | None
    lateness_grace: timedelta

    def uow(self) -> Callable[[], Iterator[UnitOfWork]]:
        """A dependency: one unit of work per request (rolled back unless the use case committed)."""

        def dependency() -> Iterator[UnitOfWork]:
            with self.units_of_work() as uow:
                yield uow

        return dependency

    def caller(self, *roles: str) -> Callable[..., Caller]:
        """A dependency allowing `roles` (and admin): the caller, with a team lead's team."""
        check = self.auth.require(*roles)

        def dependency(principal: Principal = Depends(check),
                       credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> Caller:
            team = self.team_scopes.get(credentials.credentials) if credentials and principal.role == "team_lead" \
                else None
            return Caller(principal.subject, principal.role, team)

        return dependency


async def _refused(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HrError)
    return AsciiJSONResponse({"detail": jsonable_encoder(exc.detail)}, status_code=exc.status)


def install_refusals(app: FastAPI) -> None:
    """A use case's refusal (service_layer.errors) answers with its status and {"detail": ...}, as an
    HTTPException would."""
    app.add_exception_handler(HrError, _refused)


def stamp(moment: datetime) -> str:
    """A stored timestamp as ISO 8601 in UTC (SQLite gives naive datetimes: they are UTC)."""
    return utc(moment).isoformat()
