"""Employees: hiring, changes and their history, leaving, skills, training stage; the audit log."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query

from callstream_hr.adapters.models import Employee
from callstream_hr.entrypoints.dependencies import Web, stamp
from callstream_hr.entrypoints.schemas import (
    AuditEntryOut,
    ChangeOut,
    EmployeeDetailOut,
    EmployeeOut,
    HistoryRecordOut,
    PlacementOut,
    SkillsOut,
)
from callstream_hr.service_layer import people
from callstream_hr.service_layer.commands import ChangeIn, HireIn, LeaveIn, Role, SkillIn, StageIn
from callstream_hr.service_layer.common import PERSONAL_ROLES, Caller
from callstream_hr.service_layer.unit_of_work import UnitOfWork


def public(e: Employee) -> EmployeeOut:
    return EmployeeOut.model_validate(_public_fields(e))


def _public_fields(e: Employee) -> dict[str, object]:
    return {"id": e.id, "role": e.role, "team_id": e.team_id, "row_id": e.row_id, "fte": e.fte,
            "hired_on": e.hired_on.isoformat(), "left_on": e.left_on.isoformat() if e.left_on else None,
            "training_stage": e.training_stage}


def _personal_fields(e: Employee) -> dict[str, object]:
    return {**_public_fields(e), "full_name": e.full_name, "email": e.email, "phone": e.phone,
            "exit_reason": e.exit_reason, "voluntary": e.voluntary, "exit_interview": e.exit_interview}


def router(web: Web) -> APIRouter:
    api = APIRouter(tags=["employees"])
    uow = Depends(web.uow())
    hr = Depends(web.caller("hr"))
    personal = Depends(web.caller(*PERSONAL_ROLES))
    readers = Depends(web.caller("hr", "manager", "team_lead"))
    admin = Depends(web.caller("admin"))

    # Answers without the personal fields leave them out (not null): response_model_exclude_unset.
    @api.post("/v1/employees", status_code=201, response_model_exclude_unset=True)
    def hire(body: HireIn, u: UnitOfWork = uow, c: Caller = hr) -> EmployeeOut:
        return public(people.hire(u, body, c))

    @api.post("/v1/employees/{employee_id}/leave", response_model_exclude_unset=True)
    def leave(employee_id: str, body: LeaveIn, u: UnitOfWork = uow, c: Caller = hr) -> EmployeeOut:
        return public(people.leave(u, employee_id, body, c))

    @api.post("/v1/employees/{employee_id}/changes", status_code=201, response_model_exclude_unset=True)
    def change(employee_id: str, body: ChangeIn, u: UnitOfWork = uow, c: Caller = hr) -> ChangeOut:
        """Role and/or team (row) change from its effective date; the history is kept and each kind of
        change is published (KIND_ROLE_CHANGED, KIND_TEAM_CHANGED) with the previous and the new state."""
        done = people.change(u, employee_id, body, c)
        role, team_id, row_id = done.previous
        return ChangeOut(employee=public(done.employee), change=done.change,
                         effective_on=done.effective_on.isoformat(),
                         previous=PlacementOut(role=role, team_id=team_id, row_id=row_id))

    @api.get("/v1/employees/{employee_id}/history", response_model_exclude_unset=True)
    def employment_history(employee_id: str, u: UnitOfWork = uow, c: Caller = readers) -> list[HistoryRecordOut]:
        """Hire, role and team changes and leaving, oldest first. Team leads see their own team's members
        without the reasons (personal data: HR and managers only, and their reads are audit-logged)."""
        history = people.employment_history(u, employee_id, c)
        return [HistoryRecordOut.model_validate({
            "effective_on": r.effective_on.isoformat(), "change": r.change, "role": r.role, "team_id": r.team_id,
            "row_id": r.row_id, "team_lead_id": r.team_lead_id,
            **({"reason": r.reason, "recorded_by": r.recorded_by, "recorded_at": stamp(r.recorded_at)}
               if history.personal else {})}) for r in history.records]

    @api.get("/v1/employees/{employee_id}")
    def get_employee(employee_id: str, u: UnitOfWork = uow, c: Caller = personal) -> EmployeeDetailOut:
        emp, skills = people.get_employee(u, employee_id, c)
        return EmployeeDetailOut.model_validate({**_personal_fields(emp),
                                                 "skills": {k.skill: k.proficiency for k in skills}})

    @api.get("/v1/employees", response_model_exclude_unset=True)
    def list_employees(team_id: str | None = None, role: Role | None = None, active: bool | None = None,
                       u: UnitOfWork = uow, c: Caller = readers) -> list[EmployeeOut]:
        emps, with_personal = people.list_employees(u, c, team_id, role, active)
        fields = _personal_fields if with_personal else _public_fields
        return [EmployeeOut.model_validate(fields(e)) for e in emps]

    @api.put("/v1/employees/{employee_id}/skills")
    def set_skills(employee_id: str, body: list[SkillIn], u: UnitOfWork = uow, _c: Caller = personal
                   ) -> SkillsOut:
        return SkillsOut(people.set_skills(u, employee_id, body))

    @api.put("/v1/employees/{employee_id}/training-stage", response_model_exclude_unset=True)
    def set_stage(employee_id: str, body: StageIn, u: UnitOfWork = uow, _c: Caller = hr) -> EmployeeOut:
        return public(people.set_stage(u, employee_id, body))

    @api.get("/v1/audit")
    def audit_log(limit: int = Query(100, ge=1, le=1000), u: UnitOfWork = uow,
                  _c: Caller = admin) -> list[AuditEntryOut]:
        return [AuditEntryOut(at=stamp(r.at), subject=r.subject, role=r.role, action=r.action, target=r.target)
                for r in people.audit_log(u, limit)]

    return api
