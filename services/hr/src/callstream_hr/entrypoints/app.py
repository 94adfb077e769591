"""HR HTTP API: people, training, costs, schedules, attendance, attrition and workforce planning."""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import asdict
from datetime import UTC, date, datetime, timedelta
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import TypeAdapter, ValidationError
from sqlalchemy import delete, func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from callstream.agent.v1 import agent_events_pb2
from callstream.common.v1 import envelope_pb2
from callstream.hr.v1 import hr_events_pb2
from callstream_core import db
from callstream_core.auth import Principal, TokenAuth, TokenTable
from callstream_core.http_errors import install_error_handlers
from callstream_core.observability import ops_router
from callstream_core.outbox import OutboxRelay
from callstream_hr.adapters.db import migrate
from callstream_hr.adapters.kpi_history import KpiApiHistory
from callstream_hr.adapters.models import (
    AbsenceRow,
    AuditLog,
    CostEntryRow,
    Employee,
    EmploymentRecord,
    Exam,
    PunchRow,
    Row,
    Schedule,
    ShiftRow,
    Skill,
    Team,
    TrainingAttendance,
    TrainingSession,
)
from callstream_hr.adapters.outbox import outbox
from callstream_hr.config import HrSettings
from callstream_hr.domain.erlang import required_agents
from callstream_hr.domain.forecast import IntervalFigures, SeasonalForecaster
from callstream_hr.domain.history import RecordedHistory
from callstream_hr.domain.people import attendance as att
from callstream_hr.domain.people import attrition as attr
from callstream_hr.domain.people import org, training
from callstream_hr.domain.roster import Contract, RosterRules
from callstream_hr.domain.roster import Employee as RosterEmployee
from callstream_hr.domain.shifts import BreakRule, ShiftTemplate, plan_shifts
from callstream_hr.entrypoints import schemas as s
from callstream_hr.planning import (
    HistorySource,
    HistoryUnavailable,
    QueueTargets,
    RosterOptions,
    ShiftOptions,
    StaffingGoals,
    forecast_week,
    plan_dict,
    plan_week,
)

log = logging.getLogger(__name__)
_bearer = HTTPBearer(auto_error=False)

EXIT_REASON_PB = {
    "supervisor": hr_events_pb2.EXIT_REASON_SUPERVISOR,
    "work_environment": hr_events_pb2.EXIT_REASON_WORK_ENVIRONMENT,
    "workload_pressure": hr_events_pb2.EXIT_REASON_WORKLOAD_PRESSURE,
    "pay": hr_events_pb2.EXIT_REASON_PAY,
    "other": hr_events_pb2.EXIT_REASON_OTHER,
}
ABSENCE_PB = {
    "sick": hr_events_pb2.Absence.REASON_SICK,
    "vacation": hr_events_pb2.Absence.REASON_VACATION,
    "personal": hr_events_pb2.Absence.REASON_PERSONAL,
    "unexcused": hr_events_pb2.Absence.REASON_UNEXCUSED,
    "training": hr_events_pb2.Absence.REASON_TRAINING,
    "other": hr_events_pb2.Absence.REASON_OTHER,
}
PERSONAL_ROLES = ("hr", "manager")
CSV_COLUMNS = ("employee_id", "kind", "at", "device")
_punch_adapter = TypeAdapter(s.PunchIn)


def _public(e: Employee) -> dict[str, Any]:
    return {"id": e.id, "role": e.role, "team_id": e.team_id, "row_id": e.row_id, "fte": e.fte,
            "hired_on": e.hired_on.isoformat(), "left_on": e.left_on.isoformat() if e.left_on else None,
            "training_stage": e.training_stage}


def _personal(e: Employee) -> dict[str, Any]:
    return {**_public(e), "full_name": e.full_name, "email": e.email, "phone": e.phone,
            "exit_reason": e.exit_reason, "voluntary": e.voluntary, "exit_interview": e.exit_interview}


def _audit(session: Session, who: Principal, action: str, target: str) -> None:
    session.add(AuditLog(at=db.now(), subject=who.subject, role=who.role, action=action, target=target[:200]))


