"""Raw KPI counters per time bucket and scope, computed at query time from the facts.

Nothing is baked in: the service-level threshold comes from `queue_settings` (or the request), short
abandons are kept apart, every sum is returned raw, so each KPI (and each service-level variant) is a
formula over these counters (`callstream_kpi.domain.kpis`). Reads use FINAL: right before merges.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from clickhouse_connect.driver.client import Client

from callstream_core.kpi_definitions import FCR_WINDOW_S, NOT_OFFERED_SQL, SL_THRESHOLD_S

Grain = Literal["30m", "hour", "day", "week", "month"]
ScopeKind = Literal["center", "queue", "agent", "team"]

GRAIN_SQL: dict[str, str] = {
    "30m": "toStartOfInterval({col}, INTERVAL 30 MINUTE)",
    "hour": "toStartOfHour({col})",
    "day": "toStartOfDay({col})",
    # ISO week: weeks start on Monday.
    "week": "toDateTime(toMonday({col}), 'UTC')",
    "month": "toDateTime(toStartOfMonth({col}), 'UTC')",
}
SCOPE_COLUMN: dict[str, str] = {"queue": "queue_id", "agent": "agent_id", "team": "team_id"}


@dataclass(frozen=True)
class KpiQuery:
    scope: ScopeKind
    scope_id: str
    grain: Grain
    start: datetime
    end: datetime
    sl_threshold_s: float | None = None
    short_abandon_s: float | None = None
    ring_cycle_s: float = 6.0
    fcr_window_s: float = FCR_WINDOW_S
    default_sl_threshold_s: float = SL_THRESHOLD_S

    def bucket(self, column: str) -> str:
        return GRAIN_SQL[self.grain].format(col=column)

    def scope_filter(self, column_prefix: str = "") -> str:
        if self.scope == "center":
            return "1"
        return f"{column_prefix}{SCOPE_COLUMN[self.scope]} = {{scope_id:String}}"

    def parameters(self) -> dict[str, Any]:
        return {"start": self.start, "end": self.end, "scope_id": self.scope_id,
                "ring_cycle": self.ring_cycle_s, "fcr_window": self.fcr_window_s,
                "sl_t": self.sl_threshold_s if self.sl_threshold_s is not None else -1.0,
                "default_t": self.default_sl_threshold_s}


# Each raw counter of contacts as ClickHouse SQL over `contacts AS c` (a Rollup field of the same name), counted as
# kpis.md says: call-level counters from segment 0 (one per call), agent-level ones from every answered leg.
# Placeholders: {threshold} T of the call's queue, {not_offered} the outcomes not offered, {ring_cycle} the ring
# cycle in s, {resolved} the call resolved with no repeat within the FCR window. The dashboard views of migration
# 002 hold the same expressions with literals (test_kpi_definitions checks them counter by counter).
CONTACT_COUNTERS: dict[str, str] = {
    "received": "countIf(c.segment = 0)",
    "blocked": "countIf(c.segment = 0 AND c.outcome = 'blocked')",
    "ivr_handled": "countIf(c.segment = 0 AND c.outcome = 'ivr_handled')",
    "ivr_abandoned": "countIf(c.segment = 0 AND c.outcome = 'ivr_abandoned')",
    "offered": "countIf(c.segment = 0 AND c.outcome NOT IN {not_offered})",
    "queued": "countIf(c.segment = 0 AND c.outcome NOT IN {not_offered} AND c.queued)",
    "answered": "countIf(c.segment = 0 AND c.outcome = 'answered')",
    "answered_within_t": "countIf(c.segment = 0 AND c.outcome = 'answered' AND c.queue_s <= {threshold})",
    "abandoned": "countIf(c.segment = 0 AND c.outcome = 'abandoned')",
    "abandoned_within_t": "countIf(c.segment = 0 AND c.outcome = 'abandoned' AND c.queue_s <= {threshold})",
    "short_abandons": "countIf(c.segment = 0 AND c.outcome = 'abandoned' AND c.short_abandon)",
    "overflowed": "countIf(c.segment = 0 AND c.outcome = 'overflowed')",
    "callbacks": "countIf(c.segment = 0 AND c.outcome = 'callback')",
    "timed_out": "countIf(c.segment = 0 AND c.outcome NOT IN {not_offered} AND c.timed_out)",
    "sum_queue_s": "sumIf(c.queue_s, c.segment = 0 AND c.queued AND c.outcome NOT IN {not_offered})",
    "sum_queue_s_answered": "sumIf(c.queue_s, c.segment = 0 AND c.outcome = 'answered')",
    "sum_wait_abandoned_s": "sumIf(c.queue_s, c.segment = 0 AND c.outcome = 'abandoned')",
    "resolved_no_repeat": "countIf(c.segment = 0 AND c.outcome = 'answered' AND {resolved})",
    "answered_legs": "countIf(c.answered_at IS NOT NULL)",
    "sum_talk_s": "sumIf(c.talk_s, c.answered_at IS NOT NULL)",
    "sum_hold_s": "sumIf(c.hold_s, c.answered_at IS NOT NULL)",
    "sum_hold_count": "sumIf(c.hold_count, c.answered_at IS NOT NULL)",
    "calls_with_hold": "countIf(c.answered_at IS NOT NULL AND c.hold_count > 0)",
    "sum_acw_s": "sumIf(c.acw_s, c.answered_at IS NOT NULL)",
    "sum_rings": "sumIf(toUInt64(ceil(round(c.ring_s / {ring_cycle}, 9))), c.answered_at IS NOT NULL)",
    "transferred_blind": "countIf(c.answered_at IS NOT NULL AND c.transfer_kind = 'blind')",
    "transferred_warm": "countIf(c.answered_at IS NOT NULL AND c.transfer_kind = 'warm')",
    "hard_calls": "countIf(c.answered_at IS NOT NULL AND c.hard_call)",
}
# Seconds per agent state (kpis.md 1, 11, 13) over `agent_state_intervals`, as v_agent_states_30m holds them.
AGENT_STATE_COUNTERS: dict[str, str] = {
    "logged_in_s": "sumIf(duration_s, state != 'logged_out')",
    "productive_s": "sumIf(duration_s, state IN ('ready', 'reserved', 'talking', 'hold', 'acw'))",
    "busy_s": "sumIf(duration_s, state IN ('talking', 'hold', 'acw'))",
    "available_idle_s": "sumIf(duration_s, state IN ('ready', 'reserved'))",
}
# The query's placeholders: T from the request, else the queue's settings, else the default.
QUERY_PLACEHOLDERS: dict[str, str] = {
    "threshold": "if({sl_t:Float64} >= 0, {sl_t:Float64}, if(s.queue_id = '', {default_t:Float64}, s.sl_threshold_s))",
    "not_offered": NOT_OFFERED_SQL,
    "ring_cycle": "{ring_cycle:Float64}",
    "resolved": "r.any_resolved = 1 AND NOT (r.caller != '' AND r.next_offered > c.offered_at "
                "AND dateDiff('second', c.offered_at, r.next_offered) <= {fcr_window:Float64})",
}


def select_counters(counters: dict[str, str], placeholders: dict[str, str]) -> str:
    """`expr AS name` per counter, the placeholders filled in (the SELECT list of a counters query or view)."""
    return ",\n    ".join(f"{expr.format(**placeholders)} AS {name}" for name, expr in counters.items())


def contact_counters_sql(q: KpiQuery) -> str:
    """Counters from contacts. Call-level figures count segment 0 (one per call); agent figures every leg."""
    counters = select_counters(CONTACT_COUNTERS, QUERY_PLACEHOLDERS)
    return f"""
