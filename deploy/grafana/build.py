"""Callstream's Grafana dashboards as code (grafana-foundation-sdk builders).

    uv run python deploy/grafana/build.py          # rewrite deploy/grafana/dashboards/*.json
    uv run python deploy/grafana/build.py --check  # exit 1 when the committed JSON is stale

Every panel queries ClickHouse through the `grafana-clickhouse-datasource` plugin (picked with the
`${datasource}` variable) in raw SQL with the plugin's macros ($__timeFilter, $__fromTime, $__toTime,
$__timeInterval, $__interval_s). Panels read the views of the KPI stream's migration
`002_dashboard_views.sql`, which hold raw counters counted as `callstream_kpi.adapters.kpi_queries` does;
the KPI formulas are rendered from `callstream_core.kpi_definitions.FORMULAS` (`kpi()`: sum the counters
over the rows asked for, then divide; a zero denominator gives NULL, never a fake 0), so a KPI's definition
changes here when it changes there (tests/dashboards fails on JSON not rebuilt).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import stat, table, timeseries
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as models

from callstream_core.kpi_definitions import NOT_OFFERED_SQL, SL_GOAL_PCT, SL_THRESHOLD_S, formula

PLUGIN = "grafana-clickhouse-datasource"
DATASOURCE = models.DataSourceRef(type_val=PLUGIN, uid="${datasource}")
OUT_DIR = Path(__file__).resolve().parent / "dashboards"
# The Helm chart's copy: helm packages only files inside the chart (no symlinks out of it), so build.py writes
# the same JSON there and tests/dashboards fails when the two differ.
CHART_DIR = Path(__file__).resolve().parents[1] / "helm" / "callstream" / "dashboards"
Format = Literal["table", "time_series"]
# The plugin's (v4) Format enum: TIMESERIES = 0, TABLE = 1.
FORMAT_CODES: dict[str, int] = {"time_series": 0, "table": 1}
QUERY_TYPES: dict[str, str] = {"time_series": "timeseries", "table": "table"}


# --------------------------------------------------------------------------------------------
# The ClickHouse plugin's query (the SDK ships no builder for it): a Dataquery variant + builder.


class ClickHouseQuery(cogvariants.Dataquery):
    def __init__(self, ref_id: str, raw_sql: str, fmt: Format) -> None:
        self.ref_id = ref_id
        self.raw_sql = raw_sql
        self.fmt = fmt

    def to_json(self) -> dict[str, object]:
        return {
            "datasource": DATASOURCE.to_json(),
            "editorType": "sql",
            "format": FORMAT_CODES[self.fmt],
            "queryType": QUERY_TYPES[self.fmt],
            "rawSql": self.raw_sql.strip(),
            "refId": self.ref_id,
        }


class ClickHouseQueryBuilder(cogbuilder.Builder[ClickHouseQuery]):
    def __init__(self, raw_sql: str, fmt: Format = "table", ref_id: str = "A") -> None:
        self._internal = ClickHouseQuery(ref_id, raw_sql, fmt)

    def build(self) -> ClickHouseQuery:
        return self._internal


# --------------------------------------------------------------------------------------------
# Variables


def datasource_variable() -> dash.DatasourceVariable:
    return dash.DatasourceVariable("datasource").label("ClickHouse").type(PLUGIN)


def query_variable(name: str, label: str, sql: str) -> dash.QueryVariable:
    """Multi-value with All; panels use `IN (${name:singlequote})`. The plugin takes the query as raw SQL."""
    return (dash.QueryVariable(name).label(label).datasource(DATASOURCE).query(" ".join(sql.split()))
            .multi(True).include_all(True).refresh(models.VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(models.VariableSort.ALPHABETICAL_ASC)
            .current(models.VariableOption(selected=True, text=["All"], value=["$__all"])))


QUEUE_VAR = query_variable("queue", "Queue", "SELECT DISTINCT queue_id FROM v_queue_30m WHERE queue_id != '' "
                                             "ORDER BY queue_id")
TEAM_VAR = query_variable("team", "Team", "SELECT DISTINCT team_id FROM v_agent_states_30m WHERE team_id != '' "
                                          "ORDER BY team_id")
AGENT_VAR = query_variable("agent", "Agent", "SELECT DISTINCT agent_id FROM v_agent_states_30m "
                                             "WHERE team_id IN (${team:singlequote}) ORDER BY agent_id")

# --------------------------------------------------------------------------------------------
# Panels


def _div(num: str, den: str) -> str:
    return f"round(({num}) / nullIf({den}, 0), 1)"


def summed(counter: str) -> str:
    """A counter of the views summed over the rows asked for (counters add)."""
    return f"sum({counter})"


def kpi(name: str, counter_sql: Callable[[str], str] = summed) -> str:
    """KPI `name` as its formula in `callstream_core.kpi_definitions` (the one place a KPI is defined) over the
    counters `counter_sql` gives, rounded to 0.1 for display."""
    return f"round({formula(name).sql(counter_sql)}, 1)"


def columns(counter: str) -> str:
    """A counter that is already a column of the query (summed in a subquery)."""
    return counter


class Layout:
    """Numbers panels and targets; one panel = one query."""

    def __init__(self) -> None:
        self.next_id = 1

    def panel(self, kind: Callable[[], Any], title: str, sql: str, fmt: Format, *, w: int, h: int,
              unit: str | None = None, description: str | None = None, interval: str | None = None) -> Any:
        p = (kind().id(self.next_id).title(title).datasource(DATASOURCE)
             .with_target(ClickHouseQueryBuilder(sql, fmt)).span(w).height(h))
        self.next_id += 1
        if unit:
            p = p.unit(unit)
        if description:
            p = p.description(description)
        if interval:
            p = p.interval(interval)
        return p

    def stat(self, title: str, sql: str, *, unit: str | None = None, w: int = 4, h: int = 4,
             description: str | None = None) -> stat.Panel:
        p = self.panel(stat.Panel, title, sql, "table", w=w, h=h, unit=unit, description=description)
        return p.reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]).values(False))

    def series(self, title: str, sql: str, *, unit: str | None = None, w: int = 12, h: int = 8,
               bars: bool = False, description: str | None = None, interval: str = "30m") -> timeseries.Panel:
        p = self.panel(timeseries.Panel, title, sql, "time_series", w=w, h=h, unit=unit,
                       description=description, interval=interval)
        p = (p.legend(common_builders.VizLegendOptions().show_legend(True).display_mode(common.LegendDisplayMode.LIST)
                      .placement(common.LegendPlacement.BOTTOM))
             .tooltip(common_builders.VizTooltipOptions().mode(common.TooltipDisplayMode.MULTI)
                      .sort(common.SortOrder.NONE)))
        if bars:
            p = p.draw_style(common.GraphDrawStyle.BARS).fill_opacity(60)
        return p

    def table(self, title: str, sql: str, *, w: int = 24, h: int = 10,
              description: str | None = None) -> table.Panel:
        return self.panel(table.Panel, title, sql, "table", w=w, h=h, description=description).show_header(True)


def new_dashboard(uid: str, title: str, description: str, time_from: str, refresh: str,
                  variables: list[cogbuilder.Builder[models.VariableModel]]) -> dash.Dashboard:
    d = (dash.Dashboard(title).uid(uid).description(description).tags(["callstream", "kpi"])
         .timezone("browser").time(time_from, "now").refresh(refresh).editable()
         .tooltip(models.DashboardCursorSync.CROSSHAIR))
    for v in [datasource_variable(), *variables]:
        d = d.with_variable(v)
    return d


# --------------------------------------------------------------------------------------------
# 1. Real-time operations (wallboard). The real-time topic is not in ClickHouse: figures come from
# completed contacts over the last minutes before the dashboard's end time ($__toTime, now when live).

# Each call with its queue's SL threshold T and goal (queue_settings, written through the KPI API's
# PUT /v1/queues/{id}/targets); a queue without settings has the KPI stream's defaults, 80 % in 20 s.
REALTIME_CALLS = f"""
WITH t AS (
    SELECT c.*, if(s.queue_id = '', {SL_THRESHOLD_S:g}, s.sl_threshold_s) AS sl_t,
           if(s.queue_id = '', {SL_GOAL_PCT:g}, s.sl_goal_pct) AS sl_goal
    FROM contacts AS c FINAL
    LEFT JOIN (SELECT queue_id, sl_threshold_s, sl_goal_pct FROM queue_settings FINAL) AS s ON s.queue_id = c.queue_id
    WHERE c.segment = 0 AND c.offered_at > $__toTime - INTERVAL {{minutes}} MINUTE AND c.offered_at <= $__toTime
      AND c.queue_id IN (${{{{queue:singlequote}}}})
      AND c.outcome NOT IN {NOT_OFFERED_SQL}
)
SELECT {{select}}
FROM t
"""

# The KPI counters over the offered calls of `t`.
REALTIME_COUNTERS = {
    "offered": "count()",
    "answered": "countIf(outcome = 'answered')",
    "answered_within_t": "countIf(outcome = 'answered' AND queue_s <= sl_t)",
    "abandoned": "countIf(outcome = 'abandoned')",
    "short_abandons": "countIf(outcome = 'abandoned' AND short_abandon)",
    "sum_queue_s_answered": "sumIf(queue_s, outcome = 'answered')",
}
RT_SL = kpi("service_level", REALTIME_COUNTERS.__getitem__)
# The goal of the selected queues: their goals weighted as the service level weighs their calls (offered −
# short abandons), so the mix meets it whenever every queue meets its own; one queue: its goal.
RT_GOAL = _div("sumIf(sl_goal, NOT (outcome = 'abandoned' AND short_abandon))",
               "count() - countIf(outcome = 'abandoned' AND short_abandon)")
RT_ASA = kpi("asa", REALTIME_COUNTERS.__getitem__)
RT_ABANDON = kpi("abandon_rate", REALTIME_COUNTERS.__getitem__)


def realtime() -> dash.Dashboard:
    lay = Layout()
    d = new_dashboard(
        "callstream-realtime", "Callstream · Real-time operations",
        "Wallboard: service level, ASA and abandon rate over the last 15 / 30 / 60 minutes, calls and agents now. "
        "Computed from completed contacts in ClickHouse (the real-time topic is not stored there), so a call "
        "shows once it has ended.", "now-1h", "10s", [QUEUE_VAR])
    for minutes in (15, 30, 60):
        d = d.with_row(dash.Row(f"Last {minutes} minutes"))
        sql = REALTIME_CALLS.format(minutes=minutes, select=f"{RT_GOAL} AS goal, {RT_SL} AS service_level")
        d = d.with_panel(lay.stat(
            f"Service level ({minutes} min)", sql, unit="percent", w=6,
            description="Each call against its queue's T, beside the goal of the selected queues (queue_settings; "
                        "default 80 % in 20 s).").color_mode(common.BigValueColorMode.NONE))
        for title, expr, unit, w in (("ASA", RT_ASA, "s", 6), ("Abandon rate", RT_ABANDON, "percent", 6)):
            sql = REALTIME_CALLS.format(minutes=minutes, select=f"{expr} AS value")
            d = d.with_panel(lay.stat(f"{title} ({minutes} min)", sql, unit=unit, w=w))
        sql = REALTIME_CALLS.format(minutes=minutes, select="count() AS offered, countIf(outcome = 'answered') "
                                                            "AS answered, countIf(outcome = 'abandoned') AS abandoned")
        d = d.with_panel(lay.stat(f"Calls ({minutes} min)", sql, w=6))
    d = d.with_row(dash.Row("Now"))
    d = d.with_panel(lay.stat("Calls in the last 5 minutes", REALTIME_CALLS.format(
        minutes=5, select="count() AS offered"), w=6,
        description="Offered calls that ended in the last 5 minutes (calls in progress are not in ClickHouse)."))
    d = d.with_panel(lay.stat("Longest wait (last 15 min)", REALTIME_CALLS.format(
        minutes=15, select="max(queue_s) AS longest_wait"), unit="s", w=6))
    d = d.with_panel(lay.table("Agents by last known state", """
