"""The Grafana dashboards (deploy/grafana) against real ClickHouse SQL: every panel's query, with the
grafana-clickhouse-datasource macros expanded as the plugin does, runs on chDB over seeded facts and
returns rows; the views count like the reference counters; the committed JSON is the builder's output."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client

from callstream_kpi.adapters.clickhouse_facts import CONTACT_COLUMNS, apply_migrations, interval_start
from callstream_kpi.adapters.kpi_queries import KpiQuery, contact_counters_sql, run
from callstream_kpi.domain.kpis import Rollup, abandon_rate, service_level

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "deploy" / "grafana"
QUEUES = ["q_billing", "q_sales", "q_support"]  # q_billing has no queue_settings row: T = 20 s
TEAMS = {"t_north": ["a1", "a2", "a3"], "t_south": ["a4", "a5", "a6"]}
AGENTS = [a for members in TEAMS.values() for a in members]
TEAM_OF = {a: t for t, members in TEAMS.items() for a in members}
NOW = datetime.now(UTC).replace(microsecond=0)
TIME_FROM = NOW - timedelta(days=90)
TIME_TO = NOW + timedelta(minutes=1)


def load_builder() -> ModuleType:
    spec = importlib.util.spec_from_file_location("callstream_grafana_build", GRAFANA / "build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def dashboards() -> dict[str, dict[str, Any]]:
    return {p.name: json.loads(p.read_text()) for p in sorted((GRAFANA / "dashboards").glob("*.json"))}


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


# --------------------------------------------------------------------------------------------
# The plugin's macros (grafana-clickhouse-datasource v4, backend macros.go) and Grafana's variables


INTERVALS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def interval_seconds(panel: dict[str, Any]) -> int:
    """The query interval: the panel's min interval (the range is long, so Grafana's auto interval is larger
    still for real ranges; the min interval is the finest the panel asks for)."""
    match = re.fullmatch(r"(\d+)([smhd])", panel.get("interval") or "1m")
    assert match, panel.get("interval")
    return int(match.group(1)) * INTERVALS[match.group(2)]


def expand(sql: str, *, start: datetime, end: datetime, interval_s: int, variables: dict[str, list[str]]) -> str:
    f, t = int(start.timestamp()), int(end.timestamp())
    sql = re.sub(r"\$__timeFilter_ms\(([^)]+)\)",
                 lambda m: f"{m[1]} >= fromUnixTimestamp64Milli({f * 1000}) "
                           f"AND {m[1]} <= fromUnixTimestamp64Milli({t * 1000})", sql)
    sql = re.sub(r"\$__timeFilter\(([^)]+)\)",
                 lambda m: f"{m[1]} >= toDateTime({f}) AND {m[1]} <= toDateTime({t})", sql)
    sql = re.sub(r"\$__timeInterval_ms\(([^)]+)\)",
                 lambda m: f"toStartOfInterval(toDateTime64({m[1]}, 3), INTERVAL {interval_s * 1000} millisecond)", sql)
    sql = re.sub(r"\$__timeInterval\(([^)]+)\)",
                 lambda m: f"toStartOfInterval(toDateTime({m[1]}), INTERVAL {interval_s} second)", sql)
    sql = sql.replace("$__fromTime_ms", f"fromUnixTimestamp64Milli({f * 1000})")
    sql = sql.replace("$__toTime_ms", f"fromUnixTimestamp64Milli({t * 1000})")
    sql = sql.replace("$__fromTime", f"toDateTime({f})").replace("$__toTime", f"toDateTime({t})")
    sql = sql.replace("$__interval_s", str(interval_s))
    for name, values in variables.items():
        quoted = ",".join("'" + v.replace("'", "\\'") + "'" for v in values)
        sql = sql.replace(f"${{{name}:singlequote}}", quoted)
        sql = sql.replace(f"${{{name}:csv}}", ",".join(values))
        sql = re.sub(rf"\$\{{{name}\}}|\${name}\b", quoted.replace("\\", "\\\\"), sql)
    assert "$" not in sql, f"unexpanded macro or variable in:\n{sql}"
    return sql


# --------------------------------------------------------------------------------------------
# Seeded facts: 3 queues, 6 agents in 2 teams, 30-minute intervals over the last 5 hours


def contact(call_id: str, segment: int, offered: datetime, queue: str, outcome: str, *, agent: str = "",
            queue_s: float = 0.0, talk_s: float = 0.0, hold_s: float = 0.0, acw_s: float = 0.0,
            short: bool = False, transfer: str = "", resolved: bool = False, caller: str = "",
            topic: str = "billing") -> list[Any]:
    answered = outcome == "answered"
    answered_at = offered + timedelta(seconds=queue_s) if answered else None
    ended_at = offered + timedelta(seconds=queue_s + talk_s + hold_s)
    row = {
        "call_id": call_id, "segment": segment, "version": 1, "interval_start": interval_start(offered),
        "offered_at": offered, "answered_at": answered_at, "ended_at": ended_at, "queue_id": queue,
        "agent_id": agent, "team_id": TEAM_OF.get(agent, ""), "call_type": "inbound",
        "caller_hash": caller or f"caller-{call_id}", "priority": 0, "outcome": outcome, "ivr_s": 8.0,
        "queue_s": queue_s, "ring_s": 7.0 if answered else 0.0, "talk_s": talk_s, "hold_s": hold_s,
        "acw_s": acw_s, "hold_count": 1 if hold_s else 0, "queued": 1 if queue_s > 0 else 0,
        "short_abandon": int(short), "transfer_kind": transfer, "disposition_code": "done" if answered else "",
        "resolved": int(resolved), "hard_call": 0, "topic": topic, "timed_out": 0,
    }
    return [row[c] for c in CONTACT_COLUMNS]


SETTINGS = {"q_sales": (20.0, 80.0, 20.0), "q_support": (30.0, 90.0, 15.0)}  # T, goal %, short-abandon s
DEFAULT_SETTINGS = (20.0, 80.0, 20.0)  # the KPI stream's defaults (80 % in 20 s) for q_billing
TEAM_GOALS = {"adherence": 90.0, "transfer_rate": 10.0, "attendance_rate": 95.0, "agent_attrition_annualised": 25.0,
              "average_acw": 50.0}


def seed(client: Client) -> list[dict[str, Any]]:
    """Seeds the facts; returns the contacts (column -> value)."""
    apply_migrations(client)
    base = interval_start(NOW) - timedelta(hours=5)
    rows: list[list[Any]] = []
    n = 0
    moments = [base + timedelta(minutes=30 * i + 2) for i in range(10)]
    moments += [NOW - timedelta(minutes=m) for m in (3, 8, 20, 45)]  # the wallboard's last minutes (none in the future)
    for k, moment in enumerate(moments):
        for qi, queue in enumerate(QUEUES):
            agent, other = AGENTS[(k + qi) % 6], AGENTS[(k + qi + 3) % 6]
            t = moment + timedelta(seconds=qi)
            calls: list[tuple[str, dict[str, Any]]] = [
                ("answered", {"queue_s": 5.0, "talk_s": 240.0, "hold_s": 30.0, "acw_s": 45.0, "resolved": True}),
                ("answered", {"queue_s": 25.0, "talk_s": 180.0, "acw_s": 60.0, "resolved": k % 2 == 0}),
                ("answered", {"queue_s": 70.0, "talk_s": 300.0, "hold_s": 60.0, "acw_s": 30.0}),
                ("abandoned", {"queue_s": 45.0}),
                ("abandoned", {"queue_s": 4.0, "short": True}),
                ("blocked", {}),
                ("ivr_handled", {}),
            ]
            for j, (outcome, extra) in enumerate(calls):
                n += 1
                who = agent if outcome == "answered" else ""
                rows.append(contact(f"c{n}", 0, t + timedelta(seconds=20 * j), queue, outcome, agent=who, **extra))
            # A warm transfer: two legs, the call counted once; the caller calls again on the same topic.
            n += 1
            rows.append(contact(f"c{n}", 0, t, queue, "answered", agent=agent, queue_s=12.0, talk_s=120.0,
                                acw_s=20.0, transfer="warm", caller=f"repeat-{k}"))
            rows.append(contact(f"c{n}", 1, t, queue, "answered", agent=other, queue_s=12.0, talk_s=200.0,
                                acw_s=40.0, resolved=True, caller=f"repeat-{k}"))
            n += 1
            rows.append(contact(f"c{n}", 0, t + timedelta(seconds=100), queue, "answered", agent=other, queue_s=8.0,
                                talk_s=90.0, acw_s=15.0, resolved=True, caller=f"repeat-{k}"))
    client.insert("contacts", rows, column_names=CONTACT_COLUMNS)
    client.insert("queue_settings", [[queue, *values] for queue, values in SETTINGS.items()],
                  column_names=["queue_id", "sl_threshold_s", "sl_goal_pct", "short_abandon_s"])
    # t_north has its own goals (team targets); t_south none, so its goal lines and cells stay empty.
    client.insert("team_settings", [["t_north", None, 85.0, json.dumps(TEAM_GOALS)]],
                  column_names=["team_id", "sl_threshold_s", "sl_goal_pct", "kpi_targets"])

    states = []
    plan = [("ready", 400), ("talking", 700), ("hold", 100), ("acw", 200), ("not_ready", 200), ("reserved", 200)]
    for i in range(11):
        slot = base + timedelta(minutes=30 * i)
        for a, agent in enumerate(AGENTS):
            offset = 0
            for state, seconds in plan:
                start = slot + timedelta(seconds=offset)
                if start + timedelta(seconds=seconds) > NOW:
                    break
                states.append([agent, TEAM_OF[agent], state, "break" if state == "not_ready" else "", start,
                               start + timedelta(seconds=seconds), float(seconds), 1 + a])
                offset += seconds
    client.insert("agent_state_intervals", states, column_names=[
        "agent_id", "team_id", "state", "reason", "started_at", "ended_at", "duration_s", "version"])

    shifts, punches = [], []
    for day in range(4):
        start = base - timedelta(days=day)
        for agent in AGENTS:
            shift_id = f"s-{agent}-{day}"
            shifts.append([agent, "sched-1", 1, shift_id, TEAM_OF[agent], start, start + timedelta(hours=8),
                           7 * 3600.0])
            if not (agent == "a6" and day == 1):  # one absence
                punches.append([f"p-{shift_id}", agent, "in", shift_id, start - timedelta(minutes=5)])
                punches.append([f"q-{shift_id}", agent, "out", shift_id, start + timedelta(hours=8)])
    client.insert("hr_shifts", shifts, column_names=[
        "employee_id", "schedule_id", "schedule_version", "shift_id", "team_id", "shift_start", "shift_end",
        "on_phone_s"])
    client.insert("hr_attendance", punches, column_names=["event_id", "employee_id", "kind", "shift_id",
                                                          "occurred_at"])

    employment = [[f"h-{a}", a, "hired", "agent", TEAM_OF[a], "lead-1", 1.0, "", 0, NOW - timedelta(days=400)]
                  for a in AGENTS]
    employment += [["h-a7", "a7", "hired", "agent", "t_south", "lead-2", 1.0, "", 0, NOW - timedelta(days=200)],
                   ["l-a7", "a7", "left", "agent", "t_south", "lead-2", 1.0, "pay", 1, NOW - timedelta(days=2)],
                   ["h-a8", "a8", "hired", "agent", "t_north", "lead-1", 0.5, "", 0, NOW - timedelta(days=30)]]
    client.insert("hr_employment", employment, column_names=[
        "event_id", "employee_id", "kind", "role", "team_id", "team_lead_id", "fte", "exit_reason", "voluntary",
        "occurred_at"])

    evaluations = []
    for i in range(24):
        agent = AGENTS[i % 6]
        contact_at = NOW - timedelta(days=3 * i + 1)
        status = "draft" if i == 5 else "submitted"
        evaluations.append([f"e{i}", 1, agent, TEAM_OF[agent], "qa-1", f"c{i + 1}", "form-1", 1, status,
                            60.0 + (i * 7) % 40, int(i % 11 == 0), int(i == 7), contact_at,
                            contact_at + timedelta(hours=5)])
    client.insert("qa_evaluations", evaluations, column_names=[
        "evaluation_id", "revision", "agent_id", "team_id", "evaluator_id", "call_id", "form_id", "form_version",
        "status", "score", "critical_failed", "calibration", "contact_at", "occurred_at"])
    client.insert("hr_costs", [["k1", "cc-1", NOW - timedelta(days=7), NOW, 5000.0, "EUR", "payroll", NOW]],
                  column_names=["entry_id", "cost_center_id", "period_start", "period_end", "amount", "currency",
                                "category", "occurred_at"])
    return [dict(zip(CONTACT_COLUMNS, row, strict=True)) for row in rows]


SEEDED_VARIABLES = {"queue": QUEUES, "team": list(TEAMS), "agent": AGENTS}


# --------------------------------------------------------------------------------------------


def test_committed_json_is_the_builders_output() -> None:
    rendered = load_builder().render()
    committed = {p.name: p.read_text() for p in (GRAFANA / "dashboards").glob("*.json")}
    assert committed == rendered, "deploy/grafana/dashboards is stale: run `uv run python deploy/grafana/build.py`"


def test_the_helm_chart_ships_the_same_dashboards() -> None:
    """Helm reads only files inside the chart: build.py writes its copy too, and this fails when they differ."""
    chart = GRAFANA.parent / "helm" / "callstream" / "dashboards"
    shipped = {p.name: p.read_text() for p in chart.glob("*.json")}
    committed = {p.name: p.read_text() for p in (GRAFANA / "dashboards").glob("*.json")}
    assert shipped == committed, "the chart's dashboards differ: run `uv run python deploy/grafana/build.py`"


def test_five_dashboards_on_the_clickhouse_plugin() -> None:
    found = dashboards()
    assert len(found) == 5
    for name, d in found.items():
        names = [v["name"] for v in d["templating"]["list"]]
        assert names[0] == "datasource", name
        assert d["templating"]["list"][0]["query"] == "grafana-clickhouse-datasource"
        for panel in panels(d):
            if panel["type"] == "row":
                continue
            assert panel["datasource"] == {"type": "grafana-clickhouse-datasource", "uid": "${datasource}"}
            for target in panel["targets"]:
                assert target["editorType"] == "sql" and target["rawSql"]
                assert (target["format"], target["queryType"]) in {(0, "timeseries"), (1, "table")}
                for var in re.findall(r"\$\{(\w+)[:}]", target["rawSql"]):
                    assert var in names, f"{name}/{panel['title']}: ${var} is not a dashboard variable"


def test_every_panel_query_returns_rows(clickhouse: Client) -> None:
    seed(clickhouse)
    failures: list[str] = []
    ran = 0
    for name, d in dashboards().items():
        for variable in d["templating"]["list"]:
            if variable["type"] == "query":
                sql = expand(variable["query"], start=TIME_FROM, end=TIME_TO, interval_s=60,
                             variables=SEEDED_VARIABLES)
                if not clickhouse.query(sql).result_rows:
                    failures.append(f"{name}: variable ${variable['name']} lists nothing")
        for panel in panels(d):
            for target in panel.get("targets", []):
                sql = expand(target["rawSql"], start=TIME_FROM, end=TIME_TO, interval_s=interval_seconds(panel),
                             variables=SEEDED_VARIABLES)
                ran += 1
                try:
                    result = clickhouse.query(sql)
                except Exception as exc:
                    failures.append(f"{name} / {panel['title']}: {exc}\n{sql}")
                    continue
                rows = result.result_rows
                if not rows:
                    failures.append(f"{name} / {panel['title']}: no rows")
                elif all(row[-1] is None for row in rows):
                    failures.append(f"{name} / {panel['title']}: only NULL in {result.column_names[-1]}")
    assert ran >= 40
    assert not failures, "\n\n".join(failures)


def test_queue_view_counts_like_the_reference_counters(clickhouse: Client) -> None:
    seed(clickhouse)
    start, end = interval_start(NOW) - timedelta(days=1), TIME_TO
    for queue in QUEUES:
        q = KpiQuery(scope="queue", scope_id=queue, grain="day", start=start, end=end)
        reference = Rollup.sum(Rollup.from_mapping(r) for r in run(clickhouse, contact_counters_sql(q), q))
        result = clickhouse.query(
            "SELECT sum(offered), sum(answered), sum(answered_within_t), sum(abandoned), sum(short_abandons), "
            "sum(blocked), sum(received), sum(sum_queue_s_answered), sum(answered_legs), sum(sum_acw_s), "
            "sum(resolved_no_repeat), sum(sum_rings) "
            "FROM v_queue_30m WHERE queue_id = {q:String} AND interval_start >= {s:DateTime} "
            "AND interval_start < {e:DateTime}", parameters={"q": queue, "s": start, "e": end})
        row = result.result_rows[0]
        view = Rollup(offered=row[0], answered=row[1], answered_within_t=row[2], abandoned=row[3],
                      short_abandons=row[4], blocked=row[5], received=row[6], sum_queue_s_answered=row[7],
                      answered_legs=row[8], sum_acw_s=row[9], resolved_no_repeat=row[10], sum_rings=row[11])
        for field in ("offered", "answered", "answered_within_t", "abandoned", "short_abandons", "blocked",
                      "received", "sum_queue_s_answered", "answered_legs", "sum_acw_s", "resolved_no_repeat",
                      "sum_rings"):
            assert getattr(view, field) == getattr(reference, field), (queue, field)
        assert service_level(view) == service_level(reference)
        assert abandon_rate(view) == abandon_rate(reference)
        assert reference.offered > 0 and reference.short_abandons > 0 and reference.resolved_no_repeat > 0


def _panels_titled(title: str, dashboard: str) -> list[dict[str, Any]]:
    return [p for p in panels(dashboards()[dashboard]) if p.get("title") == title]


def _run_panel(clickhouse: Client, panel: dict[str, Any]) -> list[dict[str, Any]]:
    sql = expand(panel["targets"][0]["rawSql"], start=TIME_FROM, end=TIME_TO, interval_s=interval_seconds(panel),
                 variables=SEEDED_VARIABLES)
    result = clickhouse.query(sql)
    return [dict(zip(result.column_names, row, strict=True)) for row in result.result_rows]


def test_service_level_panels_take_each_queues_threshold_and_goal(clickhouse: Client) -> None:
    """The per-queue T and goal of queue_settings (defaults for a queue without settings) in the real-time
    figures and the goal lines; the expected service level from the seeded contacts by kpis.md row 21."""
    contacts = seed(clickhouse)
    last_30 = [c for c in contacts if c["segment"] == 0 and TIME_TO - timedelta(minutes=30) < c["offered_at"] <= TIME_TO
               and c["outcome"] not in ("blocked", "ivr_handled", "ivr_abandoned")]
    expected: dict[str, tuple[float, float, float]] = {}
    weights: dict[str, int] = {}
    for queue in QUEUES:
        t, goal, _ = SETTINGS.get(queue, DEFAULT_SETTINGS)
        calls = [c for c in last_30 if c["queue_id"] == queue]
        counted = len(calls) - sum(c["outcome"] == "abandoned" and c["short_abandon"] for c in calls)
        within = sum(c["outcome"] == "answered" and c["queue_s"] <= t for c in calls)
        expected[queue] = (t, goal, 100 * within / counted)
        weights[queue] = counted
    (table,) = _panels_titled("Per queue, last 30 minutes", "realtime-operations.json")
    got = {r["queue"]: (r["sl_threshold_s"], r["sl_goal_pct"], r["service_level_pct"])
           for r in _run_panel(clickhouse, table)}
    assert got.keys() == expected.keys()
    for queue, values in expected.items():
        assert got[queue] == pytest.approx(values, abs=0.05), queue  # the panel rounds to 0.1
    assert expected["q_support"][2] != expected["q_sales"][2]  # the seeded T of 30 s makes a difference
    (stat_30,) = _panels_titled("Service level (30 min)", "realtime-operations.json")
    (row,) = _run_panel(clickhouse, stat_30)
    goal = sum(expected[q][1] * weights[q] for q in QUEUES) / sum(weights.values())
    assert row["goal"] == pytest.approx(goal, abs=0.05)
    series = _panels_titled("Service level (answered within T / (offered − short abandons))", "queue-performance.json")
    goals = {(r["queue_id"], r["sl_goal"]) for r in _run_panel(clickhouse, series[0])}
    assert goals == {(q, SETTINGS.get(q, DEFAULT_SETTINGS)[1]) for q in QUEUES}


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _overlap_s(start: datetime, end: datetime, slot: datetime) -> float:
    start, end = _utc(start), _utc(end)
    return max(0.0, (min(end, slot + timedelta(minutes=30)) - max(start, slot)).total_seconds())


def test_roster_panel_sets_scheduled_against_staffed_agents_calls_and_service_level(clickhouse: Client) -> None:
    """The workforce dashboard's per-interval table: each figure recomputed here from the seeded rows
    (shifts, state intervals, contacts) read back from ClickHouse, not from the views the panel reads."""
    contacts = seed(clickhouse)
    shifts = clickhouse.query("SELECT shift_start, shift_end, on_phone_s FROM hr_shifts FINAL").result_rows
    states = clickhouse.query("SELECT state, started_at, ended_at FROM agent_state_intervals FINAL").result_rows
    (table,) = _panels_titled("Roster against staffing, calls and service level per interval", "workforce.json")
    rows = _run_panel(clickhouse, table)
    assert rows, "no intervals"
    checked_calls = 0
    for row in rows:
        slot = _utc(row["time"])
        # A shift's on-phone time spread evenly over its length; the slot's share ÷ 30 minutes.
        scheduled = sum(on_phone * _overlap_s(start, end, slot) / (end - start).total_seconds()
                        for start, end, on_phone in shifts) / 1800
        staffed = sum(_overlap_s(s, e, slot) for state, s, e in states if state != "logged_out") / 1800
        on_phone = sum(_overlap_s(s, e, slot) for state, s, e in states
                       if state in ("ready", "reserved", "talking", "hold", "acw")) / 1800
        calls = [c for c in contacts if c["segment"] == 0 and slot <= c["offered_at"] < slot + timedelta(minutes=30)
                 and c["outcome"] not in ("blocked", "ivr_handled", "ivr_abandoned")]
        counted = len(calls) - sum(c["outcome"] == "abandoned" and c["short_abandon"] for c in calls)
        within = sum(c["outcome"] == "answered" and c["queue_s"] <= SETTINGS.get(c["queue_id"], DEFAULT_SETTINGS)[0]
                     for c in calls)
        assert row["scheduled_agents"] == pytest.approx(scheduled, abs=0.005), slot
        assert row["staffed_agents"] == pytest.approx(staffed, abs=0.005), slot
        assert row["on_phone_agents"] == pytest.approx(on_phone, abs=0.005), slot
        assert row["offered_calls"] == len(calls), slot
        if counted:
            checked_calls += 1
            assert row["service_level_pct"] == pytest.approx(100 * within / counted, abs=0.05), slot
        else:
            assert row["service_level_pct"] is None, slot
    # The seed has intervals with shifts and agents (on shift, under it: 6 agents, 7 h of 8 on the phone) and calls.
    assert any(r["scheduled_agents"] == pytest.approx(6 * 7 / 8) and r["staffed_agents"] > 0 for r in rows)
    assert checked_calls >= 10
    # The team variable narrows the agents: one team, half the seeded agents.
    north = expand(table["targets"][0]["rawSql"], start=TIME_FROM, end=TIME_TO, interval_s=1800,
                   variables={**SEEDED_VARIABLES, "team": ["t_north"], "agent": TEAMS["t_north"]})
    result = clickhouse.query(north)
    by_slot = {r[0]: dict(zip(result.column_names, r, strict=True)) for r in result.result_rows}
    for row in rows:
        assert by_slot[row["time"]]["scheduled_agents"] == pytest.approx(row["scheduled_agents"] / 2, abs=0.01)


def test_team_panels_show_the_teams_goal_where_one_is_set(clickhouse: Client) -> None:
    """Every team or agent panel with a `*_goal` column gives t_north's seeded goal for its KPI and nothing
    for t_south, which has no team targets."""
    seed(clickhouse)
    checked: set[str] = set()
    for name in ("agent-performance.json", "workforce.json"):
        for panel in panels(dashboards()[name]):
            if "team_settings" not in json.dumps(panel.get("targets", [])):
                continue
            rows = _run_panel(clickhouse, panel)
            goal_columns = [c for c in rows[0] if c.endswith("_goal")]
            assert goal_columns, panel["title"]
            for row in rows:
                team = row.get("team", row.get("team_id"))
                for column in goal_columns:
                    kpi = column.removesuffix("_goal")
                    assert row[column] == (TEAM_GOALS[kpi] if team == "t_north" else None), (panel["title"], row)
                    checked.add(kpi)
            assert {row.get("team", row.get("team_id")) for row in rows} == set(TEAMS), panel["title"]
    assert checked == set(TEAM_GOALS)