WITH calls AS (
    SELECT call_id, max(resolved) AS any_resolved, anyIf(caller_hash, segment = 0) AS caller,
           anyIf(topic, segment = 0) AS call_topic, minIf(offered_at, segment = 0) AS first_offered
    FROM contacts FINAL
    WHERE offered_at >= {{start:DateTime64(3)}} - toIntervalSecond(86400)
      AND offered_at < {{end:DateTime64(3)}} + toIntervalSecond(toUInt32({{fcr_window:Float64}}))
    GROUP BY call_id
),
repeats AS (
    SELECT call_id, any_resolved,
           leadInFrame(first_offered, 1, toDateTime64(0, 3, 'UTC')) OVER (
               PARTITION BY caller, call_topic ORDER BY first_offered
               ROWS BETWEEN CURRENT ROW AND 1 FOLLOWING) AS next_offered,
           caller
    FROM calls
)
SELECT
    {q.bucket('c.offered_at')} AS bucket,
    {counters}
FROM contacts AS c FINAL
LEFT JOIN (SELECT queue_id, sl_threshold_s FROM queue_settings FINAL) AS s ON s.queue_id = c.queue_id
LEFT JOIN repeats AS r ON r.call_id = c.call_id
WHERE c.offered_at >= {{start:DateTime64(3)}} AND c.offered_at < {{end:DateTime64(3)}} AND {q.scope_filter('c.')}
GROUP BY bucket
ORDER BY bucket
"""


def call_event_counters_sql(q: KpiQuery) -> str:
    """Counters no contact carries: rings no agent answered (RONA), from the raw call events. A team's are its
    agents' (the agents with a contact of the team in the period)."""
    if q.scope == "team":
        scope = ("agent_id IN (SELECT DISTINCT agent_id FROM contacts FINAL WHERE team_id = {scope_id:String} "
                 "AND offered_at >= {start:DateTime64(3)} AND offered_at < {end:DateTime64(3)})")
    else:
        scope = q.scope_filter()
    return f"""
SELECT {q.bucket('occurred_at')} AS bucket, count() AS ring_no_answers
FROM call_events FINAL
WHERE kind = 'ring_no_answer' AND occurred_at >= {{start:DateTime64(3)}} AND occurred_at < {{end:DateTime64(3)}}
  AND {scope}
GROUP BY bucket
ORDER BY bucket
"""


