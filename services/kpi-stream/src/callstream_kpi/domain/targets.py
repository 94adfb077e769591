"""KPI targets (handbook defaults, overridable per queue / team / agent) and alert evaluation.

A breach fires an `Alert` (kpi.v1) with the KPI, scope, value, target and the likely causes the
handbook lists for it, each `confirmed` when the data of the same scope and interval shows it (e.g.
ASA high and ACW above its target -> "ACW over target" confirmed). Alerts have hysteresis: a firing
alert resolves only once the value is back past the target by the target's `hysteresis` margin, and
(optionally) fires only after `min_consecutive` breached evaluations, so a value hovering at the
target does not flap.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Literal

from callstream.common.v1 import envelope_pb2
from callstream.kpi.v1 import kpi_events_pb2
from callstream_core.envelope import deterministic_event_id, new_envelope

Comparison = Literal[">=", "<="]
ScopeKind = Literal["center", "queue", "team", "agent"]

_SCOPE_KINDS: dict[str, envelope_pb2.Scope.Kind.ValueType] = {
    "center": envelope_pb2.Scope.KIND_CENTER,
    "queue": envelope_pb2.Scope.KIND_QUEUE,
    "team": envelope_pb2.Scope.KIND_TEAM,
    "agent": envelope_pb2.Scope.KIND_AGENT,
}


@dataclass(frozen=True)
class ScopeRef:
    kind: ScopeKind = "center"
    id: str = ""

    def to_proto(self) -> envelope_pb2.Scope:
        return envelope_pb2.Scope(kind=_SCOPE_KINDS[self.kind], id=self.id)


CENTER = ScopeRef()


@dataclass(frozen=True)
class Target:
    kpi: str
    comparison: Comparison
    value: float
    # Margin past the target the value must reach before a firing alert resolves.
    hysteresis: float = 0.0
    # "handbook" (quoted by kpis.md) or "convention" (industry practice where the handbook gives no figure).
    source: str = "handbook"
    note: str = ""

    def met(self, v: float) -> bool:
        return v >= self.value if self.comparison == ">=" else v <= self.value

    def breached(self, v: float) -> bool:
        return not self.met(v)

    def recovered(self, v: float) -> bool:
        if self.comparison == ">=":
            return v >= self.value + self.hysteresis
        return v <= self.value - self.hysteresis


def _t(kpi: str, comparison: Comparison, value: float, hysteresis: float, source: str = "handbook",
       note: str = "") -> tuple[str, Target]:
    return kpi, Target(kpi, comparison, value, hysteresis, source, note)


DEFAULT_TARGETS: dict[str, Target] = dict([
    _t("service_level", ">=", 80.0, 2.0, note="80 % answered within 20 s (T per queue)"),
    _t("adherence", ">=", 92.0, 1.0, note=">= 92 % per agent"),
    _t("average_acw", "<=", 60.0, 5.0, note="recommended 30-60 s"),
    _t("transfer_rate", "<=", 2.0, 0.5, note="<= 1-2 per 100 answered"),
    _t("agent_attrition_annualised", "<=", 30.0, 2.0, note="keep within 15-30 %/yr"),
    _t("cost_per_call", "<=", 5.0, 0.25, note="industry 2-5"),
    _t("average_time_to_abandon", ">=", 20.0, 2.0, note="20-60 s; very short abandons are a signal"),
    _t("asa", "<=", 30.0, 3.0, "convention", "the handbook gives no figure; 30 s is common with an 80/20 goal"),
    _t("abandon_rate", "<=", 5.0, 0.5, "convention", "the handbook gives no figure; 5 % is the usual ceiling"),
    _t("average_hold_time", "<=", 60.0, 5.0, "convention", "'hold over expected' (row 9): expected hold 60 s"),
    _t("attendance_rate", ">=", 95.0, 1.0, "convention", "the handbook gives no figure"),
])


class TargetBook:
    """Defaults overridden per scope kind (all queues) or per scope (one queue/team/agent)."""

    def __init__(self, defaults: Mapping[str, Target] | None = None) -> None:
        self.defaults: dict[str, Target] = dict(DEFAULT_TARGETS if defaults is None else defaults)
        self._overrides: dict[tuple[str, str, str], Target] = {}

    def override(self, kpi: str, scope: ScopeRef | None = None, *, value: float | None = None,
                 comparison: Comparison | None = None, hysteresis: float | None = None,
                 kind_wide: ScopeKind | None = None) -> Target:
        """Override for one scope, or for every scope of `kind_wide` (e.g. all agents)."""
        base = self.get(kpi, scope or CENTER)
        if base is None:
            if value is None or comparison is None:
                raise ValueError(f"no default target for {kpi}: give value and comparison")
            base = Target(kpi, comparison, value, 0.0, "override")
        changes: dict[str, object] = {"source": "override"}
        if value is not None:
            changes["value"] = value
        if comparison is not None:
            changes["comparison"] = comparison
        if hysteresis is not None:
            changes["hysteresis"] = hysteresis
        target = replace(base, **changes)  # type: ignore[arg-type]
        key = (kpi, kind_wide, "*") if kind_wide else (kpi, (scope or CENTER).kind, (scope or CENTER).id)
        self._overrides[key] = target
        return target

    def get(self, kpi: str, scope: ScopeRef = CENTER) -> Target | None:
        return (self._overrides.get((kpi, scope.kind, scope.id))
                or self._overrides.get((kpi, scope.kind, "*"))
                or self.defaults.get(kpi))


# ---------------------------------------------------------------------------------------------
# Likely causes (kpis.md rows 1 and 9, "Targets, alerts and diagnosis", the handbook)

Values = Mapping[str, float | int | None]
Check = Callable[[Values, TargetBook, ScopeRef], tuple[bool, str] | None]


@dataclass(frozen=True)
class CauseRule:
    code: str
    text: str
    # None: not checkable from data (reported, confirmed=False).
    check: Check | None = None


def _over_target(kpi: str) -> Check:
    def check(values: Values, book: TargetBook, scope: ScopeRef) -> tuple[bool, str] | None:
        value, target = values.get(kpi), book.get(kpi, scope)
        if value is None or target is None:
            return None
        return target.breached(float(value)), f"{kpi} {value:.1f} vs target {target.comparison} {target.value:g}"
    return check


def _forecast_error(values: Values, book: TargetBook, scope: ScopeRef) -> tuple[bool, str] | None:
    offered, forecast = values.get("offered"), values.get("forecast_offered")
    if offered is None or not forecast:
        return None
    error = (float(offered) - float(forecast)) / float(forecast) * 100
    return error > 10.0, f"offered {offered:g} vs forecast {forecast:g} ({error:+.0f} %)"


def _no_qa(values: Values, book: TargetBook, scope: ScopeRef) -> tuple[bool, str] | None:
    count = values.get("qa_count")
    if count is None:
        return None
    return count == 0, f"{count:g} QA evaluations in the period"


def _below(kpi: str, threshold: float) -> Check:
    def check(values: Values, book: TargetBook, scope: ScopeRef) -> tuple[bool, str] | None:
        value = values.get(kpi)
        return None if value is None else (value < threshold, f"{kpi} {value:.1f} (< {threshold:g} signals it)")
    return check


def _above(kpi: str, threshold: float) -> Check:
    def check(values: Values, book: TargetBook, scope: ScopeRef) -> tuple[bool, str] | None:
        value = values.get(kpi)
        return None if value is None else (value > threshold, f"{kpi} {value:.1f} (> {threshold:g} signals it)")
    return check


_SPEED_CAUSES = [  # row 9: ASA too high -> check these; the same apply to service level and abandons
    CauseRule("acw_over_target", "ACW over target", _over_target("average_acw")),
    CauseRule("hold_over_expected", "Hold time over expected", _over_target("average_hold_time")),
    CauseRule("forecast_error", "Forecast error (more calls than planned)", _forecast_error),
    CauseRule("adherence_low", "Adherence too low", _over_target("adherence")),
    CauseRule("absenteeism", "Absenteeism", _over_target("attendance_rate")),
]

CAUSES: dict[str, list[CauseRule]] = {
    "asa": _SPEED_CAUSES,
    "service_level": [CauseRule("asa_high", "ASA above target", _over_target("asa")), *_SPEED_CAUSES],
    "abandon_rate": [CauseRule("asa_high", "ASA above target", _over_target("asa")), *_SPEED_CAUSES],
    "adherence": [  # row 1
        CauseRule("supervision", "Lack of supervision"),
        CauseRule("qa_coverage_new_hires", "QA monitoring not covering new hires", _no_qa),
        CauseRule("rule_misunderstanding", "Rules misunderstood by agents"),
        CauseRule("absenteeism", "Absenteeism", _over_target("attendance_rate")),
        CauseRule("low_volume", "Low call volume", _below("occupancy", 60.0)),
    ],
    "average_acw": [
        CauseRule("hard_calls", "Many emotionally hard calls", _above("hard_call_rate", 10.0)),
        CauseRule("training", "Wrap-up practice / training"),
    ],
    "transfer_rate": [
        CauseRule("routing_mismatch", "Calls routed to agents without the skill"),
        CauseRule("training", "Agent knowledge gaps (training)"),
    ],
    "average_time_to_abandon": [
        CauseRule("competitors", "Callers go to competitors"),
        CauseRule("never_get_through", "Callers who can never get through", _above("blocked_rate", 1.0)),
    ],
    "agent_attrition_annualised": [
        CauseRule("supervisor", "Supervisor"),
        CauseRule("environment", "Work environment"),
        CauseRule("workload_pressure", "Workload pressure", _above("occupancy", 90.0)),
        CauseRule("pay", "Pay"),
    ],
    "attendance_rate": [CauseRule("absence_reasons", "Look into absence reasons")],
    "cost_per_call": [CauseRule("queued_rate_high", "Long queues raise telephony cost", _above("queued_rate", 50.0))],
}


def likely_causes(kpi: str, values: Values, book: TargetBook, scope: ScopeRef) -> list[kpi_events_pb2.LikelyCause]:
    out: list[kpi_events_pb2.LikelyCause] = []
    for rule in CAUSES.get(kpi, []):
        result = rule.check(values, book, scope) if rule.check is not None else None
        confirmed, evidence = result if result is not None else (False, "")
        out.append(kpi_events_pb2.LikelyCause(code=rule.code, text=rule.text, confirmed=confirmed,
                                              evidence=evidence))
    # confirmed first, handbook order otherwise
    return sorted(out, key=lambda c: not c.confirmed)


# ---------------------------------------------------------------------------------------------
# Evaluation with hysteresis


@dataclass
class _AlertState:
    firing: bool = False
    breaches: int = 0
    alert_id: str = ""


@dataclass
class AlertEvaluator:
    book: TargetBook = field(default_factory=TargetBook)
    # Breached evaluations in a row needed to fire (1 = at once).
    min_consecutive: int = 1
    source: str = "kpi-stream"
    _states: dict[tuple[str, ScopeRef], _AlertState] = field(default_factory=dict, init=False, repr=False)

    def evaluate(self, scope: ScopeRef, values: Values, *, interval_start: datetime,
                 interval_end: datetime) -> list[kpi_events_pb2.Alert]:
        """Values of the KPIs (and context such as offered, forecast_offered, qa_count) for one scope and
        interval. Returns the alerts that fire or resolve now; a KPI without a value (None) changes nothing."""
        out: list[kpi_events_pb2.Alert] = []
        for kpi, raw in values.items():
            target = self.book.get(kpi, scope)
            if target is None or raw is None:
                continue
            value = float(raw)
            state = self._states.setdefault((kpi, scope), _AlertState())
            if not state.firing:
                state.breaches = state.breaches + 1 if target.breached(value) else 0
                if state.breaches >= self.min_consecutive:
                    state.firing = True
                    state.alert_id = deterministic_event_id("alert", kpi, scope.kind, scope.id,
                                                            interval_start.isoformat())
                    out.append(self._alert(kpi, scope, value, target, kpi_events_pb2.Alert.STATE_FIRING, state,
                                           interval_start, interval_end, values))
            elif target.recovered(value):
                state.firing, state.breaches = False, 0
                out.append(self._alert(kpi, scope, value, target, kpi_events_pb2.Alert.STATE_RESOLVED, state,
                                       interval_start, interval_end, values))
        return out

    def firing(self) -> list[tuple[str, ScopeRef]]:
        return sorted((k for k, s in self._states.items() if s.firing), key=lambda k: (k[0], k[1].kind, k[1].id))

    def _alert(self, kpi: str, scope: ScopeRef, value: float, target: Target,
               state_value: kpi_events_pb2.Alert.State.ValueType, state: _AlertState, start: datetime,
               end: datetime, values: Values) -> kpi_events_pb2.Alert:
        env = new_envelope(self.source, end, deterministic_event_id("alert-event", state.alert_id,
                                                                    str(state_value), end.isoformat()))
        alert = kpi_events_pb2.Alert(envelope=env, alert_id=state.alert_id, kpi=kpi, scope=scope.to_proto(),
                                     value=value, target=target.value, comparison=target.comparison,
                                     state=state_value)
        alert.interval_start.FromDatetime(start)
        alert.interval_end.FromDatetime(end)
        if state_value == kpi_events_pb2.Alert.STATE_FIRING:
            alert.likely_causes.extend(likely_causes(kpi, values, self.book, scope))
        return alert


# ---------------------------------------------------------------------------------------------
# Per-queue and per-team settings (the queue_settings and team_settings tables, written through the KPI API)


class _ScopeGoals:
    """What queue and team settings share: an SL goal and KPI targets that override the book's for their
    scope; KPI names are checked on construction."""

    sl_goal_pct: float
    kpi_targets: Mapping[str, float]

    @property
    def scope(self) -> ScopeRef:
        raise NotImplementedError

    def __post_init__(self) -> None:
        unknown = sorted(set(self.kpi_targets) - set(DEFAULT_TARGETS))
        if unknown:
            raise ValueError(f"no KPI target named {unknown}; known: {sorted(DEFAULT_TARGETS)}")

    def apply(self, book: TargetBook) -> None:
        """Override the book's targets for this scope: the SL goal, then each KPI target given."""
        book.override("service_level", self.scope, value=self.sl_goal_pct)
        for kpi, value in self.kpi_targets.items():
            book.override(kpi, self.scope, value=value)


