"""Shift planning: how many agents start each shift so that staffing covers the requirement.

Integer program (solved with OR-Tools CP-SAT)::

    min   Σ_{shift i, start s} paid_slots(i) · x[i,s]  (+ penalty · Σ_t under[t] if soft)
    s.t.  Σ_{(i,s) ∋ t} x[i,s] − Σ_{(i,s,r,o): break r at offset o covers t} y[i,s,r,o] ≥ req[t] (− under[t])
          Σ_o y[i,s,r,o] = x[i,s]              for every break rule r of template i
          x, y ∈ ℤ≥0

``x[i,s]`` agents start template ``i`` at slot ``s``; ``y[i,s,r,o]`` of them take break ``r`` at
offset ``o`` inside its window. Because the windows of a template's breaks may not overlap,
counts per rule can always be paired into individual agents' break schedules, so this "implicit
break" formulation is exact while staying linear in the number of break positions (no product
over combinations). With ``cyclic=True`` the horizon wraps (a 24/7 week: a Sunday-night shift
ends on Monday morning); otherwise shifts must end inside the horizon.

The same model with continuous variables is solved with GLOP; its optimum is a lower bound on
the integer optimum, and ``gap = (objective − lp_bound) / objective`` is reported together with
CP-SAT's own proven bound.

All costs are counted in slots; hours are ``slots · slot_hours``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from ortools.linear_solver import pywraplp
from ortools.sat.python import cp_model

__all__ = [
    "BreakRule",
    "ShiftAssignment",
    "ShiftPlan",
    "ShiftTemplate",
    "plan_shifts",
]


@dataclass(frozen=True, slots=True)
class BreakRule:
    """A break of ``duration_slots`` that starts between offsets ``earliest_offset`` and
    ``latest_offset`` (inclusive) from the shift start. A fixed break has ``earliest == latest``."""

    duration_slots: int
    earliest_offset: int
    latest_offset: int
    paid: bool = False

    @classmethod
    def fixed(cls, offset: int, duration_slots: int = 1, *, paid: bool = False) -> BreakRule:
        return cls(duration_slots, offset, offset, paid)


@dataclass(frozen=True, slots=True)
class ShiftTemplate:
    """A shift of ``length_slots`` slots that may start at ``start_slots`` (``None`` = any slot)."""

    name: str
    length_slots: int
    start_slots: tuple[int, ...] | None = None
    breaks: tuple[BreakRule, ...] = ()

    def __post_init__(self) -> None:
        if self.length_slots < 1:
            raise ValueError(f"{self.name}: length_slots must be >= 1")
        prev_end = 0
        for br in self.breaks:
            if br.duration_slots < 1 or br.earliest_offset < 0 or br.latest_offset < br.earliest_offset:
                raise ValueError(f"{self.name}: invalid break {br}")
            if br.earliest_offset < prev_end:
                raise ValueError(f"{self.name}: break windows must be ordered and must not overlap")
            prev_end = br.latest_offset + br.duration_slots
        if prev_end > self.length_slots:
            raise ValueError(f"{self.name}: a break window extends past the end of the shift")
        if sum(b.duration_slots for b in self.breaks) >= self.length_slots:
            raise ValueError(f"{self.name}: breaks leave no working time")

    @property
    def paid_slots(self) -> int:
        return self.length_slots - sum(b.duration_slots for b in self.breaks if not b.paid)


@dataclass(frozen=True, slots=True)
class ShiftAssignment:
    """``count`` agents start ``template`` at ``start_slot``; ``break_starts[r]`` maps the offset at
    which rule ``r``'s break starts to the number of those agents taking it there."""

    template: str
    start_slot: int
    count: int
    break_starts: tuple[dict[int, int], ...] = ()


@dataclass(frozen=True)
class ShiftPlan:
    status: str  # "OPTIMAL", "FEASIBLE" (time limit hit), "INFEASIBLE" or "UNKNOWN"
    assignments: tuple[ShiftAssignment, ...]
    requirement: tuple[int, ...]
    coverage: tuple[int, ...]
    over: tuple[int, ...]
    under: tuple[int, ...]
    headcount: int  # agent-shifts over the horizon (Σ count)
    paid_hours: float
    objective: float  # paid hours + understaffing penalty (hours-equivalent)
    lp_bound: float  # GLOP optimum of the relaxation, same units as objective
    cp_sat_bound: float  # CP-SAT's proven lower bound, same units
    gap: float  # (objective − lp_bound) / objective
    solve_time_s: float
    lp_time_s: float
    slot_hours: float = 0.5
    stats: dict[str, int] = field(default_factory=dict)

    @property
    def covered(self) -> bool:
        return all(c >= r for c, r in zip(self.coverage, self.requirement, strict=True))

    def fte(self, hours_per_fte: float = 40.0) -> float:
        return self.paid_hours / hours_per_fte