SELECT state, count() AS agents
FROM (
    SELECT agent_id, argMax(state, started_at) AS state
    FROM agent_state_intervals FINAL
    WHERE started_at > $__toTime - INTERVAL 1 HOUR AND started_at <= $__toTime
    GROUP BY agent_id
)
GROUP BY state
ORDER BY agents DESC
""", w=12, h=8, description="Last closed state interval of each agent seen in the last hour."))
    per_queue = f"""queue_id AS queue, count() AS offered, countIf(outcome = 'answered') AS answered,
       any(sl_t) AS sl_threshold_s, any(sl_goal) AS sl_goal_pct, {RT_SL} AS service_level_pct,
       {RT_ASA} AS asa_s, {RT_ABANDON} AS abandon_rate_pct"""
    d = d.with_panel(lay.table("Per queue, last 30 minutes", REALTIME_CALLS.format(minutes=30, select=per_queue)
                               + "GROUP BY queue_id\nORDER BY queue_id\n", w=12, h=8))
    return d


# --------------------------------------------------------------------------------------------
# 2. Queue performance by 30-minute interval

QUEUE_FILTER = "$__timeFilter(interval_start) AND queue_id IN (${queue:singlequote})"


def queue_series(expr: str, alias: str) -> str:
    return f"""
SELECT $__timeInterval(interval_start) AS time, queue_id, {expr} AS {alias}{SL_GOAL if alias == "service_level" else ""}
FROM v_queue_30m
WHERE {QUEUE_FILTER}
GROUP BY time, queue_id
ORDER BY time, queue_id
"""


# The service level's goal line: each queue's goal (queue_settings, default 80 %), drawn dashed beside its SL.
SL_GOAL = ", any(sl_goal_pct) AS sl_goal"
DASHED = models.DynamicConfigValue("custom.lineStyle", {"fill": "dash", "dash": [10, 10]})

QUEUE_KPIS: list[tuple[str, str, str, str | None, bool]] = [
    # title, expression over summed v_queue_30m counters, alias, unit, bars
    ("Service level (answered within T / (offered − short abandons))", kpi("service_level"), "service_level",
     "percent", False),
    ("ASA (queue time of answered calls)", kpi("asa"), "asa", "s", False),
    ("Abandon rate ((abandoned − short) / (offered − short))", kpi("abandon_rate"), "abandon_rate", "percent",
     False),
    ("Answered rate", kpi("answered_rate"), "answered_rate", "percent", False),
    ("Offered calls", "sum(offered)", "offered", "short", True),
    ("Total calls (received = offered + blocked + IVR)", formula("total_calls").sql(summed), "received", "short",
     True),
    ("Average queue time (queued calls)", kpi("average_queue_time"), "avg_queue_time", "s", False),
    ("Queued rate", kpi("queued_rate"), "queued_rate", "percent", False),
    ("Average time to abandon", kpi("average_time_to_abandon"), "avg_time_to_abandon", "s", False),
    ("Blocked rate", kpi("blocked_rate"), "blocked_rate", "percent", False),
    ("AHT (talk + hold + ACW per answered leg)", kpi("average_handle_time"), "aht", "s", False),
    ("Average rings to answer", kpi("average_rings_to_answer"), "rings", "short", False),
    ("Transfer rate", kpi("transfer_rate"), "transfer_rate", "percent", False),
    ("First-call resolution", kpi("first_call_resolution"), "fcr", "percent", False),
]


def queue_performance() -> dash.Dashboard:
    lay = Layout()
    d = new_dashboard(
        "callstream-queues", "Callstream · Queue performance by 30-minute interval",
        "Call KPIs per queue at the 30-minute base grain (coarser when the time range asks for it). "
        "Call-level figures count each call once (segment 0); T and the goal come from queue_settings "
        "(default 80 % in 20 s).", "now-24h", "1m", [QUEUE_VAR])
    for title, expr, alias, unit, bars in QUEUE_KPIS:
        panel = lay.series(title, queue_series(expr, alias), unit=unit, bars=bars)
        if alias == "service_level":
            panel = panel.override_by_regexp("^sl_goal.*", [DASHED])
        d = d.with_panel(panel)
    d = d.with_panel(lay.table("All call KPIs per queue and interval", f"""
