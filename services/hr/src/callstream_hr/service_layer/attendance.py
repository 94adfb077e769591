"""Punches (badge clock), absences and the attendance they give against the schedules (KPI 15)."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import TypeAdapter, ValidationError

from callstream.hr.v1 import hr_events_pb2
from callstream_core.db import utc as stored_utc
from callstream_core.topics import HR_ABSENCES, HR_ATTENDANCE
from callstream_hr.adapters.models import AbsenceRow, PunchRow
from callstream_hr.domain.people import attendance as att
from callstream_hr.service_layer.commands import AbsenceIn, PunchIn
from callstream_hr.service_layer.common import Caller, audit, employee, period, utc, visible_team
from callstream_hr.service_layer.errors import Conflict, Invalid
from callstream_hr.service_layer.unit_of_work import UnitOfWork

ABSENCE_PB = {
    "sick": hr_events_pb2.Absence.REASON_SICK,
    "vacation": hr_events_pb2.Absence.REASON_VACATION,
    "personal": hr_events_pb2.Absence.REASON_PERSONAL,
    "unexcused": hr_events_pb2.Absence.REASON_UNEXCUSED,
    "training": hr_events_pb2.Absence.REASON_TRAINING,
    "other": hr_events_pb2.Absence.REASON_OTHER,
}
CSV_COLUMNS = ("employee_id", "kind", "at", "device")
_punch_adapter = TypeAdapter(PunchIn)


def _stage_punch(uow: UnitOfWork, p: PunchIn) -> None:
    at = utc(p.at)
    uow.punches.add(PunchRow(employee_id=p.employee_id, kind=p.kind, at=at, device=p.device))
    uow.publish(HR_ATTENDANCE, p.employee_id, hr_events_pb2.AttendancePunch(
        employee_id=p.employee_id, device=p.device,
        kind=hr_events_pb2.AttendancePunch.KIND_IN if p.kind == "in" else hr_events_pb2.AttendancePunch.KIND_OUT,
    ), at)


def _recorded(uow: UnitOfWork, p: PunchIn) -> bool:
    return uow.punches.exists(p.employee_id, p.kind, utc(p.at))


def add_punch(uow: UnitOfWork, body: PunchIn) -> None:
    employee(uow, body.employee_id)
    if _recorded(uow, body):
        raise Conflict("this punch is already recorded")
    _stage_punch(uow, body)
    uow.commit("this punch is already recorded")


@dataclass(frozen=True)
class Imported:
    file: str
    imported: int
    already_present: int  # a re-import of the same file adds nothing


def import_punches(uow: UnitOfWork, raw: bytes, filename: str) -> Imported:
    """A punch-clock CSV export (employee_id, kind, at[, device]): all of it or, with any bad line, nothing;
    the error names each bad line."""
    try:
        content = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise Invalid(f"{filename}: not UTF-8 text ({exc.reason})") from exc
    reader = csv.DictReader(io.StringIO(content))
    header = tuple(reader.fieldnames or ())
    missing = [c for c in CSV_COLUMNS[:3] if c not in header]
    if missing:
        raise Invalid({"file": filename, "errors": [
            {"line": 1, "reason": f"header lacks column(s) {missing}; expected {list(CSV_COLUMNS)}"}]})
    errors: list[dict[str, Any]] = []
    punches: list[PunchIn] = []
    seen: set[tuple[str, str, datetime]] = set()
    for record in reader:
        line = reader.line_num
        try:
            p = _punch_adapter.validate_python({k: (record.get(k) or "").strip() for k in CSV_COLUMNS})
        except ValidationError as exc:
            reasons = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            errors.append({"line": line, "reason": reasons})
            continue
        ident = (p.employee_id, p.kind, utc(p.at))
        if ident in seen:
            errors.append({"line": line, "reason": "duplicate of an earlier line"})
            continue
        seen.add(ident)
        punches.append(p)
    known = uow.employees.known({p.employee_id for p in punches})
    if errors or any(p.employee_id not in known for p in punches):
        for record_line, p in _lines_of(content, punches):
            if p.employee_id not in known:
                errors.append({"line": record_line, "reason": f"unknown employee {p.employee_id!r}"})
        errors.sort(key=lambda e: e["line"])
        raise Invalid({"file": filename, "imported": 0, "errors": errors})
    skipped = 0
    for p in punches:
        if _recorded(uow, p):
            skipped += 1  # re-import of the same file: already there
            continue
        _stage_punch(uow, p)
    uow.commit("punches changed concurrently; retry the import")
    return Imported(filename, len(punches) - skipped, skipped)


def _lines_of(content: str, punches: list[PunchIn]) -> list[tuple[int, PunchIn]]:
    """File line of each valid punch (re-reads the CSV; only used to word error messages)."""
    reader = csv.DictReader(io.StringIO(content))
    wanted = {(p.employee_id, p.kind, utc(p.at)): p for p in punches}
    found = []
    for record in reader:
        try:
            p = _punch_adapter.validate_python({k: (record.get(k) or "").strip() for k in CSV_COLUMNS})
        except ValidationError:
            continue
        key = (p.employee_id, p.kind, utc(p.at))
        if key in wanted:
            found.append((reader.line_num, wanted.pop(key)))
    return found


def add_absence(uow: UnitOfWork, body: AbsenceIn) -> AbsenceRow:
    employee(uow, body.employee_id)
    row = AbsenceRow(employee_id=body.employee_id, start=utc(body.start), end=utc(body.end), reason=body.reason)
    uow.absences.add(row)
    msg = hr_events_pb2.Absence(employee_id=body.employee_id, absence_id=f"abs-{row.id}",
                                reason=ABSENCE_PB[body.reason])
    msg.start.FromDatetime(utc(body.start))
    msg.end.FromDatetime(utc(body.end))
    uow.publish(HR_ABSENCES, body.employee_id, msg, utc(body.start))
    uow.commit()
    return row


def _window(begin: datetime, finish: datetime) -> str:
    return f"{begin:%Y-%m-%dT%H:%M}/{finish:%Y-%m-%dT%H:%M}"


def list_punches(uow: UnitOfWork, caller: Caller, start: datetime, end: datetime, employee_id: str | None,
                 team_id: str | None) -> Sequence[PunchRow]:
    """Badge / punch-clock records in [from, to) (at most 93 days); every read is audit-logged."""
    begin, finish = period(start, end, 93)
    team_id = visible_team(caller, team_id)
    punches = uow.punches.list(begin, finish, employee_id, team_id)
    audit(uow, caller, "list_punches", f"{_window(begin, finish)} "
                                       f"employee={employee_id or '*'} team={team_id or '*'} n={len(punches)}")
    uow.commit()
    return punches


def list_absences(uow: UnitOfWork, caller: Caller, start: datetime, end: datetime, employee_id: str | None,
                  team_id: str | None) -> Sequence[AbsenceRow]:
    """Absences overlapping [from, to) with their reasons (personal data: every read is audit-logged)."""
    begin, finish = period(start, end)
    team_id = visible_team(caller, team_id)
    absences = uow.absences.overlapping(begin, finish, employee_id, team_id)
    audit(uow, caller, "list_absences", f"{_window(begin, finish)} "
                                        f"employee={employee_id or '*'} team={team_id or '*'} n={len(absences)}")
    uow.commit()
    return absences


@dataclass(frozen=True)
class Attendance:
    rates: list[att.AttendanceRate]
    outcomes: list[att.ShiftOutcome]
    absent_reasons: dict[str, str]  # shift id -> reason of the absence overlapping it


def attendance(uow: UnitOfWork, caller: Caller, start: datetime, end: datetime, team_id: str | None,
               grace: timedelta) -> Attendance:
    """Scheduled shifts starting in [from, to) against the punches: attendance rates per team and shift,
    who was late and who was absent (with the absence's reason)."""
    start, end = period(start, end)
    team_id = visible_team(caller, team_id)
    shifts = [att.ScheduledShift(r.shift_id, r.employee_id, r.team_id, stored_utc(r.start), stored_utc(r.end))
              for r in uow.schedules.shifts_starting(start, end, team_id)]
    emp_ids = {x.employee_id for x in shifts}
    # Punches from 2 hours before (early arrivals) to a day after the period (shifts running past its end).
    punches = [att.Punch(p.employee_id, p.kind, stored_utc(p.at))
               for p in uow.punches.list(start - timedelta(hours=2), end + timedelta(days=1), employee_ids=emp_ids)]
    absences = uow.absences.overlapping(start, end, employee_ids=emp_ids)
    outcomes = att.evaluate(shifts, punches, grace=grace)
    # lateness and absence reasons per employee are personal data: the read is audit-logged
    audit(uow, caller, "read_attendance", f"{_window(start, end)} team={team_id or '*'} shifts={len(outcomes)}")
    uow.commit()
    absent_reasons: dict[str, str] = {}
    for o in outcomes:
        if not o.present:
            for a in absences:
                if a.employee_id == o.shift.employee_id and stored_utc(a.start) < o.shift.end \
                        and stored_utc(a.end) > o.shift.start:
                    absent_reasons[o.shift.shift_id] = a.reason
    return Attendance(att.attendance_rates(outcomes), outcomes, absent_reasons)
