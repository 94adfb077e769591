"""KPI 23: agent attrition = leavers in period ÷ average full-time-equivalent headcount × 100.

The formula (and its annualised variant) is the KPI's one definition, `callstream_core.kpi_definitions`; HR
supplies its counters: leavers, and the FTE employed over the days of the period (an employee counts from the
hire date inclusive to the leave date exclusive), so mid-period hires and leavers are weighted by the days they
were employed and the average headcount is that FTE-time ÷ the period.

With an employment history, a person is a series of stints (:func:`stints`): one per role and team
between changes. A stint that ends by a change is not a leaver; so agent attrition does not count a
promotion, and each team lead's denominator holds the agents while they were in the lead's team.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date

from callstream_core.kpi_definitions import FORMULAS, VARIANT_FORMULAS

SECONDS_PER_DAY = 86400.0


@dataclass(frozen=True)
class Tenure:
    employee_id: str
    hired_on: date
    left_on: date | None = None  # first day no longer employed
    fte: float = 1.0
    exit_reason: str | None = None
    team_lead_id: str | None = None
    # first day in another role or team: the stint ended without leaving (not a leaver)
    moved_on: date | None = None


@dataclass(frozen=True)
class Placement:
    """One record of an employment history: from `effective_on`, `role` in the team led by `team_lead_id`;
    `change` is hired, role, team, role+team or left."""

    employee_id: str
    effective_on: date
    change: str
    role: str
    team_lead_id: str | None


def stints(history: Iterable[Placement], fte: Mapping[str, float], exit_reasons: Mapping[str, str | None],
           role: str | None = None) -> list[Tenure]:
    """Tenures per role-and-team stint from employment records (any order); only stints in `role` if given.

    A stint runs from its record to the next one; it is a leaving when the next record is `left`."""
    by_employee: dict[str, list[Placement]] = defaultdict(list)
    for p in history:
        by_employee[p.employee_id].append(p)
    out: list[Tenure] = []
    for emp, records in by_employee.items():
        records.sort(key=lambda p: (p.effective_on, p.change == "left"))
        for current, following in zip(records, [*records[1:], None], strict=True):
            if current.change == "left" or (role is not None and current.role != role):
                continue
            end = following.effective_on if following is not None else None
            if end is not None and end <= current.effective_on:
                continue  # replaced the same day
            left = following is not None and following.change == "left"
            out.append(Tenure(emp, current.effective_on, end if left else None, fte.get(emp, 1.0),
                              exit_reasons.get(emp) if left else None, current.team_lead_id,
                              None if left else end))
    return out


@dataclass(frozen=True)
class AttritionFigure:
    period_start: date
    period_end: date  # exclusive
    leavers: int
    average_fte: float
    rate: float | None  # percent; None when nobody was employed
    annualised: float | None


def fte_days(tenures: Iterable[Tenure], start: date, end: date) -> float:
    """FTE x days employed within [start, end)."""
    if end <= start:
        raise ValueError("period end must be after its start")
    total = 0.0
    for t in tenures:
        first = max(t.hired_on, start)
        last = min(t.left_on or t.moved_on or end, end)
        if last > first:
            total += t.fte * (last - first).days
    return total


def figure(leavers: int, employed_fte_days: float, start: date, end: date) -> AttritionFigure:
    """KPI 23 and its annualised variant by their formulas in `callstream_core.kpi_definitions`."""
    counters = {"leavers": leavers, "headcount_fte_s": employed_fte_days * SECONDS_PER_DAY,
                "period_s": (end - start).days * SECONDS_PER_DAY}
    return AttritionFigure(start, end, leavers, employed_fte_days / (end - start).days,
                           FORMULAS["agent_attrition"].of_counts(**counters),
                           VARIANT_FORMULAS["agent_attrition_annualised"].of_counts(**counters))


def attrition(tenures: Iterable[Tenure], start: date, end: date) -> AttritionFigure:
    items = list(tenures)
    leavers = sum(1 for t in items if t.left_on is not None and start <= t.left_on < end)
    return figure(leavers, fte_days(items, start, end), start, end)


def attrition_by(tenures: Iterable[Tenure], start: date, end: date, dimension: str) -> dict[str, AttritionFigure]:
    """Split leavers by `exit_reason` or `team_lead_id`. The denominator is the whole population for
    exit reasons (the reasons add up to the total rate) and each lead's own team for team leads."""
    items = list(tenures)
    if dimension == "exit_reason":
        employed = fte_days(items, start, end)
        counts: dict[str, int] = defaultdict(int)
        for t in items:
            if t.left_on is not None and start <= t.left_on < end:
                counts[t.exit_reason or "unspecified"] += 1
        return {reason: figure(n, employed, start, end) for reason, n in sorted(counts.items())}
    if dimension == "team_lead_id":
        groups: dict[str, list[Tenure]] = defaultdict(list)
        for t in items:
            groups[t.team_lead_id or "none"].append(t)
        figures = {lead: attrition(group, start, end) for lead, group in sorted(groups.items())}
        # leads whose team had nobody in the period (stints before or after it) are left out
        return {lead: f for lead, f in figures.items() if f.average_fte > 0 or f.leavers}
    raise ValueError(f"unknown dimension {dimension!r}; use exit_reason or team_lead_id")


def period_bounds(kind: str, year: int, index: int = 1) -> tuple[date, date]:
    """month (index 1–12), quarter (1–4) or year → [start, end)."""
    if kind == "month":
        if not 1 <= index <= 12:
            raise ValueError("month must be 1..12")
        start = date(year, index, 1)
        end = date(year + 1, 1, 1) if index == 12 else date(year, index + 1, 1)
    elif kind == "quarter":
        if not 1 <= index <= 4:
            raise ValueError("quarter must be 1..4")
        start = date(year, 3 * index - 2, 1)
        end = date(year + 1, 1, 1) if index == 4 else date(year, 3 * index + 1, 1)
    elif kind == "year":
        start, end = date(year, 1, 1), date(year + 1, 1, 1)
    else:
        raise ValueError(f"unknown period {kind!r}; use month, quarter or year")
    return start, end
