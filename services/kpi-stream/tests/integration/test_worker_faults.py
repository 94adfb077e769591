"""Faults of the KPI worker found by the probe of issue 17 (items 2, 3, 5), each with real parts: a real
Kafka broker, the worker as a real process on its own chDB directory (SIGTERM, SIGKILL), its figures read
over HTTP; and the pipeline with real chDB and Kafka where a step must be observed between two batches."""

from __future__ import annotations

import signal
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from scenarios import T0, agent_event, call_event, isolated_topics, worker_settings
from worker_process import figures, kpi_worker, poll, process_settings, ready

from callstream.call.v1 import call_events_pb2
from callstream_core.clickhouse import get_client
from callstream_core.kafka import EventProducer, Received
from callstream_kpi.service_layer.pipeline import KpiPipeline

pytestmark = pytest.mark.integration
START, END = T0.isoformat(), (T0 + timedelta(days=1)).isoformat()


def _answered(call_id: str, start: Any, wait_s: int, talk_s: int, agent: str) -> list[call_events_pb2.CallEvent]:
    return [
        call_event(call_id, start, "offered", context__queue_id="q1"),
        call_event(call_id, start, "queued", queue_id="q1"),
        call_event(call_id, start + timedelta(seconds=wait_s - 2), "ringing", agent_id=agent, queue_id="q1"),
        call_event(call_id, start + timedelta(seconds=wait_s), "answered", agent_id=agent, queue_id="q1"),
        call_event(call_id, start + timedelta(seconds=wait_s + talk_s), "ended", agent_id=agent),
        call_event(call_id, start + timedelta(seconds=wait_s + talk_s + 30), "wrap_up_ended", agent_id=agent),
    ]


def _abandoned(call_id: str, start: Any, wait_s: int) -> list[call_events_pb2.CallEvent]:
    return [call_event(call_id, start, "offered", context__queue_id="q1"),
            call_event(call_id, start, "queued", queue_id="q1"),
            call_event(call_id, start + timedelta(seconds=wait_s), "abandoned", queue_id="q1")]


def test_a_restart_never_rewrites_a_correct_contact(kafka_bootstrap: str, tmp_path: Path) -> None:
    """Item 2: calls that cross the old recovery cut (newest event - session time-out) keep their contacts
    through a SIGTERM restart and a SIGKILL restart: the figures after each restart equal the ones before,
    and those equal the calls built here (every call offered; answered and abandoned as built)."""
    timeout_s = 600  # a short time-out so that a few minutes of calls cross it
    calls: list[call_events_pb2.CallEvent] = []
    answered = abandoned = 0
    waits: list[int] = []
    for n in range(12):  # long calls: answered early, ended 10 to 21 minutes later, across the cut
        wait = 10 + n
        calls += _answered(f"long-{n}", T0 + timedelta(seconds=20 * n), wait, 600 + 60 * n, f"a{n}")
        answered, waits = answered + 1, [*waits, wait]
    for n in range(12):  # short calls in between, on both sides of the cut
        calls += _abandoned(f"short-{n}", T0 + timedelta(minutes=2 * n), 30 + n)
        abandoned += 1
    # The newest events, on every partition (100 keys reach each of the 6): they move the watermark past
    # every call above, whatever the watermark rule.
    for n in range(100):
        calls += _abandoned(f"late-{n}", T0 + timedelta(minutes=25), 40)
        abandoned += 1
    expected = {"offered": answered + abandoned, "answered": answered, "abandoned": abandoned,
                "asa": sum(waits) / len(waits)}
    prefix = isolated_topics(kafka_bootstrap)
    EventProducer(kafka_bootstrap, client_id="test").produce_sync(prefix + "cc.call-events.v1",
                                                                   [(e.call_id, e) for e in calls])
    settings = process_settings(kafka_bootstrap, tmp_path / "chdb", prefix, session_timeout_s=timeout_s)

    def exact() -> dict[str, float] | None:
        got = figures(settings, START, END)
        return got if got is not None and got["offered"] == expected["offered"] else None

    worker = kpi_worker(settings, tmp_path / "worker.log")
    with worker:
        worker.start()
        before = poll("the exact figures", exact, timeout=120, worker=worker)
    assert before == pytest.approx(expected)
    for stop_signal in (signal.SIGTERM, signal.SIGKILL):
        worker.stop(stop_signal)
        restarted = kpi_worker(settings, tmp_path / "worker.log")
        with restarted:
            restarted.start()
            poll("readiness after the restart", lambda: ready(settings), timeout=120, worker=restarted)
            after = figures(settings, START, END)
            worker = restarted
        assert after == pytest.approx(expected), f"after {stop_signal.name}"


