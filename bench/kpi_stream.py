"""KPI stream figures (issue 19), each printed with its aim and whether it is met:

* throughput: events/s through one worker with its default settings, a full event mix (the demo center's
  simulated days: offered, IVR, queued, ringing, answered, hold, transferred, ended, wrap-up, abandoned and
  every agent state), JSON on the wire as every producer writes by default; anchored by raw consumers
  (aiokafka and confluent-kafka) reading the same topics in the same run, and Faust alone; again with binary
  protobuf on the wire (part `throughput-protobuf`), which shows what decoding JSON costs;
* cost growth: the same at 1×, 4× and 16× the events (1, 4 and 16 simulated days), CPU per event;
* freshness: the same mix re-stamped with the wall clock and produced at 1,000 events/s, default settings
  (allowed lateness 10 s): event produced → a snapshot on cc.kpi-realtime.v1 counting it (provisionally: its
  provisional_as_of reaches the event), and call ended → its contact stored (what the KPI API reads), p50/p95;
* profile (`make profile-kpi`, part `profile`): the 4× run under cProfile, CPU split by stage.

Parts are chosen on the command line (`python -m bench.kpi_stream throughput freshness`); all by default.
`--strict` exits 1 when an aim is missed. Uses KAFKA_BOOTSTRAP_SERVERS when set, else a local broker; chDB
in a temp dir."""

from __future__ import annotations

import asyncio
import cProfile
import dataclasses
import logging
import multiprocessing
import pstats
import resource
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, timedelta
from pathlib import Path
from typing import Any, TypeAlias

import yaml
from aiokafka import AIOKafkaConsumer
from confluent_kafka import Consumer
from faust.types import Message
from google.protobuf.timestamp_pb2 import Timestamp
from prometheus_client import REGISTRY

from bench.common import Aim, percentile, print_aims, print_figures, selected_parts
from bench.kafka_baseline import bootstrap_servers
from bench.simulator import DEMO
from callstream.agent.v1 import agent_events_pb2
from callstream.call.v1 import call_events_pb2
from callstream.kpi.v1 import kpi_events_pb2
from callstream_core import wire
from callstream_core.faust_support import decode_events, faust_topic, make_app
from callstream_core.kafka import DeadLetters, EventProducer
from callstream_core.topics import AGENT_EVENTS, CALL_EVENTS, KPI_REALTIME, Topic, topic
from callstream_devtools.local_kafka import free_port
from callstream_devtools.testing import isolated_topics
from callstream_kpi.bootstrap import build_worker, tune_garbage_collector
from callstream_kpi.config import KpiSettings
from callstream_kpi.entrypoints.worker import KpiWorker
from callstream_simulator import Engine, InProcessRouter, ListSink, parse_scenario

PARTS = ("throughput", "throughput-protobuf", "growth", "freshness", "profile")
AIM_EVENTS_PER_S = 5_000
AIM_FRESHNESS_P95_S = 2.0
THROUGHPUT_DAYS = 4  # ~100,000 events: also the 4× step of the cost growth
GROWTH_DAYS = (1, 4, 16)
GROWTH_RUNS = 5  # per size, the median taken (see `growth`): with 3, one slow run of three moved a median
PROFILE_DAYS = 1  # ~25,000 events: the split is steady by then, and cProfile slows the worker down
FRESHNESS_RATE = 1_000
FRESHNESS_SECONDS = 20
SAMPLE_EVERY = 100  # freshness: one sampled event (real-time topic) in this many
DEADLINE_S = 1800
PROFILES = Path(".local")  # git ignores it

Event: TypeAlias = call_events_pb2.CallEvent | agent_events_pb2.AgentEvent


def demo_day(day: int) -> list[Event]:
    """One simulated day of the demo center (`deploy/local/demo-center.yaml`, ~25,000 events), `day` days
    after the scenario's start, in emission order: every call and agent event kind the simulator makes."""
    sc = parse_scenario(yaml.safe_load(DEMO.read_text()), "bench scenario")
    sink = ListSink()
    Engine(sc, InProcessRouter(sc), sink, start=sc.start + timedelta(days=day)).run()
    return sink.events


