"""The Asterisk adapters against a real Asterisk: adapter throughput beside raw Kafka, and line-to-KPI delay.

* `queue_log`: a queue_log written by the real test center (deploy/local/asterisk, 300 calls) is repeated
  `QUEUE_LOG_COPIES` times (call ids renamed, times shifted) and followed by `QueueLogFollower` (read, map,
  produce, confirm); beside it, raw confluent-kafka sends the very same events, encoded beforehand. Rounds
  alternate; medians.
* `ami`: the AMI stream of the same run, recorded from a raw manager session with the client's event filters,
  is served `AMI_COPIES` times by a loopback server to the real `AmiClient` (framing, mapping, produce,
  confirm); the baseline is raw confluent-kafka sending the events the mapper makes of it.
* `latency`: the center at a steady `LATENCY_RATE` calls/s, the queue_log follower and the KPI worker with
  their defaults (allowed lateness 10 s): from the moment a call's last queue_log line is in the file (the
  bench tails it every 20 ms) to the moment the KPI API counts that call, p50 and p95.

Uses KAFKA_BOOTSTRAP_SERVERS when set, else starts a local broker; builds Asterisk once (cached). `make bench`.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import tempfile
import threading
import time
import uuid
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

import httpx

from bench import kafka_baseline
from bench.common import percentile, print_figures, selected_parts
from bench.kafka_baseline import bootstrap_servers
from callstream_core import wire
from callstream_core.kafka import apply_topics
from callstream_core.topics import AGENT_EVENTS, CALL_EVENTS, topic
from callstream_devtools.local_asterisk import LocalAsterisk
from callstream_devtools.local_kafka import free_port
from callstream_devtools.testing import isolated_topics
from callstream_ingest.adapters.queue_log_follow import QueueLogFollower
from callstream_ingest.adapters.switch_clients import AmiClient
from callstream_ingest.domain.ami import AmiEventMapper, AmiParser, filter_actions
from callstream_ingest.domain.call_plan import LoadShape, plan_calls
from callstream_ingest.domain.queue_log import LineDefect, QueueLogMapper
from callstream_ingest.service_layer.call_generator import CallGenerator
from callstream_ingest.service_layer.event_sink import Event, EventSink, make_producer, route

RECORDED_CALLS = 300
QUEUE_LOG_COPIES = 40
AMI_COPIES = 20
ROUNDS = 3
LATENCY_RATE = 1.5
LATENCY_CALLS = 120
WRAP_UP = {"sales": 2.0, "support": 1.0}  # deploy/local/asterisk/queues.conf
ENDING_VERBS = ("COMPLETEAGENT", "COMPLETECALLER", "ABANDON", "EXITWITHTIMEOUT", "EXITWITHKEY", "EXITEMPTY",
                "BLINDTRANSFER", "ATTENDEDTRANSFER", "TRANSFER")


def record_center(run_dir: Path) -> tuple[list[str], bytes]:
    """300 calls on the real test center: its queue_log lines and the raw bytes of an AMI session meanwhile."""
    with LocalAsterisk(run_dir) as pbx:
        recorded = bytearray()

        async def run() -> None:
            reader, writer = await asyncio.open_connection("127.0.0.1", pbx.ami_port)
            writer.write(f"Action: Login\r\nUsername: {pbx.ami_user}\r\nSecret: {pbx.secret}\r\n"
                         f"Events: on\r\n\r\n".encode() + filter_actions(AmiClient.FILTER_ID, AmiClient.EVENT_FILTERS))

            async def tap() -> None:
                while data := await reader.read(65536):
                    recorded.extend(data)

            tapping = asyncio.create_task(tap())
            await CallGenerator("127.0.0.1", pbx.ami_port, pbx.ami_user, pbx.secret).run(
                plan_calls(11, LoadShape(calls=RECORDED_CALLS, calls_per_s=6.0)))
            writer.close()
            tapping.cancel()

        asyncio.run(run())
        return pbx.queue_log.read_text().splitlines(), bytes(recorded)


def repeated_queue_log(lines: list[str], copies: int) -> list[str]:
    epochs = [int(line.split("|", 1)[0]) for line in lines]
    span = max(epochs) - min(epochs) + 60
    out: list[str] = []
    for k in range(copies):
        for line in lines:
            epoch, callid, rest = line.split("|", 2)
            if callid not in ("NONE", "MANAGER", "REALTIME"):
                callid = f"{callid}-r{k}"
            out.append(f"{int(epoch) + k * span}|{callid}|{rest}")
    return out


def raw_produce(bootstrap: str, events: list[Event]) -> float:
    records = [(wire.encode(e, "json"), route(e)[1].encode()) for e in events]
    return kafka_baseline.produce(bootstrap, CALL_EVENTS, len(records), records)


def follow_once(bootstrap: str, path: Path, lines: int) -> tuple[float, int]:
    sink = EventSink(make_producer(bootstrap, client_id="bench-queue-log"))
    follower = QueueLogFollower(path, sink, path.with_name(f"ckpt-{uuid.uuid4().hex}.json"), wrap_up_s=WRAP_UP,
                                confirm_every_s=1.0)
    start = time.perf_counter()
    read = 0
    while read < lines:
        read += follower.step()
    follower.commit()
    wall = time.perf_counter() - start
    sink.close()
    return follower.produced / wall, follower.produced


def queue_log_figures(bootstrap: str, lines: list[str], tmp: Path) -> dict[str, float]:
    big = repeated_queue_log(lines, QUEUE_LOG_COPIES)
    path = tmp / "queue_log.big"
    path.write_text("\n".join(big) + "\n")
    mapper = QueueLogMapper(path.name, wrap_up_s=WRAP_UP)
    events = [e for e in mapper.map_lines(big) if not isinstance(e, LineDefect)]
    rates, baselines = [], []
    for _ in range(ROUNDS):
        baselines.append(raw_produce(bootstrap, events))
        rate, produced = follow_once(bootstrap, path, len(big))
        assert produced == len(events), (produced, len(events))
        rates.append(rate)
    return {"queue_log_lines": float(len(big)), "queue_log_events": float(len(events)),
            "queue_log_events_per_s": statistics.median(rates),
            "queue_log_raw_msgs_per_s": statistics.median(baselines),
            "queue_log_vs_raw": statistics.median(r / b for r, b in zip(rates, baselines, strict=True))}


async def _serve_recording(recording: bytes, copies: int) -> tuple[asyncio.Server, int]:
    """A loopback AMI that accepts any login and then sends the recording `copies` times, once per server."""
    banner_end = recording.find(b"\r\n") + 2
    body = recording[banner_end:]
    served = asyncio.Event()

    async def session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(recording[:banner_end])
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"Response: Success\r\nActionID: callstream-login\r\nMessage: Authentication accepted\r\n\r\n")
        if not served.is_set():
            served.set()
            for _ in range(copies):
                writer.write(body)
                await writer.drain()
        await reader.read()  # keep the session open until the client closes it

    server = await asyncio.start_server(session, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def ami_events(recording: bytes, copies: int) -> list[Event]:
    """The events one mapper makes of the stream the client is served (banner, then the body `copies` times):
    the mapper keeps per-call state, so a repeated call maps as it does in the client, not as a copy."""
    banner_end = recording.find(b"\r\n") + 2
    parser, mapper = AmiParser(), AmiEventMapper()
    events: list[Event] = []
    stream = recording[:banner_end] + recording[banner_end:] * copies
    for at in range(0, len(stream), 65536):  # in reads of the client's size: the parser buffers a read
        for msg in parser.feed(stream[at:at + 65536]):
            if "Event" in msg:
                events.extend(mapper.map(msg, datetime.now(UTC)))
    return events


async def ami_once(bootstrap: str, recording: bytes, expected: int) -> float:
    server, port = await _serve_recording(recording, AMI_COPIES)
    sink = EventSink(make_producer(bootstrap, client_id="bench-ami"))
    client = AmiClient("127.0.0.1", port, "bench", "bench", sink)
    start = time.perf_counter()
    task = asyncio.create_task(client.run())
    deadline = start + 600
    while client.stats.events < expected and time.perf_counter() < deadline:
        await asyncio.sleep(0.01)  # the bench's own poll of the client's progress
    await asyncio.to_thread(sink.confirm, 120)
    wall = time.perf_counter() - start
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    server.close()
    sink.close()
    if client.stats.events < expected:
        raise RuntimeError(f"AMI client produced {client.stats.events} of {expected} events")
    return client.stats.events / wall


def ami_figures(bootstrap: str, recording: bytes) -> dict[str, float]:
    events = ami_events(recording, AMI_COPIES)
    rates, baselines = [], []
    for _ in range(ROUNDS):
        baselines.append(raw_produce(bootstrap, events))
        rates.append(asyncio.run(ami_once(bootstrap, recording, len(events))))
    return {"ami_bytes": float(len(recording) * AMI_COPIES), "ami_events": float(len(events)),
            "ami_events_per_s": statistics.median(rates), "ami_raw_msgs_per_s": statistics.median(baselines),
            "ami_vs_raw": statistics.median(r / b for r, b in zip(rates, baselines, strict=True))}


def latency_figures(bootstrap: str, tmp: Path) -> dict[str, float]:
    from callstream_kpi.bootstrap import build_worker
    from callstream_kpi.config import KpiSettings

    prefix = isolated_topics(bootstrap, "b")
    token = "bench-manager-token-0000"
    settings = KpiSettings(kafka_bootstrap_servers=bootstrap, clickhouse_url=f"chdb://{tmp / 'chdb'}",
                           topic_prefix=prefix, clickhouse_database="bench", http_port=free_port(),
                           consumer_group=f"bench-{uuid.uuid4().hex[:8]}", api_tokens=f"{token}:manager")
    worker = build_worker(settings)
    seen_at: dict[str, float] = {}
    delays: list[float] = []
    with LocalAsterisk(tmp / "latency-asterisk") as pbx:
        sink = EventSink(make_producer(bootstrap, client_id="bench-latency"), topic_prefix=prefix)
        follower = QueueLogFollower(pbx.queue_log, sink, tmp / "latency-ckpt.json", wrap_up_s=WRAP_UP,
                                    poll_interval_s=0.05, confirm_every_s=0.2)
        stop = threading.Event()

        def tail() -> None:
            offset = 0
            while not stop.is_set():
                if pbx.queue_log.exists():
                    with pbx.queue_log.open() as log:
                        log.seek(offset)
                        chunk = log.read()
                    complete = chunk[: chunk.rfind("\n") + 1]
                    offset += len(complete.encode())
                    now = time.monotonic()
                    for line in complete.splitlines():
                        parts = line.split("|")
                        if len(parts) > 4 and parts[4] in ENDING_VERBS:
                            seen_at.setdefault(parts[1], now)
                stop.wait(0.02)

        threads = [threading.Thread(target=follower.run, args=(stop,), daemon=True),
                   threading.Thread(target=tail, daemon=True)]
        for t in threads:
            t.start()

        async def scenario() -> None:
            generating = asyncio.create_task(CallGenerator("127.0.0.1", pbx.ami_port, pbx.ami_user, pbx.secret).run(
                plan_calls(5, LoadShape(calls=LATENCY_CALLS, calls_per_s=LATENCY_RATE))))
            counted_at: list[float] = []
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{settings.http_port}", timeout=30,
                                         headers={"Authorization": f"Bearer {token}"}) as http:
                params = {"from": "2020-01-01T00:00:00Z", "to": "2030-01-01T00:00:00Z", "grain": "month"}
                deadline = time.monotonic() + LATENCY_CALLS / LATENCY_RATE + 180
                while len(counted_at) < LATENCY_CALLS and time.monotonic() < deadline:
                    response = await http.get("/v1/kpis", params=params)
                    if response.status_code == 200:
                        c = response.json()["total"]["counters"]
                        done = int(c.get("answered", 0) + c.get("abandoned", 0) + c.get("overflowed", 0))
                        now = time.monotonic()
                        counted_at.extend([now] * (done - len(counted_at)))
                    await asyncio.sleep(0.1)  # the bench's sampling of the API
            await generating
            ends = sorted(seen_at.values())
            delays.extend(c - e for c, e in zip(counted_at, ends, strict=False))

        try:
            asyncio.run(worker.serve(scenario))
        finally:
            stop.set()
            for t in threads:
                t.join(10)
            sink.close()
    return {"line_to_kpi_p50_s": percentile(delays, 50), "line_to_kpi_p95_s": percentile(delays, 95),
            "line_to_kpi_calls": float(len(delays))}


PARTS = ("queue_log", "ami", "latency")


def main(argv: list[str] | None = None) -> None:
    parts = selected_parts(argv, PARTS)
    figures: dict[str, float] = {}
    with ExitStack() as stack:
        bootstrap = bootstrap_servers(stack)
        apply_topics(bootstrap, [topic(CALL_EVENTS), topic(AGENT_EVENTS)])
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="callstream-bench-asterisk-")))
        if "queue_log" in parts or "ami" in parts:
            lines, recording = record_center(tmp / "asterisk")
            if "queue_log" in parts:
                figures.update(queue_log_figures(bootstrap, lines, tmp))
            if "ami" in parts:
                figures.update(ami_figures(bootstrap, recording))
        if "latency" in parts:
            figures.update(latency_figures(bootstrap, tmp))
    print_figures(f"Asterisk adapters: queue_log x{QUEUE_LOG_COPIES} and AMI x{AMI_COPIES} of a real {RECORDED_CALLS}-"
                  f"call run (median of {ROUNDS} alternating rounds, ratio to raw confluent-kafka sending the same "
                  f"events); line-to-KPI delay at {LATENCY_RATE} calls/s with default lateness", figures)


if __name__ == "__main__":
    main()
