"""The planner end to end: a 24/7 week × 3 queues × 100 employees, from history to roster.

Synthetic known demand (3 queues, seasonal by day and hour, AHT 240/300/180 s, patience 120/180/90 s, 80/20,
80/30, 80/20), 3 weeks of history; 100 employees (60 single-skilled, 40 with two skills; min 0-32 h, max
32-40 h, 2 days off, some without nights, some with a fixed day off); 8.5 h shifts with a 30-minute unpaid
break, starting on any half hour. Times each stage of `plan_week` (forecast and Erlang A staffing, the three
shift plans, the roster) and prints the roster's paid hours against the LP lower bound (Σ of the queues'
GLOP relaxations: no roster covering the requirement pays less) with the gap. Baseline in the same run: the
shift plans alone (CP-SAT with the LP-rounded start), which the roster adds its model to.

Run `uv run python -m bench.planner` (about a minute on 2 cores).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import numpy as np

from bench.common import machine
from callstream_hr.domain.forecast import IntervalFigures
from callstream_hr.domain.history import RecordedHistory
from callstream_hr.domain.roster import Contract, Employee, RosterRules
from callstream_hr.domain.shifts import BreakRule, ShiftTemplate
from callstream_hr.service_layer.planning import QueueTargets, RosterOptions, plan_week

MONDAY = datetime(2026, 11, 2, tzinfo=UTC)
SHIFT_LIMIT_S = 10.0
ROSTER_LIMIT_S = 30.0


def seasonal_rates(peak: float) -> np.ndarray:
    """Mean calls per half hour of a week: a morning and an afternoon peak, weekends at 60 %."""
    slot = np.arange(336)
    hour = (slot % 48) / 2.0
    shape = np.exp(-((hour - 11) ** 2) / 10) + 0.6 * np.exp(-((hour - 16) ** 2) / 6) + 0.08
    shape *= np.where(slot // 48 < 5, 1.0, 0.6)
    return peak * shape / shape.max()


TARGETS = (QueueTargets("sales", 0.8, 20, 120.0), QueueTargets("support", 0.8, 30, 180.0),
           QueueTargets("billing", 0.8, 20, 90.0))
AHT_S = {"sales": 240.0, "support": 300.0, "billing": 180.0}


def known_history(peaks: dict[str, float], weeks: int = 3) -> RecordedHistory:
    """`weeks` identical weeks of the queues' seasonal rates (so the forecast is exactly the demand)."""
    return RecordedHistory({q: [IntervalFigures(MONDAY + timedelta(minutes=30 * i), float(rates[i % 336]),
                                                AHT_S[q]) for i in range(weeks * 336)]
                            for q, rates in ((q, seasonal_rates(p)) for q, p in peaks.items())})


SKILLS = (("sales",), ("support",), ("billing",), ("sales", "support"), ("support", "billing"))


def _employees() -> tuple[Employee, ...]:
    out = []
    for i in range(100):
        contract = Contract(min_weekly_hours=(0, 16, 24, 32)[i % 4], max_weekly_hours=(40, 32, 40, 40)[i % 4],
                            min_days_off=2, unavailable_days=frozenset({i % 7}) if i % 5 == 0 else frozenset(),
                            nights_allowed=i % 6 != 1, hourly_cost=1.0)
        out.append(Employee(f"E{i:03d}", f"Employee {i}", frozenset(SKILLS[i % 5]), contract))
    return tuple(out)


def main() -> None:
    history = known_history({"sales": 70, "support": 45, "billing": 25})
    templates = (ShiftTemplate("8h", 17, None, (BreakRule(1, 6, 10),)),)
    options = RosterOptions(templates, _employees(), RosterRules(time_limit_s=ROSTER_LIMIT_S), 0.0, SHIFT_LIMIT_S)
    t0 = time.perf_counter()
    plan = plan_week(history, TARGETS, MONDAY + timedelta(weeks=3), options, history_weeks=3)
    total = time.perf_counter() - t0
    shifts_s = sum(p.solve_time_s + p.lp_time_s for p in plan.shift_plans.values())
    roster = plan.roster
    print(f"plan a 24/7 week, 3 queues, 100 employees (CP-SAT 2 workers; limits {SHIFT_LIMIT_S:g} s per shift plan, "
          f"{ROSTER_LIMIT_S:g} s for the roster)  [{machine()}]")
    print(f"  history -> roster, wall             {total:8.1f} s")
    print(f"  shift plans (baseline: LP + CP-SAT)  {shifts_s:8.1f} s  "
          f"({', '.join(f'{q} {p.status}' for q, p in plan.shift_plans.items())})")
    print(f"  roster model                         {roster.solve_time_s:8.1f} s  ({roster.status}, "
          f"{roster.stats['variables']:,} variables, {roster.stats['constraints']:,} constraints)")
    print(f"  forecast + Erlang A staffing         {total - shifts_s - roster.solve_time_s:8.1f} s")
    print(f"  roster: {len(roster.shifts)} shifts for {roster.employees} employees, unfilled "
          f"{sum(u.count for u in roster.unfilled)}, weekend spread {roster.weekend_spread}, "
          f"night spread {roster.night_spread}")
    plans_paid = sum(p.paid_hours for p in plan.shift_plans.values())
    print(f"  paid hours: roster {roster.paid_hours:,.1f} h, shift plans {plans_paid:,.1f} h, LP lower bound "
          f"{plan.lp_bound_hours:,.1f} h -> gap {plan.gap:.2%} (shift plans alone "
          f"{(plans_paid - plan.lp_bound_hours) / plans_paid:.2%})")


if __name__ == "__main__":
    main()
