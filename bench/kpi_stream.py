"""KPI stream figures: events/s through one worker into ClickHouse (as a ratio to the raw aiokafka consume
baseline) and freshness, event produced → effect visible in ClickHouse and in the real-time topic, at
1,000 events/s. Uses KAFKA_BOOTSTRAP_SERVERS when set, else a local broker; chDB in a temp dir."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import random
import statistics
import tempfile
import threading
import time
import uuid
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aiokafka import AIOKafkaConsumer

from bench.common import percentile, print_figures
from bench.kafka_baseline import bootstrap_servers
from callstream.call.v1 import call_events_pb2
from callstream.kpi.v1 import kpi_events_pb2
from callstream_core import wire
from callstream_core.envelope import new_envelope
from callstream_core.kafka import EventProducer, apply_topics
from callstream_core.local_kafka import free_port
from callstream_kpi.config import KpiSettings
from callstream_kpi.entrypoints.worker import KpiWorker

AIOKAFKA_BASELINE_MSGS_PER_S = 424_073  # docs/benchmarks.md: bench/kafka_baseline.py, quiet machine, 2026-12-01
THROUGHPUT_CALLS = 20_000
FRESHNESS_RATE = 1_000
FRESHNESS_SECONDS = 20


def call_events(call_id: str, queue: str, start: datetime, rng: random.Random) -> list[call_events_pb2.CallEvent]:
    """The events of one answered or abandoned call (5 or 3 events)."""
    def ev(at: datetime, kind: str, **fields: object) -> call_events_pb2.CallEvent:
        event = call_events_pb2.CallEvent(call_id=call_id, envelope=new_envelope("bench", at))
        body = getattr(event, kind)
        body.SetInParent()
        for name, value in fields.items():
            setattr(body, name, value)
        return event

    offered = call_events_pb2.CallEvent(call_id=call_id, envelope=new_envelope("bench", start))
    offered.offered.context.queue_id = queue
    events = [offered, ev(start, "queued", queue_id=queue)]
    wait = timedelta(seconds=rng.uniform(0, 60))
    if rng.random() < 0.1:
        return [*events, ev(start + wait, "abandoned", queue_id=queue)]
    agent = f"agent-{rng.randrange(500)}"
    talk = wait + timedelta(seconds=rng.uniform(30, 400))
    return [*events, ev(start + wait, "answered", agent_id=agent, queue_id=queue),
            ev(start + talk, "ended", agent_id=agent),
            ev(start + talk + timedelta(seconds=30), "wrap_up_ended", agent_id=agent, resolved=True)]


def settings(bootstrap: str, chdb: Path, lateness_s: float, offset_reset: str = "earliest") -> KpiSettings:
    """The worker's own defaults for batching and the real-time tick (what is deployed is what is measured)."""
    return KpiSettings(kafka_bootstrap_servers=bootstrap, clickhouse_url=f"chdb://{chdb}",
                       consumer_auto_offset_reset=offset_reset,  # type: ignore[arg-type]
                       clickhouse_database=f"bench_{uuid.uuid4().hex[:8]}", http_port=free_port(),
                       consumer_group=f"bench-kpi-{uuid.uuid4().hex[:8]}", allowed_lateness_s=lateness_s)


def throughput(bootstrap: str, chdb: Path) -> dict[str, float]:
    rng = random.Random(1)
    start = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
    events = [e for n in range(THROUGHPUT_CALLS)
              for e in call_events(f"tp-{uuid.uuid4().hex[:6]}-{n}", f"q{n % 10}",
                                   start + timedelta(seconds=n * 1.5), rng)]
    EventProducer(bootstrap, client_id="bench").produce_sync("cc.call-events.v1", [(e.call_id, e) for e in events])
    worker = KpiWorker(settings(bootstrap, chdb, 10.0))
    timing: dict[str, float] = {}

    async def until() -> None:
        began = time.perf_counter()
        while worker.pipeline.sessionizer.stats.events < len(events):
            await asyncio.sleep(0.05)  # polling progress; the measured span ends within 50 ms of done
        timing["seconds"] = time.perf_counter() - began

    asyncio.run(worker.serve(until))
    rate = len(events) / timing["seconds"]
    return {"events": len(events), "events_per_s_into_clickhouse": rate,
            "ratio_to_aiokafka_consume": rate / AIOKAFKA_BASELINE_MSGS_PER_S}


def produce_paced(bootstrap: str, samples: multiprocessing.Queue[tuple[str, float, float] | None]) -> None:
    """(In a process of its own.) Offered + queued events stamped with the wall clock at FRESHNESS_RATE for
    FRESHNESS_SECONDS; one sample per tenth of a second: (event id, event time, time it was produced)."""
    producer = EventProducer(bootstrap, client_id="bench-fresh")
    rng, n = random.Random(2), 0
    deadline = time.monotonic() + FRESHNESS_SECONDS
    while time.monotonic() < deadline:
        tick = time.monotonic()
        batch: list[call_events_pb2.CallEvent] = []
        while len(batch) < FRESHNESS_RATE // 10:
            now = datetime.now(UTC)
            batch += call_events(f"fr-{n}", f"q{n % 10}", now, rng)[:2]  # offered + queued: live now
            n += 1
        for event in batch:
            producer.produce("cc.call-events.v1", event, key=event.call_id)
        sample = batch[-1]
        samples.put((sample.envelope.event_id, sample.envelope.occurred_at.ToDatetime(tzinfo=UTC).timestamp(),
                     time.time()))
        producer.poll(0)
        time.sleep(max(0.0, 0.1 - (time.monotonic() - tick)))  # pacing the producer at 1,000 events/s
    producer.flush()
    samples.put(None)


