"""The Router port over the real Router gRPC API, as a switch would use it: the simulator (`callstream_simulator`,
`--router grpc://...`) and the ARI bridge (`callstream_ingest.ari`) route through it, so it lives beside the client.

The remote router runs on its own wall clock: the `now` of the simulator's commands is not sent. So
`--router grpc://...` needs a paced run (real time or N×); `--speed max` is refused with it, and the
in-process router is the fast path. At N×, the router's own timers (reservation time-out, wrap-up cap,
cool-down) run N times "slower" than the simulated day; the simulator ends wrap-up itself (WRAP_UP_DONE),
answers well within the reservation time-out and tracks cool-down on its side, so routing stays consistent.

Decisions come back in each reply and, for assignments made later (an agent freed by a timer), on the
StreamAssignments stream; both paths are de-duplicated by the decision's event_id. The calls go through
`callstream_routing.client.RouterClient`, which follows the leader across a take-over (several addresses,
retries with the same command ids, the stream re-opened with what it missed).
"""

from __future__ import annotations

import queue
from collections import deque
from collections.abc import Callable

from callstream.agent.v1 import agent_events_pb2
from callstream.common.v1 import envelope_pb2
from callstream.routing.v1 import routing_pb2
from callstream_routing import domain as d
from callstream_routing.client import RouterClient

_ACTIONS = {
    d.AgentAction.LOGIN: routing_pb2.AgentStateRequest.ACTION_LOGIN,
    d.AgentAction.LOGOUT: routing_pb2.AgentStateRequest.ACTION_LOGOUT,
    d.AgentAction.READY: routing_pb2.AgentStateRequest.ACTION_READY,
    d.AgentAction.NOT_READY: routing_pb2.AgentStateRequest.ACTION_NOT_READY,
    d.AgentAction.WRAP_UP_DONE: routing_pb2.AgentStateRequest.ACTION_WRAP_UP_DONE,
}
_REASONS = {d.NotReadyReason(name.removeprefix("NOT_READY_REASON_").lower()): value
            for name, value in agent_events_pb2.NotReadyReason.items()}
_DESTINATIONS = {
    routing_pb2.Overflowed.DESTINATION_QUEUE: d.OverflowDestination.QUEUE,
    routing_pb2.Overflowed.DESTINATION_VOICEMAIL: d.OverflowDestination.VOICEMAIL,
    routing_pb2.Overflowed.DESTINATION_CALLBACK: d.OverflowDestination.CALLBACK,
}


def decision_from_proto(m: routing_pb2.RoutingDecision) -> d.Decision:
    kind = m.WhichOneof("outcome")
    at = m.envelope.occurred_at.ToMilliseconds() / 1000
    outcome: d.Outcome
    if kind == "assigned":
        outcome = d.Assigned(agent_id=m.assigned.agent_id, reservation_id=m.assigned.reservation_id,
                             reservation_expires_at=m.assigned.reservation_expires_at.ToMilliseconds() / 1000)
    elif kind == "queued":
        outcome = d.Queued(position=m.queued.position, expected_wait_s=m.queued.expected_wait_s)
    elif kind == "overflowed":
        outcome = d.Overflowed(destination=_DESTINATIONS.get(m.overflowed.destination, d.OverflowDestination.QUEUE),
                               to_queue_id=m.overflowed.to_queue_id, reason=m.overflowed.reason)
    elif kind == "callback_offered":
        outcome = d.CallbackOffered(position=0, expected_wait_s=m.callback_offered.expected_wait_s)
    else:
        outcome = d.Rejected(reason=m.rejected.reason if kind == "rejected" else "no decision")
    return d.Decision(call_id=m.call_id, queue_id=m.queue_id, outcome=outcome, at=at)


def parse_targets(url: str) -> list[str]:
    """`grpc://host:port[,host:port...]` (the leader's and the standbys' addresses) → ["host:port", ...]."""
    if not url.startswith("grpc://"):
        raise ValueError(f"router must be 'inproc' or grpc://host:port[,host:port...], not {url!r}")
    targets = [t.strip() for t in url.removeprefix("grpc://").split(",")]
    if not all(targets):
        raise ValueError(f"empty router address in {url!r}")
    return targets