def produce_days(bootstrap: str, prefix: str, days: int, wire_format: str = "json") -> int:
    """`days` simulated days into the prefixed call and agent topics (JSON by default, as the producers write
    by default); returns the number of events."""
    producer = EventProducer(bootstrap, client_id="bench-kpi", wire_format=wire_format)
    count = 0
    for day in range(days):
        events = demo_day(day)
        producer.produce_sync(prefix + CALL_EVENTS, [(e.call_id, e) for e in events
                                                    if isinstance(e, call_events_pb2.CallEvent)])
        producer.produce_sync(prefix + AGENT_EVENTS, [(e.agent_id, e) for e in events
                                                     if isinstance(e, agent_events_pb2.AgentEvent)])
        count += len(events)
    return count


@dataclass
class Rate:
    """Events taken per second, timed from the first event taken to the last (start-up and the consumer
    group's join left out, for the worker and the raw consumers alike), and the process CPU meanwhile."""

    events: int
    seconds: float
    cpu_s: float

    @property
    def per_s(self) -> float:
        return self.events / self.seconds


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def raw_aiokafka(bootstrap: str, topics: Sequence[str], count: int) -> Rate:
    consumer = AIOKafkaConsumer(*topics, bootstrap_servers=bootstrap, group_id=f"bench-raw-{uuid.uuid4().hex[:8]}",
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    try:
        seen, first, cpu = 0, 0, 0.0
        began = 0.0
        while seen < count:
            batches = await consumer.getmany(timeout_ms=1000, max_records=5000)
            got = sum(len(records) for records in batches.values())
            if got and not seen:
                began, first, cpu = time.perf_counter(), got, _cpu()
            seen += got
        return Rate(seen - first, time.perf_counter() - began, _cpu() - cpu)
    finally:
        await consumer.stop()


def raw_confluent(bootstrap: str, topics: Sequence[str], count: int) -> Rate:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-raw-{uuid.uuid4().hex[:8]}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe(list(topics))
    try:
        seen, first, cpu = 0, 0, 0.0
        began = 0.0
        while seen < count:
            got = sum(1 for m in consumer.consume(num_messages=5000, timeout=1.0) if m.error() is None)
            if got and not seen:
                began, first, cpu = time.perf_counter(), got, _cpu()
            seen += got
        return Rate(seen - first, time.perf_counter() - began, _cpu() - cpu)
    finally:
        consumer.close()


async def faust_alone(bootstrap: str, prefix: str, count: int, *, decode: bool, batches: bool = False) -> Rate:
    """Faust (faust-streaming) with the worker's app settings on the same topics, the body only counting
    (`decode`: decoding each batch as the worker does, dead letters and all): the ceiling the stream processor
    itself puts on the worker. `batches`: read through `BatchApp.batch_topic` as the worker does; else
    through Faust's agents and `take_events` with the same batch size (Faust's per-message hand-off)."""
    defaults = KpiSettings()
    app = make_app(f"bench-faust-{uuid.uuid4().hex[:8]}", bootstrap, consumer_auto_offset_reset="earliest")
    dead_letters = DeadLetters(EventProducer(bootstrap, client_id="bench-faust"))
    seen: list[float] = []  # events taken, then (first batch) the clock, events and CPU at the first batch

    def taken(messages: Sequence[Message], registered: Topic) -> None:
        if decode:
            decode_events(messages, registered, dead_letters)
        if not seen:
            seen.extend([0.0, time.perf_counter(), len(messages), _cpu()])
        seen[0] += len(messages)

    for name in (CALL_EVENTS, AGENT_EVENTS):
        registered = dataclasses.replace(topic(name), name=prefix + name)
        if batches:
            async def handle(messages: list[Message], registered: Topic = registered) -> None:
                taken(messages, registered)

            app.batch_topic(faust_topic(app, registered), handle, max_events=defaults.batch_max,
                            within_s=defaults.batch_within_s)
            continue

        async def consume(stream: Any, registered: Topic = registered) -> None:
            async for events in stream.take_events(defaults.batch_max, within=defaults.batch_within_s):
                taken([e.message for e in events], registered)

        consume.__name__ = f"count_{name.replace('.', '_').replace('-', '_')}"
        app.agent(faust_topic(app, registered), name=consume.__name__, concurrency=1)(consume)
    await app.start()
    try:
        deadline = time.monotonic() + DEADLINE_S
        while not seen or seen[0] < count:
            await asyncio.sleep(0.2)  # polling progress: the span ends within 0.2 s of done
            if time.monotonic() > deadline:
                raise RuntimeError(f"Faust took {seen[:1]} of {count} events in {DEADLINE_S} s")
        return Rate(int(seen[0] - seen[2]), time.perf_counter() - seen[1], _cpu() - seen[3])
    finally:
        await app.stop()


def settings(bootstrap: str, chdb: Path, prefix: str, offset_reset: str = "earliest") -> KpiSettings:
    """The worker's own defaults (batching, allowed lateness, real-time tick): what is deployed is measured."""
    return KpiSettings(kafka_bootstrap_servers=bootstrap, clickhouse_url=f"chdb://{chdb}", topic_prefix=prefix,
                       consumer_auto_offset_reset=offset_reset,  # type: ignore[arg-type]
                       clickhouse_database=f"bench_{uuid.uuid4().hex[:8]}", http_port=free_port(),
                       consumer_group=f"bench-kpi-{uuid.uuid4().hex[:8]}", api_tokens="bench-token:manager")


def _taken() -> float:
    """Events the KPI worker took so far in this process (its own counter, over every topic)."""
    return sum(REGISTRY.get_sample_value("callstream_kpi_events_total", {"topic": t}) or 0.0
               for t in ("call", "agent"))


def worker_rate(bootstrap: str, chdb: Path, prefix: str, count: int,
                profiled: Callable[[KpiWorker], Any] | None = None) -> Rate:
    """One worker over the `count` events of the prefixed topics; ends when every event is taken and the
    batch that took the last one has stored its facts (the pipeline's one thread has run everything queued)."""
    worker = build_worker(settings(bootstrap, chdb, prefix))
    tune_garbage_collector()  # as the worker's process does (`callstream_kpi.bootstrap.main`)
    timing: dict[str, float] = {}

    async def until() -> None:
        before = _taken()
        deadline = time.monotonic() + DEADLINE_S
        while _taken() == before:
            await asyncio.sleep(0.01)  # polling for the first batch: the clock starts within 10 ms of it
            if time.monotonic() > deadline:
                raise RuntimeError("the worker took no event")
        began, first, cpu = time.perf_counter(), _taken() - before, _cpu()
        if profiled is not None:
            await profiled(worker)
        while _taken() - before < count:
            # Polling progress: the span ends within 0.2 s of done (< 1 % of a run); reading the counters
            # runs in the worker's event loop, and polling every 50 ms took 7 % of its CPU.
            await asyncio.sleep(0.2)
            if time.monotonic() > deadline:
                raise RuntimeError(f"the worker took {_taken() - before:.0f} of {count} events in {DEADLINE_S} s")
        await worker._run(lambda: None)  # the last batch's facts are stored once the pipeline thread gets here
        timing.update(events=count - first, seconds=time.perf_counter() - began, cpu=_cpu() - cpu)

    asyncio.run(worker.serve(until))
    # The run's tables go with it: chDB merges a table's parts in the background, in this process, and the
    # next run would pay for them.
    worker.client.command(f"DROP DATABASE IF EXISTS `{worker.settings.clickhouse_database}` SYNC")
    return Rate(int(timing["events"]), timing["seconds"], timing["cpu"])


def throughput(bootstrap: str, chdb: Path, days: int = THROUGHPUT_DAYS,
               wire_format: str = "json") -> tuple[dict[str, float], list[Aim]]:
    prefix = isolated_topics(bootstrap, "tp")
    count = produce_days(bootstrap, prefix, days, wire_format)
    topics = [prefix + CALL_EVENTS, prefix + AGENT_EVENTS]
    aio = asyncio.run(raw_aiokafka(bootstrap, topics, count))
    confluent = raw_confluent(bootstrap, topics, count)
    faust_stream = asyncio.run(faust_alone(bootstrap, prefix, count, decode=False))
    faust_batches = asyncio.run(faust_alone(bootstrap, prefix, count, decode=False, batches=True))
    faust_decoding = asyncio.run(faust_alone(bootstrap, prefix, count, decode=True, batches=True))
    worker = worker_rate(bootstrap, chdb, prefix, count)
    figures = {f"events (full mix, {wire_format})": count, "raw aiokafka consume ev/s": aio.per_s,
               "raw confluent-kafka consume ev/s": confluent.per_s,
               "Faust agent + take_events, empty body ev/s": faust_stream.per_s,
               "Faust batch_topic, empty body ev/s": faust_batches.per_s,
               "Faust batch_topic + decode ev/s": faust_decoding.per_s,
               "worker ev/s": worker.per_s,
               "worker / raw aiokafka": worker.per_s / aio.per_s,
               "worker / raw confluent-kafka": worker.per_s / confluent.per_s,
               "worker CPU us/event": 1e6 * worker.cpu_s / worker.events,
               "Faust agent empty body CPU us/event": 1e6 * faust_stream.cpu_s / faust_stream.events,
               "Faust batch_topic empty body CPU us/event": 1e6 * faust_batches.cpu_s / faust_batches.events,
               "Faust batch_topic + decode CPU us/event": 1e6 * faust_decoding.cpu_s / faust_decoding.events}
    return figures, [Aim("worker events/s per worker", worker.per_s, f"≥ {AIM_EVENTS_PER_S:,}",
                         worker.per_s >= AIM_EVENTS_PER_S)]


def _worker_rate_child(bootstrap: str, chdb: Path, prefix: str, count: int, rates: multiprocessing.Queue[Rate]) -> None:
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    rates.put(worker_rate(bootstrap, chdb, prefix, count))


def worker_rate_alone(bootstrap: str, chdb: Path, prefix: str, count: int) -> Rate:
    """`worker_rate` in a process of its own, as a deployed worker runs: workers built one after another in one
    process got slower (three 16-day runs in one process: 157-201 µs of CPU per event), which measured
    the runs before, not the one at hand."""
    context = multiprocessing.get_context("spawn")
    rates: multiprocessing.Queue[Rate] = context.Queue()
    # A chDB directory of its own: another process's chDB session may hold the bench's.
    child = context.Process(target=_worker_rate_child,
                            args=(bootstrap, chdb / f"alone-{uuid.uuid4().hex[:8]}", prefix, count, rates))
    child.start()
    try:
        return rates.get(timeout=DEADLINE_S + 120)
    finally:
        child.join(120)
        if child.is_alive():
            child.kill()


def growth(bootstrap: str, chdb: Path) -> tuple[dict[str, float], list[Aim]]:
    """CPU per event at 1×, 4×, 16× the events: linear cost is a flat cost per event.

    Each size is read GROWTH_RUNS times, each by a fresh worker in a process of its own, in rounds (1×, 4×, 16×,
    then again), so a stretch of slow machine falls on every size, not on one; the median per size is taken.
    Identical runs differ: three 16-day runs back to back on the quiet bench machine took 127, 148 and 166 µs of
    CPU per event, every stage alike (decoding the same JSON: 48, 51 and 58)."""
    counts = {days: (prefix := isolated_topics(bootstrap, "gr"), produce_days(bootstrap, prefix, days))
              for days in GROWTH_DAYS}
    runs: dict[int, list[Rate]] = {days: [] for days in GROWTH_DAYS}
    for _ in range(GROWTH_RUNS):
        for days, (prefix, count) in counts.items():
            runs[days].append(worker_rate_alone(bootstrap, chdb, prefix, count))
    figures: dict[str, float] = {}
    per_event: list[float] = []
    for days, rates in runs.items():
        cpu_per_event = [1e6 * r.cpu_s / r.events for r in rates]
        figures |= {f"{days}x: events": counts[days][1],
                    f"{days}x: wall us/event (median)": statistics.median(1e6 * r.seconds / r.events for r in rates),
                    f"{days}x: CPU us/event (median)": statistics.median(cpu_per_event),
                    f"{days}x: CPU us/event (lowest)": min(cpu_per_event),
                    f"{days}x: CPU us/event (highest)": max(cpu_per_event)}
        per_event.append(statistics.median(cpu_per_event))
    growth_ratio = per_event[-1] / per_event[0]
    # The lowest runs too: a slower machine only adds time, so the least CPU per event is the run least
    # disturbed; the 16x runs, 16 times longer, are the likelier to take a slow stretch, so this ratio is not
    # flattered by the noise either.
    figures[f"{GROWTH_DAYS[-1]}x / {GROWTH_DAYS[0]}x, lowest runs"] = (
        min(1e6 * r.cpu_s / r.events for r in runs[GROWTH_DAYS[-1]])
        / min(1e6 * r.cpu_s / r.events for r in runs[GROWTH_DAYS[0]]))
    # Linear: the CPU per event does not grow with the events (within 25 %, about a shared machine's noise);
    # a cost that grows with the state held (open calls, tombstones, agent points) would show as a rising CPU
    # per event from 1× to 16×. A falling one is the fixed costs (start-up, a tick a second) spread thinner.
    return figures, [Aim(f"CPU per event {GROWTH_DAYS[-1]}x / {GROWTH_DAYS[0]}x (medians of {GROWTH_RUNS} runs)",
                         growth_ratio, "≤ 1.25 (linear)", growth_ratio <= 1.25)]


# -- freshness ----------------------------------------------------------------------------------------
def produce_live(bootstrap: str, prefix: str, samples: multiprocessing.Queue[tuple[str, str, float, float] | None],
                 ) -> None:
    """(In a process of its own.) The demo day's events in emission order, each stamped with the wall clock
    as it is produced, at FRESHNESS_RATE for FRESHNESS_SECONDS. Samples: ("event", event id, event time,
    produced at) for one event in SAMPLE_EVERY; ("ended", call id, event time, produced at) for each call's
    `ended` event (its contact is stored once the watermark passes it)."""
    producer = EventProducer(bootstrap, client_id="bench-fresh")
    events = demo_day(0)[:FRESHNESS_RATE * FRESHNESS_SECONDS]
    step = 0.1  # seconds per paced slice
    per_slice = int(FRESHNESS_RATE * step)
    began = time.monotonic()
    for n in range(0, len(events), per_slice):
        for i, event in enumerate(events[n:n + per_slice], start=n):
            now = time.time()
            event.envelope.occurred_at.CopyFrom(Timestamp(seconds=int(now), nanos=int(now % 1 * 1e9)))
            if isinstance(event, call_events_pb2.CallEvent):
                producer.produce(prefix + CALL_EVENTS, event, key=event.call_id)
                if event.WhichOneof("kind") == "ended":
                    samples.put(("ended", event.call_id, now, time.time()))
            else:
                producer.produce(prefix + AGENT_EVENTS, event, key=event.agent_id)
            if i % SAMPLE_EVERY == 0:
                samples.put(("event", event.envelope.event_id, now, time.time()))
        producer.poll(0)
        pause = began + (n // per_slice + 1) * step - time.monotonic()
        time.sleep(max(0.0, pause))  # pacing the producer at FRESHNESS_RATE
    producer.flush()
    samples.put(None)


def _stored_contacts(worker: KpiWorker, call_ids: list[str]) -> list[tuple[str]]:
    return worker.client.query("SELECT DISTINCT call_id FROM contacts WHERE call_id IN {ids:Array(String)}",
                               parameters={"ids": call_ids}).result_rows  # type: ignore[return-value]


def freshness(bootstrap: str, chdb: Path) -> tuple[dict[str, float], list[Aim]]:
    prefix = isolated_topics(bootstrap, "fr")
    worker = build_worker(settings(bootstrap, chdb, prefix, "latest"))
    lateness = worker.settings.allowed_lateness_s
    sampled: list[tuple[float, float]] = []  # (event time, produced at), in production order
    ended: dict[str, float] = {}  # call id -> its ended event's produce time
    done = threading.Event()
    # The producer runs in a process of its own: building and sending 1,000 events/s in the worker's process
    # took the worker's GIL, and the figures measured the benchmark's own load as much as the worker.
    samples: multiprocessing.Queue[tuple[str, str, float, float] | None] = multiprocessing.get_context("spawn").Queue()

    def collect() -> None:
        while (sample := samples.get()) is not None:
            kind, _, event_at, produced_at = sample
            if kind == "event":
                sampled.append((event_at, produced_at))
            else:
                ended[sample[1]] = produced_at
        done.set()

    covered: list[float] = []  # produced → a snapshot whose as_of + allowed lateness reaches the event
    # produced → a snapshot whose figures count the event: its provisional_as_of (else its as_of) reaches it
    applied: list[float] = []
    stored: list[float] = []  # call ended produced → its contact stored (what GET /v1/kpis counts)

    async def watch_realtime() -> None:
        consumer = AIOKafkaConsumer(prefix + KPI_REALTIME, bootstrap_servers=bootstrap,
                                    auto_offset_reset="latest", group_id=f"bench-{uuid.uuid4().hex[:6]}")
        await consumer.start()
        try:
            stop_at = None
            while stop_at is None or time.monotonic() < stop_at:
                if done.is_set() and len(applied) >= len(sampled):
                    return
                if done.is_set() and stop_at is None:
                    stop_at = time.monotonic() + 60
                for records in (await consumer.getmany(timeout_ms=200)).values():
                    for record in records:
                        snap = wire.decode(record.value, kpi_events_pb2.RealtimeSnapshot,
                                           wire.header_value(list(record.headers), wire.CONTENT_TYPE))
                        as_of = snap.as_of.ToDatetime(tzinfo=UTC).timestamp()
                        # Figures count events up to as_of finally and, provisionally, up to the newest event.
                        counted_to = (snap.provisional_as_of.ToDatetime(tzinfo=UTC).timestamp()
                                      if snap.HasField("provisional_as_of") else as_of)
                        now = time.time()
                        while len(covered) < len(sampled) and sampled[len(covered)][0] <= as_of + lateness:
                            covered.append(now - sampled[len(covered)][1])
                        while len(applied) < len(sampled) and sampled[len(applied)][0] <= counted_to:
                            applied.append(now - sampled[len(applied)][1])
        finally:
            await consumer.stop()

    async def until() -> None:
        await asyncio.sleep(3)  # let the consumer group settle before the clock starts
        watcher = asyncio.create_task(watch_realtime())
        collector = threading.Thread(target=collect)
        collector.start()
        producing = multiprocessing.get_context("spawn").Process(target=produce_live, args=(bootstrap, prefix, samples))
        producing.start()
        seen: set[str] = set()
        stop_at: float | None = None
        while stop_at is None or time.monotonic() < stop_at:
            if done.is_set() and stop_at is None:
                stop_at = time.monotonic() + 60  # the last contacts settle once the watermark passes them
            waiting = [c for c in list(ended) if c not in seen]
            if done.is_set() and not waiting:
                break
            if waiting:
                rows = await asyncio.to_thread(_stored_contacts, worker, waiting)
                now = time.time()
                for (call_id,) in rows:
                    seen.add(call_id)
                    stored.append(now - ended[call_id])
            await asyncio.sleep(0.05)  # polling ClickHouse: figures have a 50 ms resolution
        collector.join()
        producing.join()
        await watcher

    asyncio.run(worker.serve(until))
    if not covered or not applied or not stored:
        raise RuntimeError(f"no freshness samples (real-time topic {len(covered)} covered, {len(applied)} applied; "
                           f"{len(stored)} contacts)")
    figures = {"sampled events": len(sampled), "sampled ended calls": len(ended),
               "event → snapshot covers it p50 s": statistics.median(covered),
               "event → snapshot covers it p95 s": percentile(covered, 95),
               "event → snapshot counts it p50 s": statistics.median(applied),
               "event → snapshot counts it p95 s": percentile(applied, 95),
               "call ended → contact in KPI API p50 s": statistics.median(stored),
               "call ended → contact in KPI API p95 s": percentile(stored, 95),
               "contacts not stored within 60 s": len(ended) - len(stored)}
    aim = f"p95 < {AIM_FRESHNESS_P95_S:g} s"
    return figures, [Aim("event → real-time topic (counted) p95 s", percentile(applied, 95), aim,
                         percentile(applied, 95) < AIM_FRESHNESS_P95_S),
                     Aim("call ended → KPI API p95 s", percentile(stored, 95), aim,
                         percentile(stored, 95) < AIM_FRESHNESS_P95_S and len(stored) == len(ended))]


# -- profile ------------------------------------------------------------------------------------------
# Stages of the worker's CPU: (file, function) pairs whose cumulative CPU is the stage's, outermost calls
# only. None of a stage's functions calls another stage's, so the stages do not overlap. Consume is the
# event loop's thread (Faust, aiokafka) minus its decoding.
Functions = frozenset[tuple[str, str]]
STAGES: dict[str, Functions] = {
    "decode": frozenset({("faust_support.py", "decode_events")}),
    "sessionize (watermark, sessionizer, agent states, real-time view)": frozenset({
        ("sessionizer.py", "process_batch"), ("sessionizer.py", "sweep"), ("sessionizer.py", "restore"),
        ("sessionizer.py", "needs_history"), ("realtime.py", "process_batch"), ("realtime.py", "advance"),
        ("agent_states.py", "process_batch"), ("pipeline.py", "_observe"), ("pipeline.py", "note_offsets")}),
    "insert (rows, ClickHouse)": frozenset({
        ("clickhouse_facts.py", "insert"), ("clickhouse_facts.py", "call_event_row"),
        ("clickhouse_facts.py", "agent_event_row"), ("clickhouse_facts.py", "interval_row"),
        ("clickhouse_facts.py", "contact_row"), ("contact.py", "to_proto"), ("agent_states.py", "split_interval")}),
    "produce (contacts, snapshots, alerts)": frozenset({("kafka.py", "produce_sync"), ("kafka.py", "produce")}),
}
CONSUME = "consume (Faust, aiokafka, event loop)"
OTHER = "other (pipeline thread: real-time snapshots, alerts, executor)"


def profile(bootstrap: str, chdb: Path, days: int = PROFILE_DAYS) -> tuple[dict[str, float], list[Aim]]:
    """The throughput run with cProfile (CPU time, per thread) in the event loop's thread (Faust's consumer,
    decoding) and the pipeline's thread (sessionizer, inserts, produce); the stats go to
    .local/kpi-profile-{loop,pipeline}.pstats (`python -m pstats` reads them)."""
    prefix = isolated_topics(bootstrap, "pf")
    count = produce_days(bootstrap, prefix, days)
    loop_profile = cProfile.Profile(time.thread_time)
    pipeline_profile = cProfile.Profile(time.thread_time)

    async def start_profiles(worker: KpiWorker) -> None:
        loop_profile.enable()
        await worker._run(pipeline_profile.enable)

    rate = worker_rate(bootstrap, chdb, prefix, count, start_profiles)
    loop_profile.disable()
    # The pipeline thread ended with its executor; its profiler kept what it recorded until then.
    loop, pipeline = _save(loop_profile, "loop"), _save(pipeline_profile, "pipeline")
    loop_total, pipeline_total = _total(loop), _total(pipeline)
    split = {stage: _cumulative(loop if stage == "decode" else pipeline, functions)
             for stage, functions in STAGES.items()}
    split[CONSUME] = loop_total - split["decode"]
    split[OTHER] = pipeline_total - sum(v for k, v in split.items() if k not in ("decode", CONSUME))
    threads = loop_total + pipeline_total
    figures: dict[str, float] = {"events": rate.events, "worker ev/s (profiled)": rate.per_s,
                                 "process CPU s": rate.cpu_s, "profiled threads CPU s": threads,
                                 "other threads CPU s (librdkafka, chDB)": rate.cpu_s - threads}
    for stage in (CONSUME, *STAGES, OTHER):
        figures[f"{stage} %"] = 100 * split[stage] / threads
        figures[f"{stage} us/event"] = 1e6 * split[stage] / rate.events
    return figures, []


def _save(profiler: cProfile.Profile, name: str) -> pstats.Stats:
    PROFILES.mkdir(parents=True, exist_ok=True)
    path = PROFILES / f"kpi-profile-{name}.pstats"
    profiler.dump_stats(path)
    stats = pstats.Stats(str(path))
    print(f"-- {name} thread, top functions by cumulative CPU ({path})")
    stats.sort_stats("cumulative").print_stats(30)
    return stats


def _total(stats: pstats.Stats) -> float:
    return float(stats.total_tt)  # type: ignore[attr-defined]  # pstats keeps it, untyped


def _cumulative(stats: pstats.Stats, functions: Functions) -> float:
    """Cumulative CPU of the chosen functions (defined in a file whose path ends with the given name),
    outermost calls only: time a chosen function spent called from another chosen one is counted once."""
    table: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]  # pstats keeps it, untyped
    chosen = {key for key in table if any(key[0].endswith("/" + file) and key[2] == name for file, name in functions)}
    total = 0.0
    for key in chosen:
        cumulative, callers = table[key][3], table[key][4]
        # callers: {caller: (primitive calls, calls, own time, cumulative time)} of this function under it
        total += cumulative - sum(entry[3] for caller, entry in callers.items() if caller in chosen)
    return total


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    strict = "--strict" in args
    named = [a for a in args if a != "--strict"]
    # `make bench` runs the figures; the profile (slower under cProfile) only when named (`make profile-kpi`).
    parts = selected_parts(named, PARTS) if named else [p for p in PARTS if p != "profile"]
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    runs: dict[str, tuple[str, Callable[[str, Path], tuple[dict[str, float], list[Aim]]]]] = {
        "throughput": (f"KPI worker, defaults, full event mix ({THROUGHPUT_DAYS} simulated days), vs raw consumers "
                       "on the same topics", throughput),
        "throughput-protobuf": ("The same with binary protobuf on the wire (what decoding JSON costs)",
                                lambda b, c: throughput(b, c, wire_format="protobuf")),
        "growth": (f"KPI worker cost growth at {'/'.join(f'{d}x' for d in GROWTH_DAYS)} the events", growth),
        "freshness": (f"KPI stream freshness, defaults, full event mix at {FRESHNESS_RATE:,} events/s for "
                      f"{FRESHNESS_SECONDS} s", freshness),
        "profile": (f"KPI worker CPU by stage (cProfile, {PROFILE_DAYS} simulated day)", profile),
    }
    missed: list[Aim] = []
    with ExitStack() as stack:
        bootstrap = bootstrap_servers(stack)
        chdb = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="callstream-bench-chdb-")))
        for part in parts:
            title, run = runs[part]
            figures, aims = run(bootstrap, chdb)
            print_figures(title, figures)
            print_aims(aims)
            missed += [a for a in aims if not a.met]
    if strict and missed:
        raise SystemExit(f"aims missed: {', '.join(a.name for a in missed)}")


if __name__ == "__main__":
    main()
