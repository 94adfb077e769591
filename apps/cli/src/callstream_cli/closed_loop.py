"""The closed loop: a week's plan replayed in the simulator and judged interval by interval.

The simulated week (ingest's virtual PBX with the routing core in process) has the plan's forecast as its
Poisson arrivals per queue and 30 minutes, handle times exponential with each interval's forecast AHT (one
call type per queue and AHT rounded to 5 s), callers with an exponential patience of the queue's mean (none
without one), and the roster's agents: one agent per rostered shift, logged in from its start to its end,
on the queue the roster gave the shift (the plan staffs queues as if their agents were dedicated), with the
employee's skills, away for each break at the slot the roster placed it. A shift that runs past the end of
the week also opens the week (the roster repeats). The simulator's call events become call records, and
HR's service report says per queue and interval whether the targets were met.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from callstream_hr.adapters.call_events import records_from_events
from callstream_hr.domain.roster import RosteredShift
from callstream_hr.domain.service_report import ServiceTarget, WeekService, service_by_interval
from callstream_hr.service_layer.planning import RosterPlan
from callstream_simulator.engine import Engine
from callstream_simulator.router import InProcessRouter
from callstream_simulator.scenario import Scenario, parse_scenario
from callstream_simulator.sinks import ListSink

SLOTS = 336
_AHT_STEP_S = 5.0


def _call_types(plan: RosterPlan) -> list[dict[str, Any]]:
    out = []
    for q, t in zip(plan.forecast.queues, plan.targets, strict=True):
        by_aht: dict[float, list[float]] = {}
        for i, (calls, aht) in enumerate(zip(q.calls, q.aht_s, strict=True)):
            if calls > 0 and aht > 0:
                by_aht.setdefault(max(_AHT_STEP_S, round(aht / _AHT_STEP_S) * _AHT_STEP_S), [0.0] * SLOTS)[i] = calls
        for aht, per_interval in sorted(by_aht.items()):
            out.append({"call_type": f"{q.queue_id}@{aht:g}s", "queue_id": q.queue_id,
                        "arrivals": {"interval_minutes": 30, "per_interval": per_interval},
                        "talk": {"dist": "exponential", "mean": aht},
                        "patience": {"dist": "exponential", "mean": t.patience_s} if t.patience_s else None})
    return out


def _agent_groups(plan: RosterPlan, shifts: Sequence[RosteredShift]) -> list[dict[str, Any]]:
    skills = {e.employee_id: sorted(e.skills) for e in plan.employees}
    groups = []
    for sh in shifts:
        end = sh.start_slot + sh.length_slots
        # break starts as slots from the week start, not before the shift's start (a break may wrap)
        breaks = [(sh.start_slot + (b - sh.start_slot) % SLOTS, n) for b, n in sh.breaks]
        parts = [(sh.start_slot, min(end, SLOTS), 0)] + ([(0, end - SLOTS, SLOTS)] if end > SLOTS else [])
        for n, (start, stop, shift_back) in enumerate(parts):
            # A part that opens with a break starts after it (the simulator starts breaks after the login).
            for b, length in breaks:
                if b - shift_back == start:
                    start += length
            groups.append({
                "id_prefix": f"{sh.employee_id}@{sh.start_slot}" + ("w" if n else ""), "count": 1,
                "queues": [{"queue_id": sh.queue_id}],
                "skills": [{"skill_id": s} for s in skills[sh.employee_id]],
                "shift_start_h": start / 2, "shift_end_h": stop / 2,
                "breaks": [{"at_h": (b - shift_back) / 2, "minutes": 30 * length, "reason": "break"}
                           for b, length in breaks if start <= b - shift_back < stop],
            })
    return groups


def replay_scenario(plan: RosterPlan, shifts: Sequence[RosteredShift] | None = None, *, seed: int = 1) -> Scenario:
    """The simulator's scenario of the plan (``shifts``: the roster's, or another set such as a cut one)."""
    return parse_scenario({
        "name": "plan-replay", "seed": seed, "start": plan.forecast.week_start,
        # The Erlang model has no ringing and no cool-down: the agent talks as soon as the router assigns.
        "ring": {"dist": "constant", "value": 0},
        "queues": [{"queue_id": t.queue_id} for t in plan.targets],
        "call_types": _call_types(plan),
        "agents": _agent_groups(plan, plan.roster.shifts if shifts is None else shifts),
    }, "plan replay")


def replay(plan: RosterPlan, shifts: Sequence[RosteredShift] | None = None, *, seed: int = 1) -> WeekService:
    """Simulate the planned week and judge each queue's intervals against its targets."""
    scenario = replay_scenario(plan, shifts, seed=seed)
    sink = ListSink()
    Engine(scenario, InProcessRouter(scenario), sink).run()
    targets = {t.queue_id: ServiceTarget(t.sl_target, t.t_s) for t in plan.targets}
    return service_by_interval(records_from_events(sink.call_events), targets, plan.forecast.week_start, SLOTS)
