"""Teams, their rows (groups of agents under a senior operator) and team leads."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from callstream.hr.v1 import hr_events_pb2
from callstream_core.db import now
from callstream_core.topics import HR_EMPLOYMENT
from callstream_hr.adapters.models import Employee, EmploymentRecord, Row, Team
from callstream_hr.domain.people import org
from callstream_hr.service_layer.commands import RowChangeIn, RowIn, TeamChangeIn, TeamIn
from callstream_hr.service_layer.common import Caller, midnight
from callstream_hr.service_layer.errors import Conflict, Invalid, NotFound
from callstream_hr.service_layer.unit_of_work import UnitOfWork


def create_team(uow: UnitOfWork, body: TeamIn) -> Team:
    if uow.teams.get(body.id) is not None:
        raise Conflict(f"team {body.id!r} already exists")
    team = Team(id=body.id, name=body.name, lead_id=body.lead_id)
    uow.teams.add(team)
    uow.commit(f"team {body.id!r} already exists")
    return team


def create_row(uow: UnitOfWork, body: RowIn) -> Row:
    if uow.teams.get(body.team_id) is None:
        raise NotFound(f"team {body.team_id!r} not found")
    if uow.rows.get(body.id) is not None:
        raise Conflict(f"row {body.id!r} already exists")
    row = Row(id=body.id, team_id=body.team_id, senior_id=body.senior_id)
    uow.rows.add(row)
    uow.commit(f"row {body.id!r} already exists")
    return row


def record(uow: UnitOfWork, emp: Employee, on: date, change: str, lead_id: str | None, caller: Caller,
           reason: str | None = None) -> None:
    """Add `emp`'s current placement to the employment history, effective `on`."""
    uow.history.add(EmploymentRecord(employee_id=emp.id, effective_on=on, change=change, role=emp.role,
                                     team_id=emp.team_id, row_id=emp.row_id, team_lead_id=lead_id, reason=reason,
                                     recorded_at=now(), recorded_by=caller.subject))


@dataclass(frozen=True)
class TeamChanged:
    team: Team
    members_with_new_lead: list[str]


def change_team(uow: UnitOfWork, team_id: str, body: TeamChangeIn, caller: Caller) -> TeamChanged:
    """A new name and/or lead; a new lead takes over the active members from `effective_on`: each gets a
    history record and an employment event."""
    # Row lock (PostgreSQL): two concurrent lead changes of one team are applied one after the other.
    team = uow.teams.get(team_id, for_update=True)
    if team is None:
        raise NotFound(f"team {team_id!r} not found")
    if body.name is not None:
        team.name = body.name
    moved: list[str] = []
    if "lead_id" in body.model_fields_set and body.lead_id != team.lead_id:
        if body.effective_on > now().date():
            raise Invalid("effective_on is in the future: record a lead change on or after the day")
        members = uow.employees.list(team_id=team_id, active=True)
        later = [e.id for e in members if (uow.history.last_change(e.id) or e.hired_on) > body.effective_on]
        if later:
            raise Invalid(f"effective_on is before the last recorded change of {later}")
        team.lead_id = body.lead_id
        for emp in members:
            record(uow, emp, body.effective_on, "lead", body.lead_id, caller)
            uow.publish(HR_EMPLOYMENT, emp.id, hr_events_pb2.EmploymentChanged(
                employee_id=emp.id, kind=hr_events_pb2.EmploymentChanged.KIND_TEAM_CHANGED, role=emp.role,
                team_id=team_id, row_id=emp.row_id or "", team_lead_id=body.lead_id or "", fte=emp.fte,
                previous_role=emp.role, previous_team_id=team_id, previous_row_id=emp.row_id or "",
                reason_detail="new team lead",
            ), midnight(body.effective_on))
            moved.append(emp.id)
    uow.commit()
    return TeamChanged(team, moved)


def change_row(uow: UnitOfWork, row_id: str, body: RowChangeIn) -> Row:
    row = uow.rows.get(row_id)
    if row is None:
        raise NotFound(f"row {row_id!r} not found")
    row.senior_id = body.senior_id
    uow.commit()
    return row


@dataclass(frozen=True)
class OrgReport:
    team_agents: dict[str, int]
    row_agents: dict[str, int]
    warnings: list[org.Warning]


def org_report(uow: UnitOfWork) -> OrgReport:
    """Active agents per team and row, and the size and leadership warnings."""
    active = uow.employees.list(active=True)
    teams, rows = uow.teams.list(), uow.rows.list()
    team_agents = {t.id: 0 for t in teams}
    row_agents = {r.id: 0 for r in rows}
    for e in active:
        if e.role == "agent":
            if e.team_id in team_agents:
                team_agents[e.team_id] += 1
            if e.row_id in row_agents:
                row_agents[e.row_id] += 1
    active_ids = {e.id for e in active}
    warnings = org.size_warnings(
        team_agents, row_agents,
        rows_without_senior={r.id for r in rows if r.senior_id not in active_ids},
        teams_without_lead={t.id for t in teams if t.lead_id not in active_ids},
    )
    return OrgReport(team_agents, row_agents, warnings)


def list_teams(uow: UnitOfWork) -> list[tuple[Team, int]]:
    """Every team with its number of active agents."""
    agents = uow.employees.agents_per("team_id")
    return [(t, agents.get(t.id, 0)) for t in uow.teams.list()]


def list_rows(uow: UnitOfWork, team_id: str | None) -> list[tuple[Row, int]]:
    """The rows (of one team, or all) with their numbers of active agents."""
    agents = uow.employees.agents_per("row_id")
    return [(r, agents.get(r.id, 0)) for r in uow.rows.list(team_id)]


def placement(uow: UnitOfWork, team_id: str | None, row_id: str | None) -> Team | None:
    """The team (checked to exist) an employee is placed in; the row must exist and belong to it."""
    team = uow.teams.get(team_id) if team_id else None
    if team_id and team is None:
        raise NotFound(f"team {team_id!r} not found")
    if row_id:
        row = uow.rows.get(row_id)
        if row is None:
            raise NotFound(f"row {row_id!r} not found")
        if row.team_id != team_id:
            raise Invalid(f"row {row_id!r} belongs to team {row.team_id!r}")
    return team