SELECT interval_start, queue_id,
       sum(received) AS received_calls, sum(offered) AS offered_calls, sum(answered) AS answered_calls,
       sum(abandoned) AS abandoned_calls, sum(short_abandons) AS short_abandoned_calls,
       sum(blocked) AS blocked_calls, any(sl_threshold_s) AS sl_threshold, any(sl_goal_pct) AS sl_goal,
       {QUEUE_KPIS[0][1]} AS service_level_pct,
       {QUEUE_KPIS[1][1]} AS asa_s,
       {QUEUE_KPIS[2][1]} AS abandon_rate_pct,
       {QUEUE_KPIS[3][1]} AS answered_rate_pct,
       {QUEUE_KPIS[6][1]} AS avg_queue_time_s,
       {QUEUE_KPIS[10][1]} AS aht_s,
       {QUEUE_KPIS[13][1]} AS fcr_pct
FROM v_queue_30m
WHERE {QUEUE_FILTER}
GROUP BY interval_start, queue_id
ORDER BY interval_start DESC, queue_id
""", h=12))
    return d


# --------------------------------------------------------------------------------------------
# 3. Agent performance

AGENT_FILTER = ("$__timeFilter(interval_start) AND team_id IN (${team:singlequote}) "
                "AND agent_id IN (${agent:singlequote})")
AGENT_TABLE = f"""
SELECT a.agent_id AS agent, agent_team AS team, answered_legs AS calls,
       {kpi('average_handle_time', columns)} AS aht_s,
       {kpi('average_acw', columns)} AS acw_s,
       {kpi('average_hold_time', columns)} AS hold_s,
       {kpi('average_talk_time', columns)} AS talk_s,
       {kpi('calls_per_hour', columns)} AS calls_per_hour,
       {kpi('occupancy', columns)} AS occupancy_pct,
       {kpi('transfer_rate', columns)} AS transfer_rate_pct,
       {kpi('first_call_resolution', columns)} AS fcr_pct
