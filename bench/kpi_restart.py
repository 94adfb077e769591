"""The KPI worker's blind spot at a restart (issue 17 item 8): the worker runs as a process, is stopped by
SIGTERM and by SIGKILL and started again at once (as a supervisor would); calls produced while it starts up
are the probe. The figure is the time from the stop signal to the restarted worker processing again (its
Prometheus counter of call events taken above 0: /metrics, polled every 0.1 s), with its start-up (process,
migrations, recovery, group join: /readyz answering 200) and the time to the whole probe taken shown apart.
Measured twice in the same run: the baseline is the group membership the worker had before (dynamic, Faust's
60 s session), then static membership (group.instance.id) with a 10 s session, the defaults now. Uses
KAFKA_BOOTSTRAP_SERVERS when set, else a local broker; chDB in a temp dir."""

from __future__ import annotations

import dataclasses
import logging
import random
import signal
import tempfile
import time
import uuid
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from bench.common import print_figures
from bench.kafka_baseline import bootstrap_servers
from callstream.call.v1 import call_events_pb2
from callstream_core.envelope import new_envelope
from callstream_core.kafka import EventProducer, apply_topics, committed_offsets
from callstream_core.topics import CALL_EVENTS, TOPICS
from callstream_devtools.local_kafka import free_port
from callstream_devtools.testing import ServiceProcess
from callstream_kpi.config import KpiSettings

PROBE_CALLS = 200
EVENTS_TAKEN = 'callstream_kpi_events_total{topic="call"}'
MEMBERSHIPS = {
    # What the worker had before issue 17: no instance id, Faust's default session of 60 s.
    "dynamic membership, 60 s session (before)": {"group_instance_id": "", "broker_session_timeout_s": 60.0},
    "static membership, 10 s session (now)": {},
}


def _counter(port: int, path: str = "/metrics") -> float | None:
    try:
        response = httpx.get(f"http://127.0.0.1:{port}{path}", timeout=5)
    except httpx.TransportError:
        return None
    if path != "/metrics":
        return 1.0 if response.status_code == 200 else None
    for line in response.text.splitlines():
        if line.startswith(EVENTS_TAKEN):
            return float(line.rsplit(" ", 1)[1])
    return None


def _wait(what: str, probe: object, timeout: float = 300.0) -> float:
    """Poll `probe()` (every 0.1 s) until it is true; returns the monotonic time it became so."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if probe():  # type: ignore[operator]
            return time.monotonic()
        time.sleep(0.1)  # the polling period of the measurement
    raise SystemExit(f"bench: {what} not within {timeout} s")


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


def _committed(settings: KpiSettings, topic: str) -> int:
    partitions = [(topic, p) for p in range(next(t.partitions for t in TOPICS if t.name == CALL_EVENTS))]
    return sum(committed_offsets(settings.kafka_bootstrap_servers, settings.consumer_group, partitions).values())


def _produce(bootstrap: str, topic: str, start: datetime, calls: int, rng: random.Random) -> int:
    events = [e for n in range(calls) for e in call_events(f"c-{uuid.uuid4().hex[:10]}-{n}", "q1",
                                                           start + timedelta(seconds=n), rng)]
    EventProducer(bootstrap, client_id="bench").produce_sync(topic, [(e.call_id, e) for e in events])
    return len(events)


def measure(bootstrap: str, tmp: Path, overrides: dict[str, object]) -> dict[str, float]:
    prefix = f"b{uuid.uuid4().hex[:8]}."
    apply_topics(bootstrap, [dataclasses.replace(t, name=prefix + t.name) for t in TOPICS])
    topic = prefix + CALL_EVENTS
    port = free_port()
    settings = KpiSettings(kafka_bootstrap_servers=bootstrap, clickhouse_url=f"chdb://{tmp / 'chdb'}",
                           topic_prefix=prefix, http_port=port,
                           consumer_group=f"bench-restart-{uuid.uuid4().hex[:8]}").model_copy(update=overrides)
    rng = random.Random(8)
    start = datetime.now(UTC)
    figures: dict[str, float] = {}
    worker = ServiceProcess("callstream_kpi", settings, tmp / "worker.log")
    try:
        produced = _produce(bootstrap, topic, start, PROBE_CALLS, rng)
        worker.start()
        _wait("the first calls taken", lambda: (_counter(port) or 0) >= produced)
        for stop in (signal.SIGTERM, signal.SIGKILL):
            # Every event taken is committed before the stop: none is read again after it, so the counter of
            # the restarted worker counts the probe only.
            _wait("the offsets committed", lambda n=produced: _committed(settings, topic) >= n)
            stopped_at = time.monotonic()
            worker.stop(stop)
            worker = ServiceProcess("callstream_kpi", settings, tmp / "worker.log")
            worker.start()
            start += timedelta(hours=1)
            probe = _produce(bootstrap, topic, start, PROBE_CALLS, rng)
            ready_at = _wait("readiness", lambda: _counter(port, "/readyz"))
            first_at = _wait("the first probe event taken", lambda: (_counter(port) or 0) > 0)
            taken_at = _wait("the probe taken", lambda n=probe: (_counter(port) or 0) >= n)
            produced += probe
            figures[f"{stop.name}: stop -> ready (s)"] = ready_at - stopped_at
            figures[f"{stop.name}: stop -> processing again (s)"] = first_at - stopped_at
            figures[f"{stop.name}: stop -> whole probe taken (s)"] = taken_at - stopped_at
    finally:
        if worker.alive():
            worker.stop(signal.SIGKILL)
    return figures


def main() -> None:
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    results = {}
    with ExitStack() as stack:
        bootstrap = bootstrap_servers(stack)
        for name, overrides in MEMBERSHIPS.items():
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="callstream-bench-restart-")))
            results[name] = measure(bootstrap, tmp, overrides)
    baseline = next(iter(results.values()))
    for name, figures in results.items():
        print_figures(f"KPI worker restart, {PROBE_CALLS} calls produced while it starts: {name}", figures,
                      None if figures is baseline else baseline)


if __name__ == "__main__":
    main()
