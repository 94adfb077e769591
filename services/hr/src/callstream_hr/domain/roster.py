"""Rostering: the shifts of the week's shift plans given to named employees under their contracts.

Input: per queue the shift plan of the week (how many agents start each template at each slot, and where
their breaks are: :func:`~callstream_hr.domain.shifts.plan_shifts`), and the employees with their skills
and contracts. Output: one :class:`RosteredShift` per employee and working day, with the employee's own
break slots taken from the plan (so breaks are placed once, by the shift model) and the shifts the
employees could not fill.

Model (CP-SAT). A *kind* is (queue, template, start slot) with the plan's count ``c_k``. ``w[e,k] ∈ {0,1}``
exists only where the contract allows it (the employee has the queue's skill, the day is not one of their
days off, the shift is not a night shift for someone who may not work nights)::

    min   BIG · Σ_k paid_k · short_k + Σ_{e,k} cost_e · paid_k · w[e,k] + F · (spread_weekend + spread_night)
    s.t.  Σ_e w[e,k] + short_k ≥ c_k                          every kind (more is allowed: see min hours)
          Σ_{k on day d} w[e,k] ≤ 1                           one shift a day (the day its start falls on)
          w[e,k] + Σ_{k' on day d', clashing with k} w[e,k'] ≤ 1   for every other day d': min rest, no overlap
          min_hours_e ≤ Σ_k paid_k · w[e,k] ≤ max_hours_e
          Σ_d works[e,d] ≤ 7 − min_days_off_e
          spread = max_e − min_e of weekend (night) shifts over the employees who may take them

Shifts beyond the plan's count are allowed so that a contract's minimum hours can be met (they are paid,
and counted in ``extra``). The week is cyclic like the shift plan (a Sunday-night shift ends on Monday
morning, and the rest rule reaches across the end of the week: the roster repeats).
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from ortools.sat.python import cp_model

from callstream_hr.domain.shifts import ShiftPlan, ShiftTemplate

__all__ = [
    "DAYS",
    "Contract",
    "Employee",
    "QueueShifts",
    "Roster",
    "RosterRules",
    "RosteredShift",
    "UnfilledShift",
    "build_roster",
]

DAYS = 7
_SHORT_PENALTY = 1_000_000  # per paid slot left unfilled: above any employee's cost, so filling always wins


@dataclass(frozen=True, slots=True)
class Contract:
    min_weekly_hours: float = 0.0
    max_weekly_hours: float = 40.0
    min_days_off: int = 2
    unavailable_days: frozenset[int] = frozenset()  # 0 = Monday (of the planned week) ... 6 = Sunday
    nights_allowed: bool = True
    hourly_cost: float = 1.0

    def __post_init__(self) -> None:
        if not 0 <= self.min_weekly_hours <= self.max_weekly_hours:
            raise ValueError("min_weekly_hours must be >= 0 and <= max_weekly_hours")
        if not 0 <= self.min_days_off <= DAYS:
            raise ValueError("min_days_off must be in 0..7")
        if any(not 0 <= d < DAYS for d in self.unavailable_days):
            raise ValueError("unavailable_days must be in 0..6 (0 = Monday)")
        if not self.hourly_cost >= 0:
            raise ValueError("hourly_cost must be >= 0")


@dataclass(frozen=True, slots=True)
class Employee:
    employee_id: str
    name: str
    skills: frozenset[str]
    contract: Contract = Contract()
    team_id: str = ""


@dataclass(frozen=True, slots=True)
class RosterRules:
    slots_per_day: int = 48
    min_rest_hours: float = 11.0  # between the end of one shift and the start of the next (EU directive)
    night_start_slot: int = 44  # a shift working any slot from 22:00 ...
    night_end_slot: int = 12  # ... to 06:00 is a night shift
    weekend_days: frozenset[int] = frozenset({5, 6})  # a shift starting on these days is a weekend shift
    fairness_weight: int = 100  # objective units per unit of weekend or night spread (cost units: cents)
    time_limit_s: float = 20.0
    num_search_workers: int = 2

    def __post_init__(self) -> None:
        if self.slots_per_day < 1 or self.min_rest_hours < 0:
            raise ValueError("slots_per_day must be >= 1 and min_rest_hours >= 0")
        if not (0 <= self.night_start_slot < self.slots_per_day and 0 <= self.night_end_slot < self.slots_per_day):
            raise ValueError("night_start_slot and night_end_slot must be slots of a day")

    @property
    def slot_hours(self) -> float:
        return 24.0 / self.slots_per_day

    def is_night_slot(self, slot: int) -> bool:
        s = slot % self.slots_per_day
        if self.night_start_slot <= self.night_end_slot:
            return self.night_start_slot <= s < self.night_end_slot
        return s >= self.night_start_slot or s < self.night_end_slot


@dataclass(frozen=True, slots=True)
class QueueShifts:
    """The shift plan of one queue and the templates it was made with."""

    queue_id: str
    plan: ShiftPlan
    templates: tuple[ShiftTemplate, ...]


@dataclass(frozen=True, slots=True)
class RosteredShift:
    employee_id: str
    queue_id: str
    template: str
    start_slot: int  # slot of the week (0 = Monday 00:00)
    length_slots: int
    breaks: tuple[tuple[int, int], ...]  # (start slot of the week, duration in slots), one per break rule
    paid_slots: int
    extra: bool  # beyond the plan's count (to give the employee their contract's minimum hours)

    def day(self, slots_per_day: int = 48) -> int:
        return self.start_slot // slots_per_day

    def worked_slots(self, horizon: int) -> list[int]:
        """Slots of the week on the phones: the shift less its breaks (wrapping around the week)."""
        off = {(b + d) % horizon for b, length in self.breaks for d in range(length)}
        return [s for s in ((self.start_slot + k) % horizon for k in range(self.length_slots)) if s not in off]


@dataclass(frozen=True, slots=True)
class UnfilledShift:
    queue_id: str
    template: str
    start_slot: int
    count: int


@dataclass(frozen=True)
class Roster:
    status: str  # CP-SAT's: OPTIMAL, FEASIBLE (time limit), INFEASIBLE (contracts contradict), UNKNOWN
    shifts: tuple[RosteredShift, ...]
    unfilled: tuple[UnfilledShift, ...]
    paid_hours: float
    cost: float  # Σ paid hours × the employee's hourly cost
    weekend_spread: int  # max − min weekend shifts among employees who may work weekends
    night_spread: int
    solve_time_s: float
    slot_hours: float = 0.5
    stats: dict[str, int] = field(default_factory=dict)

    @property
    def employees(self) -> int:
        return len({s.employee_id for s in self.shifts})

    def coverage(self, queue_id: str, horizon: int) -> list[int]:
        cov = [0] * horizon
        for s in self.shifts:
            if s.queue_id == queue_id:
                for t in s.worked_slots(horizon):
                    cov[t] += 1
        return cov


@dataclass(frozen=True, slots=True)
class _Kind:
    queue_id: str
    template: ShiftTemplate
    start: int
    count: int
    break_starts: tuple[dict[int, int], ...]

    @property
    def paid(self) -> int:
        return self.template.paid_slots


def _kinds(demand: Sequence[QueueShifts]) -> list[_Kind]:
    kinds = []
    for q in demand:
        by_name = {t.name: t for t in q.templates}
        for a in q.plan.assignments:
            if a.template not in by_name:
                raise ValueError(f"queue {q.queue_id!r}: the plan uses template {a.template!r} not given")
            kinds.append(_Kind(q.queue_id, by_name[a.template], a.start_slot, a.count, a.break_starts))
    return kinds


def _clash(a: _Kind, b: _Kind, horizon: int, rest_slots: int) -> bool:
    """Whether one person cannot work both: b starts before a's end plus the rest, or the other way round."""
    ab = (b.start - a.start) % horizon
    ba = (a.start - b.start) % horizon
    return ab < a.template.length_slots + rest_slots or ba < b.template.length_slots + rest_slots


