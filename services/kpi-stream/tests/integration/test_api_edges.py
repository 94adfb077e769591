"""issue 17 item 7: periods the facts cannot hold are a 422 naming the parameter, not a 500 (the KPI API on a
real uvicorn server over chDB)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from clickhouse_connect.driver.client import Client
from scenarios import TOKEN

from callstream_devtools.testing import serve_in_thread
from callstream_kpi.adapters.clickhouse_facts import apply_migrations
from callstream_kpi.config import KpiSettings
from callstream_kpi.entrypoints.api import create_app
from callstream_kpi.entrypoints.broadcast import Broadcaster

pytestmark = pytest.mark.integration


@pytest.fixture
def api(clickhouse: Client) -> Iterator[httpx.Client]:
    apply_migrations(clickhouse)
    app = create_app(KpiSettings(api_tokens=f"{TOKEN}:manager"), clickhouse, Broadcaster())
    with serve_in_thread(app) as url, httpx.Client(base_url=url, timeout=30,
                                                   headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        yield client


@pytest.mark.parametrize(("path", "params", "name"), [
    ("/v1/kpis", {"from": "9999-12-31"}, "from"),
    ("/v1/kpis", {"from": "9999-12-31T23:59:59Z", "grain": "day"}, "from"),
    ("/v1/kpis", {"from": "2026-01-01", "to": "9999-12-31", "grain": "month"}, "to"),
    ("/v1/kpis", {"from": "0001-01-01", "to": "0001-01-02"}, "from"),
    ("/v1/agents/a1/scorecard", {"from": "0001-01-01", "to": "2026-01-01"}, "from"),
    ("/v1/agents/a1/scorecard", {"from": "2026-01-01", "to": "9999-12-31"}, "to"),
])
def test_periods_outside_the_store_are_a_422(api: httpx.Client, path: str, params: dict[str, str],
                                             name: str) -> None:
    r = api.get(path, params=params)
    assert r.status_code == 422, r.text
    assert f"'{name}' must lie between 1970-01-01 and 2299-12-31" in r.json()["detail"]


def test_a_scorecard_span_is_bounded_and_a_good_one_answers(api: httpx.Client) -> None:
    r = api.get("/v1/agents/a1/scorecard", params={"from": "1970-01-01", "to": "2299-12-31"})
    assert r.status_code == 422 and "at most" in r.json()["detail"], r.text
    ok = api.get("/v1/agents/a1/scorecard", params={"from": "2026-11-01", "to": "2026-12-01"})
    assert ok.status_code == 200, ok.text
    edge = api.get("/v1/kpis", params={"from": "2299-12-30T12:00:00Z"})  # the default day is cut at LATEST
    assert edge.status_code == 200, edge.text
