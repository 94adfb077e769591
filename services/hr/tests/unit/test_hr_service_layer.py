"""HR's business rules through the service layer, on an in-memory unit of work (no HTTP, no database): what
each change checks, what it refuses with which message, and which events it stages."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hr_fakes import FakeUnitOfWork

from callstream.hr.v1 import hr_events_pb2
from callstream_hr.service_layer import attendance, attrition, organisation, people, schedules
from callstream_hr.service_layer.commands import (
    AbsenceIn,
    ChangeIn,
    HireIn,
    LeaveIn,
    PunchIn,
    RowIn,
    ScheduleIn,
    SkillIn,
    TeamChangeIn,
    TeamIn,
)
from callstream_hr.service_layer.common import Caller, visible_team
from callstream_hr.service_layer.errors import Conflict, Forbidden, Invalid, NotFound

HR = Caller("hr:hr-t…", "hr")
EMPLOYMENT = hr_events_pb2.EmploymentChanged


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=UTC)


@pytest.fixture
def uow() -> FakeUnitOfWork:
    uow = FakeUnitOfWork()
    organisation.create_team(uow, TeamIn(id="team-a", name="A", lead_id="lead-1"))
    organisation.create_team(uow, TeamIn(id="team-b", name="B", lead_id="lead-2"))
    uow.published.clear()
    return uow


def hire(uow: FakeUnitOfWork, emp: str, team: str | None = "team-a", on: str = "2026-01-05") -> None:
    people.hire(uow, HireIn.model_validate({"id": emp, "full_name": f"Name {emp}", "role": "agent",
                                            "team_id": team, "hired_on": on}), HR)


def employment_events(uow: FakeUnitOfWork) -> list[hr_events_pb2.EmploymentChanged]:
    return [m for topic, _k, m, _t in uow.published if topic == "cc.hr-employment.v1"]  # type: ignore[misc]


def test_hire_records_history_and_publishes_with_the_team_lead(uow: FakeUnitOfWork) -> None:
    hire(uow, "emp-1")
    (event,) = employment_events(uow)
    assert (event.kind, event.team_id, event.team_lead_id) == (EMPLOYMENT.KIND_HIRED, "team-a", "lead-1")
    assert uow.published[0][3] == datetime(2026, 1, 5, tzinfo=UTC)  # event time: the day, 00:00 UTC
    (record,) = uow.history.of("emp-1")
    assert (record.change, record.team_lead_id, record.recorded_by) == ("hired", "lead-1", HR.subject)
    with pytest.raises(Conflict, match="employee 'emp-1' already exists"):
        hire(uow, "emp-1")
    with pytest.raises(NotFound, match="team 'team-x' not found"):
        hire(uow, "emp-2", team="team-x")


def test_a_row_must_belong_to_the_team(uow: FakeUnitOfWork) -> None:
    organisation.create_row(uow, RowIn(id="row-b1", team_id="team-b"))
    with pytest.raises(Invalid, match="row 'row-b1' belongs to team 'team-b'"):
        people.hire(uow, HireIn.model_validate({"id": "emp-1", "full_name": "X", "role": "agent",
                                                "team_id": "team-a", "row_id": "row-b1",
                                                "hired_on": "2026-01-05"}), HR)
    assert uow.employees.get("emp-1") is None and uow.published == []


def test_leaving_is_checked_against_the_hire_and_the_history(uow: FakeUnitOfWork) -> None:
    hire(uow, "emp-1", on="2026-03-01")
    leaving = {"exit_reason": "pay", "voluntary": True}
    with pytest.raises(Invalid, match="left_on is before hired_on"):
        people.leave(uow, "emp-1", LeaveIn.model_validate({**leaving, "left_on": "2026-02-28"}), HR)
    people.change(uow, "emp-1", ChangeIn.model_validate({"team_id": "team-b", "effective_on": "2026-04-01"}), HR)
    with pytest.raises(Invalid, match=r"before the last recorded change \(2026-04-01\)"):
        people.leave(uow, "emp-1", LeaveIn.model_validate({**leaving, "left_on": "2026-03-31"}), HR)
    emp = people.leave(uow, "emp-1", LeaveIn.model_validate({**leaving, "left_on": "2026-05-01"}), HR)
    assert (emp.left_on, emp.exit_team_lead_id) == (date(2026, 5, 1), "lead-2")  # the lead of the team left
    left = employment_events(uow)[-1]
    assert (left.kind, left.exit_reason, left.voluntary) == (EMPLOYMENT.KIND_LEFT, hr_events_pb2.EXIT_REASON_PAY,
                                                             True)
    with pytest.raises(Conflict, match="already left on 2026-05-01"):
        people.leave(uow, "emp-1", LeaveIn.model_validate({**leaving, "left_on": "2026-06-01"}), HR)
    with pytest.raises(Conflict, match="left on 2026-05-01"):
        people.change(uow, "emp-1", ChangeIn.model_validate({"role": "qa", "effective_on": "2026-06-01"}), HR)


def test_a_role_and_team_change_publishes_both_kinds_with_the_previous_state(uow: FakeUnitOfWork) -> None:
    hire(uow, "emp-1")
    today = datetime.now(UTC).date()
    with pytest.raises(Invalid, match="effective_on is in the future"):
        people.change(uow, "emp-1", ChangeIn.model_validate(
            {"role": "qa", "effective_on": (today + timedelta(days=1)).isoformat()}), HR)
    with pytest.raises(Invalid, match="nothing changes: 'emp-1' is already 'agent' in team 'team-a'"):
        people.change(uow, "emp-1", ChangeIn.model_validate({"role": "agent", "effective_on": "2026-02-01"}), HR)
    done = people.change(uow, "emp-1", ChangeIn.model_validate(
        {"role": "senior_operator", "team_id": "team-b", "effective_on": "2026-02-01", "reason": "promoted"}), HR)
    assert (done.change, done.previous) == ("role+team", ("agent", "team-a", None))
    role_event, team_event = employment_events(uow)[1:]
    assert (role_event.kind, team_event.kind) == (EMPLOYMENT.KIND_ROLE_CHANGED, EMPLOYMENT.KIND_TEAM_CHANGED)
    assert (team_event.previous_team_id, team_event.team_id, team_event.team_lead_id) == ("team-a", "team-b",
                                                                                            "lead-2")
    with pytest.raises(Invalid, match=r"before the last recorded change \(2026-02-01\)"):
        people.change(uow, "emp-1", ChangeIn.model_validate({"role": "qa", "effective_on": "2026-01-31"}), HR)


def test_a_new_team_lead_takes_over_the_active_members(uow: FakeUnitOfWork) -> None:
    hire(uow, "emp-1", on="2026-01-05")
    hire(uow, "emp-2", on="2026-03-01")
    hire(uow, "emp-3", team="team-b")
    with pytest.raises(Invalid, match=r"before the last recorded change of \['emp-2'\]"):
        organisation.change_team(uow, "team-a", TeamChangeIn.model_validate(
            {"lead_id": "lead-9", "effective_on": "2026-02-01"}), HR)
    done = organisation.change_team(uow, "team-a", TeamChangeIn.model_validate(
        {"lead_id": "lead-9", "effective_on": "2026-03-02"}), HR)
    assert (done.team.lead_id, done.members_with_new_lead) == ("lead-9", ["emp-1", "emp-2"])
    moved = employment_events(uow)[3:]
    assert [(e.employee_id, e.team_lead_id, e.reason_detail) for e in moved] == [
        ("emp-1", "lead-9", "new team lead"), ("emp-2", "lead-9", "new team lead")]


def schedule(schedule_id: str, *shifts: tuple[str, str, int]) -> ScheduleIn:
    return ScheduleIn.model_validate({
        "schedule_id": schedule_id, "period_start": "2026-11-02T00:00:00Z", "period_end": "2026-11-09T00:00:00Z",
        "shifts": [{"shift_id": sid, "employee_id": emp, "team_id": "team-a",
                    "start": at(day, 8).isoformat(), "end": at(day, 16).isoformat()} for sid, emp, day in shifts]})


def test_a_new_schedule_version_tells_dropped_employees_and_shift_ids_stay_unique(uow: FakeUnitOfWork) -> None:
    hire(uow, "emp-1")
    hire(uow, "emp-2")
    uow.published.clear()
    first = schedules.publish_schedule(uow, schedule("wk45", ("s1", "emp-1", 2), ("s2", "emp-2", 2)))
    assert (first.version, first.shifts, first.employees) == (1, 2, 2)
    second = schedules.publish_schedule(uow, schedule("wk45", ("s3", "emp-1", 3)))
    assert (second.version, second.shifts, second.employees) == (2, 1, 2)
    latest = {m.employee_id: m for _t, _k, m, _a in uow.published[2:]}  # type: ignore[attr-defined]
    assert [sh.shift_id for sh in latest["emp-1"].shifts] == ["s3"]
    assert list(latest["emp-2"].shifts) == [] and latest["emp-2"].version == 2  # dropped: an empty list
    with pytest.raises(Conflict, match=r"shift ids already used by another schedule: \['s3'\]"):
        schedules.publish_schedule(uow, schedule("wk46", ("s3", "emp-2", 4)))
    with pytest.raises(NotFound, match="employee 'emp-9' not found"):
        schedules.publish_schedule(uow, schedule("wk47", ("s9", "emp-9", 4)))


def test_team_leads_see_only_their_team() -> None:
    lead = Caller("team_lead:lead…", "team_lead", "team-a")
    assert visible_team(lead, None) == "team-a" and visible_team(lead, "team-a") == "team-a"
    with pytest.raises(Forbidden, match="a team lead sees only team 'team-a'"):
        visible_team(lead, "team-b")
    with pytest.raises(Forbidden, match=r"this team-lead token has no team \(TEAM_LEAD_SCOPES\)"):
        visible_team(Caller("team_lead:none…", "team_lead"), None)
    assert visible_team(Caller("manager:m…", "manager"), "team-b") == "team-b"


def test_a_punch_file_goes_in_whole_or_not_at_all(uow: FakeUnitOfWork) -> None:
    hire(uow, "emp-1")
    uow.published.clear()
    bad = ("employee_id,kind,at,device\n"
           "emp-1,in,2026-11-02T08:00:00Z,gate\n"
           "emp-1,in,2026-11-02T08:00:00Z,gate\n"
           "emp-9,out,2026-11-02T16:00:00Z,gate\n"
           "emp-1,sideways,2026-11-02T16:00:00Z,gate\n")
    with pytest.raises(Invalid) as refused:
        attendance.import_punches(uow, bad.encode(), "clock.csv")
    detail = refused.value.detail
    assert (detail["file"], detail["imported"]) == ("clock.csv", 0)
    assert [(e["line"], e["reason"].split(":")[0]) for e in detail["errors"]] == [
        (3, "duplicate of an earlier line"), (4, "unknown employee 'emp-9'"), (5, "kind")]
    assert uow.punches.list(at(1, 0), at(9, 0)) == [] and uow.published == []
    good = "employee_id,kind,at\nemp-1,in,2026-11-02T08:00:00Z\nemp-1,out,2026-11-02T16:00:00Z\n"
    assert attendance.import_punches(uow, good.encode(), "clock.csv") == attendance.Imported("clock.csv", 2, 0)
    assert attendance.import_punches(uow, good.encode(), "clock.csv") == attendance.Imported("clock.csv", 0, 2)
    assert len(uow.published) == 2  # the re-import staged nothing
    with pytest.raises(Invalid, match=r"clock\.csv: not UTF-8 text"):
        attendance.import_punches(uow, b"\xff\xfe", "clock.csv")


def test_attendance_names_the_late_and_the_absent_with_the_reason(uow: FakeUnitOfWork) -> None:
    for emp in ("emp-1", "emp-2", "emp-3"):
        hire(uow, emp)
    schedules.publish_schedule(uow, schedule("wk45", ("s1", "emp-1", 2), ("s2", "emp-2", 2), ("s3", "emp-3", 2)))
    attendance.add_punch(uow, PunchIn(employee_id="emp-1", kind="in", at=at(2, 7, 58)))
    attendance.add_punch(uow, PunchIn(employee_id="emp-2", kind="in", at=at(2, 8, 12)))  # 12 min late, grace 5
    attendance.add_absence(uow, AbsenceIn.model_validate(
        {"employee_id": "emp-3", "start": at(2, 0).isoformat(), "end": at(3, 0).isoformat(), "reason": "sick"}))
    with pytest.raises(Conflict, match="this punch is already recorded"):
        attendance.add_punch(uow, PunchIn(employee_id="emp-1", kind="in", at=at(2, 7, 58)))
    found = attendance.attendance(uow, HR, at(2, 0), at(3, 0), None, timedelta(minutes=5))
    assert [(o.shift.shift_id, o.late_minutes) for o in found.outcomes if o.late] == [("s2", 12.0)]
    assert [o.shift.shift_id for o in found.outcomes if not o.present] == ["s3"]
    assert found.absent_reasons == {"s3": "sick"}
    (rate,) = found.rates
    assert (rate.scheduled, rate.present, rate.late) == (3, 2, 1)
    assert uow.audit.latest(1)[0].action == "read_attendance"  # lateness and reasons are personal data


def test_skills_are_unique_and_replace_the_set(uow: FakeUnitOfWork) -> None:
    hire(uow, "emp-1")
    with pytest.raises(Invalid, match="each skill may appear once"):
        people.set_skills(uow, "emp-1", [SkillIn(skill="sales", proficiency=3), SkillIn(skill="sales", proficiency=4)])
    assert people.set_skills(uow, "emp-1", [SkillIn(skill="sales", proficiency=3)]) == {"sales": 3}
    topic, key, event, _ = uow.published[-1]
    assert (topic, key, [s.skill_id for s in event.skills_changed.skills]) == (  # type: ignore[attr-defined]
        "cc.agent-events.v1", "emp-1", ["sales"])


def test_attrition_counts_leavers_over_day_weighted_fte_and_promotions_are_not_leavers(uow: FakeUnitOfWork) -> None:
    hire(uow, "emp-1", on="2026-01-05")
    hire(uow, "emp-2", on="2026-01-05")
    hire(uow, "emp-3", on="2026-01-05")
    people.leave(uow, "emp-2", LeaveIn.model_validate({"left_on": "2026-03-16", "exit_reason": "pay"}), HR)
    people.change(uow, "emp-3", ChangeIn.model_validate({"role": "senior_operator", "effective_on": "2026-03-11"}),
                  HR)
    found = attrition.attrition(uow, "month", 2026, 3, "exit_reason", agents_only=True)
    # March, 31 days as agents: emp-1 all 31, emp-2 until the 15th (15), emp-3 until the 10th (10)
    fte = (31 + 15 + 10) / 31
    assert (found.total.leavers, found.total.average_fte) == (1, pytest.approx(fte))
    assert found.total.rate == pytest.approx(100 / fte)
    assert found.by is not None and list(found.by) == ["pay"]
    with pytest.raises(Invalid, match=r"month must be 1\.\.12"):
        attrition.attrition(uow, "month", 2026, 13, None, agents_only=True)


def test_the_org_report_counts_active_agents_per_team(uow: FakeUnitOfWork) -> None:
    hire(uow, "emp-1")
    hire(uow, "emp-2")
    hire(uow, "emp-3", team="team-b")
    people.leave(uow, "emp-2", LeaveIn.model_validate({"left_on": "2026-02-01", "exit_reason": "other"}), HR)
    assert [(t.id, n) for t, n in organisation.list_teams(uow)] == [("team-a", 1), ("team-b", 1)]
    report = organisation.org_report(uow)
    assert report.team_agents == {"team-a": 1, "team-b": 1}
    # neither lead-1 nor lead-2 is an active employee: both teams are flagged
    assert {w.id for w in report.warnings if w.message == "no team lead"} == {"team-a", "team-b"}