def _is_night(k: _Kind, rules: RosterRules) -> bool:
    return any(rules.is_night_slot(k.start + i) for i in range(k.template.length_slots))


def _break_offsets(k: _Kind, n: int) -> list[tuple[int, ...]]:
    """Break offsets for ``n`` agents of the kind: the plan's positions first (counts per rule, paired in
    order: the rules' windows do not overlap), then the earliest position for shifts beyond the plan."""
    per_rule = []
    for ri, rule in enumerate(k.template.breaks):
        starts = k.break_starts[ri] if ri < len(k.break_starts) else {}
        offsets = [o for o in sorted(starts) for _ in range(starts[o])]
        per_rule.append(offsets[:n] + [rule.earliest_offset] * max(0, n - len(offsets)))
    return [tuple(r[i] for r in per_rule) for i in range(n)]


def _greedy(kinds: list[_Kind], employees: Sequence[Employee], w: dict[tuple[int, int], cp_model.IntVar],
            day_of: list[int], clashes: dict[int, dict[int, list[int]]], rules: RosterRules) -> set[tuple[int, int]]:
    """Each kind's shifts, those fewest employees may work first (night shifts, rare skills), then earliest
    first, to the allowed employee with the fewest hours so far who is free that day, rested, and under their
    maximum hours and working days."""
    eligible: dict[int, list[int]] = defaultdict(list)
    for ei, ki in w:
        eligible[ki].append(ei)
    hours = [0] * len(employees)
    taken: list[dict[int, int]] = [{} for _ in employees]  # day -> kind
    chosen: set[tuple[int, int]] = set()
    for ki in sorted(range(len(kinds)), key=lambda i: (len(eligible[i]), kinds[i].start)):
        k = kinds[ki]
        for _ in range(k.count):
            best = None
            for ei in eligible[ki]:
                c = employees[ei].contract
                mine = taken[ei]
                if (day_of[ki] in mine or (hours[ei] + k.paid) * rules.slot_hours > c.max_weekly_hours + 1e-9
                        or len(mine) >= DAYS - c.min_days_off
                        or any(mine.get(d) in others for d, others in clashes[ki].items())):
                    continue
                if best is None or hours[ei] < hours[best]:
                    best = ei
            if best is None:
                break
            hours[best] += k.paid
            taken[best][day_of[ki]] = ki
            chosen.add((best, ki))
    return chosen


