"""The queue_settings table (ClickHouse, ReplacingMergeTree by updated_at): each write is a new version of a
queue's row, reads take the latest (FINAL)."""

from __future__ import annotations

import json

from clickhouse_connect.driver.client import Client

from callstream_kpi.domain.targets import QueueSettings

_COLUMNS = ["queue_id", "sl_threshold_s", "sl_goal_pct", "short_abandon_s", "patience_s", "kpi_targets"]


class QueueSettingsStore:
    def __init__(self, client: Client) -> None:
        self.client = client

    def put(self, settings: QueueSettings) -> None:
        self.client.insert("queue_settings", [[settings.queue_id, settings.sl_threshold_s, settings.sl_goal_pct,
                                               settings.short_abandon_s, settings.patience_s,
                                               json.dumps(dict(settings.kpi_targets), sort_keys=True)]],
                           column_names=_COLUMNS)

    def all(self, queue_id: str | None = None) -> list[QueueSettings]:
        where = "WHERE queue_id = {q:String}" if queue_id is not None else ""
        rows = self.client.query(f"SELECT {', '.join(_COLUMNS)} FROM queue_settings FINAL {where} ORDER BY queue_id",
                                 parameters={"q": queue_id or ""}).result_rows
        return [QueueSettings(r[0], float(r[1]), float(r[2]), float(r[3]), None if r[4] is None else float(r[4]),
                              json.loads(r[5] or "{}")) for r in rows]
