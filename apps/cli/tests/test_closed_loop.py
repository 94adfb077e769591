"""The closed loop: a plan for a synthetic week with known demand, replayed in the simulator, meets the
service-level target in >= 90 % of its intervals; the same plan with 10 % of its shifts cut does not."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from bench.planner import AHT_S, MONDAY, TARGETS, known_history, seasonal_rates
from callstream_cli.closed_loop import replay, replay_scenario
from callstream_hr.domain.roster import Contract, Employee, RosterRules
from callstream_hr.domain.service_report import ServiceTarget, service_by_interval, wilson_upper
from callstream_hr.domain.shifts import BreakRule, ShiftTemplate
from callstream_hr.service_layer.planning import RosterOptions, RosterPlan, plan_week

WEEK = MONDAY + timedelta(weeks=3)


PEAKS = {"sales": 120.0, "support": 80.0, "billing": 40.0}
# Known demand: mean calls per half hour and AHT of each queue, the same every week (so the forecast is it).
DEMAND = {q: (seasonal_rates(peak), AHT_S[q]) for q, peak in PEAKS.items()}


@pytest.fixture(scope="module")
def plan() -> RosterPlan:
    history = known_history(PEAKS)
    templates = (ShiftTemplate("8h", 17, tuple(range(0, 336, 2)), (BreakRule(1, 6, 10),)),)
    skills = (["sales"], ["support"], ["billing"], ["sales", "support"])
    staff = tuple(Employee(f"E{i:03d}", f"Agent {i}", frozenset(skills[i % 4]), Contract(0, 40, 2))
                  for i in range(220))
    return plan_week(history, TARGETS, WEEK, RosterOptions(templates, staff, RosterRules(time_limit_s=10), 0.0, 10),
                     history_weeks=3)


def test_the_replayed_plan_meets_its_target_and_the_cut_plan_does_not(plan: RosterPlan) -> None:
    assert plan.roster.unfilled == ()
    for q, (rate, aht) in zip(plan.forecast.queues, DEMAND.values(), strict=True):
        assert q.calls == pytest.approx(list(rate)) and q.aht_s == pytest.approx([aht] * 336)
    week = replay(plan, seed=3)
    judged = week.judged()
    assert len(judged) > 0.95 * 3 * 336  # nearly every interval has calls to judge
    shifts = sorted(plan.roster.shifts, key=lambda s: (s.start_slot, s.employee_id))
    cut = [s for i, s in enumerate(shifts) if i % 10 != 9]  # every 10th shift of the week removed
    cut_week = replay(plan, cut, seed=3)
    full_share, cut_share = week.share_met(), cut_week.share_met()
    print(f"intervals meeting the SL target: plan {full_share:.1%}, plan cut by 10 % {cut_share:.1%}; "
          f"week SL {week.service_level():.1%} vs {cut_week.service_level():.1%}")
    assert full_share >= 0.90
    assert cut_share < 0.90
    for t in TARGETS:
        assert (week.service_level(t.queue_id) or 0) >= t.sl_target


def test_the_scenario_is_the_plan(plan: RosterPlan) -> None:
    scenario = replay_scenario(plan)
    per_queue = {q: np.zeros(336) for q in DEMAND}
    for ct in scenario.call_types:
        assert ct.arrivals.per_interval is not None
        per_queue[ct.queue_id] += ct.arrivals.per_interval
        assert ct.talk.mean == DEMAND[ct.queue_id][1]  # type: ignore[union-attr]
    for q, (rate, _) in DEMAND.items():
        assert per_queue[q] == pytest.approx(rate)
    wraps = sum(1 for s in plan.roster.shifts if s.start_slot + s.length_slots > 336)
    assert sum(g.count for g in scenario.agents) == len(plan.roster.shifts) + wraps
    by_prefix = {g.id_prefix: g for g in scenario.agents}
    for s in plan.roster.shifts:
        # the half hours the shift's simulated agents are on the phones are the roster's worked slots
        on_phone = set()
        for prefix in (f"{s.employee_id}@{s.start_slot}", f"{s.employee_id}@{s.start_slot}w"):
            g = by_prefix.get(prefix)
            if g is None:
                continue
            assert [m.queue_id for m in g.queues] == [s.queue_id] and g.shift_end_h is not None
            away = {int(b.at_h * 2) + k for b in g.breaks for k in range(int(b.minutes // 30))}
            on_phone |= {t for t in range(int(g.shift_start_h * 2), int(g.shift_end_h * 2)) if t not in away}
        assert on_phone == set(s.worked_slots(336)), s


def test_an_interval_is_short_only_beyond_sampling_error() -> None:
    from callstream_hr.domain.history import CallOutcome, CallRecord

    def calls(n: int, within: int) -> list[CallRecord]:
        return [CallRecord("q", WEEK, CallOutcome.ANSWERED, 5.0 if i < within else 60.0, 100.0) for i in range(n)]

    # 7 of 10 within 20 s: below 80 %, but not beyond sampling error; 30 of 50 is
    assert wilson_upper(7, 10) > 0.8 > wilson_upper(30, 50)
    report = service_by_interval(calls(10, 7), {"q": ServiceTarget(0.8, 20)}, WEEK)
    first = report.intervals[0]
    assert (first.service_level, first.met, first.met_plain) == (0.7, True, False)
    short = service_by_interval(calls(50, 30), {"q": ServiceTarget(0.8, 20)}, WEEK).intervals[0]
    assert (short.met, short.met_plain) == (False, False)
    assert report.intervals[1].met is None  # no calls: not judged
