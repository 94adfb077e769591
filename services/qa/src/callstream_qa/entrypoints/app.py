"""FastAPI app factory of the QA service and `main()` (uvicorn)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC
from typing import Any, Literal

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request, status
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from google.protobuf import json_format
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from callstream.kpi.v1 import kpi_events_pb2
from callstream_core.auth import Principal
from callstream_core.db import now
from callstream_core.http_errors import install_error_handlers
from callstream_core.observability import configure_logging, ops_router
from callstream_core.outbox import Producer
from callstream_qa import service_layer as svc
from callstream_qa.adapters.contacts import store_contacts
from callstream_qa.adapters.orm import CalibrationSessionRow, CoachingItemRow, ContactRow, EvaluationRow, FormRow
from callstream_qa.bootstrap import Container, bootstrap
from callstream_qa.config import QASettings
from callstream_qa.domain.forms import FormError
from callstream_qa.domain.states import IllegalTransition
from callstream_qa.entrypoints.schemas import (
    VERSION_MAX,
    ActionIn,
    CalibrationIn,
    CalibrationScoreIn,
    EvaluationIn,
    EvaluationPatch,
    FormBody,
    FormIn,
    PlanIn,
)

log = logging.getLogger(__name__)
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


def evaluation_json(row: EvaluationRow) -> dict[str, Any]:
    return {
        "evaluation_id": row.evaluation_id, "call_id": row.call_id, "agent_id": row.agent_id,
        "team_id": row.team_id, "evaluator_id": row.evaluator_id, "form_id": row.form_id,
        "form_version": row.form_version, "status": row.status, "answers": row.answers, "comments": row.comments,
        "score": row.score, "critical_failed": row.critical_failed, "criteria": row.criteria,
        "revision": row.revision, "calibration_session_id": row.calibration_session_id,
        "dispute_reason": row.dispute_reason, "contact_at": svc.utc(row.contact_at),
        "created_at": svc.utc(row.created_at), "submitted_at": svc.utc(row.submitted_at),
        "updated_at": svc.utc(row.updated_at),
    }


def form_json(row: FormRow, in_use: bool) -> dict[str, Any]:
    return {"form_id": row.form_id, "version": row.version, "name": row.name, "in_use": in_use,
            "sections": row.definition["sections"], "created_at": svc.utc(row.created_at)}


def coaching_json(row: CoachingItemRow) -> dict[str, Any]:
    return {"item_id": row.item_id, "evaluation_id": row.evaluation_id, "agent_id": row.agent_id,
            "team_id": row.team_id, "criterion_id": row.criterion_id, "note": row.note,
            "due_date": row.due_date.isoformat(), "acknowledged_at": svc.utc(row.acknowledged_at)}


def create_app(settings: QASettings, *, producer: Producer | None = None) -> FastAPI:
    configure_logging(settings.service_name, settings.log_level)
    container = bootstrap(settings, producer=producer)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        container.start()
        try:
            yield
        finally:
            container.stop()

    app = FastAPI(title="Callstream QA", version="1", lifespan=lifespan)
    install_error_handlers(app)
    app.state.container = container

    async def database_ready() -> str | None:
        try:
            with container.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception as exc:
            return f"database: {exc}"
        return None

    app.include_router(ops_router({"database": database_ready}))
    app.include_router(api_router(container))

    @app.exception_handler(svc.NotFound)
    async def _not_found(_r: Request, exc: svc.NotFound) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(IllegalTransition)
    async def _illegal(_r: Request, exc: IllegalTransition) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=409)

    @app.exception_handler(svc.Conflict)
    async def _conflict(_r: Request, exc: svc.Conflict) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=409)

    @app.exception_handler(FormError)
    async def _invalid(_r: Request, exc: FormError) -> JSONResponse:
        return JSONResponse({"detail": [{"loc": ["body"], "msg": str(exc), "type": "value_error"}]},
                            status_code=422)

    return app


def api_router(c: Container) -> APIRouter:
    router = APIRouter()

    def caller_of(*roles: str) -> Any:
        check = c.auth.require(*roles)

        def dependency(principal: Principal = Depends(check),
                       credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> Caller:
            binding = c.bindings.get(credentials.credentials if credentials else "")
            return Caller(principal.role, principal.subject, binding.person_id if binding else "",
                          binding.team_id if binding else "")

        return dependency

    as_qa = caller_of("qa")
    as_reader = caller_of(*READERS)
    as_agent = caller_of("agent")
    as_lead = caller_of("qa", "manager", "team_lead")
    as_qa_manager = caller_of("qa", "manager")

    def db() -> Iterator[Session]:
        with c.sessions() as session, session.begin():
            yield session

    # scope="function": the transaction commits BEFORE the response is sent (the next request sees it).
    as_db = Depends(db, scope="function")

    def visible(caller: Caller, agent_id: str, team_id: str) -> None:
        if not caller.may_see(agent_id, team_id):
            # 404, not 403: an agent must not learn which evaluation ids exist for others.
            raise svc.NotFound("not found (or not visible to this caller)")

    # -- forms ----------------------------------------------------------------------------------------------
    @router.post("/forms", status_code=201, tags=["forms"])
    def create_form(body: FormIn, caller: Caller = Depends(as_qa), s: Session = as_db) -> dict[str, Any]:
        if svc.latest_form(s, body.form_id) is not None:
            raise svc.Conflict(f"form {body.form_id!r} exists: PUT /forms/{body.form_id} edits it")
        row = svc.save_form(s, body.form_id, body.name, body.model_dump(include={"sections"}), now())
        return form_json(row, False)

    @router.put("/forms/{form_id}", tags=["forms"])
    def edit_form(form_id: str, body: FormBody, caller: Caller = Depends(as_qa),
                  s: Session = as_db) -> dict[str, Any]:
        svc.get_form(s, form_id)
        row = svc.save_form(s, form_id, body.name, body.model_dump(include={"sections"}), now())
        return form_json(row, svc.form_in_use(s, form_id, row.version))

    @router.get("/forms", tags=["forms"])
    def list_forms(caller: Caller = Depends(as_reader), s: Session = as_db) -> list[dict[str, Any]]:
        rows = s.scalars(select(FormRow).order_by(FormRow.form_id, FormRow.version))
        return [form_json(r, svc.form_in_use(s, r.form_id, r.version)) for r in rows]

    @router.get("/forms/{form_id}", tags=["forms"])
    def read_form(form_id: str, version: int | None = Query(None, ge=1, le=VERSION_MAX),
                  caller: Caller = Depends(as_reader),
                  s: Session = as_db) -> dict[str, Any]:
        row = svc.get_form(s, form_id, version)
        return form_json(row, svc.form_in_use(s, row.form_id, row.version))

    # -- evaluations ----------------------------------------------------------------------------------------
    @router.post("/evaluations", status_code=201, tags=["evaluations"])
    def create_evaluation(body: EvaluationIn, caller: Caller = Depends(as_qa),
                          s: Session = as_db) -> dict[str, Any]:
        contact_at = body.contact_at
        if contact_at is not None and contact_at.tzinfo is None:
            contact_at = contact_at.replace(tzinfo=UTC)
        row = svc.create_evaluation(s, svc.NewEvaluation(
            call_id=body.call_id, agent_id=body.agent_id, evaluator_id=body.evaluator_id or caller.person_id
            or caller.subject, form_id=body.form_id, form_version=body.form_version, team_id=body.team_id,
            answers=body.answers, comments=body.comments, contact_at=contact_at, submit=body.submit,
        ), now(), c.settings.coaching_due_days)
        return evaluation_json(row)

    @router.get("/evaluations", tags=["evaluations"])
    def list_evaluations(agent_id: str | None = None, team_id: str | None = None, status: str | None = None,
                         caller: Caller = Depends(as_reader), s: Session = as_db) -> list[dict[str, Any]]:
        query = select(EvaluationRow).where(EvaluationRow.calibration_session_id.is_(None))
        if caller.role == "agent":
            query = query.where(EvaluationRow.agent_id == caller.person_id,
                                EvaluationRow.status != "draft", EvaluationRow.status != "deleted")
        elif caller.role == "team_lead":
            query = query.where(EvaluationRow.team_id == caller.team_id)
        if agent_id:
            query = query.where(EvaluationRow.agent_id == agent_id)
        if team_id:
            query = query.where(EvaluationRow.team_id == team_id)
        if status:
            query = query.where(EvaluationRow.status == status)
        return [evaluation_json(r) for r in s.scalars(query.order_by(EvaluationRow.created_at))]

    def _visible_evaluation(s: Session, caller: Caller, evaluation_id: str) -> EvaluationRow:
        row = svc.get_evaluation(s, evaluation_id)
        visible(caller, row.agent_id, row.team_id)
        if caller.role == "agent" and row.status in ("draft", "deleted"):
            raise svc.NotFound("not found (or not visible to this caller)")
        return row

    @router.get("/evaluations/{evaluation_id}", tags=["evaluations"])
    def read_evaluation(evaluation_id: str, caller: Caller = Depends(as_reader),
                        s: Session = as_db) -> dict[str, Any]:
        return evaluation_json(_visible_evaluation(s, caller, evaluation_id))

    @router.patch("/evaluations/{evaluation_id}", tags=["evaluations"])
    def patch_evaluation(evaluation_id: str, body: EvaluationPatch, caller: Caller = Depends(as_qa),
                         s: Session = as_db) -> dict[str, Any]:
        row = svc.get_evaluation(s, evaluation_id)
        return evaluation_json(svc.update_draft(s, row, body.answers, body.comments, now()))

    action_roles = {"submit": ("qa",), "review": ("qa",), "delete": ("qa",), "acknowledge": ("agent",),
                    "dispute": ("agent",)}

    @router.post("/evaluations/{evaluation_id}/{action}", tags=["evaluations"])
    def evaluation_action(evaluation_id: str, action: Literal["submit", "acknowledge", "dispute", "review", "delete"],
                          body: ActionIn | None = None, caller: Caller = Depends(as_reader),
                          s: Session = as_db) -> dict[str, Any]:
        if caller.role not in (*action_roles[action], "admin"):
            raise HTTPException(status.HTTP_403_FORBIDDEN,
                                f"role {caller.role!r} may not {action} (needs {action_roles[action]})")
        row = _visible_evaluation(s, caller, evaluation_id)
        body = body or ActionIn()
        svc.act(s, row, action, now(), reason=body.reason, answers=body.answers,
                coaching_days=c.settings.coaching_due_days)
        return evaluation_json(row)

    # -- coaching -------------------------------------------------------------------------------------------
    @router.get("/coaching", tags=["coaching"])
    def list_coaching(agent_id: str | None = None, open_only: bool = False, caller: Caller = Depends(as_reader),
                      s: Session = as_db) -> list[dict[str, Any]]:
        query = select(CoachingItemRow)
        if caller.role == "agent":
            query = query.where(CoachingItemRow.agent_id == caller.person_id)
        elif caller.role == "team_lead":
            query = query.where(CoachingItemRow.team_id == caller.team_id)
        if agent_id:
            query = query.where(CoachingItemRow.agent_id == agent_id)
        if open_only:
            query = query.where(CoachingItemRow.acknowledged_at.is_(None))
        rows = s.scalars(query.order_by(CoachingItemRow.due_date, CoachingItemRow.criterion_id))
        return [coaching_json(r) for r in rows]

    @router.post("/coaching/{item_id}/acknowledge", tags=["coaching"])
    def acknowledge_coaching(item_id: str, caller: Caller = Depends(as_agent),
                             s: Session = as_db) -> dict[str, Any]:
        row = s.get(CoachingItemRow, item_id)
        if row is None:
            raise svc.NotFound(f"coaching item {item_id!r} not found")
        visible(caller, row.agent_id, row.team_id)
        if row.acknowledged_at is not None:
            raise svc.Conflict("coaching item already acknowledged")
        row.acknowledged_at = now()
        return coaching_json(row)

    # -- contacts and sampling ------------------------------------------------------------------------------
    @router.post("/contacts", tags=["sampling"])
    def import_contacts(contacts: list[dict[str, Any]], caller: Caller = Depends(as_qa),
                        s: Session = as_db) -> dict[str, int]:
        """Contacts in the protobuf JSON mapping of callstream.kpi.v1.Contact (the topic consumer does the same)."""
        parsed = []
        for i, item in enumerate(contacts):
            try:
                parsed.append(json_format.ParseDict(item, kpi_events_pb2.Contact()))
            except json_format.ParseError as exc:
                return JSONResponse({"detail": [{"loc": ["body", i], "msg": str(exc), "type": "value_error"}]},
                                    status_code=422)  # type: ignore[return-value]
        return {"written": store_contacts(s, parsed)}

    @router.post("/sampling-plans", status_code=201, tags=["sampling"])
    def create_plan(body: PlanIn, caller: Caller = Depends(as_qa), s: Session = as_db) -> dict[str, Any]:
        plan, picks = svc.create_plan(s, name=body.name, period_start=body.period_start, period_end=body.period_end,
                                      per_agent=body.per_agent, seed=body.seed, long_call_s=body.long_call_s,
                                      now=now())
        return {"plan_id": plan.plan_id, "name": plan.name, "seed": plan.seed, "per_agent": plan.per_agent,
                "items": [{"agent_id": p.agent_id, "call_id": p.call_id, "segment": p.segment,
                           "stratum": p.stratum} for p in picks]}

    @router.get("/sampling-plans/{plan_id}", tags=["sampling"])
    def read_plan(plan_id: str, caller: Caller = Depends(as_lead),
                  s: Session = as_db) -> dict[str, Any]:
        plan = svc.get_plan(s, plan_id)
        items = svc.plan_items(s, plan_id)
        if caller.role == "team_lead":  # a team lead sees the picks of the team's contacts only
            team_calls = set(s.scalars(select(ContactRow.call_id).where(ContactRow.team_id == caller.team_id)))
            items = [i for i in items if i.call_id in team_calls]
        return {"plan_id": plan.plan_id, "name": plan.name, "period_start": plan.period_start.isoformat(),
                "period_end": plan.period_end.isoformat(), "per_agent": plan.per_agent, "seed": plan.seed,
                "items": [{"agent_id": i.agent_id, "call_id": i.call_id, "segment": i.segment,
                           "stratum": i.stratum} for i in items]}

    @router.get("/sampling-plans/{plan_id}/coverage", tags=["sampling"])
    def plan_coverage(plan_id: str, caller: Caller = Depends(as_lead),
                      s: Session = as_db) -> list[dict[str, Any]]:
        return svc.coverage(s, plan_id)

    # -- calibration ----------------------------------------------------------------------------------------
    @router.post("/calibration-sessions", status_code=201, tags=["calibration"])
    def create_session(body: CalibrationIn, caller: Caller = Depends(as_qa),
                       s: Session = as_db) -> dict[str, Any]:
        form = svc.get_form(s, body.form_id, body.form_version)
        row = CalibrationSessionRow(session_id=uuid.uuid4().hex, call_id=body.call_id, agent_id=body.agent_id,
                                    form_id=form.form_id, form_version=form.version,
                                    reference_evaluator=body.reference_evaluator, created_at=now())
        s.add(row)
        s.flush()
        return calibration_json(s, row.session_id)

    @router.post("/calibration-sessions/{session_id}/scores", status_code=201, tags=["calibration"])
    def add_score(session_id: str, body: CalibrationScoreIn, caller: Caller = Depends(as_qa),
                  s: Session = as_db) -> dict[str, Any]:
        cal = svc.get_session_row(s, session_id)
        evaluator = body.evaluator_id or caller.person_id or caller.subject
        already = s.scalar(select(EvaluationRow.evaluation_id).where(
            EvaluationRow.calibration_session_id == session_id, EvaluationRow.evaluator_id == evaluator))
        if already:
            raise svc.Conflict(f"{evaluator!r} has already scored calibration session {session_id}")
        svc.create_evaluation(s, svc.NewEvaluation(
            call_id=cal.call_id, agent_id=cal.agent_id, evaluator_id=evaluator, form_id=cal.form_id,
            form_version=cal.form_version, answers=body.answers, comments=body.comments, submit=True,
            calibration_session_id=session_id), now())
        return calibration_json(s, session_id)

    @router.get("/calibration-sessions/{session_id}", tags=["calibration"])
    def read_session(session_id: str, caller: Caller = Depends(as_qa_manager),
                     s: Session = as_db) -> dict[str, Any]:
        return calibration_json(s, session_id)

    def calibration_json(s: Session, session_id: str) -> dict[str, Any]:
        cal, stats = svc.calibration_report(s, session_id)
        return {"session_id": cal.session_id, "call_id": cal.call_id, "agent_id": cal.agent_id,
                "form_id": cal.form_id, "form_version": cal.form_version,
                "reference_evaluator": cal.reference_evaluator,
                "stats": None if stats is None else {
                    "consensus": stats.consensus, "spread": stats.spread, "stdev": stats.stdev,
                    "deviations": stats.deviations, "mean_abs_deviation": stats.mean_abs_deviation}}

    # -- reports --------------------------------------------------------------------------------------------
    @router.get("/reports/monitoring", tags=["reports"])
    def monitoring(month: str, group_by: Literal["agent", "team"] = "agent",
                   caller: Caller = Depends(as_reader),
                   s: Session = as_db) -> list[dict[str, Any]]:
        rows = [ev for ev in svc._month_evaluations(s, month) if caller.may_see(ev.agent_id, ev.team_id)]
        if caller.role == "agent" and group_by == "team":
            raise HTTPException(status.HTTP_403_FORBIDDEN, "agents see their own monitoring score only")
        return svc.monitoring_report(s, month, group_by, rows=rows)

    @router.get("/reports/qa-controller", tags=["reports"])
    def controller(month: str, caller: Caller = Depends(as_qa_manager),
                   s: Session = as_db) -> dict[str, Any]:
        return svc.controller_report(s, month)

    return router


def main() -> None:
    import uvicorn

    settings = QASettings()
    uvicorn.run(create_app(settings), host=settings.http_host, port=settings.http_port, log_config=None,
                **settings.uvicorn_tls())
