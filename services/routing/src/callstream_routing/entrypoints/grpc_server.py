"""The Router gRPC service: the deterministic core on the wall clock, its commands logged to Kafka before
they are answered (log_ack=durable), decisions published and streamed, state rebuilt from a snapshot and the log,
one leader per log with hot standbys (entrypoints/leadership.py)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import signal
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, NamedTuple

import grpc
from google.protobuf.message import Message
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import Counter, Histogram

from callstream.agent.v1 import agent_events_pb2
from callstream.routing.v1 import routing_pb2, routing_pb2_grpc
from callstream_core.auth import BearerTokens
from callstream_core.kafka import DeadLetters, EventConsumer, EventProducer, apply_topics
from callstream_core.topics import BY_NAME
from callstream_routing import domain as d
from callstream_routing.adapters import proto_mapping as pm
from callstream_routing.adapters.agent_events import AgentEventFeed
from callstream_routing.adapters.command_log import LeadershipLost, TransactionalLogWriter
from callstream_routing.adapters.queue_config import load_queues
from callstream_routing.config import RoutingSettings
from callstream_routing.entrypoints import heap, leadership

log = logging.getLogger(__name__)
DECISIONS_TOPIC = "cc.routing-decisions.v1"
AGENT_EVENTS_TOPIC = "cc.agent-events.v1"
SERVICE = "callstream.routing.v1.Router"
# Routing commands come from switches and the ingest service: machine roles only.
ALLOWED_ROLES = frozenset({"service", "admin"})

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
        topic = dataclasses.replace(BY_NAME[AGENT_EVENTS_TOPIC], name=self.settings.agent_events_topic)
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
                self.writer.publish(DECISIONS_TOPIC, message, key=decision.call_id)
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


class RouterServicer(routing_pb2_grpc.RouterServicer):
    def __init__(self, router: Router) -> None:
        self.router = router
        self.source = router.settings.service_name

    async def _run(self, context: grpc.aio.ServicerContext, work: Awaitable[Applied]) -> Applied:
        remaining = context.time_remaining()
        limit = self.router.settings.rpc_timeout_s if remaining is None else min(remaining,
                                                                                 self.router.settings.rpc_timeout_s)
        try:
            # asyncio.timeout, not wait_for: no task per call, so no extra turns of the event loop.
            async with asyncio.timeout(limit):
                return await work
        except pm.InvalidRequest as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except TimeoutError:
            await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "the command log did not confirm in time")
        except LeadershipLost as exc:
            # The switch retries on another router address: the new leader has every answered command.
            await context.abort(grpc.StatusCode.UNAVAILABLE, f"this router no longer leads: {exc}")
        raise AssertionError("unreachable")

    async def _command(self, field: str, request: Message, context: grpc.aio.ServicerContext,
                       build: Callable[[float], d.Command] | None = None) -> Applied:
        # A bad request raises InvalidRequest when built, under the lock but before the core or the log see it.
        builder = build or (lambda now: pm.to_command(request, now))
        return await self._run(context, self.router.apply(field, request, builder))

    async def OfferCall(self, request: routing_pb2.OfferCallRequest,
                        context: grpc.aio.ServicerContext) -> routing_pb2.RoutingDecision:
        result, decisions = await self._command("offer_call", request, context)
        for decision in decisions:
            if decision.call_id == request.call_id:
                return decision
        reply = routing_pb2.RoutingDecision(call_id=request.call_id, queue_id=request.queue_id)
        reply.rejected.reason = result.reason or "no decision"
        return reply

    async def _reservation(self, verb: str, request: routing_pb2.ReservationRequest,
                           context: grpc.aio.ServicerContext) -> routing_pb2.CommandResult:
        applied = await self._command(verb, request, context, lambda now: pm.reservation_command(verb, request, now))
        return pm.result_proto(*applied)

    async def AcceptReservation(self, request: routing_pb2.ReservationRequest,
                                context: grpc.aio.ServicerContext) -> routing_pb2.CommandResult:
        return await self._reservation("accept_reservation", request, context)

    async def RejectReservation(self, request: routing_pb2.ReservationRequest,
                                context: grpc.aio.ServicerContext) -> routing_pb2.CommandResult:
        return await self._reservation("reject_reservation", request, context)

    async def TimeoutReservation(self, request: routing_pb2.ReservationRequest,
                                 context: grpc.aio.ServicerContext) -> routing_pb2.CommandResult:
        return await self._reservation("timeout_reservation", request, context)

    async def CancelCall(self, request: routing_pb2.CancelCallRequest,
                         context: grpc.aio.ServicerContext) -> routing_pb2.CommandResult:
        return pm.result_proto(*await self._command("cancel_call", request, context))

    async def AcceptCallback(self, request: routing_pb2.AcceptCallbackRequest,
                             context: grpc.aio.ServicerContext) -> routing_pb2.CommandResult:
        return pm.result_proto(*await self._command("accept_callback", request, context))

    async def TransferCall(self, request: routing_pb2.TransferCallRequest,
                           context: grpc.aio.ServicerContext) -> routing_pb2.RoutingDecision:
        result, decisions = await self._command("transfer_call", request, context)
        for decision in decisions:
            if decision.call_id == request.call_id:
                return decision
        reply = routing_pb2.RoutingDecision(call_id=request.call_id)
        reply.rejected.reason = result.reason or "no decision"
        return reply

    async def EndCall(self, request: routing_pb2.EndCallRequest,
                      context: grpc.aio.ServicerContext) -> routing_pb2.CommandResult:
        return pm.result_proto(*await self._command("end_call", request, context))

    async def SetAgentState(self, request: routing_pb2.AgentStateRequest,
                            context: grpc.aio.ServicerContext) -> routing_pb2.CommandResult:
        return pm.result_proto(*await self._command("set_agent_state", request, context))

    async def UpdatePriority(self, request: routing_pb2.UpdatePriorityRequest,
                             context: grpc.aio.ServicerContext) -> routing_pb2.CommandResult:
        return pm.result_proto(*await self._command("update_priority", request, context))

    async def GetQueueState(self, request: routing_pb2.GetQueueStateRequest,
                            context: grpc.aio.ServicerContext) -> routing_pb2.QueueState:
        view = self.router.core.queue_state(request.queue_id)
        if view is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no queue {request.queue_id!r}")
        assert view is not None
        return pm.queue_state_proto(view)

    async def GetAgentState(self, request: routing_pb2.GetAgentStateRequest,
                            context: grpc.aio.ServicerContext) -> routing_pb2.AgentState:
        view = self.router.core.agent_state(request.agent_id)
        if view is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no agent {request.agent_id!r}")
        assert view is not None
        return pm.agent_state_proto(view)

    async def StreamAssignments(self, request: routing_pb2.StreamAssignmentsRequest,
                                context: grpc.aio.ServicerContext) -> AsyncIterator[routing_pb2.RoutingDecision]:
        queue: asyncio.Queue[routing_pb2.RoutingDecision] = asyncio.Queue()
        queue_ids = frozenset(request.queue_ids)
        entry = (queue, queue_ids)
        if request.replay_last_s > 0:
            # Copied and subscribed in one step of the event loop: nothing published falls between the two.
            since = time.monotonic() - min(request.replay_last_s, REPLAY_KEPT_S)
            for at, message in self.router.recent:
                if at >= since and (not queue_ids or message.queue_id in queue_ids):
                    queue.put_nowait(message)
        self.router.subscribers.add(entry)
        try:
            while True:
                yield await queue.get()
        finally:
            self.router.subscribers.discard(entry)


class BearerAuth(grpc.aio.ServerInterceptor):
    """Every Router call needs `authorization: Bearer <token>` of a machine role; health and reflection
    stay open (probes and tools have no token)."""

    def __init__(self, tokens: dict[str, str]) -> None:
        # The same constant-time check as the HTTP APIs (a dict lookup compared token bytes with ==).
        self.tokens = BearerTokens(tokens)

    async def intercept_service(self, continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Any]],
                                details: grpc.HandlerCallDetails) -> Any:
        if not details.method.startswith(f"/{SERVICE}/"):
            return await continuation(details)
        metadata = dict(details.invocation_metadata or ())
        principal = self.tokens.from_header(str(metadata.get("authorization", "")))
        role = principal.role if principal else None
        if role in ALLOWED_ROLES:
            return await continuation(details)
        if role is None:
            return _deny(grpc.StatusCode.UNAUTHENTICATED, "a bearer token is required")
        return _deny(grpc.StatusCode.PERMISSION_DENIED, f"role {role!r} may not route calls")


class LeaderOnly(grpc.aio.ServerInterceptor):
    """A standby (or a fenced leader) answers health and reflection only: Router calls get UNAVAILABLE, so a
    switch moves on to the leader's address."""

    def __init__(self, router: Router) -> None:
        self.router = router

    async def intercept_service(self, continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Any]],
                                details: grpc.HandlerCallDetails) -> Any:
        writer = self.router.writer
        if (writer is not None and writer.lost is None) or not details.method.startswith(f"/{SERVICE}/"):
            return await continuation(details)
        return _deny(grpc.StatusCode.UNAVAILABLE, "this router is a standby or was fenced; call the leader")


