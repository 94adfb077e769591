"""An in-memory unit of work for the HR use cases (service_layer.unit_of_work): the same records as the SQL
repositories, kept in lists; `commit` counts and keeps the staged events, the rest rolls back nothing (a use
case that refuses raises before changing anything it does not commit)."""

from __future__ import annotations

import itertools
from collections.abc import Collection, Sequence
from datetime import date, datetime
from typing import Literal

from google.protobuf.message import Message

from callstream_hr.adapters import models as m
from callstream_hr.service_layer import unit_of_work as ports

_ids = itertools.count(1)


class FakeTeams:
    def __init__(self) -> None:
        self.items: dict[str, m.Team] = {}

    def get(self, team_id: str, *, for_update: bool = False) -> m.Team | None:
        return self.items.get(team_id)

    def add(self, team: m.Team) -> None:
        self.items[team.id] = team

    def list(self) -> Sequence[m.Team]:
        return sorted(self.items.values(), key=lambda t: t.id)


class FakeRows:
    def __init__(self) -> None:
        self.items: dict[str, m.Row] = {}

    def get(self, row_id: str) -> m.Row | None:
        return self.items.get(row_id)

    def add(self, row: m.Row) -> None:
        self.items[row.id] = row

    def list(self, team_id: str | None = None) -> Sequence[m.Row]:
        return sorted((r for r in self.items.values() if not team_id or r.team_id == team_id),
                      key=lambda r: (r.team_id, r.id))


class FakeEmployees:
    def __init__(self) -> None:
        self.items: dict[str, m.Employee] = {}

    def get(self, employee_id: str, *, for_update: bool = False) -> m.Employee | None:
        return self.items.get(employee_id)

    def add(self, employee: m.Employee) -> None:
        self.items[employee.id] = employee

    def list(self, team_id: str | None = None, role: str | None = None,
             active: bool | None = None) -> Sequence[m.Employee]:
        return [e for _, e in sorted(self.items.items())
                if (not team_id or e.team_id == team_id) and (not role or e.role == role)
                and (active is None or (e.left_on is None) == active)]

    def hired_before(self, day: date) -> Sequence[m.Employee]:
        return [e for e in self.items.values() if e.hired_on < day]

    def ids_in_team(self, team_id: str) -> set[str]:
        return {e.id for e in self.items.values() if e.team_id == team_id}

    def known(self, employee_ids: Collection[str]) -> set[str]:
        return set(employee_ids) & set(self.items)

    def agents_per(self, placement: Literal["team_id", "row_id"]) -> dict[str, int]:
        counts: dict[str, int] = {}
        for e in self.list(role="agent", active=True):
            key = getattr(e, placement)
            if key is not None:
                counts[key] = counts.get(key, 0) + 1
        return counts


class FakeHistory:
    def __init__(self, employees: FakeEmployees) -> None:
        self.items: list[m.EmploymentRecord] = []
        self._employees = employees

    def add(self, record: m.EmploymentRecord) -> None:
        record.id = next(_ids)
        self.items.append(record)

    def last_change(self, employee_id: str) -> date | None:
        return max((r.effective_on for r in self.items if r.employee_id == employee_id), default=None)

    def of(self, employee_id: str) -> Sequence[m.EmploymentRecord]:
        return sorted((r for r in self.items if r.employee_id == employee_id), key=lambda r: (r.effective_on, r.id))

    def of_hired_before(self, day: date) -> Sequence[m.EmploymentRecord]:
        hired = {e.id for e in self._employees.hired_before(day)}
        return [r for r in self.items if r.employee_id in hired]


class FakeSkills:
    def __init__(self) -> None:
        self.items: dict[str, list[m.Skill]] = {}

    def of(self, employee_id: str) -> Sequence[m.Skill]:
        return self.items.get(employee_id, [])

    def replace(self, employee_id: str, skills: Sequence[m.Skill]) -> None:
        self.items[employee_id] = list(skills)


class FakeTraining:
    def __init__(self, employees: FakeEmployees) -> None:
        self.session_items: list[m.TrainingSession] = []
        self.attendance: list[m.TrainingAttendance] = []
        self.exam_items: list[m.Exam] = []
        self._employees = employees

    def add_session(self, session: m.TrainingSession, attendance: Sequence[m.TrainingAttendance]) -> None:
        session.id = next(_ids)
        self.session_items.append(session)
        for a in attendance:
            a.session_id = session.id
        self.attendance += attendance

    def add_exam(self, exam: m.Exam) -> None:
        exam.id = next(_ids)
        self.exam_items.append(exam)

    def sessions(self, start: datetime | None, end: datetime | None,
                 session_type: str | None) -> Sequence[m.TrainingSession]:
        return sorted((s for s in self.session_items if (start is None or s.starts_at >= start)
                       and (end is None or s.starts_at < end) and (not session_type or s.type == session_type)),
                      key=lambda s: (s.starts_at, s.id))

    def attendance_of(self, session_ids: Collection[int]) -> Sequence[m.TrainingAttendance]:
        return sorted((a for a in self.attendance if a.session_id in session_ids), key=lambda a: a.employee_id)

    def exams(self, employee_id: str | None = None, team_id: str | None = None, start: datetime | None = None,
              end: datetime | None = None) -> Sequence[m.Exam]:
        team = self._employees.ids_in_team(team_id) if team_id else None
        return sorted((e for e in self.exam_items if (not employee_id or e.employee_id == employee_id)
                       and (team is None or e.employee_id in team) and (start is None or e.taken_at >= start)
                       and (end is None or e.taken_at < end)), key=lambda e: (e.taken_at, e.id))