def _event_ids_stored(worker: KpiWorker, event_ids: list[str]) -> list[tuple[str]]:
    return worker.client.query("SELECT event_id FROM call_events WHERE event_id IN {ids:Array(String)}",
                               parameters={"ids": event_ids}).result_rows  # type: ignore[return-value]


def freshness(bootstrap: str, chdb: Path) -> dict[str, float]:
    """Events stamped with the wall clock at 1,000/s; ClickHouse is polled for sampled event ids, and the
    real-time topic is read for the first snapshot whose watermark covers each sampled event ("covered":
    as of + the allowed lateness reaches the event, i.e. the stream has taken it and ticked; "applied":
    as of reaches the event, i.e. its effect is in the figures, which adds the allowed lateness, 1 s)."""
    lateness = 1.0
    worker = KpiWorker(settings(bootstrap, chdb, lateness, "latest"))  # not the throughput run's backlog
    sent: dict[str, float] = {}  # sampled event id -> produce time
    event_times: list[tuple[datetime, float]] = []  # (event time, produce time) of samples
    stop = threading.Event()
    # The producer runs in a process of its own: building and sending 1,000 events/s in the worker's process
    # took the worker's GIL, and the figures measured the benchmark's own load as much as the worker.
    samples: multiprocessing.Queue[tuple[str, float, float] | None] = multiprocessing.get_context("spawn").Queue()

    def collect() -> None:
        while (sample := samples.get()) is not None:
            event_id, event_at, produced_at = sample
            event_times.append((datetime.fromtimestamp(event_at, UTC), produced_at))
            sent[event_id] = produced_at
        stop.set()

    clickhouse_delays: list[float] = []
    realtime_delays: list[float] = []
    applied_delays: list[float] = []

    async def watch_realtime() -> None:
        consumer = AIOKafkaConsumer("cc.kpi-realtime.v1", bootstrap_servers=bootstrap, auto_offset_reset="latest",
                                    group_id=f"bench-{uuid.uuid4().hex[:6]}")
        await consumer.start()
        pending = applied = 0
        try:
            while not (stop.is_set() and applied >= len(event_times)):
                for records in (await consumer.getmany(timeout_ms=200)).values():
                    for record in records:
                        snap = wire.decode(record.value, kpi_events_pb2.RealtimeSnapshot,
                                           wire.header_value(list(record.headers), wire.CONTENT_TYPE))
                        as_of = snap.as_of.ToDatetime(tzinfo=UTC)
                        covered = as_of + timedelta(seconds=lateness)
                        while pending < len(event_times) and event_times[pending][0] <= covered:
                            realtime_delays.append(time.time() - event_times[pending][1])
                            pending += 1
                        while applied < len(event_times) and event_times[applied][0] <= as_of:
                            applied_delays.append(time.time() - event_times[applied][1])
                            applied += 1
                if stop.is_set() and time.monotonic() > stop_at[0] + 30:
                    return
        finally:
            await consumer.stop()

    stop_at = [float("inf")]

    async def until() -> None:
        await asyncio.sleep(3)  # let the consumer group settle before the clock starts
        watcher = asyncio.create_task(watch_realtime())
        thread = threading.Thread(target=collect)
        thread.start()
        producing = multiprocessing.get_context("spawn").Process(target=produce_paced, args=(bootstrap, samples))
        producing.start()
        seen: set[str] = set()
        while not stop.is_set() or len(seen) < len(sent):
            if stop.is_set() and stop_at[0] == float("inf"):
                stop_at[0] = time.monotonic()
            waiting = [e for e in list(sent) if e not in seen]
            if waiting:
                rows = await asyncio.to_thread(_event_ids_stored, worker, waiting)
                now = time.time()
                for (event_id,) in rows:
                    if event_id not in seen:
                        seen.add(event_id)
                        clickhouse_delays.append(now - sent[event_id])
            await asyncio.sleep(0.05)  # polling ClickHouse: figures have a 50 ms resolution
        thread.join()
        producing.join()
        await watcher

    asyncio.run(worker.serve(until))
    if not clickhouse_delays or not realtime_delays or not applied_delays:
        raise RuntimeError(f"no freshness samples (ClickHouse {len(clickhouse_delays)}, "
                           f"real-time topic {len(realtime_delays)} covered, {len(applied_delays)} applied)")
    return {
        "clickhouse_p50_s": statistics.median(clickhouse_delays),
        "clickhouse_p95_s": percentile(clickhouse_delays, 95),
        "realtime_topic_p50_s": statistics.median(realtime_delays),
        "realtime_topic_p95_s": percentile(realtime_delays, 95),
        "realtime_applied_p50_s": statistics.median(applied_delays),
        "realtime_applied_p95_s": percentile(applied_delays, 95),
        "samples": len(clickhouse_delays),
    }


def main() -> None:
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    with ExitStack() as stack:
        bootstrap = bootstrap_servers(stack)
        apply_topics(bootstrap)
        chdb = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="callstream-bench-chdb-")))
        print_figures("KPI stream: one worker, call events → sessionizer → ClickHouse (chDB)",
                      throughput(bootstrap, chdb))
        print_figures(f"KPI stream freshness at {FRESHNESS_RATE:,} events/s for {FRESHNESS_SECONDS} s "
                      "(allowed lateness 1 s)", freshness(bootstrap, chdb))


if __name__ == "__main__":
    main()
