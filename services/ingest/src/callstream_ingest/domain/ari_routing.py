"""The ARI bridge's logic, pure: what happens to a call Asterisk hands to Callstream's router.

A caller's channel enters the Stasis application with its queue (StasisStart) and waits in its own bridge
(music on hold) while the router decides. The router's assignment makes the bridge ring that agent's endpoint;
the agent's answer is accepted with the router before caller and agent are bridged; no answer by the
reservation's deadline is a ring-no-answer (the router offers the call again); a caller who hangs up first
cancels the call; the end of the conversation is reported so the router starts the agent's wrap-up.

`CallRouting` turns each input (an ARI event, a router decision or command result, a ring deadline) into
effects (`Effect`): router commands, ARI requests and Kafka events, which the service executes in order.
Every command id is derived from the call, so a retried command is decided once.

    waiting ──assigned──▶ ringing ──agent answered──▶ answering ──accepted, joined──▶ bridged ──a hangup──▶ ended
       ▲                    │ no answer / agent busy        │ refused (the router moved on)
       └────────────────────┴───────────────────────────────┘
    (the caller hanging up in any phase ends the call: abandoned before bridged, completed after)

Callbacks, as the router decides them (a queue's overflow to `callback` after its `max_wait_s`): the router
keeps the call waiting in its place; the bridge releases the caller (hangs up their channel) and keeps the call
as a callback. When the router assigns it, the agent is rung as for any call; once the agent answered and the
router accepted, the agent waits in the call's bridge (music on hold) while the bridge dials the caller's number
back (`callback_endpoint`); the caller answering joins them (bridged), the caller not answering or the agent
hanging up first ends the callback (the router ends the call: the agent's wrap-up). The inbound call's contact
ends with the overflow (outcome callback); the callback is a contact of its own, `<call id>-callback`, channel
`callback`, offered when the router took the callback.

    waiting ──callback──▶ callback ──assigned──▶ ringing ─▶ answering ──accepted──▶ calling back ──joined──▶ bridged
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeAlias

from callstream.agent.v1 import agent_events_pb2 as ae
from callstream.call.v1 import call_events_pb2 as ce
from callstream.common.v1 import envelope_pb2
from callstream_ingest.domain.events import agent_event, call_event
from callstream_ingest.domain.identity import caller_hash
from callstream_routing import domain as d

Event: TypeAlias = ce.CallEvent | ae.AgentEvent
AGENT_ARG = "agent"  # the Stasis argument of the channels the bridge originates to agents
CALLBACK_ARG = "callback"  # ... and of those it originates to call a caller back
CALLBACK_SUFFIX = "-callback"  # the callback's call id (and channel id): the inbound call's and this


class Phase(enum.StrEnum):
    WAITING = "waiting"
    RINGING = "ringing"
    ANSWERING = "answering"  # the agent answered; the router has not yet confirmed the reservation
    CALLBACK = "callback"  # the caller was released; the router keeps the call waiting for an agent
    CALLING_BACK = "calling_back"  # the agent answered a callback and waits while the caller's phone rings
    BRIDGED = "bridged"
    ENDED = "ended"


# -- effects -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HoldCaller:
    """Create the call's bridge, put the caller into it and play music on hold."""

    bridge_id: str
    channel_id: str


@dataclass(frozen=True, slots=True)
class Route:
    """Send a command to the router; its result comes back through `CallRouting.result`."""

    command: d.Command


@dataclass(frozen=True, slots=True)
class Dial:
    """Originate a channel to the agent's endpoint into the Stasis app, inheriting the caller's variables."""

    channel_id: str
    endpoint: str
    caller_channel_id: str  # the originator ("" for none: a callback's agent, whose caller is not on the line)
    ring_deadline: float  # epoch seconds: the reservation's expiry (a callback: the caller's ring timeout)
    app_args: str = AGENT_ARG


@dataclass(frozen=True, slots=True)
class Connect:
    """Stop the music and add the agent's channel to the call's bridge (then `agent_joined`, or `connect_failed`
    when Asterisk refuses)."""

    bridge_id: str
    channel_id: str
    call_id: str


