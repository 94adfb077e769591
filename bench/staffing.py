"""Workforce planning: Erlang staffing for a week of 10 queues, and shift optimisation for a 500-agent center.

1. Staffing: 10 queues × 336 half-hour intervals (a 24/7 week) of synthetic seasonal volume, forecast
   from 6 weeks of history, then `required_agents` per interval with Erlang C (80/20, 85 % max
   occupancy, 30 % shrinkage) and again with Erlang A (mean patience 120 s, 5 % abandon goal).
   Erlang C: best of 5 runs. Baseline: pyworkforce's ErlangC (the test oracle) on the same 3,360
   intervals and goals, best of 5 taken in turn with ours (an interval with no calls needs no agent:
   pyworkforce refuses 0 transactions, so the loop answers 0 itself).
2. Shifts: the summed requirement, scaled so the plan needs about 500 FTE (40 h), covered by
   8 h / 6 h / 4 h shifts (every half hour, breaks in windows) with CP-SAT (2 workers, time limit);
   reports wall time, paid hours, and the gap to the GLOP linear-relaxation bound; and the same with a
   2 s limit (a planner waiting on the API: how much of the gap the LP-rounded start already closes).

Run by `make bench` (`uv run python -m bench.staffing`); takes well under a minute on 2 cores.
"""

from __future__ import annotations

import math
import time

import numpy as np

from bench.common import print_figures
from callstream_hr.domain.erlang import required_agents
from callstream_hr.domain.forecast import SLOTS_PER_WEEK, Forecast, SeasonalForecaster, WeeklyHistory
from callstream_hr.domain.shifts import BreakRule, ShiftTemplate, plan_shifts

QUEUES = 10
HISTORY_WEEKS = 6
INTERVAL_S = 1800.0
SHIFT_TIME_LIMIT_S = 20.0
SHIFT_QUICK_LIMIT_S = 2.0
REPEATS = 5


def _synthetic_history(rng: np.random.Generator, peak_calls: float) -> WeeklyHistory:
    slot = np.arange(SLOTS_PER_WEEK)
    hour = (slot % 48) / 2.0
    day = slot // 48
    daily = np.exp(-((hour - 11.0) ** 2) / 8.0) + 0.7 * np.exp(-((hour - 16.0) ** 2) / 6.0) + 0.03
    weekly = np.where(day < 5, 1.0, 0.45)
    mean = peak_calls * daily * weekly / daily.max()
    calls = rng.poisson(np.tile(mean, (HISTORY_WEEKS, 1))).astype(np.float64)
    aht = np.clip(rng.normal(240.0 + 30.0 * np.sin(slot / 48 * 2 * math.pi), 15.0, calls.shape), 60, None)
    return WeeklyHistory(calls, aht)


def _pyworkforce_wall(forecasts: list[Forecast]) -> float | None:
    """Seconds pyworkforce's ErlangC takes for the Erlang C loop above (None when it is not installed)."""
    try:
        from pyworkforce.queuing import ErlangC
    except ImportError:
        return None
    t0 = time.perf_counter()
    for fc in forecasts:
        for s in range(SLOTS_PER_WEEK):
            calls = float(fc.calls[0, s])
            if calls > 0:  # pyworkforce works in minutes
                ErlangC(transactions=calls, aht=float(fc.aht_s[0, s]) / 60, asa=20 / 60, interval=INTERVAL_S / 60,
                        shrinkage=0.3).required_positions(service_level=0.8, max_occupancy=0.85)
    return time.perf_counter() - t0


