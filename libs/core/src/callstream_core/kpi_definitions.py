"""The KPI definitions of shared/spec/kpis.md, once for every service, query and dashboard.

Two parts: the constants (thresholds, windows, the outcomes that are not offered) and `FORMULAS`, the
declarative table of every KPI (and variant) as arithmetic over named raw counters. A KPI's formula is
written here and nowhere else: the KPI stream evaluates it over its `Rollup` counters
(`callstream_kpi.domain.kpis`), the Grafana dashboards render it to SQL over their views' counters
(`deploy/grafana/build.py`), HR evaluates attendance (15) and attrition (23) with it, the simulator its summary's
service level (21). SQL that cannot import
this module (the migrations) is checked against it by `services/kpi-stream/tests/unit/test_kpi_definitions.py`.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

# kpis.md 21: T of the service level and its goal when a queue has no settings ("80 % in 20 s").
SL_THRESHOLD_S = 20.0
SL_GOAL_PCT = 80.0
# kpis.md "short abandon": abandoned after waiting at most this long (default 20 s, per queue).
SHORT_ABANDON_S = 20.0
# kpis.md 17: a repeat call from the same caller on the same topic within this window undoes a resolution.
FCR_WINDOW_S = 72 * 3600.0
# kpis.md "offered": calls that reached the ACD; these outcomes did not (blocked, ended in the IVR).
NOT_OFFERED = frozenset({"blocked", "ivr_handled", "ivr_abandoned"})
# kpis.md 23: attrition annualised = rate x a year / the period.
SECONDS_PER_YEAR = 365.0 * 86400.0


def sql_strings(values: Iterable[str]) -> str:
    """A SQL list of string literals, sorted: `('a', 'b')`."""
    return "(" + ", ".join("'" + v.replace("'", "''") + "'" for v in sorted(values)) + ")"


NOT_OFFERED_SQL = sql_strings(NOT_OFFERED)

# Names a formula may use besides counters.
FORMULA_CONSTANTS: dict[str, float] = {"SECONDS_PER_YEAR": SECONDS_PER_YEAR}

Value = float | int | None
_OPERATORS: dict[type[ast.operator], str] = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}


@dataclass(frozen=True)
class Formula:
    """One KPI of kpis.md as arithmetic (+ - * / and parentheses) over raw counters, e.g.
    `100 * answered_within_t / (offered - short_abandons)`. A division by zero anywhere makes the KPI
    undefined: None in Python, NULL in SQL (`nullIf(den, 0)`), never a fake 0. `unknown_without`: counters
    that, all 0, mean there is no data at all (the KPI is None even where its formula is defined)."""

    number: int  # in kpis.md's table
    expression: str
    unknown_without: tuple[str, ...] = ()
    _tree: ast.expr = field(init=False, repr=False, compare=False)
    # The KPI over the counters held as attributes of its argument (e.g. a `Rollup`).
    of: Callable[[Any], Value] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        tree = ast.parse(self.expression, mode="eval").body
        object.__setattr__(self, "_tree", tree)
        object.__setattr__(self, "of", _compile(tree, self.expression, self.unknown_without))

    @property
    def counters(self) -> frozenset[str]:
        """The raw counters the formula reads."""
        names = {n.id for n in ast.walk(self._tree) if isinstance(n, ast.Name)} | set(self.unknown_without)
        return frozenset(names - FORMULA_CONSTANTS.keys())

    def of_counts(self, **counters: float) -> Value:
        return self.of(SimpleNamespace(**counters))

    def sql(self, counter_sql: Callable[[str], str]) -> str:
        """The formula in ClickHouse SQL, each counter replaced by `counter_sql(name)` (an atom: a column or a
        function call, e.g. `sum(offered)`); every division by `nullIf(den, 0)`."""
        if self.unknown_without:
            raise ValueError(f"{self.expression!r}: no SQL form for a KPI that is unknown without data")
        return _sql(self._tree, counter_sql)


def _compile(tree: ast.expr, source: str, unknown_without: tuple[str, ...]) -> Callable[[Any], Value]:
    """The formula as a Python function of an object holding the counters, compiled once (the pipeline
    evaluates every KPI of every scope and interval): a division by 0 anywhere (only divisions can fail) gives
    None. Only counters, numbers and + - * / pass the check, so the compiled code can do nothing but
    arithmetic on attributes of its argument."""
    for node in ast.walk(tree):
        arithmetic = isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS
        number = isinstance(node, ast.Constant) and isinstance(node.value, int | float)
        if not (arithmetic or number or isinstance(node, ast.Name | ast.operator | ast.expr_context)):
            raise ValueError(f"KPI formula {source!r}: only counters, numbers, + - * / and parentheses are allowed")
    if not all(name.isidentifier() for name in unknown_without):
        raise ValueError(f"KPI formula {source!r}: unknown_without names counters: {unknown_without!r}")
    unknown = " and ".join(f"counters.{name} == 0" for name in unknown_without)
    python = _sql(tree, lambda name: f"counters.{name}", division="{left} / ({right})")
    code = (f"def kpi(counters):\n    if {unknown or 'False'}:\n        return None\n"
            f"    try:\n        return {python}\n    except ZeroDivisionError:\n        return None\n")
    namespace: dict[str, Any] = {"__builtins__": {"ZeroDivisionError": ZeroDivisionError}}
    exec(compile(code, f"<KPI formula {source!r}>", "exec"), namespace)  # the code is the checked formula's
    kpi: Callable[[Any], Value] = namespace["kpi"]
    return kpi


def _sql(node: ast.expr, counter: Callable[[str], str], division: str = "{left} / nullIf({right}, 0)") -> str:
    """The expression with each counter as `counter(name)`, each division (by anything but a number) as
    `division` (SQL: through nullIf; Python: plain, a ZeroDivisionError meaning undefined)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        return f"{node.value:g}"
    if isinstance(node, ast.Name):
        return f"{FORMULA_CONSTANTS[node.id]!r}" if node.id in FORMULA_CONSTANTS else counter(node.id)
    assert isinstance(node, ast.BinOp)  # the only other kind _compile accepts
    left, right = _sql(node.left, counter, division), _sql(node.right, counter, division)
    if isinstance(node.op, ast.Mult | ast.Div) and _is_sum(node.left):
        left = f"({left})"
    if isinstance(node.op, ast.Div):
        if isinstance(node.right, ast.Constant):
            return f"{left} / {right}"
        return division.format(left=left, right=right)
    if isinstance(node.right, ast.BinOp) and (isinstance(node.op, ast.Mult | ast.Sub) and _is_sum(node.right)):
        right = f"({right})"
    return f"{left} {_OPERATORS[type(node.op)]} {right}"