class GrpcRouter:
    """The Router port over a RouterClient, which follows the leader (retries, same command ids)."""

    def __init__(self, client: RouterClient, *, on_stream: Callable[[], None] | None = None) -> None:
        self.client = client
        self._inbox: queue.Queue[routing_pb2.RoutingDecision] = queue.Queue()
        # Called (from the stream's thread) after each streamed decision, so an asyncio user can drain().
        self._on_stream = on_stream
        self._seen: set[str] = set()
        self._order: deque[str] = deque()
        self.client.stream_assignments(self._streamed)

    def _streamed(self, message: routing_pb2.RoutingDecision) -> None:
        self._inbox.put(message)
        if self._on_stream is not None:
            self._on_stream()

    def _fresh(self, messages: list[routing_pb2.RoutingDecision]) -> list[d.Decision]:
        out = []
        for m in messages:
            key = m.envelope.event_id
            if key:
                if key in self._seen:
                    continue
                self._seen.add(key)
                self._order.append(key)
                if len(self._order) > 100_000:
                    self._seen.discard(self._order.popleft())
            out.append(decision_from_proto(m))
        return out

    def _result(self, reply: routing_pb2.CommandResult) -> d.Result:
        decisions = tuple(self._fresh(list(reply.decisions)))
        return d.Result(accepted=reply.accepted, reason=reply.reason, decisions=decisions)

    def _decision(self, reply: routing_pb2.RoutingDecision) -> d.Result:
        if reply.WhichOneof("outcome") == "rejected" and not reply.envelope.event_id:
            return d.Result(accepted=False, reason=reply.rejected.reason)
        return d.Result(accepted=True, decisions=tuple(self._fresh([reply])))

    def handle(self, cmd: d.Command) -> d.Result:
        s = self.client.call
        if isinstance(cmd, d.OfferCall):
            return self._decision(s("OfferCall", routing_pb2.OfferCallRequest(
                command_id=cmd.command_id, call_id=cmd.call_id, queue_id=cmd.queue_id, priority=cmd.priority,
                required_skills=[routing_pb2.RequiredSkill(skill_id=r.skill_id, min_proficiency=r.min_proficiency)
                                 for r in cmd.required_skills],
                caller_hash=cmd.caller_hash, channel=envelope_pb2.CHANNEL_VOICE,
                callback_allowed=cmd.callback_allowed)))
        if isinstance(cmd, d.AcceptReservation | d.RejectReservation | d.TimeoutReservation):
            req = routing_pb2.ReservationRequest(command_id=cmd.command_id, reservation_id=cmd.reservation_id,
                                                 call_id=cmd.call_id, agent_id=cmd.agent_id)
            if isinstance(cmd, d.AcceptReservation):
                return self._result(s("AcceptReservation", req))
            if isinstance(cmd, d.RejectReservation):
                req.busy = cmd.busy
                return self._result(s("RejectReservation", req))
            return self._result(s("TimeoutReservation", req))
        if isinstance(cmd, d.CancelCall):
            return self._result(s("CancelCall", routing_pb2.CancelCallRequest(command_id=cmd.command_id,
                                                                           call_id=cmd.call_id)))
        if isinstance(cmd, d.AcceptCallback):
            return self._result(s("AcceptCallback", routing_pb2.AcceptCallbackRequest(command_id=cmd.command_id,
                                                                                   call_id=cmd.call_id)))
        if isinstance(cmd, d.TransferCall):
            req_t = routing_pb2.TransferCallRequest(command_id=cmd.command_id, call_id=cmd.call_id,
                                                    from_agent_id=cmd.from_agent_id)
            if cmd.to_agent_id is not None:
                req_t.to_agent_id = cmd.to_agent_id
            else:
                req_t.to_queue_id = cmd.to_queue_id or ""
            return self._decision(s("TransferCall", req_t))
        if isinstance(cmd, d.EndCall):
            return self._result(s("EndCall", routing_pb2.EndCallRequest(
                command_id=cmd.command_id, call_id=cmd.call_id, agent_id=cmd.agent_id, hard_call=cmd.hard_call)))
        if isinstance(cmd, d.SetAgentState):
            # version 0 (unversioned): one synchronous client orders its own commands, and a rerun of the
            # simulator against a long-lived router must not be refused as stale
            return self._result(s("SetAgentState", routing_pb2.AgentStateRequest(
                command_id=cmd.command_id, agent_id=cmd.agent_id, action=_ACTIONS[cmd.action],
                reason=_REASONS.get(cmd.reason, 0),
                queues=[routing_pb2.QueueMembership(queue_id=q.queue_id, priority=q.priority) for q in cmd.queues],
                skills=[envelope_pb2.Skill(skill_id=k.skill_id, proficiency=k.proficiency) for k in cmd.skills])))
        if isinstance(cmd, d.UpdatePriority):
            return self._result(s("UpdatePriority", routing_pb2.UpdatePriorityRequest(
                command_id=cmd.command_id, call_id=cmd.call_id, priority=cmd.priority)))
        if isinstance(cmd, d.Tick):
            return d.Result(accepted=True)  # the remote router fires its own timers
        return d.Result(accepted=False, reason=f"{type(cmd).__name__} is not sent to a remote router")

    def next_deadline(self) -> float | None:
        return None

    def drain(self) -> list[d.Decision]:
        messages = []
        while True:
            try:
                messages.append(self._inbox.get_nowait())
            except queue.Empty:
                break
        return self._fresh(messages)

    def close(self) -> None:
        self.client.close()
