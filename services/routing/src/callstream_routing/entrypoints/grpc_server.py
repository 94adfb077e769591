"""The Router gRPC API (thin): the servicer turns each call into a command for `service_layer.router.Router` and its
result into the reply; interceptors check the bearer token and send a standby's callers to the leader. The server
is built and run by `bootstrap.serve`."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from google.protobuf.message import Message

from callstream.routing.v1 import routing_pb2, routing_pb2_grpc
from callstream_core.auth import BearerTokens
from callstream_routing import domain as d
from callstream_routing.adapters import proto_mapping as pm
from callstream_routing.adapters.command_log import LeadershipLost
from callstream_routing.service_layer.router import REPLAY_KEPT_S, Applied, Router

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
