"""Per-queue targets through the real KPI API on chDB: written, read back, used by the KPI queries (the SL
threshold), and refused with a 422 naming the field when a value is bad."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from callstream_core.clickhouse import get_client
from callstream_core.testing import serve_in_thread
from callstream_kpi.adapters.clickhouse_facts import (
    CONTACT_COLUMNS,
    FactWriter,
    RetryingClient,
    apply_migrations,
    contact_row,
)
from callstream_kpi.config import KpiSettings
from callstream_kpi.domain.sessionizer import ContactRecord
from callstream_kpi.domain.targets import QueueSettings, ScopeRef, TargetBook
from callstream_kpi.entrypoints.api import create_app
from callstream_kpi.entrypoints.broadcast import Broadcaster

pytestmark = pytest.mark.integration
MANAGER, READER = "kpi-manager-0001", "kpi-reader-0001"
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
WAITS = [5.0, 15.0, 25.0, 35.0, 50.0, 70.0, 90.0, 120.0]  # answered calls' queue times


@pytest.fixture(scope="module")
def api(clickhouse_url: str) -> Iterator[str]:
    client = get_client(clickhouse_url, database="t_" + uuid.uuid4().hex[:12])
    apply_migrations(client)
    records = [ContactRecord(call_id=f"c{i}", segment=0, outcome="answered", offered_at=T0 + timedelta(minutes=i),
                             queue_id="sales", agent_id="a1", queued=True, queue_s=w,
                             answered_at=T0 + timedelta(minutes=i, seconds=w), talk_s=100.0)
               for i, w in enumerate(WAITS)]
    FactWriter(RetryingClient(client)).insert("contacts", [contact_row(c.to_proto()) for c in records],
                                              CONTACT_COLUMNS, [("targets-test", 0, 0)])
    app = create_app(KpiSettings(api_tokens=f"{MANAGER}:manager,{READER}:hr"), client, Broadcaster())
    with serve_in_thread(app) as base_url:
        yield base_url


def _client(base: str, token: str) -> httpx.Client:
    return httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30)


def _service_level(c: httpx.Client) -> float:
    r = c.get("/v1/kpis", params={"from": T0.isoformat(), "to": (T0 + timedelta(minutes=30)).isoformat(),
                                  "scope": "queue", "id": "sales", "kpi": "service_level"})
    assert r.status_code == 200, r.text
    return float(r.json()["rows"][0]["service_level"])


def test_targets_are_written_read_and_used_by_the_kpis(api: str) -> None:
    with _client(api, MANAGER) as mgr, _client(api, READER) as reader:
        assert reader.get("/v1/queues/sales/targets").status_code == 404
        body = {"sl_threshold_s": 60, "sl_goal_pct": 90, "short_abandon_s": 5, "patience_s": 150,
                "kpi_targets": {"asa": 15, "abandon_rate": 3}}
        assert mgr.put("/v1/queues/sales/targets", json=body).status_code == 200
        got = reader.get("/v1/queues/sales/targets").json()
        assert got == {"queue_id": "sales", **body}
        # a new version replaces the old one
        assert mgr.put("/v1/queues/sales/targets", json={**body, "sl_threshold_s": 30}).status_code == 200
        listed = reader.get("/v1/queues/targets").json()
        assert [(q["queue_id"], q["sl_threshold_s"]) for q in listed] == [("sales", 30.0)]
        # the KPI query takes T from the queue's settings: answered within 30 s of the 8 calls, by hand
        assert _service_level(reader) == pytest.approx(100 * sum(w <= 30 for w in WAITS) / len(WAITS))


def test_bad_targets_are_refused_naming_the_field(api: str) -> None:
    with _client(api, MANAGER) as mgr, _client(api, READER) as reader:
        for field, value in (("sl_threshold_s", 0), ("sl_goal_pct", 120), ("short_abandon_s", -1),
                             ("patience_s", 0), ("sl_goal_pct", "high")):
            r = mgr.put("/v1/queues/billing/targets", json={field: value})
            assert r.status_code == 422, (field, r.text)
            assert r.json()["detail"][0]["loc"][-1] == field
        r = mgr.put("/v1/queues/billing/targets", json={"kpi_targets": {"happiness": 5}})
        assert r.status_code == 422 and r.json()["detail"][0]["loc"][-1] == "kpi_targets"
        assert "happiness" in r.json()["detail"][0]["msg"]
        assert mgr.put("/v1/queues/billing/targets", json={"colour": "red"}).json()["detail"][0]["loc"][-1] == "colour"
        assert reader.put("/v1/queues/billing/targets", json={}).status_code == 403
        assert reader.get("/v1/queues/billing/targets").status_code == 404


def test_a_queue_settings_kpi_targets_override_the_alert_targets() -> None:
    book = TargetBook()
    QueueSettings("sales", sl_goal_pct=90, kpi_targets={"asa": 15}).apply(book)
    sales, other = ScopeRef("queue", "sales"), ScopeRef("queue", "billing")
    assert book.get("service_level", sales).value == 90 and book.get("service_level", other).value == 80
    assert book.get("asa", sales).value == 15 and book.get("asa", other).value == 30
    with pytest.raises(ValueError, match="happiness"):
        QueueSettings("sales", kpi_targets={"happiness": 1})
