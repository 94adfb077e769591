-- Views the Grafana dashboards (deploy/grafana) read. They only pre-shape raw counters per
-- 30-minute interval and scope, counted exactly as adapters/kpi_queries.py does: call-level
-- counters from segment 0 (one per call), agent-level sums from every answered leg, facts read
-- with FINAL. Panels turn counters into KPIs with the formulas of kpis.md; counters add, so a
-- panel may sum the rows of many intervals, queues or agents before dividing.

-- Per call: the answered call is resolved (any leg) and no repeat from the same caller on the
-- same topic followed within the FCR window (72 h), as contact_counters_sql does.
CREATE VIEW IF NOT EXISTS v_call_resolution AS
WITH calls AS (
    SELECT call_id, max(resolved) AS any_resolved, anyIf(caller_hash, segment = 0) AS caller,
           anyIf(topic, segment = 0) AS call_topic, minIf(offered_at, segment = 0) AS first_offered
    FROM contacts FINAL
    GROUP BY call_id
),
repeats AS (
    SELECT call_id, any_resolved, caller, first_offered,
           leadInFrame(first_offered, 1, toDateTime64(0, 3, 'UTC')) OVER (
               PARTITION BY caller, call_topic ORDER BY first_offered
               ROWS BETWEEN CURRENT ROW AND 1 FOLLOWING) AS next_offered
    FROM calls
)
SELECT call_id,
       toUInt8(any_resolved = 1
               AND NOT (caller != '' AND next_offered > first_offered
                        AND dateDiff('second', first_offered, next_offered) <= 259200)) AS resolved_no_repeat
FROM repeats;

-- Call KPIs per queue and 30-minute interval (of offered_at). T = queue_settings.sl_threshold_s,
-- 20 s for a queue without settings.
CREATE VIEW IF NOT EXISTS v_queue_30m AS
SELECT
    toStartOfInterval(c.offered_at, INTERVAL 30 MINUTE) AS interval_start,
    c.queue_id AS queue_id,
    any(if(s.queue_id = '', 20, s.sl_threshold_s)) AS sl_threshold_s,
    any(if(s.queue_id = '', 80, s.sl_goal_pct)) AS sl_goal_pct,
    countIf(c.segment = 0) AS received,
    countIf(c.segment = 0 AND c.outcome = 'blocked') AS blocked,
    countIf(c.segment = 0 AND c.outcome = 'ivr_handled') AS ivr_handled,
    countIf(c.segment = 0 AND c.outcome = 'ivr_abandoned') AS ivr_abandoned,
    countIf(c.segment = 0 AND c.outcome NOT IN ('blocked', 'ivr_handled', 'ivr_abandoned')) AS offered,
    countIf(c.segment = 0 AND c.outcome NOT IN ('blocked', 'ivr_handled', 'ivr_abandoned') AND c.queued) AS queued,
    countIf(c.segment = 0 AND c.outcome = 'answered') AS answered,
    countIf(c.segment = 0 AND c.outcome = 'answered'
            AND c.queue_s <= if(s.queue_id = '', 20, s.sl_threshold_s)) AS answered_within_t,
    countIf(c.segment = 0 AND c.outcome = 'abandoned') AS abandoned,
    countIf(c.segment = 0 AND c.outcome = 'abandoned' AND c.short_abandon) AS short_abandons,
    countIf(c.segment = 0 AND c.outcome = 'overflowed') AS overflowed,
    countIf(c.segment = 0 AND c.outcome = 'callback') AS callbacks,
    sumIf(c.queue_s, c.segment = 0 AND c.queued
          AND c.outcome NOT IN ('blocked', 'ivr_handled', 'ivr_abandoned')) AS sum_queue_s,
    sumIf(c.queue_s, c.segment = 0 AND c.outcome = 'answered') AS sum_queue_s_answered,
    sumIf(c.queue_s, c.segment = 0 AND c.outcome = 'abandoned') AS sum_wait_abandoned_s,
    countIf(c.segment = 0 AND c.outcome = 'answered' AND r.resolved_no_repeat = 1) AS resolved_no_repeat,
    countIf(c.answered_at IS NOT NULL) AS answered_legs,
    sumIf(c.talk_s, c.answered_at IS NOT NULL) AS sum_talk_s,
    sumIf(c.hold_s, c.answered_at IS NOT NULL) AS sum_hold_s,
    sumIf(c.acw_s, c.answered_at IS NOT NULL) AS sum_acw_s,
    sumIf(toUInt64(ceil(round(c.ring_s / 6, 9))), c.answered_at IS NOT NULL) AS sum_rings,
    countIf(c.answered_at IS NOT NULL AND c.transfer_kind = 'blind') AS transferred_blind,
    countIf(c.answered_at IS NOT NULL AND c.transfer_kind = 'warm') AS transferred_warm
FROM contacts AS c FINAL
LEFT JOIN (SELECT queue_id, sl_threshold_s, sl_goal_pct FROM queue_settings FINAL) AS s ON s.queue_id = c.queue_id
LEFT JOIN v_call_resolution AS r ON r.call_id = c.call_id
GROUP BY interval_start, queue_id;

