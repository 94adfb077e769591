-- Per-queue targets written by the KPI API (PUT /v1/queues/{id}/targets): the callers' mean patience (the
-- planner's Erlang A) and KPI target values per KPI name (JSON object), next to the SL threshold and goal.
ALTER TABLE queue_settings ADD COLUMN IF NOT EXISTS patience_s Nullable(Float64);
ALTER TABLE queue_settings ADD COLUMN IF NOT EXISTS kpi_targets String DEFAULT '{}';