@dataclass(frozen=True, slots=True)
class Hangup:
    channel_id: str


@dataclass(frozen=True, slots=True)
class DestroyBridge:
    bridge_id: str


@dataclass(frozen=True, slots=True)
class Publish:
    event: Event


@dataclass(frozen=True, slots=True)
class WatchDevices:
    """Subscribe the app to these device states and report their current states (`domain.ari_presence`)."""

    devices: tuple[str, ...]


Effect: TypeAlias = HoldCaller | Route | Dial | Connect | Hangup | DestroyBridge | Publish | WatchDevices


# -- state -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Agent:
    agent_id: str
    endpoint: str  # Asterisk dial string, e.g. Local/a1@agents/n or PJSIP/1001
    queues: tuple[str, ...]
    skills: tuple[tuple[str, int], ...] = ()  # (skill id, proficiency 1-5): the router's skills routing
    # (queue, penalty) of the queues not at 0: lower serves first among the agent's queues (Asterisk's penalty)
    penalties: tuple[tuple[str, int], ...] = ()

    def login(self, command_id: str) -> d.SetAgentState:
        """The router's LOGIN of this agent: its queues (with their penalties) and skills."""
        penalty = dict(self.penalties)
        return d.SetAgentState(command_id=command_id, agent_id=self.agent_id, action=d.AgentAction.LOGIN,
                               queues=tuple(d.QueueMembership(queue_id=q, priority=penalty.get(q, 0))
                                            for q in self.queues),
                               skills=tuple(d.Skill(skill_id=s, proficiency=level) for s, level in self.skills))


@dataclass(slots=True)
class RoutedCall:
    call_id: str  # the caller's channel id (Asterisk's uniqueid)
    queue_id: str
    bridge_id: str
    phase: Phase = Phase.WAITING
    agent_id: str = ""
    reservation_id: str = ""
    agent_channel: str = ""
    dials: int = 0  # agent channels originated so far: numbers the next one's id
    caller_number: str = ""  # kept in memory only, to call back; events carry its hash
    callback: bool = False  # released with a callback: the caller's channel is now the callback's, if any
    caller_channel: str = ""  # the caller's channel while on the line: the inbound one, then the callback's

    @property
    def event_call_id(self) -> str:
        """The call id of its events: the inbound call's, then the callback's own."""
        return self.call_id + CALLBACK_SUFFIX if self.callback else self.call_id


@dataclass
class BridgeCounts:
    offered: int = 0
    answered: int = 0
    abandoned: int = 0
    ring_no_answers: int = 0
    callbacks: int = 0  # callers released with a callback
    called_back: int = 0  # callbacks that reached the caller (bridged with the agent)
    stale: Counter[str] = field(default_factory=Counter)  # inputs that matched no live call, by kind
    # what re-reading Asterisk's channels after a reconnect changed, by action (ended: a call whose caller
    # Asterisk no longer has; agent_lost: an agent channel gone; offered: a caller in the app the bridge did not
    # know; hung_up: a channel the bridge originated for no call it holds; bridge_destroyed: a bridge of none)
    reconciled: Counter[str] = field(default_factory=Counter)