@dataclass(slots=True)
class _Column:
    template: int
    start: int
    cost: int  # paid slots
    work: list[int]  # slots covered (before breaks)
    breaks: list[list[tuple[int, list[int]]]]  # per rule: (offset, slots the break covers)


def _columns(n: int, templates: Sequence[ShiftTemplate], cyclic: bool) -> list[_Column]:
    cols: list[_Column] = []
    for ti, tpl in enumerate(templates):
        starts = range(n) if tpl.start_slots is None else sorted(set(tpl.start_slots))
        for s in starts:
            if not 0 <= s < n:
                raise ValueError(f"{tpl.name}: start slot {s} outside the horizon of {n} slots")
            if not cyclic and s + tpl.length_slots > n:
                continue
            if cyclic and tpl.length_slots > n:
                raise ValueError(f"{tpl.name}: shift longer than the horizon")
            work = [(s + k) % n for k in range(tpl.length_slots)]
            brs = [
                [
                    (o, [(s + o + d) % n for d in range(br.duration_slots)])
                    for o in range(br.earliest_offset, br.latest_offset + 1)
                ]
                for br in tpl.breaks
            ]
            cols.append(_Column(ti, s, tpl.paid_slots, work, brs))
    return cols


@dataclass(frozen=True, slots=True)
class _Relaxation:
    objective: float  # slots; nan when GLOP found no optimum
    seconds: float
    x: list[float]  # per column
    y: list[list[list[float]]]  # per column, break rule, option


def _solve_lp(req: Sequence[int], cols: list[_Column], penalty: int | None) -> _Relaxation:
    """Optimum of the LP relaxation (in slots), its solution and its wall time."""
    t0 = time.perf_counter()
    solver = pywraplp.Solver.CreateSolver("GLOP")
    if solver is None:  # pragma: no cover - GLOP ships with ortools
        raise RuntimeError("GLOP is not available")
    inf = solver.infinity()
    n = len(req)
    rows: list[list[tuple[pywraplp.Variable, float]]] = [[] for _ in range(n)]
    obj = solver.Objective()
    xs: list[pywraplp.Variable] = []
    ys: list[list[list[pywraplp.Variable]]] = []
    for ci, col in enumerate(cols):
        x = solver.NumVar(0.0, inf, f"x{ci}")
        xs.append(x)
        ys.append([])
        obj.SetCoefficient(x, float(col.cost))
        for t in col.work:
            rows[t].append((x, 1.0))
        for ri, options in enumerate(col.breaks):
            link = solver.Constraint(0.0, 0.0)
            link.SetCoefficient(x, -1.0)
            ys[-1].append([])
            for o, slots in options:
                y = solver.NumVar(0.0, inf, f"y{ci}_{ri}_{o}")
                ys[-1][-1].append(y)
                link.SetCoefficient(y, 1.0)
                for t in slots:
                    rows[t].append((y, -1.0))
    for t in range(n):
        ct = solver.Constraint(float(req[t]), inf)
        for v, a in rows[t]:
            ct.SetCoefficient(v, ct.GetCoefficient(v) + a)
        if penalty is not None:
            u = solver.NumVar(0.0, float(req[t]), f"u{t}")
            ct.SetCoefficient(u, 1.0)
            obj.SetCoefficient(u, float(penalty))
    obj.SetMinimization()
    status = solver.Solve()
    elapsed = time.perf_counter() - t0
    if status != pywraplp.Solver.OPTIMAL:
        return _Relaxation(math.nan, elapsed, [], [])
    return _Relaxation(float(obj.Value()), elapsed, [x.solution_value() for x in xs],
                       [[[y.solution_value() for y in rule] for rule in col] for col in ys])


