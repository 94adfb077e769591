"""Published schedules: versions, their shifts, and one event per employee whose shifts changed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from callstream.hr.v1 import hr_events_pb2
from callstream_core.db import now
from callstream_core.topics import HR_SCHEDULES
from callstream_hr.adapters.models import Schedule, ShiftRow
from callstream_hr.service_layer.commands import ScheduleIn, ShiftIn
from callstream_hr.service_layer.common import Caller, aware, employee, utc, visible_team
from callstream_hr.service_layer.errors import Conflict, NotFound
from callstream_hr.service_layer.unit_of_work import UnitOfWork


@dataclass(frozen=True)
class Published:
    schedule_id: str
    version: int
    shifts: int
    employees: int  # employees with an event: those in this version and those dropped from the previous


def publish_schedule(uow: UnitOfWork, body: ScheduleIn) -> Published:
    """A new schedule, or a new version replacing all shifts of the previous one."""
    for emp_id in {sh.employee_id for sh in body.shifts}:
        employee(uow, emp_id)
    # Row lock (PostgreSQL): two concurrent publishes of one schedule get consecutive versions.
    sched = uow.schedules.get(body.schedule_id, for_update=True)
    previous: set[str] = set()
    if sched is None:
        sched = Schedule(schedule_id=body.schedule_id, version=1, period_start=utc(body.period_start),
                         period_end=utc(body.period_end), published_at=now())
        uow.schedules.add(sched)
    else:
        previous = {sh.employee_id for sh in uow.schedules.shifts_of(body.schedule_id)}
        sched.version += 1
        sched.period_start, sched.period_end = utc(body.period_start), utc(body.period_end)
        sched.published_at = now()
    clash = uow.schedules.replace_shifts(body.schedule_id, [
        ShiftRow(shift_id=sh.shift_id, schedule_id=body.schedule_id, employee_id=sh.employee_id, team_id=sh.team_id,
                 start=utc(sh.start), end=utc(sh.end), breaks=[b.model_dump(mode="json") for b in sh.breaks])
        for sh in body.shifts])
    if clash:
        raise Conflict(f"shift ids already used by another schedule: {sorted(clash)}")
    per_emp: dict[str, list[ShiftIn]] = {e: [] for e in previous}
    for sh in body.shifts:
        per_emp.setdefault(sh.employee_id, []).append(sh)
    # One event per employee; employees dropped from the new version get an empty shift list.
    for emp_id, shifts in sorted(per_emp.items()):
        msg = hr_events_pb2.SchedulePublished(employee_id=emp_id, schedule_id=body.schedule_id,
                                              version=sched.version)
        msg.period_start.FromDatetime(utc(body.period_start))
        msg.period_end.FromDatetime(utc(body.period_end))
        for sh in sorted(shifts, key=lambda x: x.start):
            pb = msg.shifts.add(shift_id=sh.shift_id, team_id=sh.team_id)
            pb.start.FromDatetime(utc(sh.start))
            pb.end.FromDatetime(utc(sh.end))
            for b in sh.breaks:
                pbb = pb.breaks.add(activity=b.activity)
                pbb.start.FromDatetime(utc(b.start))
                pbb.end.FromDatetime(utc(b.end))
        uow.publish(HR_SCHEDULES, emp_id, msg)
    uow.commit("schedule changed concurrently; retry")
    return Published(body.schedule_id, sched.version, len(body.shifts), len(per_emp))


def list_schedules(uow: UnitOfWork, start: datetime | None,
                   end: datetime | None) -> list[tuple[Schedule, int]]:
    """Published schedules (current versions) overlapping [from, to), with their shift counts."""
    found = uow.schedules.list(aware(start, "from") if start is not None else None,
                               aware(end, "to") if end is not None else None)
    counts = uow.schedules.shift_counts([x.schedule_id for x in found])
    return [(x, counts.get(x.schedule_id, 0)) for x in found]


def get_schedule(uow: UnitOfWork, schedule_id: str, caller: Caller,
                 team_id: str | None) -> tuple[Schedule, Sequence[ShiftRow]]:
    team_id = visible_team(caller, team_id)
    sched = uow.schedules.get(schedule_id)
    if sched is None:
        raise NotFound(f"schedule {schedule_id!r} not found")
    return sched, uow.schedules.shifts_of(schedule_id, team_id)