class CallRouting:
    """The routed calls of one bridge process and the effects of every input on them."""

    def __init__(self, agents: list[Agent], *, caller_salt: str, source: str = "asterisk-ari",
                 callback_endpoint: str = "", callback_ring_s: float = 30.0) -> None:
        self.agents = {a.agent_id: a for a in agents}
        self.caller_salt = caller_salt
        self.source = source
        # What Asterisk dials to call a caller back, `{number}` the caller's number ("" = callbacks are not
        # served: the caller is released with the overflow event, as for voicemail), and how long it rings.
        self.callback_endpoint = callback_endpoint
        self.callback_ring_s = callback_ring_s
        self.calls: dict[str, RoutedCall] = {}
        self._by_agent_channel: dict[str, str] = {}
        self.counts = BridgeCounts()

    # -- event building ---------------------------------------------------------------------------------------
    def _call_event(self, call: RoutedCall, kind: str, payload: object, now: datetime, key: str = "") -> Publish:
        natural_key = f"{call.event_call_id}|{kind}|{key}"
        return Publish(call_event(self.source, natural_key, call.event_call_id, now, kind, payload))

    def _agent_event(self, agent_id: str, kind: str, payload: object, now: datetime, key: str) -> Publish:
        return Publish(agent_event(self.source, f"{agent_id}|{kind}|{key}", agent_id, now, kind, payload))

    # -- agents -----------------------------------------------------------------------------------------------
    def log_in_agents(self, now: datetime) -> list[Effect]:
        """Every configured agent logs in to its queues and becomes ready (the bridge's start)."""
        effects: list[Effect] = []
        stamp = now.strftime("%Y%m%dT%H%M%S.%f")
        for agent in self.agents.values():
            effects.append(Route(agent.login(f"ari:{agent.agent_id}:login:{stamp}")))
            effects.append(Route(d.SetAgentState(command_id=f"ari:{agent.agent_id}:ready:{stamp}",
                                                 agent_id=agent.agent_id, action=d.AgentAction.READY)))
            effects.append(self._agent_event(agent.agent_id, "logged_in", ae.LoggedIn(extension=agent.endpoint),
                                             now, stamp))
            effects.append(self._agent_event(agent.agent_id, "ready", ae.Ready(), now, stamp))
        return effects

    # -- inputs from Asterisk ---------------------------------------------------------------------------------
    def caller_entered(self, channel_id: str, queue_id: str, caller_number: str, now: datetime) -> list[Effect]:
        if channel_id in self.calls:
            return []  # the same StasisStart again (a reconnect re-reads the channels in the app)
        call = self.calls[channel_id] = RoutedCall(call_id=channel_id, queue_id=queue_id,
                                                   bridge_id=f"cs-{channel_id}", caller_number=caller_number,
                                                   caller_channel=channel_id)
        self.counts.offered += 1
        number_hash = caller_hash(self.caller_salt, caller_number)
        context = ce.CallContext(queue_id=queue_id, caller_hash=number_hash, channel=envelope_pb2.CHANNEL_VOICE)
        return [
            HoldCaller(call.bridge_id, channel_id),
            self._call_event(call, "offered", ce.CallOffered(context=context), now),
            self._call_event(call, "queued", ce.CallQueued(queue_id=queue_id), now),
            Route(d.OfferCall(command_id=f"ari:{channel_id}:offer", call_id=channel_id, queue_id=queue_id,
                              caller_hash=number_hash)),
        ]

    def called_back(self, channel_id: str, now: datetime) -> list[Effect]:
        """The caller answered the callback: into the bridge where the agent waits."""
        call = self._call_of_agent_channel(channel_id)
        if call is None or call.phase is not Phase.CALLING_BACK or channel_id != call.caller_channel:
            self.counts.stale["called_back"] += 1
            return [Hangup(channel_id)]
        return [Connect(call.bridge_id, channel_id, call.call_id)]

    def agent_answered(self, channel_id: str, now: datetime) -> list[Effect]:
        call = self._call_of_agent_channel(channel_id)
        if call is None or call.phase is not Phase.RINGING:
            self.counts.stale["agent_answered"] += 1
            return [Hangup(channel_id)]  # an agent channel of a call that moved on: nobody is waiting for it
        call.phase = Phase.ANSWERING
        return [Route(d.AcceptReservation(command_id=f"ari:{call.call_id}:accept:{call.reservation_id}",
                                          call_id=call.call_id, reservation_id=call.reservation_id,
                                          agent_id=call.agent_id))]

    def ring_deadline(self, channel_id: str, now: datetime) -> list[Effect]:
        """The reservation expired and the agent's channel has not answered: ring-no-answer. (A callback's
        caller who does not answer in time: the callback ends.)"""
        call = self._call_of_agent_channel(channel_id)
        if call is not None and call.phase is Phase.CALLING_BACK and channel_id == call.caller_channel:
            return self._never_connected(call, now)
        if call is None or call.phase is not Phase.RINGING:
            return []  # answered or gone in time
        effects = self._agent_lost(call, now)
        effects.append(Route(d.TimeoutReservation(command_id=f"ari:{call.call_id}:rna:{call.reservation_id}",
                                                  call_id=call.call_id, reservation_id=call.reservation_id,
                                                  agent_id=call.agent_id)))
        self._forget_reservation(call)
        return effects

    def channel_left(self, channel_id: str, now: datetime) -> list[Effect]:
        """A channel hung up (or left the app): the caller's or an agent's."""
        call = self.calls.get(channel_id)
        if call is not None:
            if call.callback:
                return []  # the inbound channel the bridge released for the callback
            return self._caller_left(call, now)
        call = self._call_of_agent_channel(channel_id)
        if call is None:
            return []  # a channel the bridge already let go of (it hung it up itself)
        if call.phase is Phase.CALLING_BACK:
            return self._never_connected(call, now)  # the caller did not answer, or the agent hung up first
        if call.callback and channel_id == call.caller_channel and call.phase is Phase.BRIDGED:
            return self._end(call, ce.CallEnded.PARTY_CALLER, now)
        if call.phase is Phase.BRIDGED:
            return self._end(call, ce.CallEnded.PARTY_AGENT, now)
        if call.phase is Phase.ANSWERING:
            return self.connect_failed(call.call_id, now)  # answered and accepted, gone before joining the caller
        # The agent's channel failed before being bridged (busy, unreachable, hung up while ringing).
        effects = self._agent_lost(call, now, hang_up=False)
        effects.append(Route(d.RejectReservation(command_id=f"ari:{call.call_id}:reject:{call.reservation_id}",
                                                 call_id=call.call_id, reservation_id=call.reservation_id,
                                                 agent_id=call.agent_id, busy=True)))
        self._forget_reservation(call)
        return effects

    def reconcile(self, channels: Mapping[str, tuple[tuple[str, ...], str]], bridge_ids: set[str],
                  now: datetime) -> list[Effect]:
        """After the events WebSocket reconnects (Asterisk restarted, or the connection dropped): `channels`, the
        channels in the app now (id -> (Stasis arguments, caller number)), and the app's bridges. A call whose
        caller's channel is gone ends as if they had hung up (the router cancels or ends it); an agent channel
        gone counts as the agent's channel failing; a caller in the app the bridge does not hold is offered; a
        channel the bridge originated for no call it holds is hung up, and a bridge of no call destroyed."""
        effects: list[Effect] = []
        for call in list(self.calls.values()):
            for channel in (call.caller_channel, call.agent_channel):
                if channel and channel not in channels and call.phase is not Phase.ENDED:
                    self.counts.reconciled["ended" if channel == call.caller_channel else "agent_lost"] += 1
                    effects += self.channel_left(channel, now)
        held = set(self.calls) | {c.caller_channel for c in self.calls.values()} | set(self._by_agent_channel)
        for channel_id, (args, number) in channels.items():
            if channel_id in held:
                continue
            if args and args[0] and args[0] not in (AGENT_ARG, CALLBACK_ARG):
                self.counts.reconciled["offered"] += 1
                effects += self.caller_entered(channel_id, args[0], number, now)
            else:
                self.counts.reconciled["hung_up"] += 1
                effects.append(Hangup(channel_id))
        live = {c.bridge_id for c in self.calls.values() if c.phase is not Phase.CALLBACK}
        for bridge_id in sorted(bridge_ids - live):
            self.counts.reconciled["bridge_destroyed"] += 1
            effects.append(DestroyBridge(bridge_id))
        return effects

    # -- inputs from the router -------------------------------------------------------------------------------
    def decided(self, decision: d.Decision, now: datetime) -> list[Effect]:
        call = self.calls.get(decision.call_id)
        outcome = decision.outcome
        if call is None:
            if isinstance(outcome, d.Assigned):
                # Assigned to a caller who is gone (they hung up while the offer was in flight): free the agent.
                self.counts.stale["assigned_after_hangup"] += 1
                return [Route(d.CancelCall(command_id=f"ari:{decision.call_id}:cancel:{outcome.reservation_id}",
                                           call_id=decision.call_id))]
            return []
        if isinstance(outcome, d.Assigned):
            return self._assigned(call, outcome, now)
        if isinstance(outcome, d.Overflowed):
            return self._overflowed(call, outcome, now)
        if isinstance(outcome, d.Rejected):
            effects: list[Effect] = [self._call_event(call, "overflowed", ce.CallOverflowed(
                from_queue_id=call.queue_id, destination=ce.CallOverflowed.DESTINATION_DISCONNECT,
                reason=outcome.reason[:200]), now)]
            return effects + self._drop(call)
        return []  # Queued: the caller keeps waiting; CallbackOffered: not offered (callback_allowed is off)

    def result(self, command: d.Command, result: d.Result, now: datetime) -> list[Effect]:
        """A command's result: its decisions, and for an accept, whether the caller may be connected."""
        effects: list[Effect] = []
        if isinstance(command, d.AcceptReservation):
            effects += self._accepted(command, result, now)
        for decision in result.decisions:
            effects += self.decided(decision, now)
        return effects

    # -- transitions ------------------------------------------------------------------------------------------
    def _assigned(self, call: RoutedCall, outcome: d.Assigned, now: datetime) -> list[Effect]:
        if call.reservation_id == outcome.reservation_id:
            return []  # the same decision from the reply and from the stream
        effects: list[Effect] = []
        if call.phase in (Phase.RINGING, Phase.ANSWERING):
            # The router moved the call on by itself (its own reservation timer fired first).
            effects += self._agent_lost(call, now)
            self._forget_reservation(call)
        elif call.phase not in (Phase.WAITING, Phase.CALLBACK):
            self.counts.stale["assigned_while_" + call.phase.value] += 1
            return []
        agent = self.agents.get(outcome.agent_id)
        if agent is None:
            # An agent logged in by someone else, with no endpoint known here: the bridge cannot ring it.
            self.counts.stale["assigned_unknown_agent"] += 1
            return [*effects, Route(d.RejectReservation(
                command_id=f"ari:{call.call_id}:reject:{outcome.reservation_id}", call_id=call.call_id,
                reservation_id=outcome.reservation_id, agent_id=outcome.agent_id))]
        call.dials += 1
        call.phase = Phase.RINGING
        call.agent_id, call.reservation_id = agent.agent_id, outcome.reservation_id
        call.agent_channel = f"{call.call_id}-agent-{call.dials}"
        self._by_agent_channel[call.agent_channel] = call.call_id
        return [
            *effects,
            Dial(call.agent_channel, agent.endpoint, call.caller_channel, outcome.reservation_expires_at),
            self._call_event(call, "ringing", ce.AgentRinging(agent_id=agent.agent_id, queue_id=call.queue_id),
                             now, outcome.reservation_id),
            self._agent_event(agent.agent_id, "reserved", ae.Reserved(call_id=call.call_id, queue_id=call.queue_id),
                              now, outcome.reservation_id),
        ]

    def _accepted(self, command: d.AcceptReservation, result: d.Result, now: datetime) -> list[Effect]:
        call = self.calls.get(command.call_id)
        if call is None or call.phase is not Phase.ANSWERING or call.reservation_id != command.reservation_id:
            return []
        if not result.accepted:
            # The router took the reservation back (it timed out on its side): this agent does not get the call.
            self.counts.stale["accept_refused"] += 1
            effects = self._agent_lost(call, now)
            self._forget_reservation(call)
            return effects
        if call.callback:
            # The agent waits in the call's bridge while the caller's phone rings (with the agent's channel as
            # originator: Asterisk relates the two).
            call.phase = Phase.CALLING_BACK
            call.caller_channel = call.call_id + CALLBACK_SUFFIX
            self._by_agent_channel[call.caller_channel] = call.call_id
            return [HoldCaller(call.bridge_id, call.agent_channel),
                    Dial(call.caller_channel, self.callback_endpoint.format(number=call.caller_number),
                         call.agent_channel, now.timestamp() + self.callback_ring_s, CALLBACK_ARG)]
        return [Connect(call.bridge_id, call.agent_channel, call.call_id)]

    def agent_joined(self, channel_id: str, bridge_channels: tuple[str, ...], now: datetime) -> list[Effect]:
        """The agent's channel entered the call's bridge: answered if the caller is in it (Asterisk's own word,
        so the answer counted is the conversation its CDRs record); the caller left just before: abandoned."""
        call = self._call_of_agent_channel(channel_id)
        if call is not None and call.phase is Phase.CALLING_BACK and channel_id == call.caller_channel:
            if call.agent_channel not in bridge_channels:
                return self._never_connected(call, now)
            self.counts.called_back += 1
        elif call is None or call.phase is not Phase.ANSWERING:
            return []
        elif call.caller_channel not in bridge_channels:
            return self.connect_failed(call.call_id, now)
        call.phase = Phase.BRIDGED
        self.counts.answered += 1
        return [
            self._call_event(call, "answered", ce.CallAnswered(agent_id=call.agent_id, queue_id=call.queue_id), now),
            self._agent_event(call.agent_id, "talking", ae.Talking(call_id=call.call_id, queue_id=call.queue_id),
                              now, call.call_id),
        ]

    def connect_failed(self, call_id: str, now: datetime) -> list[Effect]:
        """Asterisk could not bridge them (the caller hung up as the agent answered, or the agent's channel went
        away before joining): never connected, the call counts as abandoned; the router, which accepted the
        reservation, ends the call so the agent is free again, and both channels are hung up."""
        call = self.calls.get(call_id)
        if call is None or call.phase not in (Phase.ANSWERING, Phase.CALLING_BACK):
            return []
        return self._never_connected(call, now)

    def _overflowed(self, call: RoutedCall, outcome: d.Overflowed, now: datetime) -> list[Effect]:
        destination = {d.OverflowDestination.QUEUE: ce.CallOverflowed.DESTINATION_QUEUE,
                       d.OverflowDestination.VOICEMAIL: ce.CallOverflowed.DESTINATION_VOICEMAIL,
                       d.OverflowDestination.CALLBACK: ce.CallOverflowed.DESTINATION_CALLBACK}[outcome.destination]
        event = self._call_event(call, "overflowed", ce.CallOverflowed(
            from_queue_id=call.queue_id, destination=destination, to_queue_id=outcome.to_queue_id,
            reason=outcome.reason[:200]), now, outcome.to_queue_id)
        if outcome.destination is d.OverflowDestination.QUEUE:
            call.queue_id = outcome.to_queue_id  # the router keeps routing it, now in that queue
            return [event]
        if outcome.destination is d.OverflowDestination.CALLBACK and self.callback_endpoint and not call.callback:
            return [event, *self._release_for_callback(call, now)]
        # Voicemail is not served by this bridge (nor callbacks without an endpoint to dial them): the caller is
        # released, and says so.
        return [event, *self._drop(call)]

    def _release_for_callback(self, call: RoutedCall, now: datetime) -> list[Effect]:
        """The router keeps the call waiting as a callback: the caller hangs up (their channel is released and
        its bridge destroyed) and the callback, a contact of its own, is offered in the call's queue."""
        effects: list[Effect] = []
        if call.agent_channel:  # an agent rang while the router overflowed the call: it takes the call back
            effects += self._agent_lost(call, now)
            self._forget_reservation(call)
        self.counts.callbacks += 1
        call.callback, call.phase, call.caller_channel = True, Phase.CALLBACK, ""
        number_hash = caller_hash(self.caller_salt, call.caller_number)
        context = ce.CallContext(queue_id=call.queue_id, caller_hash=number_hash,
                                 channel=envelope_pb2.CHANNEL_CALLBACK)
        return [
            *effects,
            Hangup(call.call_id),
            DestroyBridge(call.bridge_id),
            self._call_event(call, "offered", ce.CallOffered(context=context), now),
            self._call_event(call, "queued", ce.CallQueued(queue_id=call.queue_id), now),
        ]

    def _never_connected(self, call: RoutedCall, now: datetime) -> list[Effect]:
        """The router accepted the agent but caller and agent were never connected (the caller left as the agent
        answered, a callback did not reach the caller, the agent left first): the router ends the call so the
        agent is free again (wrap-up), both channels are hung up, the call counts as abandoned while ringing."""
        self.counts.abandoned += 1
        return [
            Hangup(call.agent_channel),
            Hangup(call.caller_channel),
            Route(d.EndCall(command_id=f"ari:{call.call_id}:end", call_id=call.call_id, agent_id=call.agent_id)),
            self._call_event(call, "abandoned", ce.CallAbandoned(queue_id=call.queue_id,
                                                                 phase=ce.CallAbandoned.PHASE_RINGING), now),
            *self._close(call),
        ]

    def _agent_lost(self, call: RoutedCall, now: datetime, *, hang_up: bool = True) -> list[Effect]:
        """The ringing (or answering) agent does not get the call; the caller keeps waiting."""
        self.counts.ring_no_answers += 1
        effects: list[Effect] = [Hangup(call.agent_channel)] if hang_up else []
        effects.append(self._call_event(call, "ring_no_answer",
                                        ce.RingNoAnswer(agent_id=call.agent_id, queue_id=call.queue_id),
                                        now, call.reservation_id))
        return effects

    def _forget_reservation(self, call: RoutedCall) -> None:
        self._by_agent_channel.pop(call.agent_channel, None)
        call.phase = Phase.CALLBACK if call.callback else Phase.WAITING
        call.agent_id = call.reservation_id = call.agent_channel = ""

    def _caller_left(self, call: RoutedCall, now: datetime) -> list[Effect]:
        if call.phase is Phase.BRIDGED:
            return self._end(call, ce.CallEnded.PARTY_CALLER, now)
        self.counts.abandoned += 1
        phase = ce.CallAbandoned.PHASE_IN_QUEUE if call.phase is Phase.WAITING else ce.CallAbandoned.PHASE_RINGING
        effects: list[Effect] = []
        if call.agent_channel:
            effects.append(Hangup(call.agent_channel))
        effects += [
            Route(d.CancelCall(command_id=f"ari:{call.call_id}:cancel", call_id=call.call_id)),
            self._call_event(call, "abandoned", ce.CallAbandoned(queue_id=call.queue_id, phase=phase), now),
        ]
        return effects + self._close(call)

    def _end(self, call: RoutedCall, party: ce.CallEnded.Party.ValueType, now: datetime) -> list[Effect]:
        """The conversation is over: the other party is hung up and the router starts the agent's wrap-up."""
        other = call.agent_channel if party == ce.CallEnded.PARTY_CALLER else call.caller_channel
        return [
            Hangup(other),
            Route(d.EndCall(command_id=f"ari:{call.call_id}:end", call_id=call.call_id, agent_id=call.agent_id)),
            self._call_event(call, "ended", ce.CallEnded(agent_id=call.agent_id, hung_up_by=party), now),
            self._agent_event(call.agent_id, "after_call_work",
                              ae.AfterCallWork(call_id=call.call_id, queue_id=call.queue_id), now, call.call_id),
            *self._close(call),
        ]

    def _drop(self, call: RoutedCall) -> list[Effect]:
        """The router will not connect this caller: hang them up (their hangup then finds no call)."""
        return [Hangup(call.call_id), *self._close(call)]

    def _close(self, call: RoutedCall) -> list[Effect]:
        call.phase = Phase.ENDED
        self._by_agent_channel.pop(call.agent_channel, None)
        if call.callback:
            self._by_agent_channel.pop(call.caller_channel, None)
        del self.calls[call.call_id]
        return [DestroyBridge(call.bridge_id)]

    def _call_of_agent_channel(self, channel_id: str) -> RoutedCall | None:
        call_id = self._by_agent_channel.get(channel_id)
        return self.calls.get(call_id) if call_id is not None else None
