"""Builders of hand-made call and agent events for the domain tests."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

from callstream.agent.v1 import agent_events_pb2
from callstream.call.v1 import call_events_pb2
from callstream_core.envelope import new_envelope

T0 = datetime(2026, 3, 2, 10, 0, 0, tzinfo=UTC)
_ids = itertools.count()


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


class Call:
    """`Call("c1").offered(0, queue="q1").queued(1)...`: events of one call at T0 + seconds."""

    def __init__(self, call_id: str, *, queue: str = "q1", caller: str = "caller-1", call_type: str = "PS") -> None:
        self.call_id, self.queue, self.caller, self.call_type = call_id, queue, caller, call_type
        self.events: list[call_events_pb2.CallEvent] = []

    def _ev(self, s: float, kind: str, msg: Any) -> Call:
        ev = call_events_pb2.CallEvent(
            envelope=new_envelope("test", at(s), f"{self.call_id}-{next(_ids)}"), call_id=self.call_id
        )
        getattr(ev, kind).CopyFrom(msg)
        self.events.append(ev)
        return self

    def ctx(self) -> call_events_pb2.CallContext:
        return call_events_pb2.CallContext(queue_id=self.queue, call_type=self.call_type, caller_hash=self.caller)

    def offered(self, s: float) -> Call:
        return self._ev(s, "offered", call_events_pb2.CallOffered(context=self.ctx()))

    def blocked(self, s: float) -> Call:
        return self._ev(s, "blocked", call_events_pb2.CallBlocked(context=self.ctx(),
                                                                   reason=call_events_pb2.CallBlocked.REASON_BUSY))

    def ivr(self, s: float, left: float, outcome: str) -> Call:
        self._ev(s, "ivr_entered", call_events_pb2.IvrEntered(ivr_id="main", context=self.ctx()))
        value = call_events_pb2.IvrLeft.Outcome.Value("OUTCOME_" + outcome.upper())
        return self._ev(left, "ivr_left", call_events_pb2.IvrLeft(ivr_id="main", outcome=value))

    def queued(self, s: float, queue: str | None = None) -> Call:
        return self._ev(s, "queued", call_events_pb2.CallQueued(queue_id=queue or self.queue, position=1))

    def ringing(self, s: float, agent: str) -> Call:
        return self._ev(s, "ringing", call_events_pb2.AgentRinging(agent_id=agent, queue_id=self.queue))

    def ring_no_answer(self, s: float, agent: str) -> Call:
        return self._ev(s, "ring_no_answer", call_events_pb2.RingNoAnswer(agent_id=agent, queue_id=self.queue))

    def answered(self, s: float, agent: str) -> Call:
        return self._ev(s, "answered", call_events_pb2.CallAnswered(agent_id=agent, queue_id=self.queue))

    def hold(self, s: float, end: float, agent: str) -> Call:
        self._ev(s, "hold_started", call_events_pb2.HoldStarted(agent_id=agent))
        return self._ev(end, "hold_ended", call_events_pb2.HoldEnded(agent_id=agent))

    def transferred(self, s: float, agent: str, kind: str = "blind", to_agent: str = "", to_queue: str = "",
                    to_external: str = "") -> Call:
        msg = call_events_pb2.CallTransferred(
            from_agent_id=agent, kind=call_events_pb2.CallTransferred.Kind.Value("KIND_" + kind.upper()))
        if to_agent:
            msg.to_agent_id = to_agent
        if to_queue:
            msg.to_queue_id = to_queue
        if to_external:
            msg.to_external = to_external
        return self._ev(s, "transferred", msg)

    def abandoned(self, s: float) -> Call:
        return self._ev(s, "abandoned", call_events_pb2.CallAbandoned(
            queue_id=self.queue, phase=call_events_pb2.CallAbandoned.PHASE_IN_QUEUE))

    def ended(self, s: float, agent: str = "", wrap_up_ms: int = 0) -> Call:
        return self._ev(s, "ended", call_events_pb2.CallEnded(
            agent_id=agent, hung_up_by=call_events_pb2.CallEnded.PARTY_CALLER, wrap_up_ms=wrap_up_ms))

    def wrap(self, s: float, agent: str, resolved: bool = False, topic: str = "", code: str = "done",
             hard: bool = False) -> Call:
        return self._ev(s, "wrap_up_ended", call_events_pb2.WrapUpEnded(
            agent_id=agent, disposition_code=code, resolved=resolved, topic=topic, hard_call=hard))

    def callback(self, s: float) -> Call:
        return self._ev(s, "callback_requested", call_events_pb2.CallbackRequested(queue_id=self.queue))

    def overflowed(self, s: float, destination: str, to_queue: str = "") -> Call:
        return self._ev(s, "overflowed", call_events_pb2.CallOverflowed(
            from_queue_id=self.queue, to_queue_id=to_queue,
            destination=call_events_pb2.CallOverflowed.Destination.Value("DESTINATION_" + destination.upper())))


def agent_event(agent: str, s: float, kind: str, **fields: Any) -> agent_events_pb2.AgentEvent:
    ev = agent_events_pb2.AgentEvent(envelope=new_envelope("test", at(s), f"{agent}-{next(_ids)}"), agent_id=agent)
    msg_cls = {
        "logged_in": agent_events_pb2.LoggedIn, "logged_out": agent_events_pb2.LoggedOut,
        "ready": agent_events_pb2.Ready, "not_ready": agent_events_pb2.NotReady,
        "reserved": agent_events_pb2.Reserved, "talking": agent_events_pb2.Talking,
        "on_hold": agent_events_pb2.OnHold, "after_call_work": agent_events_pb2.AfterCallWork,
        "queue_membership_changed": agent_events_pb2.QueueMembershipChanged,
    }[kind]
    getattr(ev, kind).CopyFrom(msg_cls(**fields))
    return ev


def random_traffic(seed: int, calls: int = 300, span_s: float = 7200.0) -> list[call_events_pb2.CallEvent]:
    """A mix of answered (holds, transfers), abandoned, IVR, blocked and callback calls, in event-time order."""
    import random

    rng = random.Random(seed)
    events: list[call_events_pb2.CallEvent] = []
    for i in range(calls):
        s = rng.uniform(0, span_s)
        c = Call(f"r{seed}-{i}", queue=rng.choice(["q1", "q2"]), caller=f"x{rng.randint(1, 40)}")
        kind = rng.choices(["answered", "transfer", "abandon", "ivr", "blocked", "callback"],
                           [50, 10, 20, 10, 5, 5])[0]
        if kind == "blocked":
            c.blocked(s)
        elif kind == "ivr":
            c.ivr(s, s + rng.uniform(5, 90), rng.choice(["self_service", "caller_hung_up"]))
        else:
            wait = rng.choice([0.0, rng.uniform(1, 120)])
            c.offered(s)
            if wait:
                c.queued(s)
            if kind == "abandon":
                c.abandoned(s + rng.uniform(1, 90))
            elif kind == "callback":
                c.callback(s + rng.uniform(1, 90))
            else:
                a1, a2 = rng.sample([f"a{n}" for n in range(1, 7)], 2)
                ring = rng.uniform(0, 15)
                t = s + wait
                c.ringing(t, a1).answered(t + ring, a1)
                t += ring
                if rng.random() < 0.3:
                    h = t + rng.uniform(5, 60)
                    c.hold(h, h + rng.uniform(5, 60), a1)
                    t = h + 61
                t += rng.uniform(20, 300)
                if kind == "transfer":
                    c.transferred(t, a1, rng.choice(["blind", "warm"]), to_agent=a2).answered(t + 3, a2)
                    c.wrap(t + rng.uniform(1, 60), a1)
                    t += 3 + rng.uniform(20, 200)
                    a1 = a2
                c.ended(t, a1).wrap(t + rng.uniform(0, 90), a1, resolved=rng.random() < 0.7)
        events.extend(c.events)
    events.sort(key=lambda e: (e.envelope.occurred_at.seconds, e.envelope.occurred_at.nanos))
    return events
