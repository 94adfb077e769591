"""Training sessions with their attendance, exams, and who needs individual training."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from callstream_core.db import utc as stored_utc
from callstream_hr.adapters.models import Exam, TrainingAttendance, TrainingSession
from callstream_hr.domain.people import training
from callstream_hr.service_layer.commands import ExamIn, SessionIn, SessionType
from callstream_hr.service_layer.common import Caller, audit, aware, employee, utc, visible_team
from callstream_hr.service_layer.unit_of_work import UnitOfWork


def add_session(uow: UnitOfWork, body: SessionIn) -> TrainingSession:
    for a in body.attendance:
        employee(uow, a.employee_id)
    ts = TrainingSession(type=body.type, title=body.title, starts_at=utc(body.starts_at))
    uow.training.add_session(ts, [TrainingAttendance(employee_id=a.employee_id, attended=a.attended)
                                  for a in body.attendance])
    uow.commit("an employee is listed twice in attendance")
    return ts


def add_exam(uow: UnitOfWork, body: ExamIn) -> Exam:
    employee(uow, body.employee_id)
    exam = Exam(employee_id=body.employee_id, name=body.name, taken_at=utc(body.taken_at),
                score=body.score, pass_mark=body.pass_mark)
    uow.training.add_exam(exam)
    uow.commit()
    return exam


def list_sessions(uow: UnitOfWork, caller: Caller, start: datetime | None, end: datetime | None,
                  session_type: SessionType | None
                  ) -> list[tuple[TrainingSession, list[TrainingAttendance]]]:
    """Sessions with their attendance; a team lead sees the attendance of their own team only."""
    found = uow.training.sessions(aware(start, "from") if start is not None else None,
                                  aware(end, "to") if end is not None else None, session_type)
    scope = visible_team(caller, None)
    members = uow.employees.ids_in_team(scope) if scope else None
    attendance: dict[int, list[TrainingAttendance]] = {ts.id: [] for ts in found}
    for a in uow.training.attendance_of(list(attendance)):
        if members is None or a.employee_id in members:
            attendance[a.session_id].append(a)
    return [(ts, attendance[ts.id]) for ts in found]


def list_exams(uow: UnitOfWork, caller: Caller, employee_id: str | None, team_id: str | None,
               start: datetime | None, end: datetime | None) -> Sequence[Exam]:
    """Exam scores (personal data: every read is audit-logged); team leads see their own team's."""
    team_id = visible_team(caller, team_id)
    exams = uow.training.exams(employee_id, team_id, aware(start, "from") if start is not None else None,
                               aware(end, "to") if end is not None else None)
    audit(uow, caller, "list_exams", f"employee={employee_id or '*'} team={team_id or '*'} n={len(exams)}")
    uow.commit()
    return exams


def training_flags(uow: UnitOfWork, caller: Caller, last_n: int) -> list[training.TrainingFlag]:
    """Agents whose last `last_n` exams are all below the pass mark; a team lead sees their own team's."""
    scope = visible_team(caller, None)
    results = [training.ExamResult(e.employee_id, stored_utc(e.taken_at), e.score, e.pass_mark)
               for e in uow.training.exams(team_id=scope)]
    flags = training.flag_for_individual_training(results, last_n)
    audit(uow, caller, "read_training_flags", f"team={scope or '*'} n={len(flags)}")  # scores: personal
    uow.commit()
    return flags
