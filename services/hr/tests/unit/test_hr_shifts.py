"""Shift planning: plans cover the requirement, respect breaks, and are optimal on small cases."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import numpy as np
import pytest

from callstream_hr.domain.shifts import BreakRule, ShiftPlan, ShiftTemplate, plan_shifts


def _recompute_coverage(plan: ShiftPlan, templates: list[ShiftTemplate], cyclic: bool = True) -> list[int]:
    """Coverage rebuilt from the assignments alone (independent of the solver's bookkeeping)."""
    n = len(plan.requirement)
    by_name = {t.name: t for t in templates}
    cov = [0] * n
    for a in plan.assignments:
        tpl = by_name[a.template]
        for k in range(tpl.length_slots):
            cov[(a.start_slot + k) % n if cyclic else a.start_slot + k] += a.count
        assert len(a.break_starts) == len(tpl.breaks)
        for rule, starts in zip(tpl.breaks, a.break_starts, strict=True):
            assert sum(starts.values()) == a.count
            for off, cnt in starts.items():
                assert rule.earliest_offset <= off <= rule.latest_offset
                for d in range(rule.duration_slots):
                    cov[(a.start_slot + off + d) % n] -= cnt
    return cov


def _week_requirement(peak: int, seed: int = 3) -> list[int]:
    rng = np.random.default_rng(seed)
    slot = np.arange(336)
    hour = (slot % 48) / 2.0
    day = slot // 48
    shape = np.exp(-((hour - 11) ** 2) / 10) + 0.7 * np.exp(-((hour - 16) ** 2) / 6) + 0.05
    shape *= np.where(day < 5, 1.0, 0.5)
    return [math.ceil(v) for v in peak * shape / shape.max() + rng.uniform(0, 2, 336)]


def test_week_24x7_plan_covers_every_interval() -> None:
    req = _week_requirement(60)
    templates = [
        ShiftTemplate("8h", 17, tuple(range(0, 336, 2)), (BreakRule(1, 6, 10),)),
        ShiftTemplate("4h", 8, None),
    ]
    plan = plan_shifts(req, templates, time_limit_s=8.0)
    assert plan.status in ("OPTIMAL", "FEASIBLE")
    assert plan.covered
    assert all(c >= r for c, r in zip(plan.coverage, req, strict=True))
    assert list(plan.coverage) == _recompute_coverage(plan, templates)
    assert sum(plan.under) == 0
    assert list(plan.over) == [c - r for c, r in zip(plan.coverage, req, strict=True)]
    # Paid hours: 8 h for the 8.5 h shift (30 min unpaid lunch), 4 h for the short one.
    paid = sum(a.count * (8.0 if a.template == "8h" else 4.0) for a in plan.assignments)
    assert plan.paid_hours == pytest.approx(paid) == pytest.approx(plan.objective)
    assert plan.headcount == sum(a.count for a in plan.assignments)
    # LP relaxation bounds the integer optimum from below; CP-SAT's bound sits between.
    assert plan.lp_bound <= plan.cp_sat_bound + 1e-6 <= plan.objective + 1e-6
    assert 0.0 <= plan.gap < 0.05
    # Agent-hours needed is a trivial lower bound too.
    assert plan.paid_hours >= sum(req) * 0.5


def _brute_force(req: list[int], lengths: list[int], cyclic: bool) -> int:
    n = len(req)
    cols = [(ln, s) for ln in lengths for s in range(n) if cyclic or s + ln <= n]
    best = math.inf
    for counts in itertools.product(range(max(req) + 1), repeat=len(cols)):
        cov = [0] * n
        for (ln, s), c in zip(cols, counts, strict=True):
            for k in range(ln):
                cov[(s + k) % n] += c
        if all(c >= r for c, r in zip(cov, req, strict=True)):
            best = min(best, sum(ln * c for (ln, _), c in zip(cols, counts, strict=True)))
    return int(best)


@pytest.mark.parametrize(
    ("req", "lengths", "cyclic"),
    [([1, 2, 2, 1, 0, 1], [3], True), ([2, 1, 0, 2, 1], [2, 3], False), ([0, 1, 2, 1, 2], [2, 4], True)],
)
def test_optimal_on_small_cases(req: list[int], lengths: list[int], cyclic: bool) -> None:
    templates = [ShiftTemplate(f"L{ln}", ln) for ln in lengths]
    plan = plan_shifts(req, templates, cyclic=cyclic, slot_hours=1.0, time_limit_s=5.0)
    assert plan.status == "OPTIMAL"
    assert plan.covered
    assert plan.paid_hours == _brute_force(req, lengths, cyclic)
    assert list(plan.coverage) == _recompute_coverage(plan, templates, cyclic)


def test_breaks_are_staggered_to_cover_a_flat_requirement() -> None:
    # 10 agents all day, 8-slot shifts with a 1-slot break in offsets 3..5: breaks must be spread
    # so that coverage never drops below 10.
    req = [10] * 24
    templates = [ShiftTemplate("day", 8, None, (BreakRule(1, 3, 5),))]
    plan = plan_shifts(req, templates, time_limit_s=5.0)
    assert plan.covered
    assert list(plan.coverage) == _recompute_coverage(plan, templates)
    # 240 agent-slots of work, 7 working (= paid, the break is unpaid) slots per shift → ≥ 35 shifts;
    # staggering the breaks makes 35 enough.
    assert plan.status == "OPTIMAL"
    assert plan.headcount == math.ceil(240 / 7)
    assert plan.paid_hours == plan.headcount * 7 * 0.5


def test_fixed_break_and_paid_break() -> None:
    tpl = ShiftTemplate("s", 6, (0,), (BreakRule.fixed(2, paid=True),))
    assert tpl.paid_slots == 6
    plan = plan_shifts([2, 2, 0, 2, 2, 2], [tpl], cyclic=False, time_limit_s=5.0)
    assert plan.covered and plan.headcount == 2 and plan.paid_hours == 6.0


def test_infeasible_and_soft_understaffing() -> None:
    # Non-cyclic, shifts may only start at slot 0 and last 4 slots: slot 5 cannot be covered.
    tpl = ShiftTemplate("early", 4, (0,))
    req = [1, 1, 1, 1, 0, 3]
    hard = plan_shifts(req, [tpl], cyclic=False, time_limit_s=5.0)
    assert hard.status == "INFEASIBLE" and not hard.covered
    soft = plan_shifts(req, [tpl], cyclic=False, time_limit_s=5.0, understaffing_penalty_slots=10)
    assert soft.status == "OPTIMAL"
    assert soft.under == (0, 0, 0, 0, 0, 3)
    assert soft.headcount == 1
    assert soft.objective == pytest.approx((4 + 30) * 0.5)


@pytest.mark.parametrize(
    "bad",
    [
        lambda: ShiftTemplate("x", 4, None, (BreakRule(1, 3, 4),)),  # window past the end
        lambda: ShiftTemplate("x", 8, None, (BreakRule(2, 2, 4), BreakRule(1, 5, 6))),  # overlapping
        lambda: ShiftTemplate("x", 0),
    ],
)
def test_template_validation(bad: Callable[[], object]) -> None:
    with pytest.raises(ValueError):
        bad()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_lp_rounding_hint_is_a_covering_plan_near_the_bound(seed: int) -> None:
    """CP-SAT starts from the rounded LP optimum: that hint alone covers every slot, keeps each column's
    break counts equal to its start count, and costs little above the LP bound."""
    from callstream_hr.domain.shifts import _columns, _hint, _solve_lp

    req = _week_requirement(120, seed)
    templates = [ShiftTemplate("8h", 17, None, (BreakRule(1, 6, 10),)),
                 ShiftTemplate("6h", 12, None, (BreakRule(1, 4, 7, paid=True),)), ShiftTemplate("4h", 8, None)]
    cols = _columns(len(req), templates, True)
    lp = _solve_lp(req, cols, None)
    xs, ys = _hint(lp, cols, req)
    coverage = [0] * len(req)
    for col, x, col_ys in zip(cols, xs, ys, strict=True):
        assert x >= 0 and all(sum(counts) == x and min(counts) >= 0 for counts in col_ys)
        for t in col.work:
            coverage[t] += x
        for options, counts in zip(col.breaks, col_ys, strict=True):
            for (_, slots), c in zip(options, counts, strict=True):
                for t in slots:
                    coverage[t] -= c
    assert all(c >= r for c, r in zip(coverage, req, strict=True))
    cost = sum(col.cost * x for col, x in zip(cols, xs, strict=True))
    assert lp.objective <= cost <= 1.02 * lp.objective
