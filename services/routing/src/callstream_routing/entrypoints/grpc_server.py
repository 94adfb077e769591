"""The Router gRPC service: the deterministic core on the wall clock, its commands logged to Kafka before
they are answered (log_ack=durable), decisions published and streamed, state rebuilt from the log."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from google.protobuf.message import Message
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import Counter, Histogram

from callstream.routing.v1 import routing_pb2, routing_pb2_grpc
from callstream_core.kafka import AsyncEventProducer, EventProducer
from callstream_routing import domain as d
from callstream_routing.adapters import proto_mapping as pm
from callstream_routing.adapters.command_log import read_log
from callstream_routing.adapters.queue_config import load_queues
from callstream_routing.config import RoutingSettings

log = logging.getLogger(__name__)
DECISIONS_TOPIC = "cc.routing-decisions.v1"
SERVICE = "callstream.routing.v1.Router"
# Routing commands come from switches and the ingest service: machine roles only.
ALLOWED_ROLES = frozenset({"service", "admin"})

COMMANDS = Counter("callstream_routing_commands_total", "Commands handled", ["command", "accepted"])
LATENCY = Histogram("callstream_routing_command_seconds", "Time to apply and log one command", ["command"],
                    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5))


def wall_clock() -> float:
    # Milliseconds: the command log keeps the clock in milliseconds, so the live core must use the same.
    return round(time.time(), 3)


class Router:
    """The core behind an asyncio lock, its log, its decision stream and its timer."""

    def __init__(self, settings: RoutingSettings, producer: EventProducer,
                 clock: Callable[[], float] = wall_clock) -> None:
        self.settings = settings
        self.core = d.RoutingCore()
        self.clock = clock
        self.producer = producer
        self.async_producer = AsyncEventProducer(producer)
        self.lock = asyncio.Lock()
        self.subscribers: set[tuple[asyncio.Queue[routing_pb2.RoutingDecision], frozenset[str]]] = set()
        self._wake = asyncio.Event()
        self._timer: asyncio.Task[None] | None = None

    # -- start-up ------------------------------------------------------------------------------------------
    def configure(self) -> int:
        if self.settings.queues_file is None:
            return 0
        queues = load_queues(self.settings.queues_file)
        for queue in queues:
            self.core.handle(d.ConfigureQueue(config=queue, now=0.0))
        return len(queues)

    def replay(self) -> int:
        """Rebuild the state from the command log (commands carry the clock they were applied at)."""
        count = 0
        for record in read_log(self.settings.kafka_bootstrap_servers, self.settings.command_log_topic):
            self.core.handle(pm.from_log(record))
            count += 1
        return count

    def start_timer(self) -> None:
        self._timer = asyncio.create_task(self._run_timer())

    async def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._timer
        self.async_producer.close()

    # -- commands ------------------------------------------------------------------------------------------
    async def apply(self, field: str, request: Message, build: Callable[[float], d.Command]) -> d.Result:
        began = time.perf_counter()
        async with self.lock:
            now = max(self.clock(), self.core.now)
            command = build(now)
            result = self.core.handle(command)
            record = pm.log_record(field, request, now, self.settings.service_name)
            # Produced under the lock: the log's order is the order the core applied them in.
            delivery = self.async_producer.submit(self.settings.command_log_topic, record, key="router")
        if self.settings.log_ack == "durable":
            await delivery
        self._publish(result.decisions)
        self._wake.set()
        COMMANDS.labels(field, str(result.accepted).lower()).inc()
        LATENCY.labels(field).observe(time.perf_counter() - began)
        return result

    def _publish(self, decisions: tuple[d.Decision, ...]) -> None:
        for decision in decisions:
            message = pm.decision_proto(decision, self.settings.service_name)
            self.producer.produce(DECISIONS_TOPIC, message, key=decision.call_id)
            for queue, queue_ids in list(self.subscribers):
                if not queue_ids or decision.queue_id in queue_ids:
                    queue.put_nowait(message)

    async def _run_timer(self) -> None:
        """Fire the core's deadlines (reservation time-outs, wrap-up, cool-down, relaxation, max wait) on time."""
        while True:
            deadline = self.core.next_deadline()
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

    async def _run(self, context: grpc.aio.ServicerContext, work: Awaitable[d.Result]) -> d.Result:
        remaining = context.time_remaining()
        limit = self.router.settings.rpc_timeout_s if remaining is None else min(remaining,
                                                                                 self.router.settings.rpc_timeout_s)
        try:
            return await asyncio.wait_for(work, limit)
        except pm.InvalidRequest as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except TimeoutError:
            await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "the command log did not confirm in time")
        raise AssertionError("unreachable")

    async def _command(self, field: str, request: Message, context: grpc.aio.ServicerContext,
                       build: Callable[[float], d.Command] | None = None) -> d.Result:
        builder = build or (lambda now: pm.to_command(request, now))
        try:
            builder(0.0)  # validate before taking the lock: a bad request never reaches the core or the log
        except pm.InvalidRequest as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        return await self._run(context, self.router.apply(field, request, builder))

    async def OfferCall(self, request: routing_pb2.OfferCallRequest,
                        context: grpc.aio.ServicerContext) -> routing_pb2.RoutingDecision:
        result = await self._command("offer_call", request, context)
        for decision in result.decisions:
            if decision.call_id == request.call_id:
                return pm.decision_proto(decision, self.source)
        reply = routing_pb2.RoutingDecision(call_id=request.call_id, queue_id=request.queue_id)
        reply.rejected.reason = result.reason or "no decision"
        return reply

    async def _reservation(self, verb: str, request: routing_pb2.ReservationRequest,
                           context: grpc.aio.ServicerContext) -> routing_pb2.CommandResult:
        result = await self._command(verb, request, context, lambda now: pm.reservation_command(verb, request, now))
        return pm.result_proto(result, self.source)

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
        return pm.result_proto(await self._command("cancel_call", request, context), self.source)

    async def AcceptCallback(self, request: routing_pb2.AcceptCallbackRequest,
                             context: grpc.aio.ServicerContext) -> routing_pb2.CommandResult:
        return pm.result_proto(await self._command("accept_callback", request, context), self.source)

    async def TransferCall(self, request: routing_pb2.TransferCallRequest,
                           context: grpc.aio.ServicerContext) -> routing_pb2.RoutingDecision:
        result = await self._command("transfer_call", request, context)
        for decision in result.decisions:
            if decision.call_id == request.call_id:
                return pm.decision_proto(decision, self.source)
        reply = routing_pb2.RoutingDecision(call_id=request.call_id)
        reply.rejected.reason = result.reason or "no decision"
        return reply

    async def EndCall(self, request: routing_pb2.EndCallRequest,
                      context: grpc.aio.ServicerContext) -> routing_pb2.CommandResult:
        return pm.result_proto(await self._command("end_call", request, context), self.source)

    async def SetAgentState(self, request: routing_pb2.AgentStateRequest,
                            context: grpc.aio.ServicerContext) -> routing_pb2.CommandResult:
        return pm.result_proto(await self._command("set_agent_state", request, context), self.source)

    async def UpdatePriority(self, request: routing_pb2.UpdatePriorityRequest,
                             context: grpc.aio.ServicerContext) -> routing_pb2.CommandResult:
        return pm.result_proto(await self._command("update_priority", request, context), self.source)

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
        entry = (queue, frozenset(request.queue_ids))
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
        self.tokens = tokens

    async def intercept_service(self, continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Any]],
                                details: grpc.HandlerCallDetails) -> Any:
        if not details.method.startswith(f"/{SERVICE}/"):
            return await continuation(details)
        metadata = dict(details.invocation_metadata or ())
        header = str(metadata.get("authorization", ""))
        token = header[7:] if header.lower().startswith("bearer ") else ""
        role = self.tokens.get(token)
        if role in ALLOWED_ROLES:
            return await continuation(details)
        code, message = ((grpc.StatusCode.UNAUTHENTICATED, "a bearer token is required") if role is None else
                         (grpc.StatusCode.PERMISSION_DENIED, f"role {role!r} may not route calls"))

        async def deny(request: Any, context: grpc.aio.ServicerContext) -> Any:
            await context.abort(code, message)

        return grpc.unary_unary_rpc_method_handler(deny)


