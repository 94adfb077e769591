"""The Router gRPC service: the deterministic core on the wall clock, its commands logged to Kafka before
they are answered (log_ack=durable), decisions published and streamed, state rebuilt from a snapshot and the log,
one leader per log with hot standbys (entrypoints/leadership.py)."""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from google.protobuf.message import Message
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from callstream.routing.v1 import routing_pb2, routing_pb2_grpc
from callstream_core.auth import BearerTokens
from callstream_core.kafka import apply_topics
from callstream_core.topics import BY_NAME
from callstream_routing import domain as d
from callstream_routing.adapters import proto_mapping as pm
from callstream_routing.adapters.command_log import LeadershipLost
from callstream_routing.config import RoutingSettings
from callstream_routing.service_layer import heap, leadership
from callstream_routing.service_layer.router import DECISIONS_TOPIC, REPLAY_KEPT_S, Applied, Router

log = logging.getLogger(__name__)
SERVICE = "callstream.routing.v1.Router"
# Routing commands come from switches and the ingest service: machine roles only.
ALLOWED_ROLES = frozenset({"service", "admin"})


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
