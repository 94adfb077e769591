"""History of offered calls and AHT per 30-minute interval and queue, read from the KPI API
(`GET /v1/kpis?scope=queue&grain=30m`) with a bearer token. Implements `planning.HistorySource`; also reads
the queues' targets (`GET /v1/queues/targets`) for the planner."""

from __future__ import annotations

import ssl
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from callstream_hr.domain.forecast import IntervalFigures
from callstream_hr.service_layer.planning import HistoryUnavailable, QueueTargets

# The KPI API serves at most 31 days of 30-minute buckets per request; a week per request stays well inside.
CHUNK = timedelta(days=7)


class KpiApiHistory:
    def __init__(self, base_url: str, token: str, timeout_s: float, ca_file: str = "") -> None:
        self._base_url = base_url.rstrip("/")
        # The KPI API's certificate is always verified: against `ca_file` (a private CA, as in-cluster TLS
        # usually has) or else the system's CAs.
        verify = ssl.create_default_context(cafile=ca_file) if ca_file else True
        # A bounded timeout on every request: a hung KPI API fails one forecast request, it does not
        # hold the HR worker thread forever.
        self._client = httpx.Client(base_url=self._base_url, headers={"Authorization": f"Bearer {token}"},
                                    timeout=timeout_s, verify=verify)

    def close(self) -> None:
        self._client.close()

    def intervals(self, queue_id: str, start: datetime, end: datetime) -> list[IntervalFigures]:
        out: list[IntervalFigures] = []
        chunk_start = start
        while chunk_start < end:
            chunk_end = min(end, chunk_start + CHUNK)
            out.extend(self._chunk(queue_id, chunk_start, chunk_end))
            chunk_start = chunk_end
        return out

    def _get(self, path: str, params: dict[str, str] | None = None) -> Any:
        where = f"the KPI API at {self._base_url}"
        try:
            response = self._client.get(path, params=params)
        except httpx.HTTPError as exc:
            raise HistoryUnavailable(f"{where} did not answer: {exc!r}") from exc
        if response.status_code in (401, 403):
            raise HistoryUnavailable(f"{where} refused the token ({response.status_code}): {response.text[:300]}")
        if response.status_code != 200:
            raise HistoryUnavailable(f"{where} answered {response.status_code}: {response.text[:300]}")
        try:
            return response.json()
        except ValueError as exc:
            raise HistoryUnavailable(f"{where} answered something that is not JSON: {exc!r}") from exc

    def _chunk(self, queue_id: str, start: datetime, end: datetime) -> list[IntervalFigures]:
        params = {"from": start.isoformat(), "to": end.isoformat(), "scope": "queue", "id": queue_id,
                  "grain": "30m", "kpi": "average_handle_time"}
        answer = self._get("/v1/kpis", params)
        try:
            return [_figures(row) for row in answer["rows"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise HistoryUnavailable(f"the KPI API at {self._base_url} gave an unexpected answer for queue "
                                     f"{queue_id!r}: {exc!r}") from exc

    def queue_targets(self) -> dict[str, QueueTargets]:
        """The targets stored per queue (SL goal and threshold, patience), by queue id."""
        answer = self._get("/v1/queues/targets")
        try:
            return {q["queue_id"]: QueueTargets(q["queue_id"], float(q["sl_goal_pct"]) / 100,
                                                float(q["sl_threshold_s"]),
                                                None if q["patience_s"] is None else float(q["patience_s"]))
                    for q in answer}
        except (ValueError, KeyError, TypeError) as exc:
            raise HistoryUnavailable(f"the KPI API at {self._base_url} gave unexpected queue targets: "
                                     f"{exc!r}") from exc

def _figures(row: dict[str, Any]) -> IntervalFigures:
    bucket = datetime.fromisoformat(row["bucket"])
    # ClickHouse buckets are UTC; an offset-less timestamp is UTC.
    bucket = bucket.replace(tzinfo=UTC) if bucket.tzinfo is None else bucket.astimezone(UTC)
    aht = row["average_handle_time"]
    return IntervalFigures(bucket, float(row["counters"]["offered"]), None if aht is None else float(aht))
