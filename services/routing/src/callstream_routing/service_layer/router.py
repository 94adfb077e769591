"""The router: the deterministic core on the wall clock behind an asyncio lock, its commands logged to Kafka
before they are answered (log_ack=durable), its decisions published and streamed, its deadlines fired on time.
The gRPC servicer (entrypoints/grpc_server.py) and the agent events feed call it."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any, NamedTuple

from google.protobuf.message import Message
from prometheus_client import Counter, Histogram

from callstream.agent.v1 import agent_events_pb2
from callstream.routing.v1 import routing_pb2
from callstream_core.kafka import DeadLetters, EventConsumer, EventProducer
from callstream_core.topics import AGENT_EVENTS, BY_NAME, ROUTING_DECISIONS
from callstream_routing import domain as d
from callstream_routing.adapters import proto_mapping as pm
from callstream_routing.adapters.agent_events import AgentEventFeed
from callstream_routing.adapters.command_log import LeadershipLost, TransactionalLogWriter
from callstream_routing.adapters.queue_config import load_queues
from callstream_routing.config import RoutingSettings
from callstream_routing.service_layer import leadership

log = logging.getLogger(__name__)

COMMANDS = Counter("callstream_routing_commands_total", "Commands handled", ["command", "accepted"])
# How far back a re-opened StreamAssignments can ask (replay_last_s): a take-over with the default lease is
# ~6-7 s from the old leader's death to the new one serving, and a switch retries within its own deadline
# (30 s by default, callstream_routing.client); a minute covers both with room and holds a few thousand messages.
REPLAY_KEPT_S = 60.0

LATENCY = Histogram("callstream_routing_command_seconds", "Time to apply and log one command", ["command"],
                    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5))


@functools.cache
def _metrics(field: str, accepted: bool) -> tuple[Any, Any]:
    # labels() takes a lock and builds its key on every call: look each command's children up once.
    return COMMANDS.labels(field, str(accepted).lower()), LATENCY.labels(field)


def wall_clock() -> float:
    # Milliseconds: the command log keeps the clock in milliseconds, so the live core must use the same.
    return round(time.time(), 3)


class Applied(NamedTuple):
    result: d.Result
    decisions: list[routing_pb2.RoutingDecision]  # result.decisions as published


class Router:
    """The core behind an asyncio lock, its log, its decision stream and its timer."""

    def __init__(self, settings: RoutingSettings, clock: Callable[[], float] = wall_clock) -> None:
        self.settings = settings
        self.core = d.RoutingCore()
        self.clock = clock
        # Set when this router leads its command log (leadership.take_over); None while it is a standby.
        self.writer: TransactionalLogWriter | None = None
        self.lock = asyncio.Lock()
        self.subscribers: set[tuple[asyncio.Queue[routing_pb2.RoutingDecision], frozenset[str]]] = set()
        # (monotonic time, decision) published in the last REPLAY_KEPT_S while leading, for re-opened streams.
        self.recent: deque[tuple[float, routing_pb2.RoutingDecision]] = deque()
        self._wake = asyncio.Event()
        self._armed: float | None = None  # the deadline the timer sleeps until (None: no deadline)
        self._timer: asyncio.Task[None] | None = None
        self._snapshots: asyncio.Task[None] | None = None
        self._agent_events: asyncio.Task[None] | None = None
        self._agent_events_stop = asyncio.Event()

    # -- start-up ------------------------------------------------------------------------------------------
    def configure(self, core: d.RoutingCore) -> int:
        if self.settings.queues_file is None:
            return 0
        queues = load_queues(self.settings.queues_file)
        for queue in queues:
            core.handle(d.ConfigureQueue(config=queue, now=0.0))
        return len(queues)

    def lead(self, writer: TransactionalLogWriter, commands_before: int) -> None:
        """Serve as the log's writer: commands are logged through `writer`; deadlines and snapshots run."""
        self.writer = writer
        self._timer = asyncio.create_task(self._run_timer())
        if self.settings.snapshots_enabled:
            self._snapshots = asyncio.create_task(leadership.snapshot_periodically(
                lambda: self.core, self.lock, writer, self.settings, commands_before))
        if self.settings.agent_events_topic:
            self._agent_events = asyncio.create_task(self._agent_event_feed().run(self._agent_events_stop))
            self._agent_events.add_done_callback(_log_feed_end)

    def _agent_event_feed(self) -> AgentEventFeed:
        bootstrap = self.settings.kafka_bootstrap_servers
        topic = dataclasses.replace(BY_NAME[AGENT_EVENTS], name=self.settings.agent_events_topic)
        dead_letters = DeadLetters(EventProducer(bootstrap, client_id=f"{self.settings.service_name}-agent-events"))
        consumer: EventConsumer[agent_events_pb2.AgentEvent] = EventConsumer(
            bootstrap, group_id=self.settings.agent_events_group, topic=topic, dead_letters=dead_letters)

        async def apply(request: routing_pb2.AgentStateRequest) -> bool:
            applied = await self.apply("set_agent_state", request, lambda now: pm.to_command(request, now))
            return applied.result.accepted

        # The profile is read in the event loop's thread, where the core only changes under the lock's holder.
        return AgentEventFeed(consumer, dead_letters, lambda agent_id: self.core.agent_state(agent_id), apply)

    async def stop(self) -> None:
        if self._agent_events is not None:
            # Stopped, not cancelled: its poll runs in a thread, and the consumer must not close under it.
            self._agent_events_stop.set()
            with contextlib.suppress(Exception):  # logged when it ended (_log_feed_end)
                await self._agent_events
        for task in (self._timer, self._snapshots):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self.writer is not None:
            # A clean stop resigns: a standby takes over at once instead of waiting for the lease to run out.
            await asyncio.to_thread(self.writer.close, resign=True)

    # -- commands ------------------------------------------------------------------------------------------
    async def apply(self, field: str, request: Message, build: Callable[[float], d.Command]) -> Applied:
        """Apply, log and publish one command; `build` may raise InvalidRequest (before anything is applied)."""
        began = time.perf_counter()
        writer = self.writer
        if writer is None or writer.lost is not None:
            # Fenced (or never leading): not one more command, not even answered without the log (log_ack=async).
            raise writer.lost if writer is not None and writer.lost else LeadershipLost("this router does not lead")
        async with self.lock:
            now = max(self.clock(), self.core.now)
            command = build(now)
            result = self.core.handle(command)
            record = pm.log_record(field, request, now, self.settings.service_name)
            # Queued under the lock: the log's order is the order the core applied them in.
            if self.settings.log_ack == "durable":
                delivery = writer.submit(self.settings.command_log_topic, record, key="router")
            else:
                delivery = None
                writer.submit_unwaited(self.settings.command_log_topic, record, key="router")
            deadline = self.core.next_deadline()
        if delivery is not None:
            await delivery
        messages = self._publish(result.decisions)
        if deadline is not None and (self._armed is None or deadline < self._armed):
            # Only a deadline earlier than the one the timer sleeps until needs it awake; a later one is found
            # when it wakes (most commands add none earlier: waking it per command cost loop turns per call).
            self._wake.set()
        counted, timed = _metrics(field, result.accepted)
        counted.inc()
        timed.observe(time.perf_counter() - began)
        return Applied(result, messages)

    def _publish(self, decisions: tuple[d.Decision, ...]) -> list[routing_pb2.RoutingDecision]:
        messages = []
        now = time.monotonic()
        while self.recent and self.recent[0][0] < now - REPLAY_KEPT_S:
            self.recent.popleft()
        for decision in decisions:
            message = pm.decision_proto(decision, self.settings.service_name)
            if self.writer is not None:
                # Only while leading: a fenced leader publishes nothing more (TransactionalLogWriter.publish).
                self.writer.publish(ROUTING_DECISIONS, message, key=decision.call_id)
            for queue, queue_ids in list(self.subscribers):
                if not queue_ids or decision.queue_id in queue_ids:
                    queue.put_nowait(message)
            self.recent.append((now, message))
            messages.append(message)
        return messages

    async def _run_timer(self) -> None:
        """Fire the core's deadlines (reservation time-outs, wrap-up, cool-down, relaxation, max wait) on time."""
        while True:
            deadline = self._armed = self.core.next_deadline()
            self._wake.clear()
            timeout = None if deadline is None else max(0.0, deadline - self.clock())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
                continue
            async with self.lock:
                result = self.core.handle(d.Tick(now=max(self.clock(), self.core.now)))
            # Ticks are not logged: the next logged command's clock fires the same deadlines on replay.
            self._publish(result.decisions)


def _log_feed_end(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        # A lost leadership ends it too; the router then stops serving, and the next leader feeds on.
        log.error("routing: the agent events feed stopped: %r", task.exception())