def agent_state_counters_sql(q: KpiQuery) -> str:
    """Seconds per state from agent state intervals (split at 30-minute boundaries when written)."""
    team_filter = "1"
    if q.scope == "agent":
        team_filter = "agent_id = {scope_id:String}"
    elif q.scope == "team":
        team_filter = "team_id = {scope_id:String}"
    return f"""
SELECT
    {q.bucket('started_at')} AS bucket,
    {select_counters(AGENT_STATE_COUNTERS, {})}
FROM agent_state_intervals FINAL
WHERE started_at >= {{start:DateTime64(3)}} AND started_at < {{end:DateTime64(3)}} AND {team_filter}
GROUP BY bucket
ORDER BY bucket
"""


def run(client: Client, sql: str, q: KpiQuery) -> list[dict[str, Any]]:
    result = client.query(sql, parameters=q.parameters())
    return [dict(zip(result.column_names, row, strict=True)) for row in result.result_rows]


# Adherence's denominator (kpis.md 1): a shift's on-phone time spread pro rata over the 30-minute slots it covers.
ON_PHONE_IN_SLOT = """arrayJoin(range(toUInt32(toStartOfInterval(shift_start, INTERVAL 30 MINUTE)), toUInt32(shift_end),
                             1800)) AS slot,
           greatest(0, least(toFloat64(slot + 1800), toFloat64(toUnixTimestamp64Milli(shift_end)) / 1000)
                    - greatest(toFloat64(slot), toFloat64(toUnixTimestamp64Milli(shift_start)) / 1000))
               / greatest(1, dateDiff('second', shift_start, shift_end)) * on_phone_s AS on_phone_in_slot"""
# Attendance (kpis.md 15): a scheduled shift is attended when an IN punch falls from 2 h before its start to its end.
SHIFT_PRESENT = ("countIf(p.kind = 'in' AND p.occurred_at >= s.shift_start - INTERVAL 2 HOUR "
                 "AND p.occurred_at < s.shift_end) > 0")