FROM (
    SELECT agent_id, any(team_id) AS agent_team, sum(answered_legs) AS answered_legs, sum(sum_talk_s) AS sum_talk_s,
           sum(sum_hold_s) AS sum_hold_s, sum(sum_acw_s) AS sum_acw_s,
           sum(transferred_blind) AS transferred_blind, sum(transferred_warm) AS transferred_warm,
           sum(answered) AS answered, sum(resolved_no_repeat) AS resolved_no_repeat
    FROM v_agent_30m
    WHERE {AGENT_FILTER}
    GROUP BY agent_id
) AS a
LEFT JOIN (
    SELECT agent_id, sum(logged_in_s) AS logged_in_s, sum(busy_s) AS busy_s, sum(available_idle_s) AS available_idle_s
    FROM v_agent_states_30m
    WHERE {AGENT_FILTER}
    GROUP BY agent_id
) AS s ON s.agent_id = a.agent_id
ORDER BY agent
"""


def agent_series(view: str, group: str, expr: str, alias: str) -> str:
    return f"""
SELECT $__timeInterval(interval_start) AS time, {group}, {expr} AS {alias}
FROM {view}
WHERE {AGENT_FILTER}
GROUP BY time, {group}
ORDER BY time, {group}
"""


def with_team_goal(sql: str, kpis: list[str], columns: list[str], order: str, team: str = "team_id") -> str:
    """`sql`'s rows beside their team's own goal for each of `kpis` as `{kpi}_goal` (team_settings, written
    through the KPI API's PUT /v1/teams/{id}/targets or `callstream targets set --team`); NULL where the team set
    none, so a line or cell shows only where a goal is set. `team` is the column of `sql` holding the team."""
    goals = ", ".join(f"JSONExtract(kpi_targets, '{k}', 'Nullable(Float64)') AS {k}_goal" for k in kpis)
    return f"""
SELECT {', '.join(f'v.{c} AS {c}' for c in columns)}, {', '.join(f'g.{k}_goal AS {k}_goal' for k in kpis)}
FROM ({sql.strip()}) AS v
LEFT JOIN (SELECT team_id, {goals} FROM team_settings FINAL) AS g ON g.team_id = v.{team}
ORDER BY {order}
"""


# A team's goal line, drawn dashed beside its figure.
TEAM_GOAL_DASHED = ("^.*_goal.*", [DASHED])


def agent_performance() -> dash.Dashboard:
    lay = Layout()
    d = new_dashboard(
        "callstream-agents", "Callstream · Agent performance",
        "Per agent and team: AHT, ACW, hold, talk, calls per hour, occupancy, transfers, FCR. Agent figures "
        "count every answered leg for its agent; calls per hour and occupancy come from agent states.",
        "now-24h", "1m", [TEAM_VAR, AGENT_VAR])
    d = d.with_panel(lay.table("Agents over the time range", with_team_goal(
        AGENT_TABLE, ["average_acw", "transfer_rate"],
        ["agent", "team", "calls", "aht_s", "acw_s", "hold_s", "talk_s", "calls_per_hour", "occupancy_pct",
         "transfer_rate_pct", "fcr_pct"], "agent", team="team"), h=12,
        description="average_acw_goal / transfer_rate_goal: the agent's team's goals where set (team targets)."))
    d = d.with_panel(lay.series("AHT by agent", agent_series(
        "v_agent_30m", "agent_id", kpi("average_handle_time"), "aht"), unit="s"))
    d = d.with_panel(lay.series("Average ACW by agent", agent_series(
        "v_agent_30m", "agent_id", kpi("average_acw"), "acw"), unit="s"))
    d = d.with_panel(lay.series("Average hold by agent", agent_series(
        "v_agent_30m", "agent_id", kpi("average_hold_time"), "hold"), unit="s"))
    d = d.with_panel(lay.series("Average talk by agent", agent_series(
        "v_agent_30m", "agent_id", kpi("average_talk_time"), "talk"), unit="s"))
    d = d.with_panel(lay.series("Occupancy by team", agent_series(
        "v_agent_states_30m", "team_id", kpi("occupancy"), "occupancy"),
        unit="percent"))
    d = d.with_panel(lay.series("Transfer rate by team (blind + warm)", with_team_goal(agent_series(
        "v_agent_30m", "team_id", kpi("transfer_rate"),
        "transfer_rate"), ["transfer_rate"], ["time", "team_id", "transfer_rate"], "time, team_id"), unit="percent",
        description="Dashed: the team's transfer-rate goal where one is set (team targets).")
        .override_by_regexp(*TEAM_GOAL_DASHED))
    d = d.with_panel(lay.series("First-call resolution by team", agent_series(
        "v_agent_30m", "team_id", kpi("first_call_resolution"), "fcr"), unit="percent"))
    d = d.with_panel(lay.series("Answered legs by agent", agent_series(
        "v_agent_30m", "agent_id", "sum(answered_legs)", "calls"), bars=True))
    return d


# --------------------------------------------------------------------------------------------
# 4. Workforce: adherence, attendance, attrition

PERIOD = "toFloat64(toUnixTimestamp($__fromTime)) AS p_start, toFloat64(toUnixTimestamp($__toTime)) AS p_end"
# Attrition's counters over v_employment and the dashboard's time range (as kpi_queries' period counters).
EMPLOYMENT_COUNTERS = {
    "leavers": "countIf(has_left AND left_at >= p_start AND left_at < p_end)",
    "headcount_fte_s": "sum(fte * greatest(0, least(p_end, if(has_left, left_at, p_end)) "
                       "- greatest(p_start, if(has_hired, hired_at, p_start))))",
    "period_s": "greatest(1, p_end - p_start)",
}
# Attendance's counters over v_attendance_shifts (one row per scheduled shift).
ATTENDANCE_COUNTERS = {"present": "sum(present)", "scheduled": "count()"}
ATTENDANCE = kpi("attendance_rate", ATTENDANCE_COUNTERS.__getitem__)
ATTRITION = f"""
WITH {PERIOD}
SELECT team_id AS team,
       {EMPLOYMENT_COUNTERS['leavers']} AS leavers,
       round({EMPLOYMENT_COUNTERS['headcount_fte_s']} / {EMPLOYMENT_COUNTERS['period_s']}, 2) AS avg_headcount_fte,
       {kpi('agent_attrition', EMPLOYMENT_COUNTERS.__getitem__)} AS attrition_pct,
       {kpi('agent_attrition_annualised', EMPLOYMENT_COUNTERS.__getitem__)} AS attrition_annualised_pct
FROM v_employment
WHERE team_id IN (${{team:singlequote}})
GROUP BY team_id
ORDER BY team_id
"""
ADHERENCE_TABLE = f"""
SELECT agent_id AS agent, any(team_id) AS team,
       round(sum(productive_s) / 3600, 2) AS productive_h, round(sum(scheduled_on_phone_s) / 3600, 2) AS scheduled_h,
       {kpi('adherence')} AS adherence_pct
FROM (
    SELECT interval_start, agent_id, team_id, productive_s, 0 AS scheduled_on_phone_s FROM v_agent_states_30m
    UNION ALL
    SELECT interval_start, agent_id, team_id, 0 AS productive_s, scheduled_on_phone_s FROM v_schedule_30m
)
WHERE {AGENT_FILTER}
GROUP BY agent_id
ORDER BY adherence_pct
"""
ADHERENCE_SERIES = f"""
SELECT $__timeInterval(interval_start) AS time, team_id,
       {kpi('adherence')} AS adherence
FROM (
    SELECT interval_start, agent_id, team_id, productive_s, 0 AS scheduled_on_phone_s FROM v_agent_states_30m
    UNION ALL
    SELECT interval_start, agent_id, team_id, 0 AS productive_s, scheduled_on_phone_s FROM v_schedule_30m
)
WHERE {AGENT_FILTER}
GROUP BY time, team_id
ORDER BY time, team_id
"""
ATTENDANCE_FILTER = ("$__timeFilter(shift_start) AND team_id IN (${team:singlequote}) "
                     "AND agent_id IN (${agent:singlequote})")

# The published roster against the floor, per interval: scheduled agents are the on-phone time of the shifts HR
# published (hr_shifts, spread pro rata over the slots a shift covers, as adherence reads it) ÷ the interval's
# length, i.e. the average number of agents the roster puts on the phones; staffed agents are the logged-in time
# (any state but logged_out) ÷ the same length, on-phone agents the productive part of it (ready, reserved,
# talking, hold, ACW). The agents follow $team/$agent, the calls $queue (shifts carry no queue).
ROSTER_FACTS = f"""
    SELECT interval_start, scheduled_on_phone_s, 0 AS logged_in_s, 0 AS productive_s, 0 AS offered,
           0 AS answered_within_t, 0 AS short_abandons
    FROM v_schedule_30m WHERE {AGENT_FILTER}
    UNION ALL
    SELECT interval_start, 0, logged_in_s, productive_s, 0, 0, 0
    FROM v_agent_states_30m WHERE {AGENT_FILTER}
    UNION ALL
    SELECT interval_start, 0, 0, 0, offered, answered_within_t, short_abandons
    FROM v_queue_30m WHERE {QUEUE_FILTER}"""


def roster_agents(seconds: str) -> str:
    """The three agent figures over an interval of `seconds` (a literal or the plugin's $__interval_s)."""
    return (f"round(sum(scheduled_on_phone_s) / {seconds}, 2) AS scheduled_agents, "
            f"round(sum(logged_in_s) / {seconds}, 2) AS staffed_agents, "
            f"round(sum(productive_s) / {seconds}, 2) AS on_phone_agents")


ROSTER_CALLS = ("sum(offered) AS offered_calls, "
                f"{kpi('service_level')} AS service_level_pct")


def roster_vs_staffing(time: str, columns: str, order: str = "time") -> str:
    return f"""
SELECT {time} AS time, {columns}
FROM ({ROSTER_FACTS}
)
GROUP BY time
ORDER BY {order}
"""


def workforce() -> dash.Dashboard:
    lay = Layout()
    d = new_dashboard(
        "callstream-workforce", "Callstream · Workforce",
        "Adherence = productive logged-in time (ready, reserved, talking, hold, ACW) / scheduled on-phone time; "
        "attendance = agent-shifts with an IN punch / agent-shifts scheduled; attrition = leavers / average FTE "
        "headcount over the time range (annualised too); scheduled agents (the published roster) against staffed "
        "agents, offered calls and service level per interval.", "now-7d", "5m", [TEAM_VAR, AGENT_VAR, QUEUE_VAR])
    d = d.with_panel(lay.stat("Adherence (target ≥ 92 %)", f"""
SELECT {kpi('adherence')} AS adherence
FROM (
    SELECT interval_start, agent_id, team_id, productive_s, 0 AS scheduled_on_phone_s FROM v_agent_states_30m
    UNION ALL
    SELECT interval_start, agent_id, team_id, 0 AS productive_s, scheduled_on_phone_s FROM v_schedule_30m
)
WHERE {AGENT_FILTER}
""", unit="percent", w=8))
    d = d.with_panel(lay.stat("Attendance rate", f"""
SELECT {ATTENDANCE} AS attendance
FROM v_attendance_shifts
WHERE {ATTENDANCE_FILTER}
""", unit="percent", w=8))
    d = d.with_panel(lay.stat("Attrition over the range", f"""
WITH {PERIOD}
SELECT {kpi('agent_attrition', EMPLOYMENT_COUNTERS.__getitem__)} AS attrition
FROM v_employment
WHERE team_id IN (${{team:singlequote}})
""", unit="percent", w=8))
    d = d.with_panel(lay.series("Adherence by team", with_team_goal(
        ADHERENCE_SERIES, ["adherence"], ["time", "team_id", "adherence"], "time, team_id"), unit="percent",
        description="Dashed: the team's adherence goal where one is set (team targets).")
        .override_by_regexp(*TEAM_GOAL_DASHED))
    d = d.with_row(dash.Row("Published roster against staffing"))
    series_time = "$__timeInterval(interval_start)"
    d = d.with_panel(lay.series("Scheduled vs staffed agents", roster_vs_staffing(
        series_time, roster_agents("$__interval_s")), w=12, description=(
        "Scheduled = on-phone time of the published shifts (hr_shifts) ÷ the interval; staffed = logged-in time ÷ "
        "the interval; on phone = productive logged-in time ÷ the interval (averages over the interval).")))
    d = d.with_panel(lay.series("Offered calls and service level", roster_vs_staffing(series_time, ROSTER_CALLS),
                                w=12))
    # The table stays at the 30-minute grain whatever the range, so its divisor is the grain, not $__interval_s.
    d = d.with_panel(lay.table(
        "Roster against staffing, calls and service level per interval",
        roster_vs_staffing("interval_start", f"{roster_agents('1800')}, {ROSTER_CALLS}", order="time DESC"),
        h=12, description=(
            "Per 30-minute interval: scheduled agents from the published roster, staffed and on-phone agents from "
            "agent states ($team, $agent), offered calls and service level of the interval ($queue).")))
    d = d.with_panel(lay.series("Attendance rate by team (by shift start)", with_team_goal(f"""
SELECT $__timeInterval(shift_start) AS time, team_id, {ATTENDANCE} AS attendance
FROM v_attendance_shifts
WHERE {ATTENDANCE_FILTER}
GROUP BY time, team_id
""", ["attendance_rate"], ["time", "team_id", "attendance"], "time, team_id"), unit="percent", interval="1d",
        bars=True, description="Dashed: the team's attendance goal where one is set (team targets).")
        .override_by_regexp(*TEAM_GOAL_DASHED))
    d = d.with_panel(lay.table("Adherence per agent", with_team_goal(
        ADHERENCE_TABLE, ["adherence"], ["agent", "team", "productive_h", "scheduled_h", "adherence_pct"],
        "adherence_pct", team="team"), w=12, description="adherence_goal: the agent's team's goal where set."))
    d = d.with_panel(lay.table("Attendance per team", with_team_goal(f"""
SELECT team_id AS team, count() AS scheduled_shifts, sum(present) AS present_shifts,
       count() - sum(present) AS absent_shifts,
       {ATTENDANCE} AS attendance_pct
FROM v_attendance_shifts
WHERE {ATTENDANCE_FILTER}
GROUP BY team_id
""", ["attendance_rate"], ["team", "scheduled_shifts", "present_shifts", "absent_shifts", "attendance_pct"], "team",
        team="team"), w=12))
    d = d.with_panel(lay.table("Attrition per team", with_team_goal(
        ATTRITION, ["agent_attrition_annualised"], ["team", "leavers", "avg_headcount_fte", "attrition_pct",
                                                  "attrition_annualised_pct"], "team", team="team"), w=12))
    d = d.with_panel(lay.table("Leavers by exit reason", f"""
WITH {PERIOD}
SELECT exit_reason, count() AS leavers
FROM v_employment
WHERE has_left AND left_at >= p_start AND left_at < p_end AND team_id IN (${{team:singlequote}})
GROUP BY exit_reason
ORDER BY leavers DESC
""", w=12))
    return d


# --------------------------------------------------------------------------------------------
# 5. QA

QA_FILTER = "$__timeFilter(contact_at) AND team_id IN (${team:singlequote}) AND agent_id IN (${agent:singlequote})"


def qa() -> dash.Dashboard:
    lay = Layout()
    d = new_dashboard(
        "callstream-qa", "Callstream · Quality (monitoring score)",
        "Monitoring score = mean QA evaluation score (0–100) of submitted evaluations, calibration sessions left "
        "out, by contact time; monthly per agent for the responsible lead.", "now-90d", "15m",
        [TEAM_VAR, AGENT_VAR])
    d = d.with_panel(lay.stat("Monitoring score", f"""
SELECT round(avg(score), 1) AS monitoring_score, count() AS evaluations
FROM v_qa_scores
WHERE {QA_FILTER}
""", w=8))
    d = d.with_panel(lay.stat("Critical failures", f"""
SELECT countIf(critical_failed) AS critical_failures
FROM v_qa_scores
WHERE {QA_FILTER}
""", w=8))
    d = d.with_panel(lay.stat("Evaluations", f"""
SELECT count() AS evaluations
FROM v_qa_scores
WHERE {QA_FILTER}
""", w=8))
    d = d.with_panel(lay.series("Monitoring score by team and month", f"""
SELECT toDateTime(toStartOfMonth(contact_at), 'UTC') AS time, team_id, round(avg(score), 1) AS monitoring_score
FROM v_qa_scores
WHERE {QA_FILTER}
GROUP BY time, team_id
ORDER BY time, team_id
""", unit="short", interval="1d", bars=True, w=24))
    d = d.with_panel(lay.table("Monitoring score per agent and month", f"""
SELECT toStartOfMonth(contact_at) AS month, agent_id AS agent, any(team_id) AS team,
       count() AS evaluations, round(avg(score), 1) AS monitoring_score, countIf(critical_failed) AS critical_failures
FROM v_qa_scores
WHERE {QA_FILTER}
GROUP BY month, agent_id
ORDER BY month DESC, agent
""", w=12, h=12))
    d = d.with_panel(lay.table("Monitoring score per team and month", f"""
SELECT toStartOfMonth(contact_at) AS month, team_id AS team, count() AS evaluations,
       round(avg(score), 1) AS monitoring_score
FROM v_qa_scores
WHERE {QA_FILTER}
GROUP BY month, team_id
ORDER BY month DESC, team
""", w=12, h=12))
    return d


# --------------------------------------------------------------------------------------------

DASHBOARDS: dict[str, Callable[[], dash.Dashboard]] = {
    "realtime-operations": realtime,
    "queue-performance": queue_performance,
    "agent-performance": agent_performance,
    "workforce": workforce,
    "qa": qa,
}


def render() -> dict[str, str]:
    """File name -> JSON text of every dashboard (deterministic)."""
    return {f"{name}.json": json.dumps(build().build(), cls=JSONEncoder, indent=2, sort_keys=True,
                                       ensure_ascii=False) + "\n"
            for name, build in DASHBOARDS.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="fail when the committed JSON is stale")
    parser.add_argument("--out", type=Path, action="append",
                        help=f"output directory, repeatable (default: {OUT_DIR} and {CHART_DIR})")
    args = parser.parse_args(argv)
    out_dirs: list[Path] = args.out or [OUT_DIR, CHART_DIR]
    rendered = render()
    if args.check:
        stale = [str(out / name) for out in out_dirs for name, text in rendered.items()
                 if not (out / name).exists() or (out / name).read_text() != text]
        extra = sorted(str(p) for out in out_dirs for p in out.glob("*.json") if p.name not in rendered)
        if stale or extra:
            print(f"stale dashboards: {stale + extra}; run `uv run python deploy/grafana/build.py`", file=sys.stderr)
            return 1
        return 0
    for out in out_dirs:
        out.mkdir(parents=True, exist_ok=True)
        for name, text in rendered.items():
            (out / name).write_text(text)
        for path in out.glob("*.json"):
            if path.name not in rendered:
                path.unlink()
        print(f"wrote {len(rendered)} dashboards to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
