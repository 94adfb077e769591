"""The wallboard in headless Chromium (Debian's, driven by Playwright): it loads, shows the queue, updates
live as new events arrive, and shows a service-level breach as an alert."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from scenarios import T0, TOKEN, call_event, isolated_topics, scenario, worker_settings

from callstream_core.kafka import EventProducer
from callstream_kpi.bootstrap import build_worker

pytestmark = pytest.mark.integration
CHROMIUM = shutil.which("chromium")
# Flags for a closed network: no background connections that the sandbox would refuse.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (make tools installs it)")
def test_wallboard_loads_updates_live_and_shows_a_breach(kafka_bootstrap: str, clickhouse_url: str,
                                                         tmp_path: Path) -> None:
    from playwright.async_api import async_playwright

    prefix = isolated_topics(kafka_bootstrap)  # a worker that sees only this test's events
    queue = f"q{uuid.uuid4().hex[:8]}"
    calls, agents = scenario(queue)
    producer = EventProducer(kafka_bootstrap, client_id="test")
    producer.produce_sync(prefix + "cc.call-events.v1", [(e.call_id, e) for e in calls[:-1]])  # all in 9:00-9:30
    producer.produce_sync(prefix + "cc.agent-events.v1", [(e.agent_id, e) for e in agents[:2]])
    settings = worker_settings(kafka_bootstrap, clickhouse_url, prefix)
    seen: dict[str, str] = {}

    async def until() -> None:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = await browser.new_page()
            await page.goto(f"http://127.0.0.1:{settings.http_port}/wallboard?token={TOKEN}")
            tile = page.locator(f'article[data-queue="{queue}"]')
            await tile.wait_for(timeout=60_000)
            seen["waiting_before"] = await tile.locator(".waiting").inner_text()
            alert = page.locator('li.alert[data-kpi="service_level"]')
            await alert.first.wait_for(timeout=60_000)
            seen["alert"] = await alert.first.inner_text()
            seen["tile_class"] = await tile.get_attribute("class") or ""
            # Two callers start waiting: the open page must show them without a reload.
            start = T0 + timedelta(minutes=20)
            waiting = [call_event(f"{queue}-w{i}", start, "offered", context__queue_id=queue) for i in range(2)]
            waiting += [call_event(f"{queue}-w{i}", start, "queued", queue_id=queue) for i in range(2)]
            waiting.append(call_event(f"{queue}-late", start + timedelta(seconds=30), "blocked",
                                      context__queue_id=queue))
            await asyncio.to_thread(producer.produce_sync, prefix + "cc.call-events.v1",
                                    [(e.call_id, e) for e in waiting])
            await page.wait_for_function(
                "q => document.querySelector(`article[data-queue=\"${q}\"] .waiting`)?.textContent === '2'",
                arg=queue, timeout=60_000)
            seen["waiting_after"] = await tile.locator(".waiting").inner_text()
            await page.screenshot(path=str(tmp_path / "wallboard.png"))
            await browser.close()

    asyncio.run(build_worker(settings).serve(until))
    assert seen["waiting_before"] == "0"
    assert "service_level" in seen["alert"] and "target >= 80" in seen["alert"]
    assert "breach" in seen["tile_class"]
    assert seen["waiting_after"] == "2"
