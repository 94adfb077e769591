"""One definition per KPI: the formula table and constants of callstream_core.kpi_definitions, the counters of
adapters/kpi_queries. The SQL that cannot import them (the migrations' views, the generated Grafana dashboards)
holds the same constants and counter expressions: a changed definition that misses one of them fails here."""

from __future__ import annotations

import json
import re
from dataclasses import fields
from pathlib import Path

import pytest

from callstream_core.kpi_definitions import (
    FCR_WINDOW_S,
    FORMULAS,
    NOT_OFFERED,
    NOT_OFFERED_SQL,
    SL_GOAL_PCT,
    SL_THRESHOLD_S,
    VARIANT_FORMULAS,
    Formula,
    sql_strings,
)
from callstream_kpi.adapters.kpi_queries import AGENT_STATE_COUNTERS, CONTACT_COUNTERS, ON_PHONE_IN_SLOT, SHIFT_PRESENT
from callstream_kpi.domain.kpis import DEFAULT_RING_CYCLE_S, Rollup

ROOT = Path(__file__).resolve().parents[4]
MIGRATIONS = sorted((ROOT / "services/kpi-stream/src/callstream_kpi/adapters/migrations").glob("*.sql"))
ROLLUP_FIELDS = {f.name for f in fields(Rollup)}
DASHBOARDS = sorted((ROOT / "deploy/grafana/dashboards").glob("*.json"))


def sql_texts() -> list[tuple[str, str]]:
    texts = [(p.name, p.read_text()) for p in MIGRATIONS]
    for path in DASHBOARDS:
        raw = json.dumps(json.loads(path.read_text()))
        texts += [(path.name, sql) for sql in re.findall(r'"rawSql": "((?:[^"\\]|\\.)*)"', raw)]
    return texts


def test_the_sources_are_there() -> None:
    # the patterns below still match something: a rewritten query must not make the checks pass vacuously
    sql = "\n".join(text for _, text in sql_texts())
    assert re.search(r"outcome\s+NOT IN", sql) and re.search(r"if\(s\.queue_id = '', [\d.]+, s\.sl_goal_pct\)", sql)


@pytest.mark.parametrize(("name", "sql"), sql_texts())
def test_not_offered_outcomes(name: str, sql: str) -> None:
    for listed in re.findall(r"outcome\s+NOT IN\s*\(([^)]*)\)", sql):
        assert set(re.findall(r"'([^']*)'", listed)) == NOT_OFFERED, (name, listed)


@pytest.mark.parametrize(("name", "sql"), sql_texts())
def test_defaults_for_a_queue_without_settings(name: str, sql: str) -> None:
    for value in re.findall(r"if\(s\.queue_id = '', ([\d.]+), s\.sl_threshold_s\)", sql):
        assert float(value) == SL_THRESHOLD_S, name
    for value in re.findall(r"if\(s\.queue_id = '', ([\d.]+), s\.sl_goal_pct\)", sql):
        assert float(value) == SL_GOAL_PCT, name


def test_fcr_window_of_the_dashboard_views() -> None:
    windows = [float(w) for _, sql in sql_texts()
               for w in re.findall(r"dateDiff\('second', first_offered, next_offered\) <= (\d+)", sql)]
    assert windows and set(windows) == {FCR_WINDOW_S}


# --- the dashboard views hold the KPI stream's counters, counter by counter ---------------------------------

VIEWS_OF_COUNTERS = ("v_queue_30m", "v_agent_30m", "v_agent_states_30m")
# The views' literals for the queries' placeholders: T of the queue's settings or the default, the ring cycle,
# the FCR verdict of v_call_resolution (whose window test_fcr_window_of_the_dashboard_views checks).
VIEW_PLACEHOLDERS = {
    "threshold": f"if(s.queue_id = '', {SL_THRESHOLD_S:g}, s.sl_threshold_s)",
    "not_offered": NOT_OFFERED_SQL,
    "ring_cycle": f"{DEFAULT_RING_CYCLE_S:g}",
    "resolved": "r.resolved_no_repeat = 1",
}


def normal_sql(sql: str) -> str:
    """Whitespace collapsed, no space inside parentheses, `NOT IN` lists sorted (a set, in any order)."""
    sql = re.sub(r"\s+", " ", re.sub(r"--[^\n]*", "", sql))
    sql = re.sub(r"\( ", "(", re.sub(r" \)", ")", sql))
    return re.sub(r"NOT IN \(([^)]*)\)",
                  lambda m: "NOT IN " + sql_strings(re.findall(r"'([^']*)'", m.group(1))), sql)