def main() -> None:
    rng = np.random.default_rng(7)
    forecaster = SeasonalForecaster(lookback_weeks=4, decay=0.7)
    forecasts = [forecaster.forecast(_synthetic_history(rng, float(p)), 1) for p in rng.uniform(80, 400, QUEUES)]

    # Best of REPEATS, ours and pyworkforce's in turn: on a shared machine one run of 0.1 s is mostly noise.
    req_c = np.zeros((QUEUES, SLOTS_PER_WEEK), dtype=np.int64)
    walls_c, walls_pwf = [], []
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        for q, fc in enumerate(forecasts):
            for s in range(SLOTS_PER_WEEK):
                r = required_agents(float(fc.calls[0, s]), INTERVAL_S, float(fc.aht_s[0, s]), 0.8, 20.0,
                                    max_occupancy=0.85, shrinkage=0.3)
                req_c[q, s] = r.raw_agents
        walls_c.append(time.perf_counter() - t0)
        walls_pwf.append(_pyworkforce_wall(forecasts))
    wall_c = min(walls_c)
    wall_pwf = None if None in walls_pwf else min(w for w in walls_pwf if w is not None)

    t0 = time.perf_counter()
    req_a = np.zeros_like(req_c)
    for q, fc in enumerate(forecasts):
        for s in range(SLOTS_PER_WEEK):
            r = required_agents(
                float(fc.calls[0, s]),
                INTERVAL_S,
                float(fc.aht_s[0, s]),
                0.8,
                20.0,
                max_occupancy=0.85,
                abandon_goal=0.05,
                patience_s=120.0,
                shrinkage=0.3,
            )
            req_a[q, s] = r.raw_agents
    wall_a = time.perf_counter() - t0

    # A center whose plan needs ~500 FTE: scale the summed requirement (agents on the phones).
    total = req_c.sum(axis=0).astype(np.float64)
    target_agent_hours = 500 * 40.0  # ~500 FTE of 40 paid hours (a little over-coverage aside)
    scale = target_agent_hours / (total.sum() * 0.5)
    requirement = [math.ceil(v * scale) for v in total]

    templates = [
        ShiftTemplate("8h", 17, None, (BreakRule(1, 6, 10),)),  # 8.5 h with an unpaid 30 min lunch
        ShiftTemplate("6h", 12, None, (BreakRule(1, 4, 7, paid=True),)),
        ShiftTemplate("4h", 8, None),
    ]
    t0 = time.perf_counter()
    plan = plan_shifts(requirement, templates, time_limit_s=SHIFT_TIME_LIMIT_S, num_search_workers=2)
    wall_s = time.perf_counter() - t0
    assert plan.covered, "plan does not cover the requirement"
    t0 = time.perf_counter()
    quick = plan_shifts(requirement, templates, time_limit_s=SHIFT_QUICK_LIMIT_S, num_search_workers=2)
    wall_quick = time.perf_counter() - t0
    assert quick.covered, "the quick plan does not cover the requirement"

    print_figures(
        "staffing: 10 queues x 336 half-hour intervals, then shifts for a ~500-FTE center",
        {
            "erlang_c_intervals": float(QUEUES * SLOTS_PER_WEEK),
            "erlang_c_wall_s": wall_c,
            "erlang_c_us_per_interval": wall_c / (QUEUES * SLOTS_PER_WEEK) * 1e6,
            "erlang_c_peak_agents": float(req_c.sum(axis=0).max()),
            "erlang_a_wall_s": wall_a,
            "erlang_a_us_per_interval": wall_a / (QUEUES * SLOTS_PER_WEEK) * 1e6,
            "erlang_a_peak_agents": float(req_a.sum(axis=0).max()),
            "shift_peak_requirement": float(max(requirement)),
            "shift_columns": float(plan.stats["columns"]),
            "shift_variables": float(plan.stats["variables"]),
            "shift_wall_s": wall_s,
            "shift_cp_sat_s": plan.solve_time_s,
            "shift_glop_s": plan.lp_time_s,
            "shift_agent_shifts": float(plan.headcount),
            "shift_fte_40h": plan.fte(40.0),
            "shift_paid_hours": plan.paid_hours,
            "shift_lp_bound_hours": plan.lp_bound,
            "shift_cp_sat_bound_hours": plan.cp_sat_bound,
            "shift_gap_to_lp_pct": plan.gap * 100,
            "shift_over_agent_hours": sum(plan.over) * plan.slot_hours,
            "shift_2s_wall_s": wall_quick,
            "shift_2s_gap_to_lp_pct": quick.gap * 100,
        },
        # pyworkforce's time for the same Erlang C loop; the shift figures compare with the LP bound above
        {"erlang_c_wall_s": wall_pwf} if wall_pwf else None,
    )
    if wall_pwf:
        print(f"  baseline: pyworkforce ErlangC, same intervals and goals: {wall_pwf:.3f} s")
    print(f"  shift status: {plan.status}")


if __name__ == "__main__":
    main()