def test_a_new_store_under_an_old_group_refuses_to_start(kafka_bootstrap: str, tmp_path: Path) -> None:
    """Item 5: a worker whose consumer group committed offsets past the facts of its ClickHouse store (here a
    new chDB directory) must not report ready without those facts: it exits with a message saying why."""
    prefix = isolated_topics(kafka_bootstrap)
    calls = _abandoned("only", T0, 30)
    EventProducer(kafka_bootstrap, client_id="test").produce_sync(prefix + "cc.call-events.v1",
                                                                   [(e.call_id, e) for e in calls])
    first = process_settings(kafka_bootstrap, tmp_path / "chdb-a", prefix)
    with kpi_worker(first, tmp_path / "a.log") as worker:
        worker.start()
        poll("the call in the first store", lambda: 1 if (figures(first, START, END) or {}).get("offered") else None,
             timeout=120, worker=worker)
        # Faust commits every second: the commit of the batch is what makes the new store wrong.
        poll("the committed offsets", lambda: 1 if _committed(first, prefix) else None, timeout=60, worker=worker)
        assert worker.stop(signal.SIGTERM) == 0
    second = first.model_copy(update={"clickhouse_url": f"chdb://{tmp_path / 'chdb-b'}"})
    with kpi_worker(second, tmp_path / "b.log") as refused:
        refused.start()
        code = refused.wait(120)
        log = refused.log_tail()
    assert code != 0, log
    assert "refusing to start" in log and first.consumer_group in log and "CLICKHOUSE_URL" in log, log


def _committed(settings: Any, prefix: str) -> dict[tuple[str, int], int]:
    from callstream_core.kafka import committed_offsets

    return committed_offsets(settings.kafka_bootstrap_servers, settings.consumer_group,
                             [(prefix + "cc.call-events.v1", p) for p in range(6)])


def _received(topic: str, partition: int, events: Sequence[Any], first_offset: int = 0) -> list[Received[Any]]:
    return [Received(topic=topic, partition=partition, offset=first_offset + n, key=None, value=e, timestamp_ms=0)
            for n, e in enumerate(events)]


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _pipeline(kafka_bootstrap: str, clickhouse_url: str, clock: _Clock,
              lateness_s: float, provisional_contacts: bool = True) -> tuple[KpiPipeline, str]:
    prefix = isolated_topics(kafka_bootstrap)
    settings = worker_settings(kafka_bootstrap, clickhouse_url, prefix).model_copy(
        update={"allowed_lateness_s": lateness_s, "partition_idle_s": 5.0,
                "provisional_contacts": provisional_contacts})
    client = get_client(clickhouse_url, database=settings.clickhouse_database)
    pipeline = KpiPipeline(settings, client, EventProducer(kafka_bootstrap, client_id="test"), topic_prefix=prefix,
                           monotonic=clock)
    pipeline.migrate()
    return pipeline, prefix


def _contacts(pipeline: KpiPipeline) -> int:
    return int(pipeline.retrying.run(lambda c: c.query("SELECT count() FROM contacts FINAL").result_rows[0][0]))


def test_agent_events_close_the_calls_they_move_the_watermark_past(kafka_bootstrap: str,
                                                                    clickhouse_url: str) -> None:
    """Item 3: agent events move the watermark; the calls it passes are stored when the agent batch is,
    not left waiting for some later input to sweep them (contacts stored at the watermark, not provisionally
    when the abandon comes: the watermark is what closes them then)."""
    clock = _Clock()
    pipeline, prefix = _pipeline(kafka_bootstrap, clickhouse_url, clock, lateness_s=60, provisional_contacts=False)
    call_topic, agent_topic = prefix + "cc.call-events.v1", prefix + "cc.agent-events.v1"
    calls = _abandoned("c1", T0, 30)
    pipeline.on_call_events(_received(call_topic, 0, calls))
    assert _contacts(pipeline) == 0  # the watermark (newest - 60 s) is not at the abandon yet
    clock.now = 10.0  # the call partition idle (5 s), nothing known left in it
    pipeline.note_offsets({}, {(call_topic, 0): len(calls)})
    pipeline.on_agent_events(_received(agent_topic, 0, [agent_event("a1", T0 + timedelta(minutes=5), "ready")]))
    assert pipeline.watermark.current == T0 + timedelta(minutes=4)
    assert _contacts(pipeline) == 1


def test_a_rebuilt_partition_at_its_committed_offset_does_not_hold_the_watermark(kafka_bootstrap: str,
                                                                                   clickhouse_url: str) -> None:
    """Item 3: after a restart, a partition rebuilt from stored events whose last records were taken before
    the restart (dead-lettered: no stored event) and that gets no new record must not hold the watermark
    back: calls on the other partitions close as the stream goes on."""
    clock = _Clock()
    pipeline, prefix = _pipeline(kafka_bootstrap, clickhouse_url, clock, lateness_s=0)
    call_topic = prefix + "cc.call-events.v1"
    quiet = _abandoned("quiet", T0, 30)
    pipeline.on_call_events(_received(call_topic, 1, quiet))  # offsets 0-2; 3 and 4 were dead-lettered
    restarted = KpiPipeline(pipeline.settings, pipeline.retrying.client, pipeline.producer, topic_prefix=prefix,
                            monotonic=clock)
    committed = {(call_topic, 1): 5, (call_topic, 0): 0}
    restarted.recover(committed)
    busy = _abandoned("busy-1", T0 + timedelta(minutes=1), 30) + _abandoned("busy-2", T0 + timedelta(minutes=9), 5)
    clock.now = 1.0
    restarted.note_offsets({}, {(call_topic, 1): 5})
    restarted.on_call_events(_received(call_topic, 0, busy))
    restarted.note_offsets({(call_topic, 0): len(busy) - 1}, {(call_topic, 0): len(busy), (call_topic, 1): 5})
    restarted.tick()
    assert restarted.watermark.current == T0 + timedelta(minutes=9, seconds=5)
    assert _contacts(restarted) == 3  # quiet, busy-1 and busy-2