def _hint(lp: _Relaxation, cols: list[_Column], req: Sequence[int]) -> tuple[list[int], list[list[list[int]]]]:
    """A covering integer plan near the LP optimum, for CP-SAT's hint.

    Each start count is rounded up, its break counts floored and the rest given to the largest
    fractions (so they add up to the count); then agent-shifts that rounding made redundant are
    dropped, dearest first, while every slot stays covered."""
    xs = [math.ceil(v - 1e-9) for v in lp.x]
    ys = []
    for x, lp_col in zip(xs, lp.y, strict=True):
        col_ys = []
        for rule in lp_col:
            counts = [math.floor(v + 1e-9) for v in rule]
            order = sorted(range(len(rule)), key=lambda i: rule[i] - counts[i], reverse=True)
            for i in order[: max(0, x - sum(counts))]:
                counts[i] += 1
            col_ys.append(counts)
        ys.append(col_ys)
    coverage = [0] * len(req)
    for col, x, col_ys in zip(cols, xs, ys, strict=True):
        for t in col.work:
            coverage[t] += x
        for options, counts in zip(col.breaks, col_ys, strict=True):
            for (_, slots), c in zip(options, counts, strict=True):
                for t in slots:
                    coverage[t] -= c
    for ci in sorted(range(len(cols)), key=lambda i: cols[i].cost, reverse=True):
        col = cols[ci]
        while xs[ci] > 0:
            # one agent of this column, with the first break position in use for each rule
            chosen = [next(i for i, c in enumerate(counts) if c > 0) for counts in ys[ci]]
            off = {t for options, i in zip(col.breaks, chosen, strict=True) for t in options[i][1]}
            if any(coverage[t] - 1 < req[t] for t in col.work if t not in off):
                break
            for t in col.work:
                if t not in off:
                    coverage[t] -= 1
            xs[ci] -= 1
            for counts, i in zip(ys[ci], chosen, strict=True):
                counts[i] -= 1
    return xs, ys