async def serve(settings: RoutingSettings, *, ready: Callable[[int], None] | None = None,
                stop: asyncio.Event | None = None) -> None:
    """Run the router until `stop` is set (or forever); `ready(port)` is called once it serves."""
    # No linger: every command waits for its own confirmation before it is answered, so batching would
    # only add latency.
    producer = EventProducer(settings.kafka_bootstrap_servers, client_id=settings.service_name,
                             wire_format=settings.wire_format, extra={"linger.ms": 0})
    router = Router(settings, producer)
    queues = router.configure()
    replayed = await asyncio.to_thread(router.replay)
    log.info("routing: %d queues configured, %d logged commands replayed", queues, replayed)
    server = grpc.aio.server(interceptors=[BearerAuth(settings.tokens())])
    routing_pb2_grpc.add_RouterServicer_to_server(RouterServicer(router), server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (routing_pb2.DESCRIPTOR.services_by_name["Router"].full_name, reflection.SERVICE_NAME, health.SERVICE_NAME),
        server)
    address = f"{settings.grpc_host}:{settings.grpc_port}"
    if settings.tls_cert_file and settings.tls_key_file:
        credentials = grpc.ssl_server_credentials(
            [(settings.tls_key_file.read_bytes(), settings.tls_cert_file.read_bytes())])
        port = server.add_secure_port(address, credentials)
    else:
        port = server.add_insecure_port(address)
    await server.start()
    router.start_timer()
    await health_servicer.set(SERVICE, health_pb2.HealthCheckResponse.SERVING)
    await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    if ready is not None:
        ready(port)
    try:
        if stop is None:
            await server.wait_for_termination()
        else:
            await stop.wait()
    finally:
        await health_servicer.enter_graceful_shutdown()
        await server.stop(grace=2)
        await router.stop()