-- Agent-level figures per agent (and team) and 30-minute interval: every answered leg counts
-- for its agent; answered / resolved_no_repeat count the calls whose segment 0 the agent took.
CREATE VIEW IF NOT EXISTS v_agent_30m AS
SELECT
    toStartOfInterval(c.offered_at, INTERVAL 30 MINUTE) AS interval_start,
    c.agent_id AS agent_id,
    c.team_id AS team_id,
    countIf(c.answered_at IS NOT NULL) AS answered_legs,
    sumIf(c.talk_s, c.answered_at IS NOT NULL) AS sum_talk_s,
    sumIf(c.hold_s, c.answered_at IS NOT NULL) AS sum_hold_s,
    sumIf(c.acw_s, c.answered_at IS NOT NULL) AS sum_acw_s,
    countIf(c.answered_at IS NOT NULL AND c.hold_count > 0) AS calls_with_hold,
    countIf(c.answered_at IS NOT NULL AND c.transfer_kind = 'blind') AS transferred_blind,
    countIf(c.answered_at IS NOT NULL AND c.transfer_kind = 'warm') AS transferred_warm,
    countIf(c.answered_at IS NOT NULL AND c.hard_call) AS hard_calls,
    countIf(c.segment = 0 AND c.outcome = 'answered') AS answered,
    countIf(c.segment = 0 AND c.outcome = 'answered' AND r.resolved_no_repeat = 1) AS resolved_no_repeat
FROM contacts AS c FINAL
LEFT JOIN v_call_resolution AS r ON r.call_id = c.call_id
WHERE c.agent_id != ''
GROUP BY interval_start, agent_id, team_id;

-- Seconds per agent state per agent and 30-minute interval (intervals are split at 30-minute
-- boundaries when written, so started_at places them).
CREATE VIEW IF NOT EXISTS v_agent_states_30m AS
SELECT
    toStartOfInterval(started_at, INTERVAL 30 MINUTE) AS interval_start,
    agent_id,
    team_id,
    sumIf(duration_s, state != 'logged_out') AS logged_in_s,
    sumIf(duration_s, state IN ('ready', 'reserved', 'talking', 'hold', 'acw')) AS productive_s,
    sumIf(duration_s, state IN ('talking', 'hold', 'acw')) AS busy_s,
    sumIf(duration_s, state IN ('ready', 'reserved')) AS available_idle_s,
    sumIf(duration_s, state = 'ready') AS ready_s,
    sumIf(duration_s, state = 'talking') AS talking_s,
    sumIf(duration_s, state = 'hold') AS hold_s,
    sumIf(duration_s, state = 'acw') AS acw_s,
    sumIf(duration_s, state = 'not_ready') AS not_ready_s
FROM agent_state_intervals FINAL
GROUP BY interval_start, agent_id, team_id;

-- Scheduled on-phone seconds per employee and 30-minute slot: a shift's on-phone time spread
-- pro rata over the slots it covers (as schedule_counters_sql).
CREATE VIEW IF NOT EXISTS v_schedule_30m AS
SELECT toDateTime(slot, 'UTC') AS interval_start, employee_id AS agent_id, team_id,
       sum(on_phone_in_slot) AS scheduled_on_phone_s
FROM (
    SELECT employee_id, team_id,
           arrayJoin(range(toUInt32(toStartOfInterval(shift_start, INTERVAL 30 MINUTE)), toUInt32(shift_end), 1800))
               AS slot,
           greatest(0, least(toFloat64(slot + 1800), toFloat64(toUnixTimestamp64Milli(shift_end)) / 1000)
                    - greatest(toFloat64(slot), toFloat64(toUnixTimestamp64Milli(shift_start)) / 1000))
               / greatest(1, dateDiff('second', shift_start, shift_end)) * on_phone_s AS on_phone_in_slot
    FROM hr_shifts FINAL
)
GROUP BY interval_start, agent_id, team_id;

-- One row per scheduled shift: present when an IN punch falls from 2 h before its start to its end.
CREATE VIEW IF NOT EXISTS v_attendance_shifts AS
SELECT s.shift_start AS shift_start, s.employee_id AS agent_id, any(s.team_id) AS team_id, s.shift_id AS shift_id,
       toUInt8(countIf(p.kind = 'in' AND p.occurred_at >= s.shift_start - INTERVAL 2 HOUR
                       AND p.occurred_at < s.shift_end) > 0) AS present
FROM (SELECT employee_id, shift_id, team_id, shift_start, shift_end FROM hr_shifts FINAL) AS s
LEFT JOIN (SELECT employee_id, kind, occurred_at FROM hr_attendance FINAL) AS p ON p.employee_id = s.employee_id
GROUP BY s.employee_id, s.shift_id, s.shift_start;

-- Employment per employee (latest team and FTE, hire and leave times in epoch seconds) for attrition.
CREATE VIEW IF NOT EXISTS v_employment AS
SELECT employee_id AS agent_id, argMax(team_id, occurred_at) AS team_id, argMax(fte, occurred_at) AS fte,
       minIf(toFloat64(toUnixTimestamp64Milli(occurred_at)) / 1000, kind = 'hired') AS hired_at,
       maxIf(toFloat64(toUnixTimestamp64Milli(occurred_at)) / 1000, kind = 'left') AS left_at,
       toUInt8(countIf(kind = 'left') > 0) AS has_left, toUInt8(countIf(kind = 'hired') > 0) AS has_hired,
       argMaxIf(exit_reason, occurred_at, kind = 'left') AS exit_reason
FROM hr_employment FINAL
GROUP BY employee_id;

-- QA evaluations that count toward the monitoring score (submitted onwards, calibrations left out).
CREATE VIEW IF NOT EXISTS v_qa_scores AS
SELECT contact_at, agent_id, team_id, evaluator_id, form_id, score, critical_failed
FROM qa_evaluations FINAL
WHERE status IN ('submitted', 'acknowledged', 'disputed', 'reviewed') AND NOT calibration;
