"""The January bank file through Kafka and the KPI worker: the month's offered, answered, abandoned and
ASA from the KPI API equal the figures read directly from the file by a separate simple reading."""

from __future__ import annotations

import asyncio
import csv
import os
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from scenarios import TOKEN, isolated_topics, worker_settings

from callstream.call.v1 import call_events_pb2
from callstream_core.envelope import new_envelope
from callstream_core.kafka import EventProducer
from callstream_ingest.domain.anonymous_bank import AnonymousBankMapper, RowDefect
from callstream_kpi.bootstrap import build_worker

pytestmark = pytest.mark.integration
SHARED = Path(os.environ.get("CALLSTREAM_SHARED_DIR", Path(__file__).resolve().parents[4] / ".." / "shared"))
JANUARY = SHARED / "data" / "anonymous-bank" / "january.txt"


def seconds(clock: str) -> int:
    hours, minutes, secs = (int(part) for part in clock.split(":"))
    return hours * 3600 + minutes * 60 + secs


def day_wrapped(diff: int) -> int:
    """A later time more than an hour "before" an earlier one is on the next day (README: periods that
    cross midnight); a second or so before is the switch's own clock skew, kept as is."""
    return diff + 86400 if diff < -3600 else diff


def simple_reading(defect_lines: set[int]) -> dict[str, float]:
    """Straight from the columns (README of the data): AGENT = answered, HANG after queueing = abandoned,
    HANG without queueing = ended in the IVR (not offered); ASA = mean of ser_start − q_start over answered
    calls (kpis.md: queue time runs to the answer, never below 0; 0 when never queued).
    The `q_time` column runs to q_exit instead, which the switch logged up to a second after the answer."""
    offered = answered = abandoned = 0
    wait = 0
    with JANUARY.open(newline="") as handle:
        rows = csv.reader(handle, delimiter="\t")
        next(rows)
        for line, row in enumerate(rows, start=2):
            if line in defect_lines:
                continue
            outcome, queued = row[12], row[9] != "0:00:00"
            if outcome == "AGENT":
                offered += 1
                answered += 1
                wait += max(0, day_wrapped(seconds(row[13]) - seconds(row[9]))) if queued else 0
            elif outcome == "HANG" and queued:
                offered += 1
                abandoned += 1
    return {"offered": offered, "answered": answered, "abandoned": abandoned, "asa": wait / answered}


@pytest.mark.skipif(not JANUARY.exists(), reason=f"{JANUARY} not found (set CALLSTREAM_SHARED_DIR)")
@pytest.mark.timeout(600)  # 197,000 events through one worker on a 2-core machine
def test_january_kpis_equal_a_direct_reading(kafka_bootstrap: str, clickhouse_url: str) -> None:
    mapper = AnonymousBankMapper(str(JANUARY))
    with JANUARY.open(newline="") as handle:
        mapped = list(mapper.map_lines(handle))
    events = [m for m in mapped if not isinstance(m, RowDefect)]
    defect_lines = {m.line for m in mapped if isinstance(m, RowDefect)}
    # Later events on every partition move the watermark (the minimum over partitions) past January, so
    # the month's last calls settle too; 100 keys reach each of the 6 partitions (murmur2).
    sentinels = []
    for n in range(100):
        sentinel = call_events_pb2.CallEvent(call_id=f"sentinel-feb-{n}", envelope=new_envelope(
            "test", datetime(1999, 2, 3, tzinfo=UTC)))
        sentinel.offered.context.queue_id = "sentinel"
        sentinels.append(sentinel)
    prefix = isolated_topics(kafka_bootstrap)
    # Binary protobuf on the wire (the worker reads either format): the replay itself is not under test here.
    EventProducer(kafka_bootstrap, client_id="test", wire_format="protobuf").produce_sync(
        prefix + "cc.call-events.v1", [(e.call_id, e) for e in [*events, *sentinels]])

    settings = worker_settings(kafka_bootstrap, clickhouse_url, prefix)
    worker = build_worker(settings)
    expected = simple_reading(defect_lines)
    got: dict[str, float] = {}

    async def until() -> None:
        params = {"from": "1998-12-01T00:00:00Z", "to": "1999-02-01T00:00:00Z", "grain": "month"}
        deadline = time.monotonic() + 480
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{settings.http_port}", timeout=60,
                                     headers={"Authorization": f"Bearer {TOKEN}"}) as http:
            while time.monotonic() < deadline:
                if worker.pipeline.sessionizer.stats.events >= len(events) + len(sentinels):
                    response = await http.get("/v1/kpis", params=params)
                    if response.status_code == 200:
                        total = response.json()["total"]
                        counters = total["counters"]
                        got.update(offered=counters["offered"], answered=counters["answered"],
                                   abandoned=counters["abandoned"], asa=total["asa"])
                        if got["answered"] == expected["answered"] and got["offered"] == expected["offered"]:
                            return
                await asyncio.sleep(1)  # polling the worker's progress with a deadline

    asyncio.run(worker.serve(until))
    assert got["offered"] == expected["offered"]
    assert got["answered"] == expected["answered"]
    assert got["abandoned"] == expected["abandoned"]
    assert got["asa"] == pytest.approx(expected["asa"], abs=1e-6)
