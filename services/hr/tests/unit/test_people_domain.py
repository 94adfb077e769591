"""Hand-computed checks of the pure people functions (attrition, attendance, lateness, training, org)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from callstream_hr.domain.people import attendance as att
from callstream_hr.domain.people import attrition as attr
from callstream_hr.domain.people import org, training


def T(h: int, m: int = 0, day: int = 2) -> datetime:
    return datetime(2026, 11, day, h, m, tzinfo=UTC)


# ------------------------------------------------------------------ attrition (KPI 23)
def test_attrition_month_by_hand() -> None:
    # November 2026 has 30 days. 10 full-time agents all month, one leaves on the 16th (employed 15 days),
    # one half-time agent hired on the 16th (15 days × 0.5).
    tenures = [attr.Tenure(f"e{i}", date(2025, 1, 1)) for i in range(9)]
    tenures.append(attr.Tenure("leaver", date(2025, 1, 1), date(2026, 11, 16), exit_reason="pay"))
    tenures.append(attr.Tenure("new", date(2026, 11, 16), fte=0.5))
    start, end = attr.period_bounds("month", 2026, 11)
    fig = attr.attrition(tenures, start, end)
    # average FTE = (9×30 + 15 + 0.5×15) / 30 = 292.5 / 30 = 9.75
    assert fig.average_fte == pytest.approx(9.75)
    assert fig.leavers == 1
    assert fig.rate == pytest.approx(100 / 9.75)
    assert fig.annualised == pytest.approx(100 / 9.75 * 365 / 30)


def test_attrition_year_and_quarter_bounds() -> None:
    assert attr.period_bounds("quarter", 2026, 4) == (date(2026, 10, 1), date(2027, 1, 1))
    assert attr.period_bounds("year", 2026) == (date(2026, 1, 1), date(2027, 1, 1))
    assert attr.period_bounds("month", 2026, 12) == (date(2026, 12, 1), date(2027, 1, 1))
    with pytest.raises(ValueError):
        attr.period_bounds("quarter", 2026, 5)
    # 4 agents all year, 1 leaves on 1 July 2026 (181 days employed): avg = (4×365 + 181)/365
    tenures = [attr.Tenure(f"e{i}", date(2020, 1, 1)) for i in range(4)]
    tenures.append(attr.Tenure("x", date(2020, 1, 1), date(2026, 7, 1)))
    fig = attr.attrition(tenures, *attr.period_bounds("year", 2026))
    assert fig.average_fte == pytest.approx((4 * 365 + 181) / 365)
    assert fig.annualised == pytest.approx(fig.rate)


def test_attrition_leaver_on_period_start_counts_but_not_in_headcount_that_day() -> None:
    t = [attr.Tenure("a", date(2026, 1, 1), date(2026, 11, 1)), attr.Tenure("b", date(2026, 1, 1))]
    fig = attr.attrition(t, date(2026, 11, 1), date(2026, 12, 1))
    assert fig.leavers == 1 and fig.average_fte == pytest.approx(1.0) and fig.rate == pytest.approx(100.0)


def test_attrition_empty_population_is_none() -> None:
    fig = attr.attrition([], date(2026, 11, 1), date(2026, 12, 1))
    assert fig.rate is None and fig.annualised is None and fig.leavers == 0


def test_attrition_by_reason_adds_up_and_by_lead_uses_own_team() -> None:
    t = [attr.Tenure(f"a{i}", date(2025, 1, 1), team_lead_id="L1") for i in range(3)]
    t += [attr.Tenure(f"b{i}", date(2025, 1, 1), team_lead_id="L2") for i in range(4)]
    t.append(attr.Tenure("la", date(2025, 1, 1), date(2026, 11, 1), exit_reason="pay", team_lead_id="L1"))
    t.append(attr.Tenure("lb", date(2025, 1, 1), date(2026, 11, 1), exit_reason="supervisor", team_lead_id="L1"))
    start, end = date(2026, 11, 1), date(2026, 12, 1)
    total = attr.attrition(t, start, end)
    by_reason = attr.attrition_by(t, start, end, "exit_reason")
    assert set(by_reason) == {"pay", "supervisor"}
    assert sum(f.rate or 0 for f in by_reason.values()) == pytest.approx(total.rate)
    by_lead = attr.attrition_by(t, start, end, "team_lead_id")
    assert by_lead["L1"].leavers == 2 and by_lead["L1"].average_fte == pytest.approx(3.0)
    assert by_lead["L1"].rate == pytest.approx(200 / 3)
    assert by_lead["L2"].leavers == 0 and by_lead["L2"].rate == 0.0
    with pytest.raises(ValueError):
        attr.attrition_by(t, start, end, "colour")


def test_stints_a_promotion_or_a_move_is_not_a_leaving() -> None:
    P = attr.Placement
    history = [
        P("stay", date(2025, 1, 1), "hired", "agent", "L1"),
        # promoted on 16 Nov: an agent for 15 days of November, not an agent leaver
        P("promoted", date(2025, 1, 1), "hired", "agent", "L1"),
        P("promoted", date(2026, 11, 16), "role", "senior_operator", "L1"),
        # moved from L1's team to L2's on 11 Nov, left on 21 Nov: 10 days with each lead, a leaver of L2's
        P("mover", date(2025, 1, 1), "hired", "agent", "L1"),
        P("mover", date(2026, 11, 11), "team", "agent", "L2"),
        P("mover", date(2026, 11, 21), "left", "agent", "L2"),
        # a senior operator who left: not an agent leaver
        P("senior", date(2025, 1, 1), "hired", "senior_operator", "L2"),
        P("senior", date(2026, 11, 5), "left", "senior_operator", "L2"),
        # hired into one team and moved the same day: only the second stint counts
        P("same-day", date(2026, 11, 1), "hired", "agent", "L1"),
        P("same-day", date(2026, 11, 1), "team", "agent", "L2"),
    ]
    reasons = {"mover": "workload_pressure", "senior": "pay"}
    start, end = date(2026, 11, 1), date(2026, 12, 1)
    agents = attr.stints(history, {}, reasons, "agent")
    total = attr.attrition(agents, start, end)
    # FTE-days: stay 30 + promoted 15 + mover 10 + 10 + same-day 30 = 95 → 95/30
    assert total.leavers == 1 and total.average_fte == pytest.approx(95 / 30)
    by_lead = attr.attrition_by(agents, start, end, "team_lead_id")
    assert (by_lead["L1"].leavers, by_lead["L1"].average_fte) == (0, pytest.approx(55 / 30))
    assert (by_lead["L2"].leavers, by_lead["L2"].average_fte) == (1, pytest.approx(40 / 30))
    assert attr.attrition_by(agents, start, end, "exit_reason")["workload_pressure"].leavers == 1
    everyone = attr.attrition(attr.stints(history, {}, reasons), start, end)
    assert everyone.leavers == 2  # the mover and the senior operator; the promotion is no leaving


# ------------------------------------------------------------------ attendance (KPI 15) and lateness
def _shift(sid: str, emp: str, team: str = "t1", start: int = 8) -> att.ScheduledShift:
    return att.ScheduledShift(sid, emp, team, T(start), T(start) + timedelta(hours=8))


def test_attendance_rate_and_lateness_by_hand() -> None:
    shifts = [_shift("s1", "a"), _shift("s2", "b"), _shift("s3", "c"), _shift("s4", "d"),
              _shift("s5", "e", start=16)]
    punches = [
        att.Punch("a", "in", T(7, 55)),   # on time
        att.Punch("b", "in", T(8, 5)),    # exactly start + grace: not late
        att.Punch("c", "in", T(8, 20)),   # 20 min late
        att.Punch("c", "in", T(9, 0)),    # a second IN does not change the first
        att.Punch("d", "out", T(8, 0)),   # an OUT alone is not presence
        att.Punch("e", "in", T(14, 59)),  # more than 1 h early: not counted for the 16:00 shift
    ]
    outcomes = {o.shift.shift_id: o for o in att.evaluate(shifts, punches, grace=timedelta(minutes=5))}
    assert [outcomes[k].present for k in ("s1", "s2", "s3", "s4", "s5")] == [True, True, True, False, False]
    assert not outcomes["s2"].late and outcomes["s3"].late_minutes == pytest.approx(20.0)
    rates = {(r.team_id, r.shift_label): r for r in att.attendance_rates(outcomes.values())}
    assert rates[("t1", "08:00")].scheduled == 4 and rates[("t1", "08:00")].present == 3
    assert rates[("t1", "08:00")].rate == pytest.approx(75.0) and rates[("t1", "08:00")].late == 1
    assert rates[("t1", "16:00")].rate == 0.0


def test_punch_after_shift_end_is_absent() -> None:
    o = att.evaluate([_shift("s", "a")], [att.Punch("a", "in", T(16, 0))])[0]
    assert not o.present and o.late_minutes == 0


def test_attendance_groups_by_team() -> None:
    shifts = [_shift("s1", "a", "t1"), _shift("s2", "b", "t2")]
    outcomes = att.evaluate(shifts, [att.Punch("a", "in", T(8))])
    rates = att.attendance_rates(outcomes)
    assert [(r.team_id, r.rate) for r in rates] == [("t1", 100.0), ("t2", 0.0)]


# ------------------------------------------------------------------ training flags
def _exam(emp: str, day: int, score: float) -> training.ExamResult:
    return training.ExamResult(emp, T(10, day=day), score, 70.0)


def test_flag_only_when_last_three_are_below_pass_mark() -> None:
    results = [
        _exam("weak", 1, 50), _exam("weak", 2, 60), _exam("weak", 3, 69.9),
        _exam("recovered", 1, 50), _exam("recovered", 2, 60), _exam("recovered", 3, 65), _exam("recovered", 4, 70),
        _exam("few", 1, 10), _exam("few", 2, 10),
        _exam("old_fail", 3, 40), _exam("old_fail", 1, 80), _exam("old_fail", 2, 40), _exam("old_fail", 4, 40),
    ]
    flags = training.flag_for_individual_training(results)
    assert [f.employee_id for f in flags] == ["old_fail", "weak"]
    assert flags[1].recent_scores == (50, 60, 69.9)
    assert [f.employee_id for f in training.flag_for_individual_training(results, last_n=2)] == [
        "few", "old_fail", "weak"]
    with pytest.raises(ValueError):
        training.flag_for_individual_training(results, last_n=0)


# ------------------------------------------------------------------ organisation warnings
def test_size_warnings() -> None:
    w = org.size_warnings({"t1": 12, "t2": 9, "t3": 16}, {"r1": 5, "r2": 3}, rows_without_senior={"r1"},
                          teams_without_lead=set())
    assert [(x.scope, x.id) for x in w] == [("team", "t2"), ("team", "t3"), ("row", "r2"), ("row", "r1")]
    assert "10–15" in w[0].message


def test_stage_lists_agree_with_the_api() -> None:
    from typing import get_args

    from callstream_hr.service_layer.commands import ExitReason, Role, SessionType, Stage

    assert get_args(Stage) == training.NEW_HIRE_STAGES
    assert get_args(SessionType) == training.SESSION_TYPES
    assert get_args(ExitReason) == org.EXIT_REASONS
    assert get_args(Role) == org.ROLES
