"""The 23 KPIs of kpis.md over raw counters (one `Rollup` row); their formulas are `callstream_core.kpi_definitions`.

A `Rollup` holds only counts and sums, so rows add (`a + b`, a commutative monoid with `Rollup()` as
zero): 30-minute rows sum to hour/day/week/month, queue rows to the center, agent rows to the team.
Every KPI returns None when its denominator is 0 (never a fake 0, never a division error).

Counting rule (kpis.md): call-level figures (received, offered, blocked, queued, answered,
abandoned, service level, ASA, queue time, FCR) count each call once, from its segment 0; agent-level
figures (talk, hold, ACW, handle time, rings, transfers, calls per hour) count every answered leg.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any, TypeVar

from callstream_core.kpi_definitions import FORMULAS, NOT_OFFERED, SL_THRESHOLD_S, VARIANT_FORMULAS

from .contact import ContactRecord
from .targets import CENTER, QueueTargets, ScopeRef

DEFAULT_RING_CYCLE_S = 6.0


@dataclass(frozen=True)
class Rollup:
    """Raw counters of one scope x time bucket. All fields add, except `period_s` (see `merge_scopes`)."""

    # --- call level (segment 0 of each call) ---
    received: int = 0  # every call attempt: offered + blocked + ended in the IVR
    blocked: int = 0
    offered: int = 0  # reached the ACD
    ivr_handled: int = 0
    ivr_abandoned: int = 0
    queued: int = 0
    answered: int = 0  # calls answered by an agent (segment 0 answered)
    answered_within_t: int = 0
    abandoned: int = 0  # all abandons, short ones included
    abandoned_within_t: int = 0
    short_abandons: int = 0
    overflowed: int = 0
    callbacks: int = 0
    timed_out: int = 0
    sum_queue_s: float = 0.0  # queue time of queued calls (KPI 8)
    sum_queue_s_answered: float = 0.0  # queue time of answered calls (ASA, KPI 9)
    sum_wait_abandoned_s: float = 0.0  # wait of abandoned calls (KPI 3)
    resolved_no_repeat: int = 0  # answered calls resolved with no repeat within fcr_window (KPI 17)
    # --- agent level (every answered leg) ---
    answered_legs: int = 0
    sum_talk_s: float = 0.0
    sum_hold_s: float = 0.0
    sum_hold_count: int = 0
    calls_with_hold: int = 0  # answered legs with at least one hold
    sum_acw_s: float = 0.0
    sum_rings: int = 0  # sum of ceil(ring_s / ring_cycle_s) over answered legs
    transferred_blind: int = 0
    transferred_warm: int = 0
    hard_calls: int = 0
    ring_no_answers: int = 0  # an agent's phone rang and the agent did not answer (RONA), from the call events
    # --- agent states (seconds) ---
    logged_in_s: float = 0.0
    productive_s: float = 0.0  # ready + reserved + talking + hold + acw (adherence numerator)
    busy_s: float = 0.0  # talking + hold + acw per agent states (occupancy numerator)
    available_idle_s: float = 0.0  # ready + reserved (occupancy's idle)
    # --- HR / QA / finance ---
    scheduled_on_phone_s: float = 0.0
    qa_score_sum: float = 0.0
    qa_count: int = 0
    cost: float = 0.0
    cost_entries: int = 0  # finance entries behind `cost`: cost 0 with no entry = unknown (None), not 0
    leavers: int = 0
    headcount_fte_s: float = 0.0  # full-time equivalents x seconds: average headcount = this / period_s
    period_s: float = 0.0  # length of the time covered (adds over time; max over scopes)
    present: int = 0  # agent-shifts with the agent present
    scheduled: int = 0  # agent-shifts scheduled

    def __add__(self, other: Rollup) -> Rollup:
        """Concatenation in time (30 min -> hour -> day ...): every field adds, `period_s` too."""
        if not isinstance(other, Rollup):
            return NotImplemented
        return Rollup(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)})

    def merge_scopes(self, other: Rollup) -> Rollup:
        """Same period, different scopes (queue -> center, agent -> team): fields add, `period_s` is kept."""
        summed = self + other
        return _replace(summed, period_s=max(self.period_s, other.period_s))

    @classmethod
    def sum(cls, rows: Iterable[Rollup]) -> Rollup:
        total = cls()
        for row in rows:
            total = total + row
        return total

    @classmethod
    def sum_scopes(cls, rows: Iterable[Rollup]) -> Rollup:
        total = cls()
        for row in rows:
            total = total.merge_scopes(row)
        return total

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_mapping(cls, row: Mapping[str, Any]) -> Rollup:
        """Build from a query row (`adapters/kpi_queries` names its counters as the fields); unknown keys and
        NULLs are ignored."""
        names = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in row.items() if key in names and value is not None})



def _replace(r: Rollup, **changes: Any) -> Rollup:
    data = r.as_dict()
    data.update(changes)
    return Rollup(**data)


def rings(ring_s: float, ring_cycle_s: float = DEFAULT_RING_CYCLE_S) -> int:
    """Rings heard before the answer: ceil(ring time / ring cycle); an instant answer is 0 rings."""
    if ring_cycle_s <= 0:
        raise ValueError("ring_cycle_s must be > 0")
    return math.ceil(round(ring_s / ring_cycle_s, 9))


def rollup_contacts(  # noqa: C901 (one counter per contact field, in kpis.md's order)
    contacts: Iterable[ContactRecord],
    *,
    sl_threshold_s: float | Callable[[str], float] = SL_THRESHOLD_S,
    ring_cycle_s: float = DEFAULT_RING_CYCLE_S,
    first_call_resolved: Callable[[ContactRecord], bool] | None = None,
) -> Rollup:
    """Counters of a set of contacts (already filtered to one scope and bucket).

    `sl_threshold_s`: T of the service level, a number or a per-queue lookup. `first_call_resolved`: the
    verdict of `fcr.FcrTracker` for a segment-0 contact; without it, `resolved` counts (no repeat check).
    """
    threshold = sl_threshold_s if callable(sl_threshold_s) else (lambda _q, t=sl_threshold_s: t)
    acc: dict[str, float] = {f.name: 0 for f in fields(Rollup)}
    resolved_calls: dict[str, ContactRecord] = {}
    answered_calls: set[str] = set()
    for c in contacts:
        if c.segment == 0:
            acc["received"] += 1
            t = threshold(c.queue_id)
            if c.outcome == "blocked":
                acc["blocked"] += 1
            elif c.outcome == "ivr_handled":
                acc["ivr_handled"] += 1
            elif c.outcome == "ivr_abandoned":
                acc["ivr_abandoned"] += 1
            if c.outcome not in NOT_OFFERED:
                acc["offered"] += 1
                if c.queued:
                    acc["queued"] += 1
                    acc["sum_queue_s"] += c.queue_s
                if c.timed_out:
                    acc["timed_out"] += 1
                if c.outcome == "answered":
                    acc["answered"] += 1
                    answered_calls.add(c.call_id)
                    acc["sum_queue_s_answered"] += c.queue_s
                    if c.queue_s <= t:
                        acc["answered_within_t"] += 1
                elif c.outcome == "abandoned":
                    acc["abandoned"] += 1
                    acc["sum_wait_abandoned_s"] += c.queue_s
                    if c.queue_s <= t:
                        acc["abandoned_within_t"] += 1
                    if c.short_abandon:
                        acc["short_abandons"] += 1
                elif c.outcome == "overflowed":
                    acc["overflowed"] += 1
                elif c.outcome == "callback":
                    acc["callbacks"] += 1
        if c.answered:
            acc["answered_legs"] += 1
            acc["sum_talk_s"] += c.talk_s
            acc["sum_hold_s"] += c.hold_s
            acc["sum_hold_count"] += c.hold_count
            acc["calls_with_hold"] += 1 if c.hold_count > 0 else 0
            acc["sum_acw_s"] += c.acw_s
            acc["sum_rings"] += rings(c.ring_s, ring_cycle_s)
            acc["hard_calls"] += 1 if c.hard_call else 0
            if c.transfer_kind == "blind":
                acc["transferred_blind"] += 1
            elif c.transfer_kind == "warm":
                acc["transferred_warm"] += 1
            if c.resolved:
                resolved_calls[c.call_id] = c
    for call_id in answered_calls:
        rec = resolved_calls.get(call_id)
        if rec is not None and (first_call_resolved is None or first_call_resolved(rec)):
            acc["resolved_no_repeat"] += 1
    ints = {f.name for f in fields(Rollup) if f.type in ("int", int)}
    values: dict[str, Any] = {k: (int(v) if k in ints else float(v)) for k, v in acc.items()}
    return Rollup(**values)


K = TypeVar("K")


def group_rollups(contacts: Iterable[ContactRecord], key: Callable[[ContactRecord], K],
                  **options: Any) -> dict[K, Rollup]:
    """One Rollup per key, e.g. `key=lambda c: (interval_start(c.offered_at), c.queue_id)` for the 30-min rows
    (options as for `rollup_contacts`)."""
    groups: dict[K, list[ContactRecord]] = {}
    for c in contacts:
        groups.setdefault(key(c), []).append(c)
    return {k: rollup_contacts(v, **options) for k, v in groups.items()}


def alert_values(r: Rollup, *, forecast_offered: float | None = None) -> dict[str, float | int | None]:
    """The KPIs (variants included) plus the context the alert causes check (targets.CAUSES)."""
    values = compute_all(r, variants=True)
    values.update({
        "offered": r.offered,
        "forecast_offered": forecast_offered,
        "qa_count": r.qa_count,
        "hard_call_rate": _pct(r.hard_calls, r.answered_legs),
    })
    return values


@dataclass(frozen=True)
class AlertScope:
    """One scope's contacts of an interval, rolled up for its alerts; `only`: the KPIs judged (None: every KPI
    with a target)."""

    scope: ScopeRef
    rollup: Rollup
    only: frozenset[str] | None = None


def alert_scopes(contacts: Iterable[ContactRecord], targets: QueueTargets) -> list[AlertScope]:
    """The center, every queue, and every team with settings of its own, over one interval's contacts (those
    with traffic). Each call counts against its queue's T; a team's answered calls against the team's T when
    it sets one. A team is judged only on the KPIs its targets name, and a team without settings not at all:
    the handbook's defaults were never set for any team, and alerting every team on them would be noise."""
    contacts = list(contacts)
    by_queue: dict[str, list[ContactRecord]] = {}
    by_team: dict[str, list[ContactRecord]] = {}
    for c in contacts:
        by_queue.setdefault(c.queue_id, []).append(c)
        if c.team_id in targets.teams:
            by_team.setdefault(c.team_id, []).append(c)
    out = [AlertScope(CENTER, rollup_contacts(contacts, sl_threshold_s=targets.sl_threshold_s))]
    out += [AlertScope(ScopeRef("queue", q), rollup_contacts(cs, sl_threshold_s=targets.sl_threshold_s))
            for q, cs in sorted(by_queue.items())]
    for team_id, cs in sorted(by_team.items()):
        team = targets.teams[team_id]
        out.append(AlertScope(team.scope, rollup_contacts(cs, sl_threshold_s=targets.team_sl_threshold(team)),
                              team.named_kpis))
    return [a for a in out if a.rollup.offered > 0]


