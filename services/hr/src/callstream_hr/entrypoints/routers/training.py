"""Training sessions, exams and the training flags; cost entries."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends, Query

from callstream_hr.domain.people.training import TrainingFlag
from callstream_hr.entrypoints.dependencies import Web, stamp
from callstream_hr.entrypoints.schemas import AttendeeOut, CostOut, ExamOut, SessionOut
from callstream_hr.service_layer import costs, training
from callstream_hr.service_layer.commands import CostIn, ExamIn, SessionIn, SessionType
from callstream_hr.service_layer.common import Caller
from callstream_hr.service_layer.unit_of_work import UnitOfWork


def router(web: Web) -> APIRouter:
    api = APIRouter(tags=["training and costs"])
    uow = Depends(web.uow())
    hr = Depends(web.caller("hr"))
    hr_mgr = Depends(web.caller("hr", "manager"))
    readers = Depends(web.caller("hr", "manager", "team_lead"))

    @api.post("/v1/training/sessions", status_code=201)
    def add_session(body: SessionIn, u: UnitOfWork = uow, _c: Caller = hr) -> SessionOut:
        ts = training.add_session(u, body)
        return SessionOut.model_validate({"id": ts.id, **body.model_dump(mode="json")})

    @api.post("/v1/exams", status_code=201, response_model_exclude_unset=True)
    def add_exam(body: ExamIn, u: UnitOfWork = uow, _c: Caller = hr) -> ExamOut:
        exam = training.add_exam(u, body)
        return ExamOut.model_validate({"id": exam.id, **body.model_dump(mode="json")})

    @api.get("/v1/training/sessions")
    def list_sessions(start: datetime | None = Query(None, alias="from"),
                      end: datetime | None = Query(None, alias="to"),
                      session_type: SessionType | None = Query(None, alias="type"),
                      u: UnitOfWork = uow, c: Caller = readers) -> list[SessionOut]:
        """Sessions with their attendance; a team lead sees the attendance of their own team only."""
        return [SessionOut.model_validate({
            "id": ts.id, "type": ts.type, "title": ts.title, "starts_at": stamp(ts.starts_at),
            "attendance": [AttendeeOut(employee_id=a.employee_id, attended=a.attended) for a in found]})
                for ts, found in training.list_sessions(u, c, start, end, session_type)]

    @api.get("/v1/exams")
    def list_exams(employee_id: str | None = None, team_id: str | None = None,
                   start: datetime | None = Query(None, alias="from"), end: datetime | None = Query(None, alias="to"),
                   u: UnitOfWork = uow, c: Caller = readers) -> list[ExamOut]:
        """Exam scores (personal data: every read is audit-logged); team leads see their own team's."""
        return [ExamOut(id=e.id, employee_id=e.employee_id, name=e.name, taken_at=stamp(e.taken_at), score=e.score,
                        pass_mark=e.pass_mark, passed=e.score >= e.pass_mark)
                for e in training.list_exams(u, c, employee_id, team_id, start, end)]

    @api.get("/v1/training/flags")
    def training_flags(last_n: int = Query(3, ge=1, le=20), u: UnitOfWork = uow,
                       c: Caller = readers) -> list[TrainingFlag]:
        """Agents whose last `last_n` exams are all below the pass mark; a team lead sees their own team's."""
        return training.training_flags(u, c, last_n)

    @api.post("/v1/costs", status_code=201)
    def add_cost(body: CostIn, u: UnitOfWork = uow, _c: Caller = hr_mgr) -> CostOut:
        costs.add_cost(u, body)
        return CostOut.model_validate(body.model_dump(mode="json"))

    @api.get("/v1/costs")
    def list_costs(cost_center_id: str | None = None, u: UnitOfWork = uow, _c: Caller = hr_mgr) -> list[CostOut]:
        return [CostOut(entry_id=c.entry_id, cost_center_id=c.cost_center_id, period_start=stamp(c.period_start),
                        period_end=stamp(c.period_end), amount_minor=c.amount_minor, currency=c.currency,
                        category=c.category) for c in costs.list_costs(u, cost_center_id)]

    return api