def _dt(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


def _aware(moment: datetime, name: str) -> datetime:
    if moment.tzinfo is None:
        raise HTTPException(422, f"{name} needs a timezone (e.g. 2026-11-02T00:00:00Z)")
    return moment.astimezone(UTC)


def _period(start: datetime, end: datetime, max_days: int = 366) -> tuple[datetime, datetime]:
    """A query period [from, to): both with a timezone, to after from, at most `max_days` long."""
    begin, finish = _aware(start, "from"), _aware(end, "to")
    if finish <= begin:
        raise HTTPException(422, "to must be after from")
    if finish - begin > timedelta(days=max_days):
        raise HTTPException(422, f"a period covers at most {max_days} days")
    return begin, finish


def _midnight(day: date) -> datetime:
    """Event time of a dated HR fact (hire, change, leaving): 00:00 UTC of that day."""
    return datetime.combine(day, datetime.min.time(), UTC)


def create_app(settings: HrSettings) -> FastAPI:
    engine = db.make_engine(settings.database_url)
    migrate(engine)
    sessions = db.session_factory(engine)
    auth = TokenAuth(settings.tokens())
    scopes = TokenTable(settings.scopes())  # a team-lead token's team, looked up in constant time
    grace = timedelta(minutes=settings.lateness_grace_minutes)
    history: HistorySource | None = None
    kpi_history = None
    if settings.kpi_api_url:
        history = kpi_history = KpiApiHistory(settings.kpi_api_url, settings.kpi_api_token, settings.kpi_api_timeout_s,
                                               settings.kpi_api_ca_file)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        relay = None
        if settings.outbox_interval_s > 0:
            from callstream_core.kafka import EventProducer

            producer = EventProducer(settings.kafka_bootstrap_servers, client_id="callstream-hr",
                                     wire_format=settings.wire_format)
            relay = OutboxRelay(outbox, sessions, producer, interval_s=settings.outbox_interval_s,
                                batch=settings.outbox_batch, name="hr-outbox-relay")
            relay.start()
        try:
            yield
        finally:
            if relay is not None:
                relay.stop()
            if kpi_history is not None:
                kpi_history.close()
            engine.dispose()

    async def db_ready() -> str | None:
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception as exc:
            return f"database: {exc}"
        return None

    app = FastAPI(title="Callstream HR", version="1", lifespan=lifespan)
    install_error_handlers(app)
    app.include_router(ops_router({"database": db_ready}))
    app.state.sessions = sessions
    app.state.engine = engine

    def get_session() -> Iterator[Session]:
        with sessions() as session:
            yield session

    def team_scope(principal: Principal,
                   credentials: HTTPAuthorizationCredentials | None) -> str | None:
        """None = every team; a team id for a team lead (only their own team)."""
        if principal.role != "team_lead":
            return None
        team = scopes.get(credentials.credentials) if credentials else None
        if team is None:
            raise HTTPException(status.HTTP_403_FORBIDDEN, "this team-lead token has no team (TEAM_LEAD_SCOPES)")
        return team

    def visible_team(principal: Principal, credentials: HTTPAuthorizationCredentials | None,
                     team_id: str | None) -> str | None:
        """The team a request may see: what it asked for (None = all), or the team lead's own team."""
        scope = team_scope(principal, credentials)
        if scope is None:
            return team_id
        if team_id not in (None, scope):
            raise HTTPException(403, f"a team lead sees only team {scope!r}")
        return scope

    def _employee(session: Session, employee_id: str) -> Employee:
        emp = session.get(Employee, employee_id)
        if emp is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"employee {employee_id!r} not found")
        return emp

    def _commit(session: Session, conflict: str) -> None:
        try:
            session.commit()
        except IntegrityError as exc:
            session.rollback()
            raise HTTPException(status.HTTP_409_CONFLICT, conflict) from exc

    hr_write = hr_only = auth.require("hr")
    personal = hr_mgr = auth.require(*PERSONAL_ROLES)
    hr_mgr_lead = auth.require("hr", "manager", "team_lead")
    admin_only = auth.require("admin")
    hr_service = auth.require("hr", "service")

    # ---------------------------------------------------------------- organisation
    @app.post("/v1/teams", status_code=201)
    def create_team(body: s.TeamIn, session: Session = Depends(get_session),
                    _p: Principal = Depends(hr_write)) -> dict[str, Any]:
        if session.get(Team, body.id) is not None:
            raise HTTPException(409, f"team {body.id!r} already exists")
        session.add(Team(id=body.id, name=body.name, lead_id=body.lead_id))
        _commit(session, f"team {body.id!r} already exists")
        return body.model_dump()

    @app.post("/v1/rows", status_code=201)
    def create_row(body: s.RowIn, session: Session = Depends(get_session),
                   _p: Principal = Depends(hr_write)) -> dict[str, Any]:
        if session.get(Team, body.team_id) is None:
            raise HTTPException(404, f"team {body.team_id!r} not found")
        if session.get(Row, body.id) is not None:
            raise HTTPException(409, f"row {body.id!r} already exists")
        session.add(Row(id=body.id, team_id=body.team_id, senior_id=body.senior_id))
        _commit(session, f"row {body.id!r} already exists")
        return body.model_dump()

    @app.put("/v1/teams/{team_id}")
    def change_team(team_id: str, body: s.TeamChangeIn, session: Session = Depends(get_session),
                    who: Principal = Depends(hr_write)) -> dict[str, Any]:
        # Row lock (PostgreSQL): two concurrent lead changes of one team are applied one after the other.
        team = session.get(Team, team_id, with_for_update=True)
        if team is None:
            raise HTTPException(404, f"team {team_id!r} not found")
        if body.name is not None:
            team.name = body.name
        moved: list[str] = []
        if "lead_id" in body.model_fields_set and body.lead_id != team.lead_id:
            if body.effective_on > db.now().date():
                raise HTTPException(422, "effective_on is in the future: record a lead change on or after the day")
            members = session.scalars(select(Employee).where(Employee.team_id == team_id, Employee.left_on.is_(None))
                                      .order_by(Employee.id)).all()
            later = [e.id for e in members if (_last_change(session, e.id) or e.hired_on) > body.effective_on]
            if later:
                raise HTTPException(422, f"effective_on is before the last recorded change of {later}")
            team.lead_id = body.lead_id
            for emp in members:
                _record(session, emp, body.effective_on, "lead", body.lead_id, who)
                outbox.add(session, "cc.hr-employment.v1", emp.id, hr_events_pb2.EmploymentChanged(
                    employee_id=emp.id, kind=hr_events_pb2.EmploymentChanged.KIND_TEAM_CHANGED, role=emp.role,
                    team_id=team_id, row_id=emp.row_id or "", team_lead_id=body.lead_id or "", fte=emp.fte,
                    previous_role=emp.role, previous_team_id=team_id, previous_row_id=emp.row_id or "",
                    reason_detail="new team lead",
                ), _midnight(body.effective_on))
                moved.append(emp.id)
        session.commit()
        return {"id": team.id, "name": team.name, "lead_id": team.lead_id, "members_with_new_lead": moved}

    @app.put("/v1/rows/{row_id}")
    def change_row(row_id: str, body: s.RowChangeIn, session: Session = Depends(get_session),
                   _p: Principal = Depends(hr_write)) -> dict[str, Any]:
        row = session.get(Row, row_id)
        if row is None:
            raise HTTPException(404, f"row {row_id!r} not found")
        row.senior_id = body.senior_id
        session.commit()
        return {"id": row.id, "team_id": row.team_id, "senior_id": row.senior_id}

    @app.get("/v1/org/report")
    def org_report(session: Session = Depends(get_session),
                   _p: Principal = Depends(hr_mgr_lead)) -> dict[str, Any]:
        active = session.scalars(select(Employee).where(Employee.left_on.is_(None))).all()
        teams = session.scalars(select(Team)).all()
        rows = session.scalars(select(Row)).all()
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
        return {"teams": team_agents, "rows": row_agents, "warnings": [asdict(w) for w in warnings]}

    def _agent_counts(session: Session, column: Any) -> dict[str, int]:
        """Active agents per team or row."""
        return {key: n for key, n in session.execute(select(column, func.count()).where(
            Employee.left_on.is_(None), Employee.role == "agent", column.is_not(None)).group_by(column))}

    @app.get("/v1/teams")
    def list_teams(session: Session = Depends(get_session),
                   _p: Principal = Depends(hr_mgr_lead)) -> list[dict[str, Any]]:
        agents = _agent_counts(session, Employee.team_id)
        return [{"id": t.id, "name": t.name, "lead_id": t.lead_id, "agents": agents.get(t.id, 0)}
                for t in session.scalars(select(Team).order_by(Team.id)).all()]

    @app.get("/v1/rows")
    def list_rows(team_id: str | None = None, session: Session = Depends(get_session),
                  _p: Principal = Depends(hr_mgr_lead)) -> list[dict[str, Any]]:
        query = select(Row).order_by(Row.team_id, Row.id)
        if team_id:
            query = query.where(Row.team_id == team_id)
        agents = _agent_counts(session, Employee.row_id)
        return [{"id": r.id, "team_id": r.team_id, "senior_id": r.senior_id, "agents": agents.get(r.id, 0)}
                for r in session.scalars(query).all()]

    # ---------------------------------------------------------------- people
    def _placement(session: Session, team_id: str | None, row_id: str | None) -> Team | None:
        """The team (checked to exist) an employee is placed in; the row must exist and belong to it."""
        team = session.get(Team, team_id) if team_id else None
        if team_id and team is None:
            raise HTTPException(404, f"team {team_id!r} not found")
        if row_id:
            row = session.get(Row, row_id)
            if row is None:
                raise HTTPException(404, f"row {row_id!r} not found")
            if row.team_id != team_id:
                raise HTTPException(422, f"row {row_id!r} belongs to team {row.team_id!r}")
        return team

    def _record(session: Session, emp: Employee, on: date, change: str, lead_id: str | None, who: Principal,
                reason: str | None = None) -> None:
        session.add(EmploymentRecord(employee_id=emp.id, effective_on=on, change=change, role=emp.role,
                                     team_id=emp.team_id, row_id=emp.row_id, team_lead_id=lead_id, reason=reason,
                                     recorded_at=db.now(), recorded_by=who.subject))

    @app.post("/v1/employees", status_code=201)
    def hire(body: s.HireIn, session: Session = Depends(get_session),
             who: Principal = Depends(hr_write)) -> dict[str, Any]:
        if session.get(Employee, body.id) is not None:
            raise HTTPException(409, f"employee {body.id!r} already exists")
        team = _placement(session, body.team_id, body.row_id)
        emp = Employee(**body.model_dump())
        session.add(emp)
        session.flush()  # the employee row first: the history row refers to it
        lead_id = team.lead_id if team else None
        _record(session, emp, body.hired_on, "hired", lead_id, who)
        outbox.add(session, "cc.hr-employment.v1", emp.id, hr_events_pb2.EmploymentChanged(
            employee_id=emp.id, kind=hr_events_pb2.EmploymentChanged.KIND_HIRED, role=emp.role,
            team_id=emp.team_id or "", row_id=emp.row_id or "", team_lead_id=lead_id or "", fte=emp.fte,
        ), _midnight(body.hired_on))
        _commit(session, f"employee {body.id!r} already exists")
        return _public(emp)

    @app.post("/v1/employees/{employee_id}/leave")
    def leave(employee_id: str, body: s.LeaveIn, session: Session = Depends(get_session),
              who: Principal = Depends(hr_write)) -> dict[str, Any]:
        emp = _employee(session, employee_id)
        if emp.left_on is not None:
            raise HTTPException(409, f"employee {employee_id!r} already left on {emp.left_on.isoformat()}")
        if body.left_on < emp.hired_on:
            raise HTTPException(422, "left_on is before hired_on")
        last = _last_change(session, employee_id)
        if last is not None and body.left_on < last:
            raise HTTPException(422, f"left_on is before the last recorded change ({last.isoformat()})")
        team = session.get(Team, emp.team_id) if emp.team_id else None
        emp.left_on, emp.exit_reason, emp.voluntary = body.left_on, body.exit_reason, body.voluntary
        emp.exit_interview = body.exit_interview
        emp.exit_team_lead_id = team.lead_id if team else None
        _record(session, emp, body.left_on, "left", emp.exit_team_lead_id, who, body.exit_reason)
        outbox.add(session, "cc.hr-employment.v1", emp.id, hr_events_pb2.EmploymentChanged(
            employee_id=emp.id, kind=hr_events_pb2.EmploymentChanged.KIND_LEFT, role=emp.role,
            team_id=emp.team_id or "", row_id=emp.row_id or "", team_lead_id=emp.exit_team_lead_id or "",
            fte=emp.fte, exit_reason=EXIT_REASON_PB[body.exit_reason], voluntary=body.voluntary,
            reason_detail=body.reason_detail,
        ), _midnight(body.left_on))
        session.commit()
        return _public(emp)

    def _last_change(session: Session, employee_id: str) -> date | None:
        return session.scalar(select(func.max(EmploymentRecord.effective_on))
                              .where(EmploymentRecord.employee_id == employee_id))

    @app.post("/v1/employees/{employee_id}/changes", status_code=201)
    def change(employee_id: str, body: s.ChangeIn, session: Session = Depends(get_session),
               who: Principal = Depends(hr_write)) -> dict[str, Any]:
        """Role and/or team (row) change from its effective date; the history is kept and each kind of
        change is published (KIND_ROLE_CHANGED, KIND_TEAM_CHANGED) with the previous and the new state."""
        # Row lock (PostgreSQL): two concurrent changes of one employee are applied one after the other.
        emp = session.get(Employee, employee_id, with_for_update=True)
        if emp is None:
            raise HTTPException(404, f"employee {employee_id!r} not found")
        if emp.left_on is not None:
            raise HTTPException(409, f"employee {employee_id!r} left on {emp.left_on.isoformat()}")
        if body.effective_on > db.now().date():
            raise HTTPException(422, "effective_on is in the future: record a change on or after the day it "
                                     "takes effect (the current role and team are what every report uses)")
        last = _last_change(session, employee_id) or emp.hired_on
        if body.effective_on < last:
            raise HTTPException(422, f"effective_on is before the last recorded change ({last.isoformat()}); "
                                     "the history is kept in order")
        fields = body.model_fields_set
        role = body.role if body.role is not None else emp.role
        team_id = body.team_id if "team_id" in fields else emp.team_id
        row_id = body.row_id if "row_id" in fields else (emp.row_id if team_id == emp.team_id else None)
        team = _placement(session, team_id, row_id)
        role_changed = role != emp.role
        team_changed = (team_id, row_id) != (emp.team_id, emp.row_id)
        if not role_changed and not team_changed:
            raise HTTPException(422, f"nothing changes: {employee_id!r} is already {role!r} in team "
                                     f"{team_id!r}, row {row_id!r}")
        before = (emp.role, emp.team_id, emp.row_id)
        emp.role, emp.team_id, emp.row_id = role, team_id, row_id
        kind = "+".join(k for k, changed in (("role", role_changed), ("team", team_changed)) if changed)
        lead_id = team.lead_id if team else None
        _record(session, emp, body.effective_on, kind, lead_id, who, body.reason)
        event_kinds = [k for k, changed in ((hr_events_pb2.EmploymentChanged.KIND_ROLE_CHANGED, role_changed),
                                            (hr_events_pb2.EmploymentChanged.KIND_TEAM_CHANGED, team_changed))
                       if changed]
        for event_kind in event_kinds:
            outbox.add(session, "cc.hr-employment.v1", emp.id, hr_events_pb2.EmploymentChanged(
                employee_id=emp.id, kind=event_kind, role=role, team_id=team_id or "", row_id=row_id or "",
                team_lead_id=lead_id or "", fte=emp.fte, previous_role=before[0], previous_team_id=before[1] or "",
                previous_row_id=before[2] or "", reason_detail=body.reason or "",
            ), _midnight(body.effective_on))
        session.commit()
        return {"employee": _public(emp), "change": kind, "effective_on": body.effective_on.isoformat(),
                "previous": {"role": before[0], "team_id": before[1], "row_id": before[2]}}

    @app.get("/v1/employees/{employee_id}/history")
    def employment_history(employee_id: str, session: Session = Depends(get_session),
                           who: Principal = Depends(hr_mgr_lead),
                           credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)
                           ) -> list[dict[str, Any]]:
        """Hire, role and team changes and leaving, oldest first. Team leads see their own team's members
        without the reasons (personal data: HR and managers only, and their reads are audit-logged)."""
        emp = _employee(session, employee_id)
        scope = team_scope(who, credentials)
        if scope is not None and emp.team_id != scope:
            raise HTTPException(403, f"a team lead sees only team {scope!r}")
        records = session.scalars(select(EmploymentRecord).where(EmploymentRecord.employee_id == employee_id)
                                  .order_by(EmploymentRecord.effective_on, EmploymentRecord.id)).all()
        personal_view = scope is None
        if personal_view:
            _audit(session, who, "read_employment_history", employee_id)
            session.commit()
        return [{"effective_on": r.effective_on.isoformat(), "change": r.change, "role": r.role,
                 "team_id": r.team_id, "row_id": r.row_id, "team_lead_id": r.team_lead_id,
                 **({"reason": r.reason, "recorded_by": r.recorded_by,
                     "recorded_at": db.utc(r.recorded_at).isoformat()} if personal_view else {})}
                for r in records]

    @app.get("/v1/employees/{employee_id}")
    def get_employee(employee_id: str, session: Session = Depends(get_session),
                     who: Principal = Depends(personal)) -> dict[str, Any]:
        emp = _employee(session, employee_id)
        skills = session.scalars(select(Skill).where(Skill.employee_id == employee_id)).all()
        _audit(session, who, "read_employee", employee_id)
        session.commit()
        return {**_personal(emp), "skills": {k.skill: k.proficiency for k in skills}}

    @app.get("/v1/employees")
    def list_employees(team_id: str | None = None, role: s.Role | None = None, active: bool | None = None,
                       session: Session = Depends(get_session),
                       who: Principal = Depends(hr_mgr_lead),
                       credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> list[dict[str, Any]]:
        team_id = visible_team(who, credentials, team_id)
        query = select(Employee).order_by(Employee.id)
        if team_id:
            query = query.where(Employee.team_id == team_id)
        if role:
            query = query.where(Employee.role == role)
        if active is not None:
            query = query.where(Employee.left_on.is_(None) if active else Employee.left_on.is_not(None))
        emps = session.scalars(query).all()
        if who.role in (*PERSONAL_ROLES, "admin"):
            _audit(session, who, "list_employees", f"team={team_id or '*'} n={len(emps)}")
            session.commit()
            return [_personal(e) for e in emps]
        return [_public(e) for e in emps]

    @app.put("/v1/employees/{employee_id}/skills")
    def set_skills(employee_id: str, body: list[s.SkillIn], session: Session = Depends(get_session),
                   _p: Principal = Depends(hr_mgr)) -> dict[str, int]:
        _employee(session, employee_id)
        names = [k.skill for k in body]
        if len(names) != len(set(names)):
            raise HTTPException(422, "each skill may appear once")
        session.execute(delete(Skill).where(Skill.employee_id == employee_id))
        session.add_all(Skill(employee_id=employee_id, skill=k.skill, proficiency=k.proficiency) for k in body)
        # The routing service takes skills from the agent events (the whole set replaces the previous one).
        outbox.add(session, "cc.agent-events.v1", employee_id, agent_events_pb2.AgentEvent(
            agent_id=employee_id, skills_changed=agent_events_pb2.SkillsChanged(skills=[
                envelope_pb2.Skill(skill_id=k.skill, proficiency=k.proficiency) for k in body])))
        session.commit()
        return {k.skill: k.proficiency for k in body}

    @app.put("/v1/employees/{employee_id}/training-stage")
    def set_stage(employee_id: str, body: s.StageIn, session: Session = Depends(get_session),
                  _p: Principal = Depends(hr_only)) -> dict[str, Any]:
        emp = _employee(session, employee_id)
        emp.training_stage = body.stage
        session.commit()
        return _public(emp)

    @app.get("/v1/audit")
    def audit_log(limit: int = Query(100, ge=1, le=1000), session: Session = Depends(get_session),
                  _p: Principal = Depends(admin_only)) -> list[dict[str, Any]]:
        rows = session.scalars(select(AuditLog).order_by(AuditLog.id.desc()).limit(limit)).all()
        return [{"at": db.utc(r.at).isoformat(), "subject": r.subject, "role": r.role, "action": r.action,
                 "target": r.target} for r in rows]

    # ---------------------------------------------------------------- training
    @app.post("/v1/training/sessions", status_code=201)
    def add_session(body: s.SessionIn, session: Session = Depends(get_session),
                    _p: Principal = Depends(hr_only)) -> dict[str, Any]:
        for a in body.attendance:
            _employee(session, a.employee_id)
        ts = TrainingSession(type=body.type, title=body.title, starts_at=_dt(body.starts_at))
        session.add(ts)
        session.flush()
        session.add_all(TrainingAttendance(session_id=ts.id, employee_id=a.employee_id, attended=a.attended)
                        for a in body.attendance)
        _commit(session, "an employee is listed twice in attendance")
        return {"id": ts.id, **body.model_dump(mode="json")}

    @app.post("/v1/exams", status_code=201)
    def add_exam(body: s.ExamIn, session: Session = Depends(get_session),
                 _p: Principal = Depends(hr_only)) -> dict[str, Any]:
        _employee(session, body.employee_id)
        exam = Exam(employee_id=body.employee_id, name=body.name, taken_at=_dt(body.taken_at),
                    score=body.score, pass_mark=body.pass_mark)
        session.add(exam)
        session.commit()
        return {"id": exam.id, **body.model_dump(mode="json")}

    def _team_members(session: Session, team_id: str) -> set[str]:
        return set(session.scalars(select(Employee.id).where(Employee.team_id == team_id)).all())

    @app.get("/v1/training/sessions")
    def list_sessions(start: datetime | None = Query(None, alias="from"),
                      end: datetime | None = Query(None, alias="to"),
                      session_type: s.SessionType | None = Query(None, alias="type"),
                      session: Session = Depends(get_session),
                      who: Principal = Depends(hr_mgr_lead),
                      credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> list[dict[str, Any]]:
        """Sessions with their attendance; a team lead sees the attendance of their own team only."""
        query = select(TrainingSession).order_by(TrainingSession.starts_at, TrainingSession.id)
        if start is not None:
            query = query.where(TrainingSession.starts_at >= _aware(start, "from"))
        if end is not None:
            query = query.where(TrainingSession.starts_at < _aware(end, "to"))
        if session_type:
            query = query.where(TrainingSession.type == session_type)
        found = session.scalars(query).all()
        scope = visible_team(who, credentials, None)
        members = _team_members(session, scope) if scope else None
        attendance: dict[int, list[dict[str, Any]]] = {ts.id: [] for ts in found}
        for a in session.scalars(select(TrainingAttendance).where(TrainingAttendance.session_id.in_(attendance))
                                 .order_by(TrainingAttendance.employee_id)).all():
            if members is None or a.employee_id in members:
                attendance[a.session_id].append({"employee_id": a.employee_id, "attended": a.attended})
        return [{"id": ts.id, "type": ts.type, "title": ts.title, "starts_at": db.utc(ts.starts_at).isoformat(),
                 "attendance": attendance[ts.id]} for ts in found]

    @app.get("/v1/exams")
    def list_exams(employee_id: str | None = None, team_id: str | None = None,
                   start: datetime | None = Query(None, alias="from"), end: datetime | None = Query(None, alias="to"),
                   session: Session = Depends(get_session), who: Principal = Depends(hr_mgr_lead),
                   credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> list[dict[str, Any]]:
        """Exam scores (personal data: every read is audit-logged); team leads see their own team's."""
        team_id = visible_team(who, credentials, team_id)
        query = select(Exam).order_by(Exam.taken_at, Exam.id)
        if employee_id:
            query = query.where(Exam.employee_id == employee_id)
        if team_id:
            query = query.where(Exam.employee_id.in_(select(Employee.id).where(Employee.team_id == team_id)))
        if start is not None:
            query = query.where(Exam.taken_at >= _aware(start, "from"))
        if end is not None:
            query = query.where(Exam.taken_at < _aware(end, "to"))
        exams = session.scalars(query).all()
        _audit(session, who, "list_exams", f"employee={employee_id or '*'} team={team_id or '*'} n={len(exams)}")
        session.commit()
        return [{"id": e.id, "employee_id": e.employee_id, "name": e.name, "taken_at": db.utc(e.taken_at).isoformat(),
                 "score": e.score, "pass_mark": e.pass_mark, "passed": e.score >= e.pass_mark} for e in exams]

    @app.get("/v1/training/flags")
    def training_flags(last_n: int = Query(3, ge=1, le=20), session: Session = Depends(get_session),
                       who: Principal = Depends(hr_mgr_lead),
                       credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> list[dict[str, Any]]:
        """Agents whose last `last_n` exams are all below the pass mark; a team lead sees their own team's."""
        query = select(Exam)
        scope = visible_team(who, credentials, None)
        if scope:
            query = query.where(Exam.employee_id.in_(select(Employee.id).where(Employee.team_id == scope)))
        results = [training.ExamResult(e.employee_id, db.utc(e.taken_at), e.score, e.pass_mark)
                   for e in session.scalars(query).all()]
        flags = training.flag_for_individual_training(results, last_n)
        _audit(session, who, "read_training_flags", f"team={scope or '*'} n={len(flags)}")  # scores: personal
        session.commit()
        return [asdict(f) for f in flags]

    # ---------------------------------------------------------------- costs (KPI 4)
    @app.post("/v1/costs", status_code=201)
    def add_cost(body: s.CostIn, session: Session = Depends(get_session),
                 _p: Principal = Depends(hr_mgr)) -> dict[str, Any]:
        if session.get(CostEntryRow, body.entry_id) is not None:
            raise HTTPException(409, f"cost entry {body.entry_id!r} already exists")
        session.add(CostEntryRow(**{**body.model_dump(), "period_start": _dt(body.period_start),
                                    "period_end": _dt(body.period_end)}))
        msg = hr_events_pb2.CostEntry(cost_center_id=body.cost_center_id, entry_id=body.entry_id,
                                      amount_minor=body.amount_minor, currency=body.currency,
                                      category=body.category)
        msg.period_start.FromDatetime(_dt(body.period_start))
        msg.period_end.FromDatetime(_dt(body.period_end))
        outbox.add(session, "cc.hr-costs.v1", body.cost_center_id, msg, _dt(body.period_end))
        _commit(session, f"cost entry {body.entry_id!r} already exists")
        return body.model_dump(mode="json")

    @app.get("/v1/costs")
    def list_costs(cost_center_id: str | None = None, session: Session = Depends(get_session),
                   _p: Principal = Depends(hr_mgr)) -> list[dict[str, Any]]:
        query = select(CostEntryRow).order_by(CostEntryRow.period_start, CostEntryRow.entry_id)
        if cost_center_id:
            query = query.where(CostEntryRow.cost_center_id == cost_center_id)
        return [{"entry_id": c.entry_id, "cost_center_id": c.cost_center_id,
                 "period_start": db.utc(c.period_start).isoformat(), "period_end": db.utc(c.period_end).isoformat(),
                 "amount_minor": c.amount_minor, "currency": c.currency, "category": c.category}
                for c in session.scalars(query).all()]

    # ---------------------------------------------------------------- schedules
    @app.post("/v1/schedules", status_code=201)
    def publish_schedule(body: s.ScheduleIn, session: Session = Depends(get_session),
                         _p: Principal = Depends(hr_mgr)) -> dict[str, Any]:
        for emp_id in {sh.employee_id for sh in body.shifts}:
            _employee(session, emp_id)
        # Row lock (PostgreSQL): two concurrent publishes of one schedule get consecutive versions.
        sched = session.get(Schedule, body.schedule_id, with_for_update=True)
        previous: set[str] = set()
        if sched is None:
            sched = Schedule(schedule_id=body.schedule_id, version=1, period_start=_dt(body.period_start),
                             period_end=_dt(body.period_end), published_at=db.now())
            session.add(sched)
        else:
            previous = set(session.scalars(select(ShiftRow.employee_id)
                                           .where(ShiftRow.schedule_id == body.schedule_id)).all())
            sched.version += 1
            sched.period_start, sched.period_end = _dt(body.period_start), _dt(body.period_end)
            sched.published_at = db.now()
            session.execute(delete(ShiftRow).where(ShiftRow.schedule_id == body.schedule_id))
        session.flush()
        clash = session.scalars(select(ShiftRow.shift_id).where(
            ShiftRow.shift_id.in_([sh.shift_id for sh in body.shifts]))).all()
        if clash:
            raise HTTPException(409, f"shift ids already used by another schedule: {sorted(clash)}")
        per_emp: dict[str, list[s.ShiftIn]] = {e: [] for e in previous}
        for sh in body.shifts:
            session.add(ShiftRow(shift_id=sh.shift_id, schedule_id=body.schedule_id, employee_id=sh.employee_id,
                                 team_id=sh.team_id, start=_dt(sh.start), end=_dt(sh.end),
                                 breaks=[b.model_dump(mode="json") for b in sh.breaks]))
            per_emp.setdefault(sh.employee_id, []).append(sh)
        # One event per employee; employees dropped from the new version get an empty shift list.
        for emp_id, shifts in sorted(per_emp.items()):
            msg = hr_events_pb2.SchedulePublished(employee_id=emp_id, schedule_id=body.schedule_id,
                                                  version=sched.version)
            msg.period_start.FromDatetime(_dt(body.period_start))
            msg.period_end.FromDatetime(_dt(body.period_end))
            for sh in sorted(shifts, key=lambda x: x.start):
                pb = msg.shifts.add(shift_id=sh.shift_id, team_id=sh.team_id)
                pb.start.FromDatetime(_dt(sh.start))
                pb.end.FromDatetime(_dt(sh.end))
                for b in sh.breaks:
                    pbb = pb.breaks.add(activity=b.activity)
                    pbb.start.FromDatetime(_dt(b.start))
                    pbb.end.FromDatetime(_dt(b.end))
            outbox.add(session, "cc.hr-schedules.v1", emp_id, msg)
        _commit(session, "schedule changed concurrently; retry")
        return {"schedule_id": body.schedule_id, "version": sched.version, "shifts": len(body.shifts),
                "employees": len(per_emp)}

    @app.get("/v1/schedules")
    def list_schedules(start: datetime | None = Query(None, alias="from"),
                       end: datetime | None = Query(None, alias="to"), session: Session = Depends(get_session),
                       _p: Principal = Depends(hr_mgr_lead)) -> list[dict[str, Any]]:
        """Published schedules (current versions) overlapping [from, to), with their shift counts."""
        query = select(Schedule).order_by(Schedule.period_start, Schedule.schedule_id)
        if start is not None:
            query = query.where(Schedule.period_end > _aware(start, "from"))
        if end is not None:
            query = query.where(Schedule.period_start < _aware(end, "to"))
        found = session.scalars(query).all()
        counts = {key: n for key, n in session.execute(select(ShiftRow.schedule_id, func.count()).where(
            ShiftRow.schedule_id.in_([x.schedule_id for x in found])).group_by(ShiftRow.schedule_id))}
        return [{"schedule_id": x.schedule_id, "version": x.version, "period_start": db.utc(x.period_start).isoformat(),
                 "period_end": db.utc(x.period_end).isoformat(), "published_at": db.utc(x.published_at).isoformat(),
                 "shifts": counts.get(x.schedule_id, 0)} for x in found]

    @app.get("/v1/schedules/{schedule_id}")
    def get_schedule(schedule_id: str, team_id: str | None = None, session: Session = Depends(get_session),
                     who: Principal = Depends(hr_mgr_lead),
                     credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> dict[str, Any]:
        team_id = visible_team(who, credentials, team_id)
        sched = session.get(Schedule, schedule_id)
        if sched is None:
            raise HTTPException(404, f"schedule {schedule_id!r} not found")
        query = select(ShiftRow).where(ShiftRow.schedule_id == schedule_id).order_by(ShiftRow.start, ShiftRow.shift_id)
        if team_id:
            query = query.where(ShiftRow.team_id == team_id)
        return {"schedule_id": schedule_id, "version": sched.version,
                "period_start": db.utc(sched.period_start).isoformat(),
                "period_end": db.utc(sched.period_end).isoformat(),
                "shifts": [{"shift_id": r.shift_id, "employee_id": r.employee_id, "team_id": r.team_id,
                            "start": db.utc(r.start).isoformat(), "end": db.utc(r.end).isoformat(),
                            "breaks": r.breaks} for r in session.scalars(query).all()]}

    # ---------------------------------------------------------------- attendance (KPI 15)
    def _stage_punch(session: Session, p: s.PunchIn) -> None:
        at = _dt(p.at)
        session.add(PunchRow(employee_id=p.employee_id, kind=p.kind, at=at, device=p.device))
        outbox.add(session, "cc.hr-attendance.v1", p.employee_id, hr_events_pb2.AttendancePunch(
            employee_id=p.employee_id, device=p.device,
            kind=hr_events_pb2.AttendancePunch.KIND_IN if p.kind == "in" else hr_events_pb2.AttendancePunch.KIND_OUT,
        ), at)

    def _punch_exists(session: Session, p: s.PunchIn) -> bool:
        return session.scalar(select(func.count()).select_from(PunchRow).where(
            PunchRow.employee_id == p.employee_id, PunchRow.kind == p.kind, PunchRow.at == _dt(p.at))) != 0

    @app.post("/v1/punches", status_code=201)
    def add_punch(body: s.PunchIn, session: Session = Depends(get_session),
                  _p: Principal = Depends(hr_service)) -> dict[str, Any]:
        _employee(session, body.employee_id)
        if _punch_exists(session, body):
            raise HTTPException(409, "this punch is already recorded")
        _stage_punch(session, body)
        _commit(session, "this punch is already recorded")
        return body.model_dump(mode="json")

    @app.post("/v1/punches/import")
    async def import_punches(request: Request, filename: str = Query("upload.csv", max_length=200),
                             _p: Principal = Depends(hr_service)) -> dict[str, Any]:
        raw = await request.body()
        try:
            content = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise HTTPException(422, f"{filename}: not UTF-8 text ({exc.reason})") from exc
        reader = csv.DictReader(io.StringIO(content))
        header = tuple(reader.fieldnames or ())
        missing = [c for c in CSV_COLUMNS[:3] if c not in header]
        if missing:
            raise HTTPException(422, {"file": filename, "errors": [
                {"line": 1, "reason": f"header lacks column(s) {missing}; expected {list(CSV_COLUMNS)}"}]})
        errors: list[dict[str, Any]] = []
        punches: list[s.PunchIn] = []
        seen: set[tuple[str, str, datetime]] = set()
        for record in reader:
            line = reader.line_num
            try:
                p = _punch_adapter.validate_python({k: (record.get(k) or "").strip() for k in CSV_COLUMNS})
            except ValidationError as exc:
                reasons = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
                errors.append({"line": line, "reason": reasons})
                continue
            ident = (p.employee_id, p.kind, _dt(p.at))
            if ident in seen:
                errors.append({"line": line, "reason": "duplicate of an earlier line"})
                continue
            seen.add(ident)
            punches.append(p)
        with sessions() as session:
            known = set(session.scalars(select(Employee.id).where(
                Employee.id.in_({p.employee_id for p in punches}))).all())
            if errors or any(p.employee_id not in known for p in punches):
                # line numbers for unknown employees
                for record_line, p in _lines_of(content, punches):
                    if p.employee_id not in known:
                        errors.append({"line": record_line, "reason": f"unknown employee {p.employee_id!r}"})
                errors.sort(key=lambda e: e["line"])
                raise HTTPException(422, {"file": filename, "imported": 0, "errors": errors})
            skipped = 0
            for p in punches:
                if _punch_exists(session, p):
                    skipped += 1  # re-import of the same file: already there
                    continue
                _stage_punch(session, p)
            _commit(session, "punches changed concurrently; retry the import")
        return {"file": filename, "imported": len(punches) - skipped, "already_present": skipped}

    @app.post("/v1/absences", status_code=201)
    def add_absence(body: s.AbsenceIn, session: Session = Depends(get_session),
                    _p: Principal = Depends(hr_mgr)) -> dict[str, Any]:
        _employee(session, body.employee_id)
        row = AbsenceRow(employee_id=body.employee_id, start=_dt(body.start), end=_dt(body.end), reason=body.reason)
        session.add(row)
        session.flush()
        msg = hr_events_pb2.Absence(employee_id=body.employee_id, absence_id=f"abs-{row.id}",
                                    reason=ABSENCE_PB[body.reason])
        msg.start.FromDatetime(_dt(body.start))
        msg.end.FromDatetime(_dt(body.end))
        outbox.add(session, "cc.hr-absences.v1", body.employee_id, msg, _dt(body.start))
        session.commit()
        return {"absence_id": f"abs-{row.id}", **body.model_dump(mode="json")}

    def _people_query(model: Any, who: Principal, credentials: HTTPAuthorizationCredentials | None,
                      employee_id: str | None, team_id: str | None) -> Any:
        """Rows of `model` (which has employee_id) for one employee and/or team; team leads: their own team."""
        team_id = visible_team(who, credentials, team_id)
        query = select(model)
        if employee_id:
            query = query.where(model.employee_id == employee_id)
        if team_id:
            query = query.where(model.employee_id.in_(select(Employee.id).where(Employee.team_id == team_id)))
        return query

    @app.get("/v1/punches")
    def list_punches(start: datetime = Query(alias="from"), end: datetime = Query(alias="to"),
                     employee_id: str | None = None, team_id: str | None = None,
                     session: Session = Depends(get_session), who: Principal = Depends(hr_mgr_lead),
                     credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> list[dict[str, Any]]:
        """Badge / punch-clock records in [from, to) (at most 93 days); every read is audit-logged."""
        begin, finish = _period(start, end, 93)
        query = _people_query(PunchRow, who, credentials, employee_id, team_id).where(
            PunchRow.at >= begin, PunchRow.at < finish).order_by(PunchRow.at, PunchRow.id)
        punches = session.scalars(query).all()
        _audit(session, who, "list_punches", f"{begin:%Y-%m-%dT%H:%M}/{finish:%Y-%m-%dT%H:%M} "
                                             f"employee={employee_id or '*'} team={team_id or '*'} n={len(punches)}")
        session.commit()
        return [{"employee_id": p.employee_id, "kind": p.kind, "at": db.utc(p.at).isoformat(), "device": p.device}
                for p in punches]

    @app.get("/v1/absences")
    def list_absences(start: datetime = Query(alias="from"), end: datetime = Query(alias="to"),
                      employee_id: str | None = None, team_id: str | None = None,
                      session: Session = Depends(get_session), who: Principal = Depends(hr_mgr_lead),
                      credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> list[dict[str, Any]]:
        """Absences overlapping [from, to) with their reasons (personal data: every read is audit-logged)."""
        begin, finish = _period(start, end)
        query = _people_query(AbsenceRow, who, credentials, employee_id, team_id).where(
            AbsenceRow.end > begin, AbsenceRow.start < finish).order_by(AbsenceRow.start, AbsenceRow.id)
        absences = session.scalars(query).all()
        _audit(session, who, "list_absences", f"{begin:%Y-%m-%dT%H:%M}/{finish:%Y-%m-%dT%H:%M} "
                                              f"employee={employee_id or '*'} team={team_id or '*'} n={len(absences)}")
        session.commit()
        return [{"absence_id": f"abs-{a.id}", "employee_id": a.employee_id, "start": db.utc(a.start).isoformat(),
                 "end": db.utc(a.end).isoformat(), "reason": a.reason} for a in absences]

    @app.get("/v1/attendance")
    def attendance(start: datetime = Query(alias="from"), end: datetime = Query(alias="to"),
                   team_id: str | None = None, session: Session = Depends(get_session),
                   who: Principal = Depends(hr_mgr_lead),
                   credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> dict[str, Any]:
        start, end = _period(start, end)
        team_id = visible_team(who, credentials, team_id)
        query = select(ShiftRow).where(ShiftRow.start >= _dt(start), ShiftRow.start < _dt(end))
        if team_id:
            query = query.where(ShiftRow.team_id == team_id)
        shifts = [att.ScheduledShift(r.shift_id, r.employee_id, r.team_id, db.utc(r.start), db.utc(r.end))
                  for r in session.scalars(query).all()]
        emp_ids = {x.employee_id for x in shifts}
        punches = [att.Punch(p.employee_id, p.kind, db.utc(p.at)) for p in session.scalars(select(PunchRow).where(
            PunchRow.employee_id.in_(emp_ids), PunchRow.at >= _dt(start) - timedelta(hours=2),
            PunchRow.at < _dt(end) + timedelta(days=1))).all()]
        absences = session.scalars(select(AbsenceRow).where(AbsenceRow.employee_id.in_(emp_ids),
                                                            AbsenceRow.end > _dt(start),
                                                            AbsenceRow.start < _dt(end))).all()
        outcomes = att.evaluate(shifts, punches, grace=grace)
        # lateness and absence reasons per employee are personal data: the read is audit-logged
        _audit(session, who, "read_attendance", f"{start:%Y-%m-%dT%H:%M}/{end:%Y-%m-%dT%H:%M} team={team_id or '*'} "
                                                f"shifts={len(outcomes)}")
        session.commit()
        absent_reasons: dict[str, str] = {}
        for o in outcomes:
            if not o.present:
                for a in absences:
                    if a.employee_id == o.shift.employee_id and db.utc(a.start) < o.shift.end \
                            and db.utc(a.end) > o.shift.start:
                        absent_reasons[o.shift.shift_id] = a.reason
        return {
            "rates": [asdict(r) for r in att.attendance_rates(outcomes)],
            "late": [{"shift_id": o.shift.shift_id, "employee_id": o.shift.employee_id,
                      "start": o.shift.start.isoformat(), "first_in": o.first_in.isoformat() if o.first_in else None,
                      "late_minutes": round(o.late_minutes, 1)} for o in outcomes if o.late],
            "absent": [{"shift_id": o.shift.shift_id, "employee_id": o.shift.employee_id,
                        "start": o.shift.start.isoformat(), "reason": absent_reasons.get(o.shift.shift_id)}
                       for o in outcomes if not o.present],
        }

    # ---------------------------------------------------------------- attrition (KPI 23)
    @app.get("/v1/attrition")
    def attrition(period: str = Query("month", pattern="^(month|quarter|year)$"), year: int = Query(ge=2000, le=2100),
                  index: int = Query(1, ge=1, le=12), by: str | None = Query(None, pattern="^(exit_reason|team_lead)$"),
                  agents_only: bool = True, session: Session = Depends(get_session),
                  _p: Principal = Depends(hr_mgr)) -> dict[str, Any]:
        try:
            start, end = attr.period_bounds(period, year, index)
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from exc
        # Stints from the employment history: a promotion out of the agent role or a move to another
        # team ends a stint without counting as a leaver.
        emps = session.scalars(select(Employee).where(Employee.hired_on < end)).all()
        history = [attr.Placement(r.employee_id, r.effective_on, r.change, r.role, r.team_lead_id)
                   for r in session.scalars(select(EmploymentRecord).where(EmploymentRecord.employee_id.in_(
                       select(Employee.id).where(Employee.hired_on < end)))).all()]
        tenures = attr.stints(history, {e.id: e.fte for e in emps}, {e.id: e.exit_reason for e in emps},
                              "agent" if agents_only else None)
        total = attr.attrition(tenures, start, end)
        out: dict[str, Any] = {"period": period, **asdict(total)}
        if by:
            split = attr.attrition_by(tenures, start, end, "exit_reason" if by == "exit_reason" else "team_lead_id")
            out["by"] = {k: asdict(v) for k, v in split.items()}
        return out

    # ---------------------------------------------------------------- workforce planning
    @app.post("/v1/staffing")
    def staffing(body: s.StaffingIn, _p: Principal = Depends(hr_mgr_lead)) -> dict[str, Any]:
        try:
            result = required_agents(body.calls, body.interval_s, body.aht_s, body.sl_target, body.t_s,
                                     max_occupancy=body.max_occupancy, asa_goal=body.asa_goal,
                                     abandon_goal=body.abandon_goal, patience_s=body.patience_s,
                                     shrinkage=body.shrinkage)
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from exc
        return asdict(result)

    @app.post("/v1/shifts/plan")
    def plan(body: s.ShiftPlanIn, _p: Principal = Depends(hr_mgr)) -> dict[str, Any]:
        try:
            result = plan_shifts(body.requirement, _templates(body), cyclic=body.cyclic, slot_hours=body.slot_hours,
                                 time_limit_s=body.time_limit_s,
                                 understaffing_penalty_slots=body.understaffing_penalty_slots)
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from exc
        return plan_dict(result)

    @app.post("/v1/forecast")
    def forecast(body: s.ForecastIn, _p: Principal = Depends(hr_mgr)) -> dict[str, Any]:
        if history is None:
            raise HTTPException(503, "no history source: set KPI_API_URL and KPI_API_TOKEN")
        goals = StaffingGoals(**body.staffing.model_dump()) if body.staffing else None
        try:
            options = ShiftOptions(tuple(_templates(body.shifts)), body.shifts.time_limit_s,
                                   body.shifts.understaffing_penalty_slots) if body.shifts else None
            week = forecast_week(history, body.queues, _dt(body.week_start) if body.week_start else _next_monday(),
                                 history_weeks=body.history_weeks, holdout_weeks=body.holdout_weeks,
                                 forecaster=SeasonalForecaster(body.lookback_weeks, body.decay, body.trend),
                                 goals=goals, shifts=options)
        except HistoryUnavailable as exc:
            raise HTTPException(502, str(exc)) from exc
        except ValueError as exc:  # BadHistory included
            raise HTTPException(422, str(exc)) from exc
        return week.as_dict()

    @app.post("/v1/plans/week")
    def plan_roster(body: s.PlanWeekIn, session: Session = Depends(get_session),
                    who: Principal = Depends(hr_mgr)) -> s.PlanWeekOut:
        """History -> forecast -> agents -> shifts -> a roster of HR's employees under the given contracts;
        with `publish_as`, published as that schedule."""
        source: HistorySource | None = history
        if body.history is not None:
            source = RecordedHistory({q.queue_id: [IntervalFigures(_dt(i.start), i.offered, i.aht_s)
                                                   for i in q.intervals] for q in body.history})
        if source is None:
            raise HTTPException(503, "no history: give `history`, or set KPI_API_URL and KPI_API_TOKEN")
        staff, teams = [], {}
        for n, c in enumerate(body.employees):
            emp = session.get(Employee, c.employee_id)
            if emp is None or emp.left_on is not None:
                raise HTTPException(422, [{"loc": ["body", "employees", n, "employee_id"], "type": "value_error",
                                           "msg": f"employee {c.employee_id!r} is not a current HR employee"}])
            if body.publish_as and not emp.team_id:
                raise HTTPException(422, [{"loc": ["body", "employees", n, "employee_id"], "type": "value_error",
                                           "msg": f"employee {c.employee_id!r} has no team; a schedule needs one"}])
            skills = c.skills if c.skills is not None else session.scalars(
                select(Skill.skill).where(Skill.employee_id == c.employee_id)).all()
            contract = Contract(c.min_weekly_hours, c.max_weekly_hours, c.min_days_off,
                                frozenset(c.unavailable_days), c.nights_allowed, c.hourly_cost)
            staff.append(RosterEmployee(c.employee_id, emp.full_name, frozenset(skills), contract, emp.team_id or ""))
            teams[c.employee_id] = emp.team_id or ""
        try:
            stored = kpi_history.queue_targets() if kpi_history is not None else {}
        except HistoryUnavailable as exc:
            raise HTTPException(502, str(exc)) from exc
        targets = []
        for q in body.queues:
            known = stored.get(q.queue_id, QueueTargets(q.queue_id))
            targets.append(QueueTargets(q.queue_id, known.sl_target if q.sl_target is None else q.sl_target,
                                        known.t_s if q.t_s is None else q.t_s,
                                        known.patience_s if q.patience_s is None else q.patience_s,
                                        q.max_occupancy, q.asa_goal, q.abandon_goal))
        try:
            options = RosterOptions(tuple(_templates(body)), tuple(staff),
                                    RosterRules(min_rest_hours=body.min_rest_hours, time_limit_s=body.time_limit_s),
                                    body.shrinkage, body.time_limit_s)
            plan = plan_week(source, targets, body.week_start, options, history_weeks=body.history_weeks,
                             holdout_weeks=body.holdout_weeks)
        except HistoryUnavailable as exc:
            raise HTTPException(502, str(exc)) from exc
        except ValueError as exc:  # BadHistory included
            raise HTTPException(422, str(exc)) from exc
        out = s.PlanWeekOut.model_validate(plan.as_dict())
        _audit(session, who, "plan_week", f"employees={len(staff)}")  # the answer names them: personal data
        if body.publish_as:
            published = publish_schedule(s.ScheduleIn.model_validate(plan.schedule(body.publish_as, teams)),
                                         session, who)
            out.published = s.PublishedOut.model_validate(published)
        else:
            session.commit()
        return out

    return app


def _templates(body: s.ShiftOptionsIn | s.PlanWeekIn) -> list[ShiftTemplate]:
    return [ShiftTemplate(t.name, t.length_slots, tuple(t.start_slots) if t.start_slots else None,
                          tuple(BreakRule(b.duration_slots, b.earliest_offset, b.latest_offset, b.paid)
                                for b in t.breaks))
            for t in body.templates]


def _next_monday() -> datetime:
    today = db.now().date()
    return datetime.combine(today + timedelta(days=7 - today.weekday()), datetime.min.time(), UTC)


def _lines_of(content: str, punches: list[s.PunchIn]) -> list[tuple[int, s.PunchIn]]:
    """File line of each valid punch (re-reads the CSV; only used to word error messages)."""
    reader = csv.DictReader(io.StringIO(content))
    wanted = {(p.employee_id, p.kind, _dt(p.at)): p for p in punches}
    found = []
    for record in reader:
        try:
            p = _punch_adapter.validate_python({k: (record.get(k) or "").strip() for k in CSV_COLUMNS})
        except ValidationError:
            continue
        key = (p.employee_id, p.kind, _dt(p.at))
        if key in wanted:
            found.append((reader.line_num, wanted.pop(key)))
    return found


def main() -> None:
    import uvicorn

    from callstream_core.observability import configure_logging

    settings = HrSettings()
    configure_logging(settings.service_name, settings.log_level)
    uvicorn.run(create_app(settings), host=settings.http_host, port=settings.http_port, log_config=None,
                **settings.uvicorn_tls())


