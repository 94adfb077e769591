"""The January bank file (or any month file named on the command line), replay → KPIs end to end: wall time
from the first row read to the month's answered and abandoned counts readable from the KPI API (issue 5),
against the aim of 60 s (issue 19), and the replay into Kafka alone (no worker running) measured first in the
same run, on the same broker, under topics of its own.

The file goes through the ingest service's own replay (`replay_anonymous_bank` with its EventSink, JSON on
the wire as in production) into Kafka, while one KPI worker (Faust → sessionizer → chDB) consumes it; the run
ends when the KPI API's month figures equal the replay's own counts of answered and abandoned calls. It always
starts a broker of its own: the replay writes the real topic names, and a broker that already holds them
(KAFKA_BOOTSTRAP_SERVERS) would add old events to the count.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

import httpx

from bench.common import Aim, print_aims, print_figures
from callstream.call.v1 import call_events_pb2
from callstream_core.envelope import new_envelope
from callstream_core.kafka import EventProducer, apply_topics
from callstream_core.topics import CALL_EVENTS
from callstream_devtools.local_kafka import LocalKafka, free_port
from callstream_devtools.testing import isolated_topics
from callstream_ingest.adapters.replay import ReplayReport, replay_anonymous_bank
from callstream_ingest.service_layer.event_sink import EventSink
from callstream_kpi.bootstrap import build_worker, tune_garbage_collector
from callstream_kpi.config import KpiSettings

SHARED = Path(os.environ.get("CALLSTREAM_SHARED_DIR", Path(__file__).resolve().parents[2] / "shared"))
JANUARY = SHARED / "data" / "anonymous-bank" / "january.txt"
TOKEN = "bench-manager-token"
DEADLINE_S = 900
AIM_S = 60.0
# A few later calls on every partition (100 keys reach all six under murmur2) move the event-time watermark
# past the month (the bank's files are months of 1999), so its last calls settle as they would when the next
# month's traffic arrives. They count as offered (queue "sentinel"), never as answered or abandoned.
SENTINEL_CALLS = 100


def sentinels() -> list[call_events_pb2.CallEvent]:
    events = []
    for n in range(SENTINEL_CALLS):
        event = call_events_pb2.CallEvent(call_id=f"bench-feb-{n}",
                                          envelope=new_envelope("bench", datetime(2000, 1, 3, tzinfo=UTC)))
        event.offered.context.queue_id = "sentinel"
        events.append(event)
    return events


def replay_alone(bootstrap: str, month: Path) -> float:
    """Seconds to replay `month` into Kafka (confirmed) with no worker running, under a topic prefix of its own."""
    producer = EventProducer(bootstrap, client_id="bench-replay-alone")
    began = time.perf_counter()
    report = replay_anonymous_bank(month, EventSink(producer, topic_prefix=isolated_topics(bootstrap, "alone")))
    if not report.confirmed:
        raise RuntimeError(f"the replay was not confirmed by Kafka: {report.error}")
    return time.perf_counter() - began


def measure(bootstrap: str, chdb: Path, month: Path = JANUARY) -> dict[str, float]:
    apply_topics(bootstrap)
    alone = replay_alone(bootstrap, month)
    settings = KpiSettings(kafka_bootstrap_servers=bootstrap, clickhouse_url=f"chdb://{chdb}",
                           clickhouse_database=f"bench_{uuid.uuid4().hex[:8]}", http_port=free_port(),
                           consumer_group=f"bench-january-{uuid.uuid4().hex[:8]}", api_tokens=f"{TOKEN}:manager")
    worker = build_worker(settings)
    tune_garbage_collector()  # as the worker's process does (`callstream_kpi.bootstrap.main`)
    figures: dict[str, float] = {}

    def replay() -> ReplayReport:
        producer = EventProducer(bootstrap, client_id="bench-january")
        report = replay_anonymous_bank(month, EventSink(producer))
        if not report.confirmed:
            raise RuntimeError(f"the replay was not confirmed by Kafka: {report.error}")
        producer.produce_sync(CALL_EVENTS, [(e.call_id, e) for e in sentinels()])
        return report

    async def until() -> None:
        began = time.perf_counter()
        report = await asyncio.to_thread(replay)
        figures["replay_into_kafka_s"] = time.perf_counter() - began
        expected = {"answered": report.events_by_kind["answered"], "abandoned": report.events_by_kind["abandoned"]}
        params = {"from": "1998-12-01T00:00:00Z", "to": "2000-01-01T00:00:00Z", "grain": "month"}
        got: dict[str, int] = {}
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{settings.http_port}", timeout=60,
                                     headers={"Authorization": f"Bearer {TOKEN}"}) as http:
            while time.perf_counter() - began < DEADLINE_S:
                response = await http.get("/v1/kpis", params=params)
                if response.status_code == 200:
                    counters = response.json()["total"]["counters"]
                    got = {"answered": counters["answered"], "abandoned": counters["abandoned"]}
                    if got == expected:
                        figures["replay_to_kpis_s"] = time.perf_counter() - began
                        figures["events"] = report.produced
                        figures["events_per_s_end_to_end"] = report.produced / figures["replay_to_kpis_s"]
                        return
                await asyncio.sleep(0.5)  # polling the KPI API: the figure has a 0.5 s resolution
        raise RuntimeError(f"KPIs did not reach the file's counts in {DEADLINE_S} s: {got} != {expected}")

    asyncio.run(worker.serve(until))
    return {"replay alone into Kafka s": alone, **figures}


def main() -> None:
    months = [Path(a) for a in sys.argv[1:]] or [JANUARY]
    for month in months:
        if not month.exists():
            raise SystemExit(f"{month} not found (set CALLSTREAM_SHARED_DIR to the folder holding data/)")
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    for month in months:
        with ExitStack() as stack:
            bootstrap = stack.enter_context(LocalKafka(Path(stack.enter_context(
                tempfile.TemporaryDirectory(prefix="callstream-bench-kafka-"))))).bootstrap_servers
            chdb = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="callstream-bench-chdb-")))
            figures = measure(bootstrap, chdb, month)
        print_figures(f"{month.name}: replay → Kafka → KPI worker → KPI API (month counts equal the file's)", figures)
        print_aims([Aim("replay → KPI API s", figures["replay_to_kpis_s"], f"< {AIM_S:g} s",
                        figures["replay_to_kpis_s"] < AIM_S)])


if __name__ == "__main__":
    main()