def _pct(num: float, den: float) -> float | None:
    return None if den == 0 else 100.0 * num / den


# ---------------------------------------------------------------------------------------------
# The 23 indicators by the names alerts and the API use, then the variants: each is its formula of
# `callstream_core.kpi_definitions` (the one place a KPI is defined), compiled to read a Rollup's counters.

KpiFn = Callable[[Rollup], float | int | None]

KPIS: dict[str, KpiFn] = {name: definition.of for name, definition in FORMULAS.items()}
VARIANTS: dict[str, KpiFn] = {name: definition.of for name, definition in VARIANT_FORMULAS.items()}

adherence = KPIS["adherence"]
average_acw = KPIS["average_acw"]
average_time_to_abandon = KPIS["average_time_to_abandon"]
cost_per_call = KPIS["cost_per_call"]
average_handle_time = KPIS["average_handle_time"]
average_hold_time = KPIS["average_hold_time"]
average_rings_to_answer = KPIS["average_rings_to_answer"]
average_queue_time = KPIS["average_queue_time"]
average_speed_of_answer = KPIS["asa"]
average_talk_time = KPIS["average_talk_time"]
calls_per_hour = KPIS["calls_per_hour"]
monitoring_score = KPIS["monitoring_score"]
occupancy = KPIS["occupancy"]
abandon_rate = KPIS["abandon_rate"]
attendance_rate = KPIS["attendance_rate"]
blocked_rate = KPIS["blocked_rate"]
first_call_resolution = KPIS["first_call_resolution"]
queued_rate = KPIS["queued_rate"]
transfer_rate = KPIS["transfer_rate"]
answered_rate = KPIS["answered_rate"]
service_level = KPIS["service_level"]
total_calls = KPIS["total_calls"]
agent_attrition = KPIS["agent_attrition"]
average_hold_time_per_held_call = VARIANTS["average_hold_time_per_held_call"]
transfer_rate_blind = VARIANTS["transfer_rate_blind"]
transfer_rate_warm = VARIANTS["transfer_rate_warm"]
service_level_of_answered = VARIANTS["service_level_of_answered"]
service_level_of_offered = VARIANTS["service_level_of_offered"]
service_level_abandons_within_t_excluded = VARIANTS["service_level_abandons_within_t_excluded"]
service_level_abandons_within_t_met = VARIANTS["service_level_abandons_within_t_met"]
abandon_rate_all = VARIANTS["abandon_rate_all"]
agent_attrition_annualised = VARIANTS["agent_attrition_annualised"]


def compute_all(r: Rollup, *, variants: bool = False) -> dict[str, float | int | None]:
    out = {name: fn(r) for name, fn in KPIS.items()}
    if variants:
        out.update({name: fn(r) for name, fn in VARIANTS.items()})
    return out