def plan_shifts(  # noqa: C901 (one CP-SAT model: columns, coverage and hints)
    requirement: Sequence[int],
    templates: Sequence[ShiftTemplate],
    *,
    cyclic: bool = True,
    slot_hours: float = 0.5,
    time_limit_s: float = 10.0,
    num_search_workers: int = 2,
    understaffing_penalty_slots: int | None = None,
    relative_gap_limit: float = 0.0,
) -> ShiftPlan:
    """Choose shift starts (and break positions) covering ``requirement`` at the least paid time.

    ``requirement[t]`` is the number of agents needed on the phones in slot ``t``.
    Coverage is a hard constraint unless ``understaffing_penalty_slots`` is given: then each
    agent-slot short costs that many paid slots (choose it above the longest shift's paid slots
    to only understaff where a requirement cannot be covered at all).
    """
    req = [int(r) for r in requirement]
    if not req:
        raise ValueError("requirement is empty")
    if any(r < 0 for r in req):
        raise ValueError("requirement must be >= 0")
    if not templates:
        raise ValueError("at least one shift template is needed")
    if len({t.name for t in templates}) != len(templates):
        raise ValueError("template names must be unique")
    if understaffing_penalty_slots is not None and understaffing_penalty_slots < 1:
        raise ValueError("understaffing_penalty_slots must be >= 1")
    n = len(req)
    cols = _columns(n, templates, cyclic)
    penalty = understaffing_penalty_slots
    total_req = sum(req)
    # Every agent-shift of an optimal plan works a slot whose coverage is tight, so no more than
    # Σ req agent-shifts are ever needed; this is a valid upper bound for all variables.
    ub = max(1, total_req)

    model = cp_model.CpModel()
    rows: list[dict[int, int]] = [{} for _ in range(n)]
    var_list: list[cp_model.IntVar] = []

    def new_var(name: str) -> int:
        var_list.append(model.new_int_var(0, ub, name))
        return len(var_list) - 1

    xs: list[int] = []
    ys: list[list[list[tuple[int, int]]]] = []
    for ci, col in enumerate(cols):
        xi = new_var(f"x{ci}")
        xs.append(xi)
        for t in col.work:
            rows[t][xi] = rows[t].get(xi, 0) + 1
        col_ys: list[list[tuple[int, int]]] = []
        for ri, options in enumerate(col.breaks):
            rule_ys: list[tuple[int, int]] = []
            for o, slots in options:
                yi = new_var(f"y{ci}_{ri}_{o}")
                rule_ys.append((o, yi))
                for t in slots:
                    rows[t][yi] = rows[t].get(yi, 0) - 1
            model.add(cp_model.LinearExpr.sum([var_list[yi] for _, yi in rule_ys]) == var_list[xi])
            col_ys.append(rule_ys)
        ys.append(col_ys)

    unders: list[cp_model.IntVar] = []
    for t in range(n):
        expr = cp_model.LinearExpr.weighted_sum(
            [var_list[v] for v, a in rows[t].items() if a != 0], [a for a in rows[t].values() if a != 0]
        )
        if penalty is not None:
            u = model.new_int_var(0, req[t], f"u{t}")
            unders.append(u)
            model.add(expr + u >= req[t])
        else:
            model.add(expr >= req[t])
    terms: list[cp_model.LinearExprT] = [col.cost * var_list[xi] for col, xi in zip(cols, xs, strict=True)]
    if penalty is not None:
        terms.extend(penalty * u for u in unders)
    model.minimize(cp_model.LinearExpr.sum(terms))

    # The LP relaxation first: its bound is reported, and its rounded solution is CP-SAT's starting hint
    # (CP-SAT repairs it when rounding broke coverage): a near-optimal plan early, even on a busy machine.
    lp = _solve_lp(req, cols, penalty)
    if lp.x:
        hint_x, hint_y = _hint(lp, cols, req)
        for xi, count, col_ys, counts in zip(xs, hint_x, ys, hint_y, strict=True):
            model.add_hint(var_list[xi], count)
            for rule_ys, rule_counts in zip(col_ys, counts, strict=True):
                for (_, yi), c in zip(rule_ys, rule_counts, strict=True):
                    model.add_hint(var_list[yi], c)

    solver = cp_model.CpSolver()
    solver.parameters.num_search_workers = num_search_workers
    solver.parameters.max_time_in_seconds = time_limit_s
    solver.parameters.relative_gap_limit = relative_gap_limit
    t0 = time.perf_counter()
    status = solver.solve(model)
    solve_time = time.perf_counter() - t0
    status_name = solver.status_name(status)

    lp_bound, lp_time = lp.objective * slot_hours, lp.seconds
    stats = {"columns": len(cols), "variables": len(var_list), "constraints": len(model.Proto().constraints)}

    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        empty = tuple(0 for _ in req)
        return ShiftPlan(
            status=status_name,
            assignments=(),
            requirement=tuple(req),
            coverage=empty,
            over=empty,
            under=tuple(req),
            headcount=0,
            paid_hours=0.0,
            objective=math.nan,
            lp_bound=lp_bound,
            cp_sat_bound=math.nan,
            gap=math.nan,
            solve_time_s=solve_time,
            lp_time_s=lp_time,
            slot_hours=slot_hours,
            stats=stats,
        )

    values = [solver.value(v) for v in var_list]
    coverage = [0] * n
    for t in range(n):
        coverage[t] = sum(a * values[v] for v, a in rows[t].items())
    assignments: list[ShiftAssignment] = []
    paid_slots = 0
    for col, xi, col_ys in zip(cols, xs, ys, strict=True):
        count = values[xi]
        if count == 0:
            continue
        paid_slots += col.cost * count
        brk = tuple({o: values[yi] for o, yi in rule_ys if values[yi] > 0} for rule_ys in col_ys)
        assignments.append(ShiftAssignment(templates[col.template].name, col.start, count, brk))
    objective_value = solver.objective_value * slot_hours
    return ShiftPlan(
        status=status_name,
        assignments=tuple(assignments),
        requirement=tuple(req),
        coverage=tuple(coverage),
        over=tuple(max(0, c - r) for c, r in zip(coverage, req, strict=True)),
        under=tuple(max(0, r - c) for c, r in zip(coverage, req, strict=True)),
        headcount=sum(a.count for a in assignments),
        paid_hours=paid_slots * slot_hours,
        objective=objective_value,
        lp_bound=lp_bound,
        cp_sat_bound=solver.best_objective_bound * slot_hours,
        gap=(objective_value - lp_bound) / objective_value if objective_value > 0 else 0.0,
        solve_time_s=solve_time,
        lp_time_s=lp_time,
        slot_hours=slot_hours,
        stats=stats,
    )
