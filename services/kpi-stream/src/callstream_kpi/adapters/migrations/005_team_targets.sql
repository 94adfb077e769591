-- Per-team targets written by the KPI API (PUT /v1/teams/{id}/targets): the SL goal and KPI target values per
-- KPI name (JSON object) for the team's figures, and the SL threshold T its calls are measured against (NULL:
-- each call's queue's T). A write is a new version; reads take the latest (FINAL).
CREATE TABLE IF NOT EXISTS team_settings (
    team_id String,
    sl_threshold_s Nullable(Float64),
    sl_goal_pct Float64,
    kpi_targets String DEFAULT '{}',
    updated_at DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = ReplacingMergeTree(updated_at)
ORDER BY team_id;
