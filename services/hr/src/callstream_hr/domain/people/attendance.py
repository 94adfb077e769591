"""KPI 15 attendance rate and lateness from scheduled shifts and badge punches.

A scheduled shift is *attended* when the employee has an IN punch between `early` before the
shift start and the shift end. It is *late* when the first such IN punch is after start + grace.
Attendance rate = attended shifts ÷ scheduled shifts × 100, per team and shift start (e.g. "08:00"): the formula
of `callstream_core.kpi_definitions`, the KPI's one definition, over these counts.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from callstream_core.kpi_definitions import FORMULAS


@dataclass(frozen=True)
class ScheduledShift:
    shift_id: str
    employee_id: str
    team_id: str
    start: datetime
    end: datetime


@dataclass(frozen=True)
class Punch:
    employee_id: str
    kind: str  # "in" | "out"
    at: datetime


@dataclass(frozen=True)
class ShiftOutcome:
    shift: ScheduledShift
    present: bool
    first_in: datetime | None
    late_minutes: float  # 0 when on time or absent

    @property
    def late(self) -> bool:
        return self.late_minutes > 0


@dataclass(frozen=True)
class AttendanceRate:
    team_id: str
    shift_label: str
    scheduled: int
    present: int
    late: int
    rate: float | None


def evaluate(shifts: Iterable[ScheduledShift], punches: Iterable[Punch], *, grace: timedelta = timedelta(minutes=5),
             early: timedelta = timedelta(hours=1)) -> list[ShiftOutcome]:
    ins: dict[str, list[datetime]] = defaultdict(list)
    for p in punches:
        if p.kind == "in":
            ins[p.employee_id].append(p.at)
    for times in ins.values():
        times.sort()
    outcomes = []
    for s in shifts:
        first = next((t for t in ins.get(s.employee_id, []) if s.start - early <= t < s.end), None)
        late = 0.0
        if first is not None and first > s.start + grace:
            late = (first - s.start).total_seconds() / 60.0
        outcomes.append(ShiftOutcome(s, first is not None, first, late))
    return outcomes


def shift_label(start: datetime) -> str:
    return start.strftime("%H:%M")


def attendance_rates(outcomes: Iterable[ShiftOutcome]) -> list[AttendanceRate]:
    groups: dict[tuple[str, str], list[ShiftOutcome]] = defaultdict(list)
    for o in outcomes:
        groups[(o.shift.team_id, shift_label(o.shift.start))].append(o)
    rates = []
    for (team, label), items in sorted(groups.items()):
        present = sum(1 for o in items if o.present)
        rates.append(AttendanceRate(team, label, len(items), present, sum(1 for o in items if o.late),
                                    FORMULAS["attendance_rate"].of_counts(present=present, scheduled=len(items))))
    return rates