@dataclass(frozen=True)
class QueueSettings(_ScopeGoals):
    """A queue's service targets: SL threshold T and goal, short-abandon threshold, callers' mean patience
    (for the planner's Erlang A; None: not known) and KPI target values overriding the defaults for it."""

    queue_id: str
    sl_threshold_s: float = 20.0
    sl_goal_pct: float = 80.0
    short_abandon_s: float = 20.0
    patience_s: float | None = None
    kpi_targets: Mapping[str, float] = field(default_factory=dict)

    @property
    def scope(self) -> ScopeRef:
        return ScopeRef("queue", self.queue_id)


@dataclass(frozen=True)
class TeamSettings(_ScopeGoals):
    """A team's targets: SL goal and KPI targets for its figures and, when set, the SL threshold T its answered
    calls are measured against (None: each call's queue's T). Short-abandon threshold and patience are the
    callers' side, so a queue's, never a team's."""

    team_id: str
    sl_threshold_s: float | None = None
    sl_goal_pct: float = 80.0
    kpi_targets: Mapping[str, float] = field(default_factory=dict)

    @property
    def scope(self) -> ScopeRef:
        return ScopeRef("team", self.team_id)


def judge(values: Values, book: TargetBook, scope: ScopeRef) -> dict[str, bool | None]:
    """Whether each KPI among `values` that has a target for `scope` meets it (None: no figure)."""
    judged: dict[str, bool | None] = {}
    for kpi, value in values.items():
        target = book.get(kpi, scope)
        if target is not None:
            judged[kpi] = None if value is None else target.met(float(value))
    return judged


@dataclass(frozen=True)
class QueueTargets:
    """The targets in force: each queue's own settings (the queue_settings table) and the defaults, which
    hold for every other queue and for the center."""

    defaults: QueueSettings = field(default_factory=lambda: QueueSettings(""))
    queues: Mapping[str, QueueSettings] = field(default_factory=dict)

    @classmethod
    def of_queues(cls, defaults: QueueSettings, queues: Iterable[QueueSettings]) -> QueueTargets:
        return cls(defaults, {q.queue_id: q for q in queues})

    def of(self, queue_id: str) -> QueueSettings:
        return self.queues.get(queue_id, self.defaults)

    def sl_threshold_s(self, queue_id: str) -> float:
        return self.of(queue_id).sl_threshold_s

    def short_abandon_s(self, queue_id: str) -> float:
        return self.of(queue_id).short_abandon_s

    def book(self) -> TargetBook:
        """The alert targets: the handbook's, with the default SL goal, overridden per queue."""
        sl = DEFAULT_TARGETS["service_level"]
        book = TargetBook({**DEFAULT_TARGETS, "service_level": replace(sl, value=self.defaults.sl_goal_pct)})
        for queue in self.queues.values():
            queue.apply(book)
        return book