def _deny(code: grpc.StatusCode, message: str) -> grpc.RpcMethodHandler:
    async def deny(request: Any, context: grpc.aio.ServicerContext) -> Any:
        await context.abort(code, message)

    return grpc.unary_unary_rpc_method_handler(deny)


def _log_feed_end(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        # A lost leadership ends it too; the router then stops serving, and the next leader feeds on.
        log.error("routing: the agent events feed stopped: %r", task.exception())


def _registry_topics(settings: RoutingSettings) -> list[Any]:
    # A transactional producer cannot commit while one of its topics is missing, so the router makes sure the
    # registry topics it writes exist (from the registry, as `callstream topics apply` would) before it leads.
    names = [DECISIONS_TOPIC, settings.snapshot_topic] if settings.snapshots_enabled else [DECISIONS_TOPIC]
    return [BY_NAME[name] for name in names if name in BY_NAME]


async def serve(settings: RoutingSettings, *, ready: Callable[[int], None] | None = None,
                stop: asyncio.Event | None = None) -> None:
    """Run the router until `stop` is set (or forever). `ready(port)` is called once it listens: a leader
    serves from then on; a standby reports NOT_SERVING until it took over (poll its health)."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    router = Router(settings)
    health_servicer = health.aio.HealthServicer()
    # No SO_REUSEPORT (gRPC sets it by default on Linux): with it a second router on the same port binds too
    # and the kernel splits the connections between the two, so a standby started on the leader's port would
    # answer half the calls UNAVAILABLE instead of failing at start-up.
    server = grpc.aio.server(interceptors=[LeaderOnly(router), BearerAuth(settings.tokens())],
                             options=[("grpc.so_reuseport", 0)])
    routing_pb2_grpc.add_RouterServicer_to_server(RouterServicer(router), server)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (routing_pb2.DESCRIPTOR.services_by_name["Router"].full_name, reflection.SERVICE_NAME, health.SERVICE_NAME),
        server)
    # Bound first, before the log is touched: a router that cannot listen must not fence the leader it would
    # then be unable to replace.
    port = _bind(server, settings)
    await asyncio.to_thread(apply_topics, settings.kafka_bootstrap_servers, _registry_topics(settings))

    async def fenced() -> None:
        # Process health too: a probe restarts the process, which comes back as a standby.
        for name in (SERVICE, ""):
            await health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)

    def on_lost(_exc: LeadershipLost) -> None:  # called in the writer's thread
        asyncio.run_coroutine_threadsafe(fenced(), loop)

    writer = leadership.new_writer(settings, on_lost=on_lost)
    if settings.routing_role == "leader":
        await asyncio.to_thread(writer.open)  # fence any other writer before reading: the log is ours to end
    router.core, reader = await asyncio.to_thread(leadership.rebuild, settings, router.configure)
    await server.start()
    health_server = grpc.aio.server()
    if settings.health_port is not None:
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, health_server)
        health_server.add_insecure_port(f"{settings.grpc_host}:{settings.health_port}")
        await health_server.start()
    # The process is up ("" SERVING, for liveness); the Router service only once it leads (for readiness).
    await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    await health_servicer.set(SERVICE, health_pb2.HealthCheckResponse.NOT_SERVING)
    try:
        if settings.routing_role == "standby":
            if ready is not None:
                ready(port)
            if not await leadership.follow(router.core, reader, settings, stop):
                return
            began = time.monotonic()
            caught_up = await leadership.take_over(router.core, reader, writer)
            log.warning("routing: %s leads %s (fenced the old leader, %d more commands applied, %.2f s)",
                        settings.instance_id, settings.command_log_topic, caught_up, time.monotonic() - began)
        else:
            writer.start(reader.position)
        router.lead(writer, reader.commands)
        heap.settle()  # the rebuilt state and the imported modules: out of the collector's way (heap.py)
        await health_servicer.set(SERVICE, health_pb2.HealthCheckResponse.SERVING)
        if settings.routing_role == "leader" and ready is not None:
            ready(port)
        await stop.wait()
    finally:
        reader.close()
        await health_servicer.enter_graceful_shutdown()
        await server.stop(grace=2)
        await health_server.stop(grace=None)
        await router.stop()


class PortTaken(RuntimeError):
    """The gRPC address cannot be bound: the message is one line saying which and what to do."""


def _bind(server: grpc.aio.Server, settings: RoutingSettings) -> int:
    address = f"{settings.grpc_host}:{settings.grpc_port}"
    try:
        if settings.tls_enabled and settings.tls_cert_file and settings.tls_key_file:
            credentials = grpc.ssl_server_credentials(
                [(settings.tls_key_file.read_bytes(), settings.tls_cert_file.read_bytes())])
            port = server.add_secure_port(address, credentials)
        else:
            port = server.add_insecure_port(address)
    except RuntimeError as exc:  # grpcio raises "Failed to bind to address ..." (older versions returned 0)
        raise PortTaken(_taken(address)) from exc
    if port == 0:
        raise PortTaken(_taken(address))
    return port


def _taken(address: str) -> str:
    return (f"routing: cannot listen on {address}: the port is taken (another router? `ss -ltnp 'sport = "
            f":{address.rsplit(':', 1)[1]}'`); stop that program or set GRPC_PORT to a free port")


def stop_on_signals() -> asyncio.Event:
    """An event set by SIGTERM/SIGINT: the orchestrator's stop is a clean stop (the leader resigns)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop
