"""Ingest figures: the produce path as a ratio to raw confluent-kafka sending the same bytes (measured in the
same run), the whole January Anonymous Bank file replayed into Kafka, and the webhook API (events/s accepted
per process, p99 at half that rate).

Uses KAFKA_BOOTSTRAP_SERVERS when set, else starts a local broker. The webhook server runs in its own
process (`python -m callstream_ingest`); the load generator is this process. Run by `make bench`.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

import httpx

from bench import kafka_baseline
from bench.common import percentile, print_figures, selected_parts
from bench.kafka_baseline import bootstrap_servers
from callstream.call.v1 import call_events_pb2 as ce
from callstream_core import wire
from callstream_core.kafka import apply_topics
from callstream_core.topics import AGENT_EVENTS, CALL_EVENTS, topic
from callstream_devtools.local_kafka import find_repo_root, free_port
from callstream_devtools.testing import wait_until_serving
from callstream_ingest.adapters.replay import replay_anonymous_bank
from callstream_ingest.domain.events import call_event
from callstream_ingest.service_layer.event_sink import EventSink, make_producer

PRODUCE_EVENTS = 100_000
WEBHOOK_BATCH = 100
WEBHOOK_CONCURRENCY = 8
WEBHOOK_SECONDS = 10.0
TOKEN = "bench-token-0123456789abcdef"
# Idle connections are dropped before uvicorn's 5 s keep-alive ends them: reusing one the server is just
# closing fails the request (httpx.ReadError), which says nothing about the service.
_LIMITS = httpx.Limits(max_connections=64, keepalive_expiry=2.0)


PRODUCE_ROUNDS = 3


def _produce_events() -> list[ce.CallEvent]:
    when = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)
    return [call_event("bench", f"k{i}", f"call-{i % 5000}", when, "answered",
                       ce.CallAnswered(agent_id="agent-0042", queue_id="billing")) for i in range(PRODUCE_EVENTS)]


def produce_path(bootstrap: str, events: list[ce.CallEvent], wire_format: str = "json") -> float:
    """Events/s from an adapter's events (already mapped) through EventSink into Kafka, confirmed."""
    sink = EventSink(make_producer(bootstrap, client_id="bench-ingest", wire_format=wire_format))
    start = time.perf_counter()
    sink.send_all(events, "bench")
    sink.confirm(120)
    return len(events) / (time.perf_counter() - start)


def produce_figures(bootstrap: str) -> dict[str, float]:
    """The produce path in both wire formats, each against raw confluent-kafka sending the very same bytes
    (the events encoded beforehand, same keys, same topic, the platform's producer settings), measured in
    the same round; rounds alternate so a loaded machine weighs on both alike. Medians of the rounds."""
    events = _produce_events()
    figures: dict[str, float] = {}
    for fmt, name in (("json", "produce_path"), ("protobuf", "produce_path_pb")):
        records = [(wire.encode(e, fmt), e.call_id.encode()) for e in events]
        rates, baselines, cpu, raw_cpu = [], [], [], []
        for _ in range(PRODUCE_ROUNDS):
            # CPU of this (the producing) thread per message as well: it is what Python adds, and it moves
            # less than wall time when other jobs share the cores.
            started = time.thread_time()
            baselines.append(kafka_baseline.produce(bootstrap, CALL_EVENTS, len(records), records))
            raw_cpu.append((time.thread_time() - started) / len(records) * 1e6)
            started = time.thread_time()
            rates.append(produce_path(bootstrap, events, fmt))
            cpu.append((time.thread_time() - started) / len(events) * 1e6)
        figures[f"{name}_bytes_per_event"] = statistics.mean(len(v) for v, _ in records)
        figures[f"{name}_raw_msgs_per_s"] = statistics.median(baselines)
        figures[f"{name}_events_per_s"] = statistics.median(rates)
        figures[f"{name}_vs_baseline"] = statistics.median(r / b for r, b in zip(rates, baselines, strict=True))
        figures[f"{name}_raw_thread_cpu_us"] = statistics.median(raw_cpu)
        figures[f"{name}_thread_cpu_us"] = statistics.median(cpu)
    return figures


def bank_replay(bootstrap: str) -> tuple[float, int]:
    shared = Path(os.environ.get("CALLSTREAM_SHARED_DIR", find_repo_root().parent / "shared"))
    path = shared / "data" / "anonymous-bank" / "january.txt"
    if not path.is_file():
        print(f"  (skipped: {path} not found; set CALLSTREAM_SHARED_DIR)")
        return float("nan"), 0
    sink = EventSink(make_producer(bootstrap, client_id="bench-replay"))
    report = replay_anonymous_bank(path, sink)
    if not report.confirmed:
        raise RuntimeError(report.error)
    return report.wall_s, report.produced