def build_roster(  # noqa: C901 (one CP-SAT model: each contract rule is a block of constraints)
    demand: Sequence[QueueShifts], employees: Sequence[Employee], rules: RosterRules | None = None
) -> Roster:
    """Give the plans' shifts to ``employees`` (see the module doc for the model)."""
    rules = rules or RosterRules()
    ids = [e.employee_id for e in employees]
    if len(set(ids)) != len(ids):
        raise ValueError("employee ids must be unique")
    horizons = {len(q.plan.requirement) for q in demand}
    horizon = horizons.pop() if len(horizons) == 1 else 0
    if horizon != DAYS * rules.slots_per_day:
        raise ValueError(f"every plan must cover one week of {DAYS * rules.slots_per_day} slots")
    kinds = _kinds(demand)
    rest_slots = math.ceil(rules.min_rest_hours / rules.slot_hours - 1e-9)
    day_of = [k.start // rules.slots_per_day for k in kinds]
    night = [_is_night(k, rules) for k in kinds]
    cost_per_slot = [round(e.contract.hourly_cost * rules.slot_hours * 100) for e in employees]

    model = cp_model.CpModel()
    w: dict[tuple[int, int], cp_model.IntVar] = {}
    for ei, e in enumerate(employees):
        for ki, k in enumerate(kinds):
            if (k.queue_id in e.skills and day_of[ki] not in e.contract.unavailable_days
                    and (e.contract.nights_allowed or not night[ki])):
                w[ei, ki] = model.new_bool_var(f"w{ei}_{ki}")
    by_employee: dict[int, list[int]] = defaultdict(list)
    by_kind: dict[int, list[int]] = defaultdict(list)
    for ei, ki in w:
        by_employee[ei].append(ki)
        by_kind[ki].append(ei)

    shorts = []
    for ki, k in enumerate(kinds):
        short = model.new_int_var(0, k.count, f"short{ki}")
        shorts.append(short)
        model.add(sum(w[ei, ki] for ei in by_kind[ki]) + short >= k.count)

    # Which kinds clash, per pair of start days (computed once for all employees).
    clashes: dict[int, dict[int, list[int]]] = defaultdict(lambda: defaultdict(list))
    for a in range(len(kinds)):
        for b in range(len(kinds)):
            if day_of[a] != day_of[b] and _clash(kinds[a], kinds[b], horizon, rest_slots):
                clashes[a][day_of[b]].append(b)

    # A greedy roster as CP-SAT's starting hint, complete down to the spreads so that CP-SAT takes it as its
    # first solution: a good roster early, even when the time limit cuts the search on a busy machine.
    hint = _greedy(kinds, employees, w, day_of, clashes, rules)
    weekend_counts: list[cp_model.LinearExprT] = []
    night_counts: list[cp_model.LinearExprT] = []
    weekend_hint: list[int] = []
    night_hint: list[int] = []
    for ei, e in enumerate(employees):
        mine = by_employee[ei]
        mine_set = set(mine)
        works = []
        for d in range(DAYS):
            todays = [w[ei, ki] for ki in mine if day_of[ki] == d]
            if todays:
                model.add(sum(todays) <= 1)
                works.append(sum(todays))
        for a in mine:
            for others in clashes[a].values():
                mine_others = [w[ei, b] for b in others if b in mine_set]
                if mine_others:
                    model.add(w[ei, a] + sum(mine_others) <= 1)
        hours = sum(w[ei, ki] * kinds[ki].paid for ki in mine)
        c = e.contract
        model.add(hours >= math.ceil(c.min_weekly_hours / rules.slot_hours - 1e-9))
        model.add(hours <= math.floor(c.max_weekly_hours / rules.slot_hours + 1e-9))
        if works:
            model.add(sum(works) <= DAYS - c.min_days_off)
        weekend = [ki for ki in mine if day_of[ki] in rules.weekend_days]
        if weekend:
            weekend_counts.append(cp_model.LinearExpr.sum([w[ei, ki] for ki in weekend]))
            weekend_hint.append(sum((ei, ki) in hint for ki in weekend))
        nights = [ki for ki in mine if night[ki]]
        if nights:
            night_counts.append(cp_model.LinearExpr.sum([w[ei, ki] for ki in nights]))
            night_hint.append(sum((ei, ki) in hint for ki in nights))

    def spread(counts: Sequence[cp_model.LinearExprT], hinted: list[int], name: str) -> cp_model.IntVar:
        hi, lo = model.new_int_var(0, DAYS, f"{name}_max"), model.new_int_var(0, DAYS, f"{name}_min")
        for cnt in counts:
            model.add(hi >= cnt)
            model.add(lo <= cnt)
        out = model.new_int_var(0, DAYS, f"{name}_spread")
        model.add(out == hi - lo)
        model.add_hint(hi, max(hinted))
        model.add_hint(lo, min(hinted))
        model.add_hint(out, max(hinted) - min(hinted))
        return out

    weekend_spread = spread(weekend_counts, weekend_hint, "weekend") if weekend_counts else None
    night_spread = spread(night_counts, night_hint, "night") if night_counts else None
    terms: list[cp_model.LinearExprT] = [_SHORT_PENALTY * k.paid * s for k, s in zip(kinds, shorts, strict=True)]
    terms += [cost_per_slot[ei] * kinds[ki].paid * v for (ei, ki), v in w.items()]
    terms += [rules.fairness_weight * s for s in (weekend_spread, night_spread) if s is not None]
    model.minimize(sum(terms))

    for (ei, ki), v in w.items():
        model.add_hint(v, (ei, ki) in hint)
    for ki, k in enumerate(kinds):
        model.add_hint(shorts[ki], k.count - sum((ei, ki) in hint for ei in by_kind[ki]))

    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = rules.time_limit_s
    solver.parameters.num_search_workers = rules.num_search_workers
    t0 = time.perf_counter()
    status = solver.solve(model)
    elapsed = time.perf_counter() - t0
    stats = {"kinds": len(kinds), "variables": len(model.Proto().variables),
             "constraints": len(model.Proto().constraints)}
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return Roster(solver.status_name(status), (), tuple(UnfilledShift(k.queue_id, k.template.name, k.start,
                                                                           k.count) for k in kinds),
                      0.0, 0.0, 0, 0, elapsed, rules.slot_hours, stats)

    shifts: list[RosteredShift] = []
    unfilled = []
    cost = 0.0
    for ki, k in enumerate(kinds):
        chosen = [ei for ei in sorted(by_kind[ki], key=lambda i: employees[i].employee_id) if solver.value(w[ei, ki])]
        for n, (ei, offsets) in enumerate(zip(chosen, _break_offsets(k, len(chosen)), strict=True)):
            breaks = tuple(((k.start + o) % horizon, rule.duration_slots)
                           for o, rule in zip(offsets, k.template.breaks, strict=True))
            shifts.append(RosteredShift(employees[ei].employee_id, k.queue_id, k.template.name, k.start,
                                        k.template.length_slots, breaks, k.paid, extra=n >= k.count))
            cost += k.paid * rules.slot_hours * employees[ei].contract.hourly_cost
        if len(chosen) < k.count:
            unfilled.append(UnfilledShift(k.queue_id, k.template.name, k.start, k.count - len(chosen)))
    shifts.sort(key=lambda s: (s.employee_id, s.start_slot))
    return Roster(
        status=solver.status_name(status),
        shifts=tuple(shifts),
        unfilled=tuple(unfilled),
        paid_hours=sum(s.paid_slots for s in shifts) * rules.slot_hours,
        cost=cost,
        weekend_spread=solver.value(weekend_spread) if weekend_spread is not None else 0,
        night_spread=solver.value(night_spread) if night_spread is not None else 0,
        solve_time_s=elapsed,
        slot_hours=rules.slot_hours,
        stats=stats,
    )
