"""Agent events from the switches and HR (`cc.agent-events.v1`) as the router's agent state commands.

A switch that reports agent states on the topic (through ingest: queue_log, AMI, FreeSWITCH, webhooks) and
HR's skill changes reach the router without a gRPC client of their own: the leading router consumes the
topic and applies each event as the `SetAgentState` command the RPC would carry, through the same path, so
it is in the command log like any command and a standby or a restart sees it too. Only the leader consumes
(a standby follows the log instead). Offsets are stored only after the commands were applied and logged
(at-least-once); a repeat is a no-op because the command id is the event id. An event that cannot be a
command (no envelope, event id, event time, agent id or kind: `event_checks.event_problem`) goes to the
DLQ with the reason; one the core refuses (a stale state, an unknown agent) is counted, not dead-lettered:
it was a valid event the router's state had moved past.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from prometheus_client import Counter

from callstream.agent.v1 import agent_events_pb2
from callstream.routing.v1.routing_pb2 import AgentStateRequest
from callstream_core import wire
from callstream_core.event_checks import event_problem
from callstream_core.kafka import DeadLetters, EventConsumer, Received
from callstream_routing.domain import model as d

log = logging.getLogger(__name__)

EVENTS = Counter("callstream_routing_agent_events_total", "Agent events taken from the topic, by what became of them",
                 ["outcome"])

# What the switch says the agent did -> the command. Reserved, talking, on hold and after-call work are the
# switch echoing what the router itself decided (offers, calls, wrap-up): they change nothing here.
_STATE_ACTIONS = {"logged_out": AgentStateRequest.ACTION_LOGOUT, "ready": AgentStateRequest.ACTION_READY}
_ECHOES = frozenset({"reserved", "talking", "on_hold", "after_call_work"})


class NotACommand(ValueError):
    """The event cannot become a command: the reason goes to the DLQ."""


def agent_state_request(event: agent_events_pb2.AgentEvent, profile: d.AgentView | None) -> AgentStateRequest | None:
    """The command for one event, given the agent's profile in the core now (None: unknown agent); None when
    the event changes nothing in routing. A login or a change of skills or queues carries the whole profile:
    the command log must replay it without this process's memory."""
    # The same contract check as every consumer of call and agent events: an envelope-less event would
    # become a command with an empty command id.
    problem = event_problem(event)
    if problem is not None:
        raise NotACommand(problem)
    kind = event.WhichOneof("kind")
    if kind in _ECHOES:
        return None
    request = AgentStateRequest(command_id=event.envelope.event_id, agent_id=event.agent_id)
    if kind in _STATE_ACTIONS:
        request.action = _STATE_ACTIONS[kind]
        return request
    if kind == "not_ready":
        request.action = AgentStateRequest.ACTION_NOT_READY
        request.reason = event.not_ready.reason
        return request
    queues = {m.queue_id: m.priority for m in profile.queues} if profile else {}
    skills = {s.skill_id: s.proficiency for s in profile.skills} if profile else {}
    if kind == "logged_in":
        request.action = AgentStateRequest.ACTION_LOGIN
        if profile is not None:
            for c in profile.capacity:
                request.capacity[c.channel.value] = c.capacity
    else:
        request.action = AgentStateRequest.ACTION_UPDATE_PROFILE
        if kind == "skills_changed":
            skills = {s.skill_id: s.proficiency for s in event.skills_changed.skills}
        else:  # queue_membership_changed
            change = event.queue_membership_changed
            if not change.queue_id:
                raise NotACommand("queue_membership_changed.queue_id is empty")
            if change.member:
                queues[change.queue_id] = change.queue_priority
            else:
                queues.pop(change.queue_id, None)
    for queue_id, priority in sorted(queues.items()):
        request.queues.add(queue_id=queue_id, priority=priority)
    for skill_id, proficiency in sorted(skills.items()):
        request.skills.add(skill_id=skill_id, proficiency=proficiency)
    return request


@dataclass
class AgentEventFeed:
    """Consumes the agent-events topic while this router leads, applying each event through `apply`.

    `profile(agent_id)` reads the core; `apply(request)` applies and logs one command and returns whether the
    core accepted it (it raises when the command could not be logged, or leadership was lost: the batch is then
    not stored as consumed, and the next leader reads it again).
    """

    consumer: EventConsumer[agent_events_pb2.AgentEvent]
    dead_letters: DeadLetters
    profile: Callable[[str], d.AgentView | None]
    apply: Callable[[AgentStateRequest], Awaitable[bool]]
    batch: int = 500

    async def run(self, stop: asyncio.Event) -> None:
        try:
            while not stop.is_set():
                # The blocking poll runs off the event loop; its 0.5 s timeout bounds how late a stop is seen.
                received = await asyncio.to_thread(self.consumer.poll_batch, self.batch, 0.5)
                dead_lettered = 0
                for item in received:
                    dead_lettered += await self._one(item)
                if dead_lettered:
                    # An event is consumed only once the DLQ has it: nothing is lost on the way there.
                    await asyncio.to_thread(self.dead_letters.flush)
                # Stored only now: every command of the batch is applied and (durable mode) in the log.
                self.consumer.commit(received)
        finally:
            await asyncio.to_thread(self.consumer.close)

    async def _one(self, item: Received[agent_events_pb2.AgentEvent]) -> int:
        """Apply one event; 1 when it was dead-lettered instead."""
        event = item.value
        try:
            request = agent_state_request(event, self.profile(event.agent_id))
        except NotACommand as exc:
            self.dead_letters.send_record(item.topic, item.partition, item.offset, item.key,
                                          event.SerializeToString(), [(wire.CONTENT_TYPE, wire.PROTOBUF)],
                                          f"not an agent state command: {exc}")
            EVENTS.labels("dead_lettered").inc()
            return 1
        if request is None:
            EVENTS.labels("ignored").inc()
            return 0
        accepted = await self.apply(request)
        EVENTS.labels("applied" if accepted else "refused").inc()
        if not accepted:
            log.info("routing: agent event %s for %s refused by the core", event.envelope.event_id, event.agent_id)
        return 0