def _event(i: int) -> dict[str, object]:
    return {"envelope": {"eventId": str(uuid.uuid4()), "occurredAt": "2026-11-02T09:30:12.250Z",
                         "source": "bench-pbx", "schemaVersion": 1},
            "callId": f"pbx1-{i % 5000}", "answered": {"agentId": "agent-0042", "queueId": "billing"}}


def _bodies(n: int) -> list[bytes]:
    return [json.dumps([_event(i * WEBHOOK_BATCH + j) for j in range(WEBHOOK_BATCH)]).encode() for i in range(n)]


async def _throughput(url: str) -> float:
    bodies = _bodies(400)
    sent = 0
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60, limits=_LIMITS) as client:
        end = time.perf_counter() + WEBHOOK_SECONDS

        async def worker(k: int) -> None:
            nonlocal sent
            i = k
            while time.perf_counter() < end:
                r = await client.post("/v1/events", content=bodies[i % len(bodies)])
                if r.status_code != 202:
                    raise RuntimeError(f"{r.status_code} {r.text[:200]}")
                sent += WEBHOOK_BATCH
                i += WEBHOOK_CONCURRENCY

        start = time.perf_counter()
        await asyncio.gather(*(worker(k) for k in range(WEBHOOK_CONCURRENCY)))
        return sent / (time.perf_counter() - start)


async def _paced_latency(url: str, events_per_s: float) -> list[float]:
    """Batches of WEBHOOK_BATCH at a fixed request rate for WEBHOOK_SECONDS; latency of each request (ms)."""
    bodies = _bodies(int(events_per_s * WEBHOOK_SECONDS / WEBHOOK_BATCH) + 1)
    interval = WEBHOOK_BATCH / events_per_s
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    latencies: list[float] = []
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60, limits=_LIMITS) as client:

        async def one(body: bytes) -> None:
            t0 = time.perf_counter()
            r = await client.post("/v1/events", content=body)
            if r.status_code != 202:
                raise RuntimeError(f"{r.status_code} {r.text[:200]}")
            latencies.append((time.perf_counter() - t0) * 1000)

        tasks = []
        start = time.perf_counter()
        for n, body in enumerate(bodies):
            delay = start + n * interval - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(body)))
        await asyncio.gather(*tasks)
    return latencies


def webhook(bootstrap: str) -> dict[str, float]:
    port = free_port()
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "HTTP_PORT": str(port),
           "INGEST_SOURCES": f"{TOKEN}=bench-pbx", "LOG_LEVEL": "WARNING", "WEBHOOK_DEDUP_IDS": "0",
           "CALLSTREAM_ENV": "development"}
    proc = subprocess.Popen([sys.executable, "-m", "callstream_ingest"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(url, proc, timeout_s=60)
        asyncio.run(_throughput(url))  # warm-up (idempotent producer id, connections)
        rate = asyncio.run(_throughput(url))
        lat = asyncio.run(_paced_latency(url, rate / 2))
    finally:
        proc.terminate()
        proc.wait(30)
    return {"webhook_events_per_s": rate, "webhook_p50_ms_at_half": percentile(lat, 50),
            "webhook_p99_ms_at_half": percentile(lat, 99)}


PARTS = ("produce", "replay", "webhook")


def main(argv: list[str] | None = None) -> None:
    """All parts, or the ones named on the command line (`python -m bench.ingest produce webhook`)."""
    parts = selected_parts(argv, PARTS)
    figures: dict[str, float] = {}
    with ExitStack() as stack:
        bootstrap = bootstrap_servers(stack)
        apply_topics(bootstrap, [topic(CALL_EVENTS), topic(AGENT_EVENTS)])
        if "produce" in parts:
            figures.update(produce_figures(bootstrap))
        if "replay" in parts:
            wall, events = bank_replay(bootstrap)
            figures["bank_january_wall_s"] = wall
            figures["bank_january_events"] = float(events)
            figures["bank_january_events_per_s"] = events / wall if events else float("nan")
        if "webhook" in parts:
            figures.update(webhook(bootstrap))
    print_figures(f"Ingest: produce path ({PRODUCE_EVENTS:,} events, median of {PRODUCE_ROUNDS} rounds, ratio to "
                  f"raw confluent-kafka sending the same bytes), January bank replay, webhook "
                  f"(batches of {WEBHOOK_BATCH}, {WEBHOOK_CONCURRENCY} in flight)", figures)


if __name__ == "__main__":
    main()