def schedule_counters_sql(q: KpiQuery) -> str:
    """Scheduled on-phone seconds per bucket (shift minus breaks, pro rata over the 30-minute slots it
    covers) and attendance: agent-shifts scheduled, and present (an IN punch from 2 h before the shift
    start to its end). Scopes: center, team, agent (queues have no schedules)."""
    scope = {"agent": "employee_id = {scope_id:String}", "team": "team_id = {scope_id:String}"}.get(q.scope, "1")
    return f"""
WITH shifts AS (
    SELECT employee_id, shift_id, team_id, shift_start, shift_end, on_phone_s
    FROM hr_shifts FINAL
    WHERE shift_end > {{start:DateTime64(3)}} AND shift_start < {{end:DateTime64(3)}} AND {scope}
),
slots AS (
    SELECT employee_id, shift_id,
           {ON_PHONE_IN_SLOT}
    FROM shifts
),
attendance AS (
    SELECT s.employee_id, s.shift_id, any(s.shift_start) AS shift_start,
           {SHIFT_PRESENT} AS present
    FROM shifts AS s
    LEFT JOIN (SELECT employee_id, kind, occurred_at FROM hr_attendance FINAL) AS p ON p.employee_id = s.employee_id
    GROUP BY s.employee_id, s.shift_id
)
SELECT bucket, sum(on_phone) AS scheduled_on_phone_s, sum(scheduled) AS scheduled, sum(present) AS present
FROM (
    SELECT {q.bucket("toDateTime(slot, 'UTC')")} AS bucket, on_phone_in_slot AS on_phone, 0 AS scheduled,
           0 AS present
    FROM slots
    WHERE toDateTime(slot, 'UTC') >= {{start:DateTime64(3)}} AND toDateTime(slot, 'UTC') < {{end:DateTime64(3)}}
    UNION ALL
    SELECT {q.bucket('shift_start')} AS bucket, 0 AS on_phone, 1 AS scheduled, toUInt8(present) AS present
    FROM attendance
    WHERE shift_start >= {{start:DateTime64(3)}} AND shift_start < {{end:DateTime64(3)}}
)
GROUP BY bucket
ORDER BY bucket
"""


def qa_counters_sql(q: KpiQuery) -> str:
    """Monitoring score (KPI 12): submitted evaluations, calibration sessions left out, by contact time."""
    scope = {"agent": "agent_id = {scope_id:String}", "team": "team_id = {scope_id:String}"}.get(q.scope, "1")
    return f"""
SELECT {q.bucket('contact_at')} AS bucket, sum(score) AS qa_score_sum, count() AS qa_count
FROM qa_evaluations FINAL
WHERE status IN ('submitted', 'acknowledged', 'disputed', 'reviewed') AND NOT calibration
  AND contact_at >= {{start:DateTime64(3)}} AND contact_at < {{end:DateTime64(3)}} AND {scope}
GROUP BY bucket
ORDER BY bucket
"""


def period_counters_sql(q: KpiQuery) -> str:
    """Figures that only make sense over the whole period asked for: cost (entries pro rata to their
    overlap with the period, KPI 4) and attrition (leavers, FTE-seconds of headcount, KPI 23)."""
    team = "team_id = {scope_id:String}" if q.scope == "team" else "1"
    return f"""
WITH
    toFloat64(toUnixTimestamp64Milli({{start:DateTime64(3)}})) / 1000 AS p_start,
    toFloat64(toUnixTimestamp64Milli({{end:DateTime64(3)}})) / 1000 AS p_end,
    employment AS (
        SELECT employee_id, argMax(team_id, occurred_at) AS team_id, argMax(fte, occurred_at) AS fte,
               minIf(toFloat64(toUnixTimestamp64Milli(occurred_at)) / 1000, kind = 'hired') AS hired_at,
               maxIf(toFloat64(toUnixTimestamp64Milli(occurred_at)) / 1000, kind = 'left') AS left_at,
               countIf(kind = 'left') > 0 AS has_left, countIf(kind = 'hired') > 0 AS has_hired
        FROM hr_employment FINAL
        GROUP BY employee_id
    )
SELECT
    (SELECT sum(amount * greatest(0, least(p_end, toFloat64(toUnixTimestamp64Milli(period_end)) / 1000)
                - greatest(p_start, toFloat64(toUnixTimestamp64Milli(period_start)) / 1000))
                / greatest(1, dateDiff('second', period_start, period_end)))
     FROM hr_costs FINAL WHERE period_end > {{start:DateTime64(3)}} AND period_start < {{end:DateTime64(3)}}) AS cost,
    (SELECT count() FROM hr_costs FINAL
     WHERE period_end > {{start:DateTime64(3)}} AND period_start < {{end:DateTime64(3)}}) AS cost_entries,
    (SELECT countIf(has_left AND left_at >= p_start AND left_at < p_end) FROM employment WHERE {team}) AS leavers,
    (SELECT sum(fte * greatest(0, least(p_end, if(has_left, left_at, p_end))
                               - greatest(p_start, if(has_hired, hired_at, p_start))))
     FROM employment WHERE {team}) AS headcount_fte_s,
    p_end - p_start AS period_s
"""