def views_of_latest_migrations() -> dict[str, str]:
    """Each view's SQL as the migrations leave it: a later migration's CREATE OR REPLACE wins."""
    views: dict[str, str] = {}
    for path in MIGRATIONS:
        for statement in path.read_text().split(";"):
            found = re.search(r"CREATE (?:OR REPLACE )?VIEW (?:IF NOT EXISTS )?(\w+) AS", statement)
            if found:
                views[found.group(1)] = normal_sql(statement)
    return views


@pytest.mark.parametrize("view", VIEWS_OF_COUNTERS)
def test_dashboard_views_count_as_the_kpi_queries(view: str) -> None:
    sql = views_of_latest_migrations()[view]
    expected = {name: normal_sql(expr.format(**VIEW_PLACEHOLDERS))
                for name, expr in {**CONTACT_COUNTERS, **AGENT_STATE_COUNTERS}.items()}
    counters = [name for name in re.findall(r" AS (\w+)", sql) if name in ROLLUP_FIELDS]
    assert counters, f"{view} holds no counter: the check would pass vacuously"
    for name in counters:
        assert name in expected, f"{view}.{name} has no expression in adapters/kpi_queries"
        assert f"{expected[name]} AS {name}" in sql, (view, name, expected[name])


def test_schedule_views_count_as_the_kpi_queries() -> None:
    views = views_of_latest_migrations()
    assert normal_sql(ON_PHONE_IN_SLOT) in views["v_schedule_30m"]
    assert normal_sql(f"toUInt8({SHIFT_PRESENT}) AS present") in views["v_attendance_shifts"]


def test_the_queries_name_counters_by_the_rollup_fields() -> None:
    assert set(CONTACT_COUNTERS) | set(AGENT_STATE_COUNTERS) <= ROLLUP_FIELDS


# --- the formula table ----------------------------------------------------------------------------------------

ALL_FORMULAS = {**FORMULAS, **VARIANT_FORMULAS}


def test_every_kpi_of_the_spec_has_one_formula() -> None:
    assert sorted({f.number for f in FORMULAS.values()}) == list(range(1, 24))
    assert {f.number for f in VARIANT_FORMULAS.values()} <= set(range(1, 24))


@pytest.mark.parametrize("name", sorted(ALL_FORMULAS))
def test_formulas_read_rollup_counters(name: str) -> None:
    assert ALL_FORMULAS[name].counters and ALL_FORMULAS[name].counters <= ROLLUP_FIELDS


def test_formula_evaluation_and_sql() -> None:
    sl = FORMULAS["service_level"]
    assert sl.of_counts(answered_within_t=8, offered=12, short_abandons=2) == 80.0
    assert sl.of_counts(answered_within_t=0, offered=2, short_abandons=2) is None  # no denominator: undefined
    assert sl.sql(lambda c: f"sum({c})") == \
        "100 * sum(answered_within_t) / nullIf(sum(offered) - sum(short_abandons), 0)"
    aht = FORMULAS["average_handle_time"]
    assert aht.sql(str) == "(sum_talk_s + sum_hold_s + sum_acw_s) / nullIf(answered_legs, 0)"
    attrition = FORMULAS["agent_attrition"]
    assert attrition.of_counts(leavers=3, headcount_fte_s=20 * 86400.0, period_s=86400.0) == 15.0
    assert attrition.of_counts(leavers=3, headcount_fte_s=0.0, period_s=86400.0) is None
    assert attrition.of_counts(leavers=0, headcount_fte_s=0.0, period_s=0.0) is None  # nested 0 division
    assert FORMULAS["total_calls"].of_counts(received=0) == 0  # a count: 0 is a true 0
    cost = FORMULAS["cost_per_call"]
    assert cost.of_counts(cost=0.0, cost_entries=0, answered=4, ivr_handled=0) is None  # no finance data
    assert cost.of_counts(cost=0.0, cost_entries=1, answered=4, ivr_handled=0) == 0.0


@pytest.mark.parametrize("expression", ["answered ** 2", "max(answered, 1)", "answered if offered else 0", "-1"])
def test_formulas_are_plain_arithmetic(expression: str) -> None:
    with pytest.raises(ValueError, match="only counters, numbers"):
        Formula(0, expression)
