-- Facts of the KPI stream. Every table drops repeats: inserts carry a deterministic
-- insert_deduplication_token (from Kafka offsets) and the tables keep a deduplication window;
-- upserted facts are ReplacingMergeTree read with FINAL, so figures are right before merges.

-- Raw call events, one row per event_id: the audit trail and the source a restarted
-- sessionizer rebuilds its open calls from.
CREATE TABLE IF NOT EXISTS call_events (
    event_id String,
    call_id String,
    occurred_at DateTime64(3, 'UTC'),
    kind LowCardinality(String),
    queue_id String,
    agent_id String,
    source LowCardinality(String),
    payload String,
    kafka_partition UInt32,
    kafka_offset UInt64,
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (call_id, event_id)
SETTINGS non_replicated_deduplication_window = 10000;

CREATE TABLE IF NOT EXISTS agent_events (
    event_id String,
    agent_id String,
    occurred_at DateTime64(3, 'UTC'),
    kind LowCardinality(String),
    payload String,
    kafka_partition UInt32,
    kafka_offset UInt64
) ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (agent_id, occurred_at, event_id)
SETTINGS non_replicated_deduplication_window = 10000;

-- One row per contact segment (agent leg); a revision carries a higher version and replaces it.
CREATE TABLE IF NOT EXISTS contacts (
    call_id String,
    segment UInt16,
    version UInt64,
    interval_start DateTime('UTC'),
    offered_at DateTime64(3, 'UTC'),
    answered_at Nullable(DateTime64(3, 'UTC')),
    ended_at Nullable(DateTime64(3, 'UTC')),
    queue_id LowCardinality(String),
    agent_id String,
    team_id LowCardinality(String),
    call_type LowCardinality(String),
    caller_hash String,
    priority Int32,
    outcome LowCardinality(String),
    ivr_s Float64,
    queue_s Float64,
    ring_s Float64,
    talk_s Float64,
    hold_s Float64,
    acw_s Float64,
    hold_count UInt32,
    queued UInt8,
    short_abandon UInt8,
    transfer_kind LowCardinality(String),
    disposition_code LowCardinality(String),
    resolved UInt8,
    hard_call UInt8,
    topic LowCardinality(String),
    timed_out UInt8
) ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(interval_start)
ORDER BY (call_id, segment)
SETTINGS non_replicated_deduplication_window = 10000;

-- Agent state intervals (ready, reserved, talking, hold, acw, not_ready, logged_out).
CREATE TABLE IF NOT EXISTS agent_state_intervals (
    agent_id String,
    team_id LowCardinality(String),
    state LowCardinality(String),
    reason LowCardinality(String),
    started_at DateTime64(3, 'UTC'),
    ended_at DateTime64(3, 'UTC'),
    duration_s Float64,
    version UInt64
) ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(started_at)
ORDER BY (agent_id, started_at, state)
SETTINGS non_replicated_deduplication_window = 10000;

CREATE TABLE IF NOT EXISTS qa_evaluations (
    evaluation_id String,
    revision UInt64,
    agent_id String,
    team_id LowCardinality(String),
    evaluator_id String,
    call_id String,
    form_id LowCardinality(String),
    form_version UInt32,
    status LowCardinality(String),
    score Float64,
    critical_failed UInt8,
    calibration UInt8,
    contact_at DateTime64(3, 'UTC'),
    occurred_at DateTime64(3, 'UTC')
) ENGINE = ReplacingMergeTree(revision)
ORDER BY evaluation_id
SETTINGS non_replicated_deduplication_window = 10000;

CREATE TABLE IF NOT EXISTS hr_shifts (
    employee_id String,
    schedule_id String,
    schedule_version UInt64,
    shift_id String,
    team_id LowCardinality(String),
    shift_start DateTime64(3, 'UTC'),
    shift_end DateTime64(3, 'UTC'),
    on_phone_s Float64
) ENGINE = ReplacingMergeTree(schedule_version)
ORDER BY (employee_id, shift_id)
SETTINGS non_replicated_deduplication_window = 10000;

CREATE TABLE IF NOT EXISTS hr_attendance (
    event_id String,
    employee_id String,
    kind LowCardinality(String),
    shift_id String,
    occurred_at DateTime64(3, 'UTC')
) ENGINE = ReplacingMergeTree
ORDER BY (employee_id, occurred_at, event_id)
SETTINGS non_replicated_deduplication_window = 10000;

CREATE TABLE IF NOT EXISTS hr_employment (
    event_id String,
    employee_id String,
    kind LowCardinality(String),
    role LowCardinality(String),
    team_id LowCardinality(String),
    team_lead_id String,
    fte Float64,
    exit_reason LowCardinality(String),
    voluntary UInt8,
    occurred_at DateTime64(3, 'UTC')
) ENGINE = ReplacingMergeTree
ORDER BY (employee_id, occurred_at, event_id)
SETTINGS non_replicated_deduplication_window = 10000;

CREATE TABLE IF NOT EXISTS hr_costs (
    entry_id String,
    cost_center_id String,
    period_start DateTime64(3, 'UTC'),
    period_end DateTime64(3, 'UTC'),
    amount Float64,
    currency LowCardinality(String),
    category LowCardinality(String),
    occurred_at DateTime64(3, 'UTC')
) ENGINE = ReplacingMergeTree(occurred_at)
ORDER BY (cost_center_id, entry_id)
SETTINGS non_replicated_deduplication_window = 10000;

-- Per-queue settings that KPIs read at query time (service-level threshold and goal, short abandon).
CREATE TABLE IF NOT EXISTS queue_settings (
    queue_id String,
    sl_threshold_s Float64,
    sl_goal_pct Float64,
    short_abandon_s Float64,
    updated_at DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = ReplacingMergeTree(updated_at)
ORDER BY queue_id;
