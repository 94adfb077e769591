"""The queue_settings and team_settings tables (ClickHouse, ReplacingMergeTree by updated_at): each write is a
new version of a queue's or team's row, reads take the latest (FINAL)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Generic, TypeVar

from clickhouse_connect.driver.client import Client

from callstream_kpi.domain.targets import QueueSettings, TeamSettings

Settings = TypeVar("Settings", QueueSettings, TeamSettings)


class SettingsStore(Generic[Settings]):
    """One settings table keyed by its first column; subclasses map a row to settings and back."""

    table: str
    columns: tuple[str, ...]

    def __init__(self, client: Client) -> None:
        self.client = client

    def _row(self, settings: Settings) -> list[Any]:
        raise NotImplementedError

    def _settings(self, row: Sequence[Any]) -> Settings:
        raise NotImplementedError

    def put(self, settings: Settings) -> None:
        self.client.insert(self.table, [self._row(settings)], column_names=list(self.columns))

    def all(self, scope_id: str | None = None) -> list[Settings]:
        key = self.columns[0]
        where = f"WHERE {key} = {{id:String}}" if scope_id is not None else ""
        rows = self.client.query(f"SELECT {', '.join(self.columns)} FROM {self.table} FINAL {where} ORDER BY {key}",
                                 parameters={"id": scope_id or ""}).result_rows
        return [self._settings(r) for r in rows]


def _optional(value: Any) -> float | None:
    return None if value is None else float(value)


class QueueSettingsStore(SettingsStore[QueueSettings]):
    table = "queue_settings"
    columns = ("queue_id", "sl_threshold_s", "sl_goal_pct", "short_abandon_s", "patience_s", "kpi_targets")

    def _row(self, settings: QueueSettings) -> list[Any]:
        return [settings.queue_id, settings.sl_threshold_s, settings.sl_goal_pct, settings.short_abandon_s,
                settings.patience_s, json.dumps(dict(settings.kpi_targets), sort_keys=True)]

    def _settings(self, row: Sequence[Any]) -> QueueSettings:
        return QueueSettings(row[0], float(row[1]), float(row[2]), float(row[3]), _optional(row[4]),
                             json.loads(row[5] or "{}"))


class TeamSettingsStore(SettingsStore[TeamSettings]):
    table = "team_settings"
    columns = ("team_id", "sl_threshold_s", "sl_goal_pct", "kpi_targets")

    def _row(self, settings: TeamSettings) -> list[Any]:
        return [settings.team_id, settings.sl_threshold_s, settings.sl_goal_pct,
                json.dumps(dict(settings.kpi_targets), sort_keys=True)]

    def _settings(self, row: Sequence[Any]) -> TeamSettings:
        return TeamSettings(row[0], _optional(row[1]), float(row[2]), json.loads(row[3] or "{}"))