class FakeCosts:
    def __init__(self) -> None:
        self.items: dict[str, m.CostEntryRow] = {}

    def get(self, entry_id: str) -> m.CostEntryRow | None:
        return self.items.get(entry_id)

    def add(self, entry: m.CostEntryRow) -> None:
        self.items[entry.entry_id] = entry

    def list(self, cost_center_id: str | None) -> Sequence[m.CostEntryRow]:
        return sorted((c for c in self.items.values() if not cost_center_id or c.cost_center_id == cost_center_id),
                      key=lambda c: (c.period_start, c.entry_id))


class FakeSchedules:
    def __init__(self) -> None:
        self.items: dict[str, m.Schedule] = {}
        self.shifts: list[m.ShiftRow] = []

    def get(self, schedule_id: str, *, for_update: bool = False) -> m.Schedule | None:
        return self.items.get(schedule_id)

    def add(self, schedule: m.Schedule) -> None:
        self.items[schedule.schedule_id] = schedule

    def list(self, start: datetime | None, end: datetime | None) -> Sequence[m.Schedule]:
        return sorted((x for x in self.items.values() if (start is None or x.period_end > start)
                       and (end is None or x.period_start < end)), key=lambda x: (x.period_start, x.schedule_id))

    def shift_counts(self, schedule_ids: Collection[str]) -> dict[str, int]:
        counts: dict[str, int] = {}
        for sh in self.shifts:
            if sh.schedule_id in schedule_ids:
                counts[sh.schedule_id] = counts.get(sh.schedule_id, 0) + 1
        return counts

    def shifts_of(self, schedule_id: str, team_id: str | None = None) -> Sequence[m.ShiftRow]:
        return sorted((sh for sh in self.shifts if sh.schedule_id == schedule_id
                       and (not team_id or sh.team_id == team_id)), key=lambda sh: (sh.start, sh.shift_id))

    def replace_shifts(self, schedule_id: str, shifts: Sequence[m.ShiftRow]) -> Sequence[str]:
        kept = [sh for sh in self.shifts if sh.schedule_id != schedule_id]
        clash = sorted({sh.shift_id for sh in kept} & {sh.shift_id for sh in shifts})
        if not clash:
            self.shifts = kept + list(shifts)
        return clash

    def shifts_starting(self, start: datetime, end: datetime, team_id: str | None) -> Sequence[m.ShiftRow]:
        return [sh for sh in self.shifts if start <= sh.start < end and (not team_id or sh.team_id == team_id)]


class FakePunches:
    def __init__(self, employees: FakeEmployees) -> None:
        self.items: list[m.PunchRow] = []
        self._employees = employees

    def exists(self, employee_id: str, kind: str, at: datetime) -> bool:
        return any((p.employee_id, p.kind, p.at) == (employee_id, kind, at) for p in self.items)

    def add(self, punch: m.PunchRow) -> None:
        punch.id = next(_ids)
        self.items.append(punch)

    def list(self, start: datetime, end: datetime, employee_id: str | None = None, team_id: str | None = None,
             employee_ids: Collection[str] | None = None) -> Sequence[m.PunchRow]:
        team = self._employees.ids_in_team(team_id) if team_id else None
        return sorted((p for p in self.items if start <= p.at < end
                       and (not employee_id or p.employee_id == employee_id)
                       and (team is None or p.employee_id in team)
                       and (employee_ids is None or p.employee_id in employee_ids)), key=lambda p: (p.at, p.id))


class FakeAbsences:
    def __init__(self, employees: FakeEmployees) -> None:
        self.items: list[m.AbsenceRow] = []
        self._employees = employees

    def add(self, absence: m.AbsenceRow) -> None:
        absence.id = next(_ids)
        self.items.append(absence)

    def overlapping(self, start: datetime, end: datetime, employee_id: str | None = None,
                    team_id: str | None = None,
                    employee_ids: Collection[str] | None = None) -> Sequence[m.AbsenceRow]:
        team = self._employees.ids_in_team(team_id) if team_id else None
        return sorted((a for a in self.items if a.end > start and a.start < end
                       and (not employee_id or a.employee_id == employee_id)
                       and (team is None or a.employee_id in team)
                       and (employee_ids is None or a.employee_id in employee_ids)), key=lambda a: (a.start, a.id))


class FakeAudit:
    def __init__(self) -> None:
        self.items: list[m.AuditLog] = []

    def add(self, entry: m.AuditLog) -> None:
        entry.id = next(_ids)
        self.items.append(entry)

    def latest(self, limit: int) -> Sequence[m.AuditLog]:
        return self.items[::-1][:limit]


class FakeUnitOfWork(ports.UnitOfWork):
    """The repositories above; `published` holds the events of committed work."""

    def __init__(self) -> None:
        employees = FakeEmployees()
        self.teams, self.rows, self.employees = FakeTeams(), FakeRows(), employees
        self.history, self.skills = FakeHistory(employees), FakeSkills()
        self.training, self.costs, self.schedules = FakeTraining(employees), FakeCosts(), FakeSchedules()
        self.punches, self.absences, self.audit = FakePunches(employees), FakeAbsences(employees), FakeAudit()
        self.staged: list[tuple[str, str, Message, datetime | None]] = []
        self.published: list[tuple[str, str, Message, datetime | None]] = []  # the events of committed work
        self.commits = 0

    def publish(self, topic: str, key: str, message: Message, occurred_at: datetime | None = None) -> None:
        self.staged.append((topic, key, message, occurred_at))

    def commit(self, conflict: str | None = None) -> None:
        self.commits += 1
        self.published += self.staged
        self.staged = []