def _is_sum(node: ast.expr) -> bool:
    return isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add | ast.Sub)


# The 23 indicators, numbered and named as the KPI API, the alerts and the targets name them, then the
# variants kpis.md names. Counters: the fields of the KPI stream's `Rollup` (kpis.md's vocabulary).
FORMULAS: dict[str, Formula] = {
    "adherence": Formula(1, "100 * productive_s / scheduled_on_phone_s"),
    "average_acw": Formula(2, "sum_acw_s / answered_legs"),
    "average_time_to_abandon": Formula(3, "sum_wait_abandoned_s / abandoned"),
    # calls handled by an agent or by the IVR; no cost entry at all is unknown, not a cost of 0
    "cost_per_call": Formula(4, "cost / (answered + ivr_handled)", unknown_without=("cost", "cost_entries")),
    "average_handle_time": Formula(5, "(sum_talk_s + sum_hold_s + sum_acw_s) / answered_legs"),
    "average_hold_time": Formula(6, "sum_hold_s / answered_legs"),
    # an IVR answer is 0 rings (no ring event) but counts as an answer
    "average_rings_to_answer": Formula(7, "sum_rings / (answered_legs + ivr_handled)"),
    "average_queue_time": Formula(8, "sum_queue_s / queued"),
    "asa": Formula(9, "sum_queue_s_answered / answered"),
    "average_talk_time": Formula(10, "sum_talk_s / answered_legs"),
    "calls_per_hour": Formula(11, "answered_legs / (logged_in_s / 3600)"),
    "monitoring_score": Formula(12, "qa_score_sum / qa_count"),
    "occupancy": Formula(13, "100 * busy_s / (busy_s + available_idle_s)"),
    "abandon_rate": Formula(14, "100 * (abandoned - short_abandons) / (offered - short_abandons)"),
    "attendance_rate": Formula(15, "100 * present / scheduled"),
    "blocked_rate": Formula(16, "100 * blocked / received"),
    "first_call_resolution": Formula(17, "100 * resolved_no_repeat / answered"),
    "queued_rate": Formula(18, "100 * queued / offered"),
    "transfer_rate": Formula(19, "100 * (transferred_blind + transferred_warm) / answered_legs"),
    "answered_rate": Formula(20, "100 * answered / offered"),
    "service_level": Formula(21, "100 * answered_within_t / (offered - short_abandons)"),
    "total_calls": Formula(22, "received"),
    # average headcount = FTE-seconds employed / the period's seconds
    "agent_attrition": Formula(23, "100 * leavers / (headcount_fte_s / period_s)"),
}
VARIANT_FORMULAS: dict[str, Formula] = {
    "average_hold_time_per_held_call": Formula(6, "sum_hold_s / calls_with_hold"),
    "transfer_rate_blind": Formula(19, "100 * transferred_blind / answered_legs"),
    "transfer_rate_warm": Formula(19, "100 * transferred_warm / answered_legs"),
    "service_level_of_answered": Formula(21, "100 * answered_within_t / answered"),
    "service_level_of_offered": Formula(21, "100 * answered_within_t / offered"),
    "service_level_abandons_within_t_excluded": Formula(21, "100 * answered_within_t / (offered - abandoned_within_t)"),
    "service_level_abandons_within_t_met": Formula(21, "100 * (answered_within_t + abandoned_within_t) / offered"),
    "abandon_rate_all": Formula(14, "100 * abandoned / offered"),
    "agent_attrition_annualised": Formula(
        23, "100 * leavers / (headcount_fte_s / period_s) * SECONDS_PER_YEAR / period_s"),
}


def formula(name: str) -> Formula:
    """A KPI or variant by name (KeyError names the unknown one)."""
    return FORMULAS[name] if name in FORMULAS else VARIANT_FORMULAS[name]

