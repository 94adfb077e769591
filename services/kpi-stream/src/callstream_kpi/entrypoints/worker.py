"""The KPI stream process: Faust's batches feeding the pipeline, a timer publishing real-time figures, and the
KPI API + wallboard, in one asyncio loop (embedded chDB allows one process per data directory). Its parts are
built by the composition root, `callstream_kpi.bootstrap`."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import signal
import threading
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

import uvicorn
from clickhouse_connect.driver.client import Client
from fastapi import FastAPI
from faust.types import TP, Message
from google.protobuf import json_format
from prometheus_client import Gauge

from callstream_core.event_checks import EventTimeWindow, event_problem
from callstream_core.faust_support import BatchApp, decode_events, faust_topic
from callstream_core.kafka import DeadLetters, EventProducer, Received, committed_offsets
from callstream_core.observability import ReadinessCheck
from callstream_core.topics import (
    AGENT_EVENTS,
    CALL_EVENTS,
    HR_ATTENDANCE,
    HR_COSTS,
    HR_EMPLOYMENT,
    HR_SCHEDULES,
    QA_EVALUATIONS,
    ROUTING_DECISIONS,
    topic,
)
from callstream_kpi.adapters.partition_states import PartitionStateLog
from callstream_kpi.config import KpiSettings
from callstream_kpi.entrypoints.broadcast import Broadcaster
from callstream_kpi.service_layer.pipeline import KpiPipeline, snapshot_key

log = logging.getLogger(__name__)

PAUSED = Gauge("callstream_kpi_partitions_paused",
               "Partitions paused because they ran ahead of the slowest one with records left (a backlog being read)")


class StoreBehindOffsets(RuntimeError):
    """The consumer group committed offsets past the facts this ClickHouse store holds: resuming would
    report figures without the records in between (issue 17 item 5), so the worker refuses to start."""

    def __init__(self, settings: KpiSettings, missing: dict[tuple[str, int], tuple[int, int]]) -> None:
        shown = ", ".join(f"{t}[{p}] committed {c} > stored {s}" for (t, p), (c, s) in list(missing.items())[:5])
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        super().__init__(
            f"consumer group {settings.consumer_group!r} has committed Kafka offsets past the facts in "
            f"ClickHouse {settings.clickhouse_url} (database {settings.clickhouse_database}): {shown}{more}. "
            "This store lacks the facts of those records (a new or wiped chDB path?). Point CLICKHOUSE_URL at "
            "the store these offsets belong to, or start a fresh consumer group (CONSUMER_GROUP) to rebuild this "
            "store from the topics, or delete the group (kafka-consumer-groups.sh --delete --group "
            f"{settings.consumer_group}) to re-read everything into it.")


@dataclasses.dataclass(frozen=True)
class StreamParts:
    """What the worker runs, built by the composition root (`callstream_kpi.bootstrap`)."""

    client: Client
    producer: EventProducer
    dead_letters: DeadLetters
    states: PartitionStateLog
    pipeline: KpiPipeline
    broadcaster: Broadcaster
    executor: ThreadPoolExecutor
    faust: BatchApp


class KpiWorker:
    """The KPI stream's entrypoint: Faust's batches, timers and rebalance signals handed to the pipeline on its
    thread, and the API served beside them. `create_api` builds the API given the worker's readiness check."""

    def __init__(self, settings: KpiSettings, parts: StreamParts,
                 create_api: Callable[[ReadinessCheck], FastAPI]) -> None:
        self.settings = settings
        self.client = parts.client
        self.producer = parts.producer
        self.dead_letters = parts.dead_letters
        self.states = parts.states
        self.pipeline = parts.pipeline
        self.broadcaster = parts.broadcaster
        self.executor = parts.executor
        self.faust = parts.faust
        self.batches = 0
        self.started = False
        self.paused: set[tuple[str, int]] = set()
        self._wire_stream()
        self.api = create_api(self._sink_ready)

    async def _sink_ready(self) -> str | None:
        if not self.started:
            return "the stream is starting (migrations, recovery, consumer group)"
        return self.pipeline.sink_error

    async def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    def _wire_stream(self) -> None:
        window = EventTimeWindow(max_future_s=self.settings.event_time_max_future_s)
        # Call and agent events are counted, sessionized and timed: one without an envelope, id, event time
        # or kind, or dated beyond the window, goes to the DLQ with the reason instead.
        checked = {CALL_EVENTS, AGENT_EVENTS}
        for name, handler in self._routes():
            self._read_batches(name, handler, partial(event_problem, window=window) if name in checked else None)
        self.faust.timer(self.settings.realtime_interval_s)(self._tick)
        self.faust.timer(self.settings.targets_refresh_s)(self._refresh_targets)
        self.faust.on_partitions_revoked.connect(self._on_revoked)
        self.faust.on_partitions_assigned.connect(self._on_assigned)

    def _watched(self, partitions: Any) -> set[tuple[str, int]]:
        names = {self.settings.topic_prefix + name for name, _ in self._routes()}
        return {(tp.topic, tp.partition) for tp in partitions if tp.topic in names}

    async def _on_revoked(self, _sender: Any, /, *args: Any, signal: Any, **_: Any) -> None:
        """Faust's signal (revoked partitions): on the pipeline thread, after the batch in hand, so the final
        state holds every event taken."""
        await self._run(self.pipeline.revoke, self._watched(args[0]))

    async def _on_assigned(self, _sender: Any, /, *args: Any, signal: Any, **_: Any) -> None:
        """Faust's signal (the whole new assignment)."""
        await self._run(self.pipeline.assign, self._watched(args[0]), self.faust.consumer_generation_id)

    def _routes(self) -> list[tuple[str, Callable[[Sequence[Received[Any]]], None]]]:
        return [
            (CALL_EVENTS, self.pipeline.on_call_events),
            (AGENT_EVENTS, self.pipeline.on_agent_events),
            # The router's expected-wait quotes (Queued decisions) for the wallboard.
            (ROUTING_DECISIONS, self.pipeline.on_routing_decisions),
            (QA_EVALUATIONS, self.pipeline.on_qa),
            (HR_SCHEDULES, self.pipeline.on_schedules),
            (HR_ATTENDANCE, self.pipeline.on_attendance),
            (HR_EMPLOYMENT, self.pipeline.on_employment),
            (HR_COSTS, self.pipeline.on_costs),
        ]

    def _partitions(self) -> list[tuple[str, int]]:
        """Every partition the worker reads (the registry's partition counts)."""
        return [(self.settings.topic_prefix + name, p) for name, _ in self._routes()
                for p in range(topic(name).partitions)]

    def _read_batches(self, name: str, handler: Callable[[Sequence[Received[Any]]], None],
               check: Callable[[Any], str | None] | None) -> None:
        registered = dataclasses.replace(topic(name), name=self.settings.topic_prefix + name)

        async def consume(messages: list[Message]) -> None:
            # The batch is acknowledged when this returns, so it never raises: bad input goes to the DLQ in
            # decode_events and a ClickHouse outage is retried inside the pipeline until it succeeds.
            received = decode_events(messages, registered, self.dead_letters, check)
            taken: dict[tuple[str, int], int] = {}
            for message in messages:
                tp = (message.topic, message.partition)
                taken[tp] = max(taken.get(tp, -1), message.offset)
            ahead = await self._run(self._take, handler, received, taken, self._end_offsets())
            self._pace(ahead)
            self.batches += 1

        self.faust.batch_topic(faust_topic(self.faust, registered), consume,
                               max_events=self.settings.batch_max, within_s=self.settings.batch_within_s)

    def _end_offsets(self) -> dict[tuple[str, int], int | None]:
        """Log end offsets the consumer last learned from its fetches (read on the event loop, where the
        consumer lives): the watermark counts a partition with records not taken yet as busy, never idle."""
        consumer = self.faust.consumer
        ends: dict[tuple[str, int], int | None] = {}
        try:
            for tp in consumer.assignment():
                ends[(tp.topic, tp.partition)] = consumer.highwater(tp)
        except (AssertionError, RuntimeError, KeyError):  # a rebalance is under way: no fresh figures
            pass
        return ends

    def _take(self, handler: Callable[[Sequence[Received[Any]]], None], received: Sequence[Received[Any]],
              taken: dict[tuple[str, int], int],
              end_offsets: dict[tuple[str, int], int | None]) -> set[tuple[str, int]]:
        """The batch, on the pipeline thread; returns the partitions to pause (read ahead of the others)."""
        if received:
            handler(received)
        # After the facts, before the acknowledgement: the offsets are stored with the facts they produced.
        self.pipeline.store_consumed_offsets(taken)
        # After the handler: a partition seen for the first time in this batch is tracked by then.
        self.pipeline.note_offsets(taken, end_offsets)
        return self.pipeline.partitions_ahead()

    def _pace(self, ahead: set[tuple[str, int]]) -> None:
        """Pause the partitions read ahead of the slowest one with records left, resume those no longer ahead
        (on the event loop, where the consumer lives). A paused partition keeps at most the one fetch the
        consumer holds for it; Faust forgets a pause when the partition is revoked, and the next batch or tick
        (every `realtime_interval_s`) decides again on what the pipeline holds after a rebalance."""
        consumer = self.faust.consumer
        try:
            assigned = {(tp.topic, tp.partition) for tp in consumer.assignment()}
        except (AssertionError, RuntimeError):  # the consumer is not there (yet, or any more)
            return
        self.paused &= assigned
        ahead &= assigned
        if self.paused - ahead:
            consumer.resume_partitions({TP(topic, partition) for topic, partition in self.paused - ahead})
        if ahead - self.paused:
            consumer.pause_partitions({TP(topic, partition) for topic, partition in ahead - self.paused})
        self.paused = ahead
        PAUSED.set(len(ahead))

    def _tick_at(self, end_offsets: dict[tuple[str, int], int | None]) -> Any:
        self.pipeline.note_offsets({}, end_offsets)
        return self.pipeline.tick(), self.pipeline.partitions_ahead()

    async def _tick(self) -> None:
        if not self.started:  # the consumer is not there yet
            return
        try:
            (snapshots, alerts), ahead = await self._run(self._tick_at, self._end_offsets())
        except Exception:  # a failed tick must not stop the timer; the next one recomputes everything
            log.exception("real-time tick failed")
            return
        self._pace(ahead)
        for snap in snapshots:
            await self.broadcaster.publish("snapshot", snapshot_key(snap), json_format.MessageToJson(snap, indent=None))
        for alert in alerts:
            await self.broadcaster.publish("alert", alert.alert_id, json_format.MessageToJson(alert, indent=None))

    async def _refresh_targets(self) -> None:
        if not self.started:  # start() loads them
            return
        try:
            await self._run(self.pipeline.load_targets)
        except Exception:  # the targets in force stay; the next refresh tries again
            log.exception("reading the queue settings failed")

    def _committed_offsets(self) -> dict[tuple[str, int], int]:
        """The group's committed offsets, checked against the offsets this store took facts from."""
        committed = committed_offsets(self.settings.kafka_bootstrap_servers, self.settings.consumer_group,
                                      self._partitions())
        missing = self.pipeline.missing_facts(committed)
        if missing:
            raise StoreBehindOffsets(self.settings, missing)
        return committed

    async def start(self) -> None:
        migrated = await self._run(self.pipeline.migrate)
        await self._run(self.pipeline.load_targets)
        # Every partition's last state before recovery: the teams HR taught are known to the calls rebuilt.
        await self._run(partial(self.pipeline.read_states, to_end=True))
        committed = await self._run(self._committed_offsets)
        recovered = await self._run(self.pipeline.recover, committed)
        log.info("ClickHouse migrations applied: %s; %d events replayed to rebuild open calls", migrated, recovered)
        await self.faust.start()
        self.started = True

    async def stop(self) -> None:
        await self.faust.stop()
        # The final state of every partition held, for the next owner: with static membership (the default)
        # the broker hands them over only after the session timeout, well after this.
        if self.pipeline.assigned:
            await self._run(self.pipeline.revoke, set(self.pipeline.assigned))
        await self._run(self.producer.flush)
        await self._run(self.states.close)
        self.executor.shutdown(wait=True)

    async def serve(self, until: Callable[[], Awaitable[None]] | None = None) -> None:
        """Run the stream and the API (HTTPS when TLS is configured) until the server stops (SIGTERM, Ctrl-C)
        or `until` returns. The API serves from the start (health answers, readiness says "starting") while
        the stream starts."""
        server = uvicorn.Server(uvicorn.Config(self.api, host=self.settings.http_host, port=self.settings.http_port,
                                               log_config=None, **self.settings.uvicorn_tls()))
        stopping = _StopOnSignal(server)
        serving = asyncio.create_task(server.serve())
        try:
            await self.start()
            if until is None:
                await serving
            else:
                await until()
                server.should_exit = True
                await serving
        finally:
            server.should_exit = True
            await serving
            await self.stop()
            stopping.restore()


class _StopOnSignal:
    """SIGTERM and SIGINT ask the server to stop, and nothing more.

    uvicorn re-raises the signal it captured once its server has stopped; under the default handler that
    ends the process there, before the stream stops (Faust's consumer closed, the producer flushed): a
    SIGTERM was as abrupt as a SIGKILL. With this handler in place, the re-raised signal only repeats the
    stop request and `serve` stops the stream in order. Signal handlers live in the main thread only."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self, server: uvicorn.Server) -> None:
        self._previous: dict[signal.Signals, Any] = {}
        if threading.current_thread() is threading.main_thread():
            self._previous = {sig: signal.signal(sig, self._stop) for sig in self.SIGNALS}
        self._server = server

    def _stop(self, signum: int, frame: Any) -> None:
        self._server.should_exit = True

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
