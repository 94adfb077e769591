"""Employees: hiring, role and team changes with their history, leaving, skills, training stage."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from callstream.agent.v1 import agent_events_pb2
from callstream.common.v1 import envelope_pb2
from callstream.hr.v1 import hr_events_pb2
from callstream_core.db import now
from callstream_core.topics import AGENT_EVENTS, HR_EMPLOYMENT
from callstream_hr.adapters.models import AuditLog, Employee, EmploymentRecord, Skill
from callstream_hr.service_layer.commands import ChangeIn, HireIn, LeaveIn, Role, SkillIn, StageIn
from callstream_hr.service_layer.common import (
    PERSONAL_ROLES,
    Caller,
    audit,
    employee,
    midnight,
    team_scope,
    visible_team,
)
from callstream_hr.service_layer.errors import Conflict, Forbidden, Invalid
from callstream_hr.service_layer.organisation import placement, record
from callstream_hr.service_layer.unit_of_work import UnitOfWork

EXIT_REASON_PB = {
    "supervisor": hr_events_pb2.EXIT_REASON_SUPERVISOR,
    "work_environment": hr_events_pb2.EXIT_REASON_WORK_ENVIRONMENT,
    "workload_pressure": hr_events_pb2.EXIT_REASON_WORKLOAD_PRESSURE,
    "pay": hr_events_pb2.EXIT_REASON_PAY,
    "other": hr_events_pb2.EXIT_REASON_OTHER,
}


def hire(uow: UnitOfWork, body: HireIn, caller: Caller) -> Employee:
    if uow.employees.get(body.id) is not None:
        raise Conflict(f"employee {body.id!r} already exists")
    team = placement(uow, body.team_id, body.row_id)
    emp = Employee(**body.model_dump())
    uow.employees.add(emp)
    lead_id = team.lead_id if team else None
    record(uow, emp, body.hired_on, "hired", lead_id, caller)
    uow.publish(HR_EMPLOYMENT, emp.id, hr_events_pb2.EmploymentChanged(
        employee_id=emp.id, kind=hr_events_pb2.EmploymentChanged.KIND_HIRED, role=emp.role,
        team_id=emp.team_id or "", row_id=emp.row_id or "", team_lead_id=lead_id or "", fte=emp.fte,
    ), midnight(body.hired_on))
    uow.commit(f"employee {body.id!r} already exists")
    return emp


def leave(uow: UnitOfWork, employee_id: str, body: LeaveIn, caller: Caller) -> Employee:
    emp = employee(uow, employee_id)
    if emp.left_on is not None:
        raise Conflict(f"employee {employee_id!r} already left on {emp.left_on.isoformat()}")
    if body.left_on < emp.hired_on:
        raise Invalid("left_on is before hired_on")
    last = uow.history.last_change(employee_id)
    if last is not None and body.left_on < last:
        raise Invalid(f"left_on is before the last recorded change ({last.isoformat()})")
    team = uow.teams.get(emp.team_id) if emp.team_id else None
    emp.left_on, emp.exit_reason, emp.voluntary = body.left_on, body.exit_reason, body.voluntary
    emp.exit_interview = body.exit_interview
    emp.exit_team_lead_id = team.lead_id if team else None
    record(uow, emp, body.left_on, "left", emp.exit_team_lead_id, caller, body.exit_reason)
    uow.publish(HR_EMPLOYMENT, emp.id, hr_events_pb2.EmploymentChanged(
        employee_id=emp.id, kind=hr_events_pb2.EmploymentChanged.KIND_LEFT, role=emp.role,
        team_id=emp.team_id or "", row_id=emp.row_id or "", team_lead_id=emp.exit_team_lead_id or "",
        fte=emp.fte, exit_reason=EXIT_REASON_PB[body.exit_reason], voluntary=body.voluntary,
        reason_detail=body.reason_detail,
    ), midnight(body.left_on))
    uow.commit()
    return emp


@dataclass(frozen=True)
class Changed:
    employee: Employee
    change: str  # "role", "team" or "role+team"
    effective_on: date
    previous: tuple[str, str | None, str | None]  # role, team, row


def change(uow: UnitOfWork, employee_id: str, body: ChangeIn, caller: Caller) -> Changed:
    """Role and/or team (row) change from its effective date; the history is kept and each kind of change is
    published (KIND_ROLE_CHANGED, KIND_TEAM_CHANGED) with the previous and the new state."""
    # Row lock (PostgreSQL): two concurrent changes of one employee are applied one after the other.
    emp = employee(uow, employee_id, for_update=True)
    if emp.left_on is not None:
        raise Conflict(f"employee {employee_id!r} left on {emp.left_on.isoformat()}")
    if body.effective_on > now().date():
        raise Invalid("effective_on is in the future: record a change on or after the day it "
                      "takes effect (the current role and team are what every report uses)")
    last = uow.history.last_change(employee_id) or emp.hired_on
    if body.effective_on < last:
        raise Invalid(f"effective_on is before the last recorded change ({last.isoformat()}); "
                      "the history is kept in order")
    fields = body.model_fields_set
    role = body.role if body.role is not None else emp.role
    team_id = body.team_id if "team_id" in fields else emp.team_id
    row_id = body.row_id if "row_id" in fields else (emp.row_id if team_id == emp.team_id else None)
    team = placement(uow, team_id, row_id)
    role_changed = role != emp.role
    team_changed = (team_id, row_id) != (emp.team_id, emp.row_id)
    if not role_changed and not team_changed:
        raise Invalid(f"nothing changes: {employee_id!r} is already {role!r} in team {team_id!r}, row {row_id!r}")
    before = (emp.role, emp.team_id, emp.row_id)
    emp.role, emp.team_id, emp.row_id = role, team_id, row_id
    kind = "+".join(k for k, changed in (("role", role_changed), ("team", team_changed)) if changed)
    lead_id = team.lead_id if team else None
    record(uow, emp, body.effective_on, kind, lead_id, caller, body.reason)
    event_kinds = [k for k, changed in ((hr_events_pb2.EmploymentChanged.KIND_ROLE_CHANGED, role_changed),
                                        (hr_events_pb2.EmploymentChanged.KIND_TEAM_CHANGED, team_changed))
                   if changed]
    for event_kind in event_kinds:
        uow.publish(HR_EMPLOYMENT, emp.id, hr_events_pb2.EmploymentChanged(
            employee_id=emp.id, kind=event_kind, role=role, team_id=team_id or "", row_id=row_id or "",
            team_lead_id=lead_id or "", fte=emp.fte, previous_role=before[0], previous_team_id=before[1] or "",
            previous_row_id=before[2] or "", reason_detail=body.reason or "",
        ), midnight(body.effective_on))
    uow.commit()
    return Changed(emp, kind, body.effective_on, before)


@dataclass(frozen=True)
class History:
    records: Sequence[EmploymentRecord]
    personal: bool  # with the reasons and who recorded them (HR and managers; the read is audit-logged)


def employment_history(uow: UnitOfWork, employee_id: str, caller: Caller) -> History:
    """Hire, role and team changes and leaving, oldest first. Team leads see their own team's members
    without the reasons."""
    emp = employee(uow, employee_id)
    scope = team_scope(caller)
    if scope is not None and emp.team_id != scope:
        raise Forbidden(f"a team lead sees only team {scope!r}")
    records = uow.history.of(employee_id)
    personal = scope is None
    if personal:
        audit(uow, caller, "read_employment_history", employee_id)
        uow.commit()
    return History(records, personal)


def get_employee(uow: UnitOfWork, employee_id: str, caller: Caller) -> tuple[Employee, Sequence[Skill]]:
    emp = employee(uow, employee_id)
    skills = uow.skills.of(employee_id)
    audit(uow, caller, "read_employee", employee_id)
    uow.commit()
    return emp, skills


def list_employees(uow: UnitOfWork, caller: Caller, team_id: str | None, role: Role | None,
                   active: bool | None) -> tuple[Sequence[Employee], bool]:
    """The employees asked for and whether the caller sees their personal data (then the read is logged)."""
    team_id = visible_team(caller, team_id)
    emps = uow.employees.list(team_id=team_id, role=role, active=active)
    if caller.role in (*PERSONAL_ROLES, "admin"):
        audit(uow, caller, "list_employees", f"team={team_id or '*'} n={len(emps)}")
        uow.commit()
        return emps, True
    return emps, False


def set_skills(uow: UnitOfWork, employee_id: str, body: list[SkillIn]) -> dict[str, int]:
    employee(uow, employee_id)
    names = [k.skill for k in body]
    if len(names) != len(set(names)):
        raise Invalid("each skill may appear once")
    uow.skills.replace(employee_id, [Skill(employee_id=employee_id, skill=k.skill, proficiency=k.proficiency)
                                     for k in body])
    # The routing service takes skills from the agent events (the whole set replaces the previous one).
    uow.publish(AGENT_EVENTS, employee_id, agent_events_pb2.AgentEvent(
        agent_id=employee_id, skills_changed=agent_events_pb2.SkillsChanged(skills=[
            envelope_pb2.Skill(skill_id=k.skill, proficiency=k.proficiency) for k in body])))
    uow.commit()
    return {k.skill: k.proficiency for k in body}


def set_stage(uow: UnitOfWork, employee_id: str, body: StageIn) -> Employee:
    emp = employee(uow, employee_id)
    emp.training_stage = body.stage
    uow.commit()
    return emp


def audit_log(uow: UnitOfWork, limit: int) -> Sequence[AuditLog]:
    return uow.audit.latest(limit)
