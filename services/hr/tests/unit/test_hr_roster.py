"""Rostering: every contract rule is checked on the produced roster (from its shifts alone, not the model)."""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np
import pytest

from callstream_hr.domain.roster import Contract, Employee, QueueShifts, Roster, RosterRules, build_roster
from callstream_hr.domain.shifts import BreakRule, ShiftTemplate, plan_shifts

WEEK = 336
TEMPLATES = (
    # 8 h paid + a 30-minute unpaid lunch between the 3rd and 5th hour, starting on any full hour.
    ShiftTemplate("day8", 17, tuple(range(0, WEEK, 2)), (BreakRule(1, 6, 10),)),
    ShiftTemplate("short6", 12, tuple(range(0, WEEK, 2)), (BreakRule(1, 4, 6, paid=True),)),
)


def _requirement(peak: int, seed: int) -> list[int]:
    rng = np.random.default_rng(seed)
    slot = np.arange(WEEK)
    hour = (slot % 48) / 2.0
    shape = np.exp(-((hour - 11) ** 2) / 12) + 0.6 * np.exp(-((hour - 17) ** 2) / 8) + 0.15
    shape *= np.where(slot // 48 < 5, 1.0, 0.6)
    return [math.ceil(v) for v in peak * shape / shape.max() + rng.uniform(0, 1, WEEK)]


def _employees() -> list[Employee]:
    out = []
    for i in range(80):  # about a quarter more than the shifts need, under these contracts
        skills = ({"sales"}, {"support"}, {"billing"}, {"sales", "support"}, {"support", "billing"})[i % 5]
        contract = Contract(
            min_weekly_hours=[0, 16, 24, 32][i % 4],
            max_weekly_hours=[40, 32, 40, 48][i % 4],
            min_days_off=[2, 2, 3, 1][i % 4],
            unavailable_days=frozenset({i % 7}) if i % 3 == 0 else frozenset(),
            nights_allowed=i % 4 != 1,
            hourly_cost=[20.0, 18.0, 22.0][i % 3],
        )
        out.append(Employee(f"E{i:03d}", f"Employee {i}", frozenset(skills), contract))
    return out


def _plans() -> list[QueueShifts]:
    return [QueueShifts(q, plan_shifts(_requirement(peak, seed), TEMPLATES, time_limit_s=3.0,
                                             relative_gap_limit=0.01), TEMPLATES)
            for q, peak, seed in (("sales", 5, 1), ("support", 6, 2), ("billing", 3, 3))]


@pytest.fixture(scope="module")
def planned() -> tuple[list[QueueShifts], list[Employee], RosterRules, Roster]:
    plans, employees, rules = _plans(), _employees(), RosterRules(time_limit_s=8.0)
    return plans, employees, rules, build_roster(plans, employees, rules)


def _night(start: int, length: int) -> bool:
    # 22:00-06:00, written out independently of RosterRules.is_night_slot
    return any(((start + k) % 48) >= 44 or ((start + k) % 48) < 12 for k in range(length))


def test_every_contract_rule_holds_on_the_produced_roster(
        planned: tuple[list[QueueShifts], list[Employee], RosterRules, Roster]) -> None:
    plans, employees, rules, roster = planned
    assert roster.status in ("OPTIMAL", "FEASIBLE")
    assert roster.unfilled == ()
    templates = {t.name: t for t in TEMPLATES}
    by_emp: dict[str, list] = defaultdict(list)
    for sh in roster.shifts:
        by_emp[sh.employee_id].append(sh)
    for e in employees:
        mine = sorted(by_emp[e.employee_id], key=lambda s: s.start_slot)
        c = e.contract
        hours = sum(s.paid_slots for s in mine) * 0.5
        assert c.min_weekly_hours <= hours <= c.max_weekly_hours, (e.employee_id, hours)
        days = [s.start_slot // 48 for s in mine]
        assert len(days) == len(set(days)), f"{e.employee_id}: two shifts on one day"
        assert 7 - len(set(days)) >= c.min_days_off, e.employee_id
        assert not set(days) & c.unavailable_days, e.employee_id
        for s in mine:
            assert s.queue_id in e.skills, (e.employee_id, s.queue_id)
            if not c.nights_allowed:
                assert not _night(s.start_slot, s.length_slots), (e.employee_id, s.start_slot)
            tpl = templates[s.template]
            assert s.length_slots == tpl.length_slots
            # breaks: one per rule of the template, inside its window, and nowhere else
            assert len(s.breaks) == len(tpl.breaks)
            for (b_start, b_len), rule in zip(s.breaks, tpl.breaks, strict=True):
                assert rule.earliest_offset <= (b_start - s.start_slot) % WEEK <= rule.latest_offset
                assert b_len == rule.duration_slots
        # rest between consecutive shifts, around the (repeating) week too
        for a, b in zip(mine, mine[1:] + mine[:1], strict=True):
            if a is b:
                continue
            gap = (b.start_slot - (a.start_slot + a.length_slots)) % WEEK
            assert gap * 0.5 >= rules.min_rest_hours, (e.employee_id, a.start_slot, b.start_slot)
    # the roster covers each queue's requirement slot by slot (breaks taken off)
    for q in plans:
        cov = [0] * WEEK
        for s in roster.shifts:
            if s.queue_id != q.queue_id:
                continue
            off = {(b + d) % WEEK for b, n in s.breaks for d in range(n)}
            for k in range(s.length_slots):
                if (s.start_slot + k) % WEEK not in off:
                    cov[(s.start_slot + k) % WEEK] += 1
        assert all(c >= r for c, r in zip(cov, q.plan.requirement, strict=True)), q.queue_id
        assert cov == roster.coverage(q.queue_id, WEEK)


def test_cost_and_hours_follow_the_shifts(
        planned: tuple[list[QueueShifts], list[Employee], RosterRules, Roster]) -> None:
    plans, employees, _, roster = planned
    rates = {e.employee_id: e.contract.hourly_cost for e in employees}
    paid = sum(s.paid_slots for s in roster.shifts) * 0.5
    assert roster.paid_hours == pytest.approx(paid)
    assert roster.cost == pytest.approx(sum(s.paid_slots * 0.5 * rates[s.employee_id] for s in roster.shifts))
    # the plans' shifts are all given out, extra ones only to meet minimum hours
    planned_count = sum(a.count for q in plans for a in q.plan.assignments)
    assert sum(not s.extra for s in roster.shifts) == planned_count
    assert paid >= sum(q.plan.paid_hours for q in plans)


def test_weekend_and_night_shifts_are_spread_evenly() -> None:
    # Identical employees: an even split of weekend shifts is possible and costs nothing more.
    tpl = (ShiftTemplate("day8", 16, tuple(d * 48 + 16 for d in range(7))),)
    req = [0] * WEEK
    for day in range(7):
        for k in range(16):
            req[day * 48 + 16 + k] = 2
    plan = plan_shifts(req, tpl, time_limit_s=5.0)
    employees = [Employee(f"E{i}", f"E{i}", frozenset({"q"}), Contract(0, 40, 2)) for i in range(4)]
    roster = build_roster([QueueShifts("q", plan, tpl)], employees, RosterRules(time_limit_s=10.0))
    weekend = [sum(1 for s in roster.shifts if s.employee_id == e.employee_id and s.start_slot // 48 >= 5)
               for e in employees]
    assert sum(weekend) == 4  # 2 agents on Saturday and Sunday
    assert max(weekend) - min(weekend) == roster.weekend_spread == 0


def test_a_contract_nobody_can_meet_leaves_shifts_unfilled_and_says_so() -> None:
    tpl = (ShiftTemplate("night", 16, (44,)),)
    req = [0] * WEEK
    for k in range(16):
        req[(44 + k) % WEEK] = 1  # one Monday-night shift
    plan = plan_shifts(req, tpl, time_limit_s=5.0)
    day_only = [Employee("E1", "E1", frozenset({"q"}), Contract(0, 40, 2, nights_allowed=False))]
    roster = build_roster([QueueShifts("q", plan, tpl)], day_only, RosterRules(time_limit_s=5.0))
    assert roster.shifts == ()
    assert [(u.queue_id, u.start_slot, u.count) for u in roster.unfilled] == [("q", 44, 1)]


def test_bad_contracts_are_refused() -> None:
    with pytest.raises(ValueError, match="min_weekly_hours"):
        Contract(min_weekly_hours=30, max_weekly_hours=20)
    with pytest.raises(ValueError, match="unavailable_days"):
        Contract(unavailable_days=frozenset({7}))
    tpl = (ShiftTemplate("t", 16),)
    plan = plan_shifts([1] * WEEK, tpl, time_limit_s=2.0)
    with pytest.raises(ValueError, match="unique"):
        build_roster([QueueShifts("q", plan, tpl)], [Employee("E", "a", frozenset()), Employee("E", "b", frozenset())])
    with pytest.raises(ValueError, match="one week"):
        build_roster([QueueShifts("q", plan_shifts([1] * 48, tpl, time_limit_s=2.0), tpl)], [])
