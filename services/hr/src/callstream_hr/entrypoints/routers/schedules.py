"""Schedules, punches, absences and attendance (KPI 15)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime

from fastapi import APIRouter, Depends, Query, Request

from callstream_hr.entrypoints.dependencies import Web, stamp
from callstream_hr.entrypoints.schemas import (
    AbsenceOut,
    AbsentOut,
    AttendanceOut,
    LateOut,
    PublishedOut,
    PunchImportOut,
    PunchOut,
    ScheduledBreakOut,
    ScheduleListedOut,
    ScheduleOut,
    ShiftOut,
)
from callstream_hr.service_layer import attendance, schedules
from callstream_hr.service_layer.commands import AbsenceIn, PunchIn, ScheduleIn
from callstream_hr.service_layer.common import Caller
from callstream_hr.service_layer.unit_of_work import UnitOfWork


def router(web: Web) -> APIRouter:
    api = APIRouter(tags=["schedules and attendance"])
    uow = Depends(web.uow())
    hr_mgr = Depends(web.caller("hr", "manager"))
    readers = Depends(web.caller("hr", "manager", "team_lead"))
    clocks = Depends(web.caller("hr", "service"))  # badge systems post punches with a service token

    @api.post("/v1/schedules", status_code=201)
    def publish_schedule(body: ScheduleIn, u: UnitOfWork = uow, _c: Caller = hr_mgr) -> PublishedOut:
        return PublishedOut.model_validate(asdict(schedules.publish_schedule(u, body)))

    @api.get("/v1/schedules")
    def list_schedules(start: datetime | None = Query(None, alias="from"),
                       end: datetime | None = Query(None, alias="to"), u: UnitOfWork = uow,
                       _c: Caller = readers) -> list[ScheduleListedOut]:
        """Published schedules (current versions) overlapping [from, to), with their shift counts."""
        return [ScheduleListedOut(schedule_id=x.schedule_id, version=x.version, period_start=stamp(x.period_start),
                                  period_end=stamp(x.period_end), published_at=stamp(x.published_at), shifts=n)
                for x, n in schedules.list_schedules(u, start, end)]

    @api.get("/v1/schedules/{schedule_id}")
    def get_schedule(schedule_id: str, team_id: str | None = None, u: UnitOfWork = uow,
                     c: Caller = readers) -> ScheduleOut:
        sched, shifts = schedules.get_schedule(u, schedule_id, c, team_id)
        return ScheduleOut(schedule_id=schedule_id, version=sched.version, period_start=stamp(sched.period_start),
                           period_end=stamp(sched.period_end), shifts=[
                               ShiftOut(shift_id=r.shift_id, employee_id=r.employee_id, team_id=r.team_id,
                                        start=stamp(r.start), end=stamp(r.end),
                                        breaks=[ScheduledBreakOut.model_validate(b) for b in r.breaks])
                               for r in shifts])

    @api.post("/v1/punches", status_code=201)
    def add_punch(body: PunchIn, u: UnitOfWork = uow, _c: Caller = clocks) -> PunchOut:
        attendance.add_punch(u, body)
        return PunchOut.model_validate(body.model_dump(mode="json"))

    @api.post("/v1/punches/import")
    async def import_punches(request: Request, filename: str = Query("upload.csv", max_length=200),
                             _c: Caller = clocks) -> PunchImportOut:
        """A punch-clock CSV export (header employee_id,kind,at[,device]) as the request body."""
        raw = await request.body()
        with web.units_of_work() as u:
            return PunchImportOut.model_validate(asdict(attendance.import_punches(u, raw, filename)))

    @api.post("/v1/absences", status_code=201)
    def add_absence(body: AbsenceIn, u: UnitOfWork = uow, _c: Caller = hr_mgr) -> AbsenceOut:
        row = attendance.add_absence(u, body)
        return AbsenceOut.model_validate({"absence_id": f"abs-{row.id}", **body.model_dump(mode="json")})

    @api.get("/v1/punches")
    def list_punches(start: datetime = Query(alias="from"), end: datetime = Query(alias="to"),
                     employee_id: str | None = None, team_id: str | None = None, u: UnitOfWork = uow,
                     c: Caller = readers) -> list[PunchOut]:
        """Badge / punch-clock records in [from, to) (at most 93 days); every read is audit-logged."""
        return [PunchOut(employee_id=p.employee_id, kind=p.kind, at=stamp(p.at), device=p.device)
                for p in attendance.list_punches(u, c, start, end, employee_id, team_id)]

    @api.get("/v1/absences")
    def list_absences(start: datetime = Query(alias="from"), end: datetime = Query(alias="to"),
                      employee_id: str | None = None, team_id: str | None = None, u: UnitOfWork = uow,
                      c: Caller = readers) -> list[AbsenceOut]:
        """Absences overlapping [from, to) with their reasons (personal data: every read is audit-logged)."""
        return [AbsenceOut.model_validate({"absence_id": f"abs-{a.id}", "employee_id": a.employee_id,
                                           "start": stamp(a.start), "end": stamp(a.end), "reason": a.reason})
                for a in attendance.list_absences(u, c, start, end, employee_id, team_id)]

    @api.get("/v1/attendance")
    def attendance_report(start: datetime = Query(alias="from"), end: datetime = Query(alias="to"),
                          team_id: str | None = None, u: UnitOfWork = uow, c: Caller = readers) -> AttendanceOut:
        found = attendance.attendance(u, c, start, end, team_id, web.lateness_grace)
        return AttendanceOut(
            rates=found.rates,
            late=[LateOut(shift_id=o.shift.shift_id, employee_id=o.shift.employee_id, start=o.shift.start.isoformat(),
                          first_in=o.first_in.isoformat() if o.first_in else None,
                          late_minutes=round(o.late_minutes, 1)) for o in found.outcomes if o.late],
            absent=[AbsentOut(shift_id=o.shift.shift_id, employee_id=o.shift.employee_id,
                              start=o.shift.start.isoformat(), reason=found.absent_reasons.get(o.shift.shift_id))
                    for o in found.outcomes if not o.present])

    return api
