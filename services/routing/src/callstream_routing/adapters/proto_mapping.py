"""Protobuf requests ↔ domain commands, and domain decisions/views → protobuf. Pure functions.

Every command carries `now`, the router clock in seconds, rounded to milliseconds: the command log
stores it in the envelope's occurred_at (milliseconds), so a replay applies exactly the same clock.
"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime

from google.protobuf.message import Message

from callstream.agent.v1 import agent_events_pb2
from callstream.common.v1 import envelope_pb2
from callstream.routing.v1 import routing_pb2
from callstream_core.envelope import deterministic_event_id, new_envelope
from callstream_routing import domain as d

CHANNELS = {
    envelope_pb2.CHANNEL_UNSPECIFIED: d.Channel.VOICE, envelope_pb2.CHANNEL_VOICE: d.Channel.VOICE,
    envelope_pb2.CHANNEL_CALLBACK: d.Channel.CALLBACK, envelope_pb2.CHANNEL_CHAT: d.Channel.CHAT,
    envelope_pb2.CHANNEL_EMAIL: d.Channel.EMAIL,
}
ACTIONS = {
    routing_pb2.AgentStateRequest.ACTION_LOGIN: d.AgentAction.LOGIN,
    routing_pb2.AgentStateRequest.ACTION_LOGOUT: d.AgentAction.LOGOUT,
    routing_pb2.AgentStateRequest.ACTION_READY: d.AgentAction.READY,
    routing_pb2.AgentStateRequest.ACTION_NOT_READY: d.AgentAction.NOT_READY,
    routing_pb2.AgentStateRequest.ACTION_WRAP_UP_DONE: d.AgentAction.WRAP_UP_DONE,
    routing_pb2.AgentStateRequest.ACTION_UPDATE_PROFILE: d.AgentAction.UPDATE_PROFILE,
}
REASONS = {
    value: d.NotReadyReason(name.removeprefix("NOT_READY_REASON_").lower())
    for name, value in agent_events_pb2.NotReadyReason.items()
}
REASON_NUMBERS = {reason: number for number, reason in REASONS.items()}
DESTINATIONS = {
    d.OverflowDestination.QUEUE: routing_pb2.Overflowed.DESTINATION_QUEUE,
    d.OverflowDestination.VOICEMAIL: routing_pb2.Overflowed.DESTINATION_VOICEMAIL,
    d.OverflowDestination.CALLBACK: routing_pb2.Overflowed.DESTINATION_CALLBACK,
}


class InvalidRequest(ValueError):
    """A request that names no call/agent/queue or has an unknown enum value: INVALID_ARGUMENT."""


def seconds_to_ms(now: float) -> int:
    return round(now * 1000)


def _require(value: str, name: str) -> str:
    if not value:
        raise InvalidRequest(f"{name} is required")
    return value


def to_command(request: Message, now: float) -> d.Command:
    """Map one request message (the ones RoutingCommand can carry) to a domain command at `now`."""
    if isinstance(request, routing_pb2.OfferCallRequest):
        venq = (request.virtual_enqueue_time.ToMilliseconds() / 1000
                if request.HasField("virtual_enqueue_time") else None)
        if request.channel not in CHANNELS:
            raise InvalidRequest(f"unknown channel {request.channel}")
        return d.OfferCall(
            command_id=request.command_id, now=now, call_id=_require(request.call_id, "call_id"),
            queue_id=_require(request.queue_id, "queue_id"), priority=request.priority,
            required_skills=tuple(d.RequiredSkill(skill_id=s.skill_id, min_proficiency=max(1, s.min_proficiency))
                                  for s in request.required_skills),
            caller_hash=request.caller_hash, channel=CHANNELS[request.channel], virtual_enqueue_time=venq,
            callback_allowed=request.callback_allowed)
    if isinstance(request, routing_pb2.ReservationRequest):
        raise InvalidRequest("a reservation request needs its verb: use reservation_command()")
    if isinstance(request, routing_pb2.CancelCallRequest):
        return d.CancelCall(command_id=request.command_id, now=now, call_id=_require(request.call_id, "call_id"))
    if isinstance(request, routing_pb2.AcceptCallbackRequest):
        return d.AcceptCallback(command_id=request.command_id, now=now,
                                call_id=_require(request.call_id, "call_id"))
    if isinstance(request, routing_pb2.TransferCallRequest):
        target = request.WhichOneof("target")
        if target is None:
            raise InvalidRequest("a transfer needs to_agent_id or to_queue_id")
        return d.TransferCall(command_id=request.command_id, now=now, call_id=_require(request.call_id, "call_id"),
                              from_agent_id=request.from_agent_id,
                              to_agent_id=request.to_agent_id if target == "to_agent_id" else None,
                              to_queue_id=request.to_queue_id if target == "to_queue_id" else None)
    if isinstance(request, routing_pb2.EndCallRequest):
        return d.EndCall(command_id=request.command_id, now=now, call_id=_require(request.call_id, "call_id"),
                         agent_id=request.agent_id, hard_call=request.hard_call)
    if isinstance(request, routing_pb2.AgentStateRequest):
        if request.action not in ACTIONS or request.action == routing_pb2.AgentStateRequest.ACTION_UNSPECIFIED:
            raise InvalidRequest("action is required (login, logout, ready, not_ready, wrap_up_done)")
        return d.SetAgentState(
            command_id=request.command_id, now=now, agent_id=_require(request.agent_id, "agent_id"),
            action=ACTIONS[request.action], reason=REASONS.get(request.reason, d.NotReadyReason.UNSPECIFIED),
            queues=tuple(d.QueueMembership(queue_id=q.queue_id, priority=q.priority) for q in request.queues),
            skills=tuple(d.Skill(skill_id=s.skill_id, proficiency=s.proficiency) for s in request.skills),
            capacity=tuple(d.ChannelCapacity(channel=d.Channel(ch), capacity=n) for ch, n in request.capacity.items()
                           if ch in {c.value for c in d.Channel}),
            version=request.version)
    if isinstance(request, routing_pb2.UpdatePriorityRequest):
        return d.UpdatePriority(command_id=request.command_id, now=now, call_id=_require(request.call_id, "call_id"),
                                priority=request.priority)
    raise InvalidRequest(f"not a routing command: {type(request).__name__}")


def reservation_command(verb: str, request: routing_pb2.ReservationRequest, now: float) -> d.Command:
    common = {"command_id": request.command_id, "now": now, "call_id": request.call_id,
              "agent_id": request.agent_id, "reservation_id": _require(request.reservation_id, "reservation_id")}
    if verb == "accept_reservation":
        return d.AcceptReservation(**common)
    if verb == "reject_reservation":
        return d.RejectReservation(**common, busy=request.busy)
    if verb == "timeout_reservation":
        return d.TimeoutReservation(**common)
    raise InvalidRequest(f"unknown reservation verb {verb}")


# The RoutingCommand field each request travels in.
LOG_FIELDS: dict[type[Message], str] = {
    routing_pb2.OfferCallRequest: "offer_call",
    routing_pb2.CancelCallRequest: "cancel_call",
    routing_pb2.AcceptCallbackRequest: "accept_callback",
    routing_pb2.TransferCallRequest: "transfer_call",
    routing_pb2.EndCallRequest: "end_call",
    routing_pb2.AgentStateRequest: "set_agent_state",
    routing_pb2.UpdatePriorityRequest: "update_priority",
}


def log_record(field: str, request: Message, now: float, source: str) -> routing_pb2.RoutingCommand:
    at = datetime.fromtimestamp(seconds_to_ms(now) / 1000, tz=UTC)
    command_id = getattr(request, "command_id", "")
    # Without a command id the record's id only has to be unique: 122 random bits from the process's PRNG
    # (seeded from os.urandom) instead of uuid4(), whose urandom() system call per command is on the hot path.
    event_id = (deterministic_event_id("routing-command", command_id) if command_id else
                str(uuid.UUID(int=random.getrandbits(128), version=4)))
    record = routing_pb2.RoutingCommand(envelope=new_envelope(source, at, event_id))
    getattr(record, field).CopyFrom(request)
    return record


def from_log(record: routing_pb2.RoutingCommand) -> d.Command:
    """The domain command a logged record was, at the clock it was applied at."""
    now = record.envelope.occurred_at.ToMilliseconds() / 1000
    field = record.WhichOneof("command")
    if field is None:
        raise InvalidRequest("empty routing command record")
    request = getattr(record, field)
    if field in ("accept_reservation", "reject_reservation", "timeout_reservation"):
        return reservation_command(field, request, now)
    return to_command(request, now)


def decision_proto(decision: d.Decision, source: str) -> routing_pb2.RoutingDecision:
    at = datetime.fromtimestamp(decision.at, tz=UTC)
    outcome = decision.outcome
    event_id = deterministic_event_id("routing-decision", decision.call_id, type(outcome).__name__,
                                      str(seconds_to_ms(decision.at)), getattr(outcome, "reservation_id", ""))
    message = routing_pb2.RoutingDecision(envelope=new_envelope(source, at, event_id), call_id=decision.call_id,
                                          queue_id=decision.queue_id)
    if isinstance(outcome, d.Assigned):
        message.assigned.agent_id = outcome.agent_id
        message.assigned.reservation_id = outcome.reservation_id
        message.assigned.reservation_expires_at.FromMilliseconds(seconds_to_ms(outcome.reservation_expires_at))
    elif isinstance(outcome, d.Queued):
        message.queued.position = outcome.position
        message.queued.expected_wait_s = outcome.expected_wait_s
    elif isinstance(outcome, d.Overflowed):
        message.overflowed.destination = DESTINATIONS[outcome.destination]
        message.overflowed.to_queue_id = outcome.to_queue_id
        message.overflowed.reason = outcome.reason
    elif isinstance(outcome, d.CallbackOffered):
        message.callback_offered.expected_wait_s = outcome.expected_wait_s
    else:
        message.rejected.reason = outcome.reason
    return message


def result_proto(result: d.Result, decisions: list[routing_pb2.RoutingDecision]) -> routing_pb2.CommandResult:
    """`decisions`: result.decisions as decision_proto made them (once, for the log, the stream and this)."""
    return routing_pb2.CommandResult(accepted=result.accepted, reason=result.reason, decisions=decisions)


def queue_state_proto(view: d.QueueView) -> routing_pb2.QueueState:
    return routing_pb2.QueueState(queue_id=view.queue_id, calls_waiting=view.calls_waiting,
                                  longest_wait_s=view.longest_wait_s, agents_logged_in=view.agents_logged_in,
                                  agents_idle=view.agents_idle, expected_wait_s=view.expected_wait_s)


def agent_state_proto(view: d.AgentView) -> routing_pb2.AgentState:
    state = routing_pb2.AgentState(
        agent_id=view.agent_id, state=view.state.value, call_ids=list(view.call_ids), version=view.version,
        reason=REASON_NUMBERS.get(view.reason, agent_events_pb2.NOT_READY_REASON_UNSPECIFIED),
        queues=[routing_pb2.QueueMembership(queue_id=m.queue_id, priority=m.priority) for m in view.queues],
        skills=[envelope_pb2.Skill(skill_id=s.skill_id, proficiency=s.proficiency) for s in view.skills])
    state.since.FromMilliseconds(seconds_to_ms(view.since))
    return state
