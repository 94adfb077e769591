"""The virtual PBX: a discrete-event simulation in virtual time. Pure: no I/O, no wall clock.

A heap of (time, seq, kind, payload); a seeded numpy Generator; every routing decision asked of a `Router`;
every event a switch would emit handed to an `EventSink`. Virtual time is seconds from the scenario start.
Same scenario and seed → the same events with the same ids, in the same order.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from callstream.agent.v1 import agent_events_pb2
from callstream.call.v1 import call_events_pb2
from callstream.common.v1 import envelope_pb2
from callstream_core.envelope import deterministic_event_id, envelope_at_millis, hash_caller, to_millis
from callstream_core.kpi_definitions import FORMULAS, SL_THRESHOLD_S
from callstream_routing import domain as d
from callstream_simulator.router import Router
from callstream_simulator.scenario import (
    AgentGroup,
    CallType,
    Constant,
    Distribution,
    Exponential,
    Gamma,
    LogNormal,
    Scenario,
    Uniform,
)
from callstream_simulator.sinks import EventSink

CE = call_events_pb2
AE = agent_events_pb2

# event kinds on the heap
_ARRIVE, _IVR_DONE, _PATIENCE, _ANSWER, _HOLD_START, _HOLD_END, _TALK_END, _TRANSFER, _ACW_END = range(9)
_LOGIN, _BREAK_START, _BREAK_END, _SHIFT_END, _COOL_END, _TICK = range(9, 15)

_REASONS = {
    "break": AE.NOT_READY_REASON_BREAK, "lunch": AE.NOT_READY_REASON_LUNCH,
    "training": AE.NOT_READY_REASON_TRAINING, "meeting": AE.NOT_READY_REASON_MEETING,
    "coaching": AE.NOT_READY_REASON_COACHING, "other": AE.NOT_READY_REASON_OTHER,
}


class Rand:
    """A seeded numpy Generator with block-buffered uniforms and exponentials (scalar draws are slow)."""

    _BLOCK = 4096

    def __init__(self, seed: int) -> None:
        self.gen = np.random.default_rng(seed)
        self._u: list[float] = []
        self._e: list[float] = []

    def random(self) -> float:
        if not self._u:
            self._u = self.gen.random(self._BLOCK).tolist()
            self._u.reverse()
        return self._u.pop()

    def exponential(self, mean: float) -> float:
        if not self._e:
            self._e = self.gen.standard_exponential(self._BLOCK).tolist()
            self._e.reverse()
        return self._e.pop() * mean


def sample(rng: Rand, dist: Distribution) -> float:
    if isinstance(dist, Exponential):
        return rng.exponential(dist.mean)
    if isinstance(dist, Constant):
        return dist.value
    if isinstance(dist, Uniform):
        return dist.low + (dist.high - dist.low) * rng.random()
    if isinstance(dist, LogNormal):
        sigma2 = math.log(1 + (dist.sd / dist.mean) ** 2)
        return float(rng.gen.lognormal(math.log(dist.mean) - sigma2 / 2, math.sqrt(sigma2)))
    if isinstance(dist, Gamma):
        shape = 1 / dist.cv**2
        return float(rng.gen.gamma(shape, dist.mean / shape))
    raise TypeError(f"unknown distribution {dist!r}")


@dataclass
class Summary:
    received: int = 0
    offered: int = 0  # reached the center (not blocked)
    blocked: int = 0
    ivr_handled: int = 0
    reached_acd: int = 0
    answered: int = 0
    abandoned: int = 0
    overflowed: int = 0  # sent away by the router (voicemail, disconnect)
    callbacks: int = 0
    transfers: int = 0
    repeats: int = 0
    answered_within_t: int = 0
    short_abandons: int = 0
    wait_answered_s: float = 0.0
    call_events: int = 0
    agent_events: int = 0
    end_s: float = 0.0
    service_level_s: float = SL_THRESHOLD_S

    @property
    def service_level(self) -> float | None:
        """The kpis.md default service level (KPI 21, its formula in `callstream_core.kpi_definitions`) over the
        calls that reached the ACD, as a fraction."""
        pct = FORMULAS["service_level"].of_counts(answered_within_t=self.answered_within_t, offered=self.reached_acd,
                                                  short_abandons=self.short_abandons)
        return None if pct is None else pct / 100

    @property
    def asa_s(self) -> float | None:
        return self.wait_answered_s / self.answered if self.answered else None

    def lines(self) -> list[str]:
        sl = "-" if self.service_level is None else f"{self.service_level * 100:.1f} %"
        asa = "-" if self.asa_s is None else f"{self.asa_s:.1f} s"
        return [
            f"calls received   {self.received}",
            f"  blocked        {self.blocked}",
            f"  offered        {self.offered}",
            f"  IVR handled    {self.ivr_handled}",
            f"  answered       {self.answered}",
            f"  abandoned      {self.abandoned}",
            f"  overflowed     {self.overflowed}",
            f"  callbacks      {self.callbacks}",
            f"  transfers      {self.transfers}",
            f"  repeat calls   {self.repeats}",
            f"service level    {sl} in {self.service_level_s:g} s",
            f"ASA              {asa}",
            f"events           {self.call_events} call, {self.agent_events} agent",
            f"virtual time     {self.end_s / 3600:.2f} h",
        ]


@dataclass
class _Call:
    call_id: str
    ct: CallType
    ct_index: int
    number: str
    context: call_events_pb2.CallContext
    queue_id: str
    phase: str = "new"  # new, ivr, moving, waiting, ringing, talking, callback, done
    seq: int = 0
    epoch: int = 0  # invalidates scheduled patience / answer events
    agent_id: str = ""
    reservation_id: str = ""
    ring_at: float = 0.0
    entered_queue_at: float = 0.0
    acd_at: float | None = None  # first entry to the ACD (queue time of the call starts here)
    answered_once: bool = False
    transferred: bool = False
    hard: bool = False
    resolved: bool = False


@dataclass
class _Agent:
    agent_id: str
    group: AgentGroup
    extension: str
    state: str = "out"  # out, ready, not_ready, reserved, talking, acw, cool
    seq: int = 0
    call_id: str = ""
    pending_break: str = ""  # reason of a break due while busy
    break_until: float = 0.0
    pending_logout: bool = False
    shift_over: bool = False
    version: int = 0
    membership: tuple[d.QueueMembership, ...] = ()
    skills: tuple[d.Skill, ...] = ()


@dataclass(order=True)
class _Item:
    t: float
    seq: int
    kind: int = field(compare=False)
    payload: Any = field(compare=False)


class Engine:
    """`run_until(t)` processes every event up to virtual time t; `next_time()`; `finish()` at the end."""

    def __init__(self, scenario: Scenario, router: Router, sink: EventSink, *, start: datetime | None = None) -> None:
        self.sc = scenario
        self.router = router
        self.sink = sink
        self.start = (start or scenario.start)
        self._start_ms = to_millis(self.start)
        self._ns = f"{scenario.name}/{scenario.seed}/{self._start_ms}"
        self.rng = Rand(scenario.seed)
        self.now = 0.0
        self.summary = Summary(service_level_s=scenario.service_level_s)
        self._heap: list[tuple[float, int, int, Any]] = []
        self._seq = 0
        self._calls: dict[str, _Call] = {}
        self._agents: dict[str, _Agent] = {}
        self._n_calls = 0
        self._in_system = 0  # calls holding a trunk
        self._tick_at: float | None = None
        self._horizon = 0.0
        self._finished = False
        self._ring_cap = max(0.0, scenario.router.reservation_timeout_s - 0.5)
        self._acw_cap = max(0.0, scenario.router.acw_cap_s - 1.0)
        stamp = self.start.strftime("%Y%m%dT%H%M%S")
        self._id_prefix = f"{scenario.name}-{stamp}-{scenario.seed}"
        self._schedule_agents()
        self._schedule_arrivals()

    # ------------------------------------------------------------------------------------ loop

    def _push(self, t: float, kind: int, payload: Any) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (t, self._seq, kind, payload))

    def next_time(self) -> float | None:
        return self._heap[0][0] if self._heap else None

    @property
    def done(self) -> bool:
        return self._finished

    def run_until(self, t: float) -> int:
        """Process every event at or before virtual time t; returns how many."""
        n = 0
        self._apply(self.router.drain())
        handlers = self._handlers
        while self._heap and self._heap[0][0] <= t:
            at, _, kind, payload = heapq.heappop(self._heap)
            self.now = max(self.now, at)
            handlers[kind](payload)
            n += 1
            self._schedule_tick()
        self.now = max(self.now, t) if not math.isinf(t) else self.now
        return n

    def run(self) -> Summary:
        """As fast as possible to the end."""
        self.run_until(math.inf)
        return self.finish()

    def finish(self) -> Summary:
        """End of the day: callers still waiting hang up, agents still logged in log out."""
        if self._finished:
            return self.summary
        for call in list(self._calls.values()):
            if call.phase in ("waiting", "ringing", "moving"):
                self._abandon(call)
        self.run_until(self.now)
        for agent in self._agents.values():
            if agent.state in ("acw", "cool", "talking", "reserved"):
                continue
            if agent.state != "out":
                self._logout(agent)
        self._finished = True
        self.summary.end_s = self.now
        self.sink.flush()
        return self.summary

    def _schedule_tick(self) -> None:
        deadline = self.router.next_deadline()
        if deadline is None:
            return
        if self._tick_at is not None and self._tick_at <= deadline and self._tick_at >= self.now:
            return
        self._tick_at = max(deadline, self.now)
        self._push(self._tick_at, _TICK, None)

    @property
    def _handlers(self) -> list[Any]:
        return [self._on_arrive, self._on_ivr_done, self._on_patience, self._on_answer, self._on_hold_start,
                self._on_hold_end, self._on_talk_end, self._on_transfer, self._on_acw_end, self._on_login,
                self._on_break_start, self._on_break_end, self._on_shift_end, self._on_cool_end, self._on_tick]

    # ------------------------------------------------------------------------------------ events out

    def _envelope(self, entity: str, kind: str, seq: int) -> envelope_pb2.Envelope:
        return envelope_at_millis(self.sc.source, self._start_ms + round(self.now * 1000),
                                  deterministic_event_id(self._ns, entity, kind, str(seq)))

    def _call_event(self, call: _Call, kind: str, **fields: Any) -> None:
        call.seq += 1
        ev = CE.CallEvent(envelope=self._envelope(call.call_id, kind, call.seq), call_id=call.call_id, **fields)
        self.summary.call_events += 1
        self.sink.call_event(ev)

    def _agent_event(self, agent: _Agent, kind: str, **fields: Any) -> None:
        agent.seq += 1
        ev = AE.AgentEvent(envelope=self._envelope(agent.agent_id, kind, agent.seq), agent_id=agent.agent_id,
                           **fields)
        self.summary.agent_events += 1
        self.sink.agent_event(ev)

    def _ask(self, cmd: d.Command) -> d.Result:
        result = self.router.handle(cmd)
        self._apply(list(result.decisions))
        return result

    # ------------------------------------------------------------------------------------ set-up

    def _schedule_arrivals(self) -> None:
        arrivals: list[tuple[float, int]] = []
        for i, ct in enumerate(self.sc.call_types):
            for start, length, mean in ct.arrivals.intervals():
                n = int(self.rng.gen.poisson(mean)) if mean > 0 else 0
                for t in self.rng.gen.uniform(start, start + length, n):
                    arrivals.append((float(t), i))
        arrivals.sort()
        self._horizon = max((s + n for ct in self.sc.call_types for s, n, _ in ct.arrivals.intervals()), default=0.0)
        for t, i in arrivals:
            self._push(t, _ARRIVE, (i, None))

    def _schedule_agents(self) -> None:
        ext = 1000
        for g in self.sc.agents:
            for k in range(1, g.count + 1):
                ext += 1
                agent = _Agent(agent_id=f"{g.id_prefix}-{k:03d}", group=g, extension=str(ext))
                agent.membership = tuple(d.QueueMembership(queue_id=m.queue_id, priority=m.priority)
                                         for m in g.queues)
                agent.skills = tuple(d.Skill(skill_id=s.skill_id, proficiency=s.proficiency) for s in g.skills)
                self._agents[agent.agent_id] = agent
                shift = self.rng.random() * g.stagger_minutes * 60 if g.stagger_minutes else 0.0
                absent = g.absence_share > 0 and self.rng.random() < g.absence_share
                late = 0.0
                if g.lateness is not None and self.rng.random() < g.lateness.share:
                    late = sample(self.rng, g.lateness.minutes) * 60
                if absent:
                    continue
                start = g.shift_start_h * 3600 + shift
                end = None if g.shift_end_h is None else g.shift_end_h * 3600 + shift
                if end is not None and start + late >= end:
                    continue
                self._push(start + late, _LOGIN, agent.agent_id)
                for b in g.breaks:
                    at = b.at_h * 3600 + shift
                    if at > start + late and (end is None or at < end):
                        self._push(at, _BREAK_START, (agent.agent_id, b.reason, b.minutes * 60))
                if end is not None:
                    self._push(end, _SHIFT_END, agent.agent_id)

    # ------------------------------------------------------------------------------------ calls

    def _on_arrive(self, payload: tuple[int, str | None]) -> None:
        ct_index, number = payload
        ct = self.sc.call_types[ct_index]
        self._n_calls += 1
        call_id = f"{self._id_prefix}-{self._n_calls:07d}"
        if number is None:
            number = f"+3460{int(self.rng.random() * 10_000_000):07d}"
        else:
            self.summary.repeats += 1
        ctx = CE.CallContext(queue_id=ct.queue_id, call_type=ct.call_type, priority=ct.priority,
                             caller_hash=hash_caller(number, self.sc.caller_salt), dialed_number=ct.dialed_number,
                             channel=envelope_pb2.CHANNEL_VOICE)
        call = _Call(call_id=call_id, ct=ct, ct_index=ct_index, number=number, context=ctx, queue_id=ct.queue_id)
        self.summary.received += 1
        if self.sc.trunks is not None and self._in_system >= self.sc.trunks:
            self._call_event(call, "blocked", blocked=CE.CallBlocked(context=ctx,
                                                                     reason=CE.CallBlocked.REASON_TRUNK_FULL))
            self.summary.blocked += 1
            self._maybe_repeat(call)
            return
        self._in_system += 1
        self._calls[call_id] = call
        self.summary.offered += 1
        self._call_event(call, "offered", offered=CE.CallOffered(context=ctx))
        ivr = ct.ivr
        if ivr is not None and (ivr.share >= 1 or self.rng.random() < ivr.share):
            call.phase = "ivr"
            self._call_event(call, "ivr_entered", ivr_entered=CE.IvrEntered(ivr_id=ivr.ivr_id, context=ctx))
            self._push(self.now + sample(self.rng, ivr.duration), _IVR_DONE, call_id)
        else:
            self._to_acd(call, ct.queue_id)

    def _on_ivr_done(self, call_id: str) -> None:
        call = self._calls[call_id]
        ivr = call.ct.ivr
        assert ivr is not None
        if ivr.self_service_share > 0 and self.rng.random() < ivr.self_service_share:
            self._call_event(call, "ivr_left", ivr_left=CE.IvrLeft(ivr_id=ivr.ivr_id,
                                                                   outcome=CE.IvrLeft.OUTCOME_SELF_SERVICE))
            self._call_event(call, "ended", ended=CE.CallEnded(hung_up_by=CE.CallEnded.PARTY_CALLER))
            self.summary.ivr_handled += 1
            self._close(call)
            return
        self._call_event(call, "ivr_left", ivr_left=CE.IvrLeft(ivr_id=ivr.ivr_id, outcome=CE.IvrLeft.OUTCOME_TO_AGENT))
        self._to_acd(call, call.queue_id)

    def _start_patience(self, call: _Call) -> None:
        call.epoch += 1
        if call.ct.patience is not None:
            self._push(self.now + sample(self.rng, call.ct.patience), _PATIENCE, (call.call_id, call.epoch))

    def _to_acd(self, call: _Call, queue_id: str) -> None:
        call.queue_id = queue_id
        call.phase = "moving"
        call.entered_queue_at = self.now
        if call.acd_at is None:
            call.acd_at = self.now
            self.summary.reached_acd += 1
        self._start_patience(call)
        self._ask(d.OfferCall(command_id=f"{call.call_id}/offer", now=self.now, call_id=call.call_id,
                              queue_id=queue_id, priority=call.ct.priority, caller_hash=call.context.caller_hash,
                              callback_allowed=call.ct.callback_accept_share > 0))

    def _on_patience(self, payload: tuple[str, int]) -> None:
        call = self._calls.get(payload[0])
        if call is None or call.epoch != payload[1] or call.phase not in ("waiting", "ringing", "moving"):
            return
        self._abandon(call)

    def _abandon(self, call: _Call) -> None:
        ringing = call.phase == "ringing"
        phase = CE.CallAbandoned.PHASE_RINGING if ringing else CE.CallAbandoned.PHASE_IN_QUEUE
        self._call_event(call, "abandoned", abandoned=CE.CallAbandoned(queue_id=call.queue_id, phase=phase))
        self._call_event(call, "ended", ended=CE.CallEnded(hung_up_by=CE.CallEnded.PARTY_CALLER))
        if not call.answered_once:
            self.summary.abandoned += 1
            if self.now - call.entered_queue_at <= self.sc.service_level_s and not call.transferred:
                self.summary.short_abandons += 1
        agent = self._agents.get(call.agent_id) if ringing else None
        self._close(call)
        if agent is not None and agent.state == "reserved":
            agent.state, agent.call_id = "ready", ""
            self._agent_event(agent, "ready", ready=AE.Ready())
        self._ask(d.CancelCall(command_id=f"{call.call_id}/cancel", now=self.now, call_id=call.call_id))
        if agent is not None:
            self._after_free(agent)
        self._maybe_repeat(call)

    def _close(self, call: _Call) -> None:
        call.phase = "done"
        call.epoch += 1
        self._calls.pop(call.call_id, None)
        self._in_system -= 1

    def _maybe_repeat(self, call: _Call) -> None:
        rep = call.ct.repeat
        if rep is not None and rep.share > 0 and self.rng.random() < rep.share:
            at = self.now + sample(self.rng, rep.delay_minutes) * 60
            if at < self._horizon:  # the center is closed after the last arrival interval
                self._push(at, _ARRIVE, (call.ct_index, call.number))

    # ------------------------------------------------------------------------------------ router decisions

    def _apply(self, decisions: list[d.Decision]) -> None:
        for dec in decisions:
            call = self._calls.get(dec.call_id)
            if call is None:
                continue
            out = dec.outcome
            if isinstance(out, d.Assigned):
                self._on_assigned(call, out)
            elif isinstance(out, d.Queued):
                self._on_queued(call, out.position, out.expected_wait_s)
            elif isinstance(out, d.CallbackOffered):
                if self.rng.random() < call.ct.callback_accept_share:
                    self._on_queued(call, out.position, out.expected_wait_s)
                    self._ask(d.AcceptCallback(command_id=f"{call.call_id}/callback", now=self.now,
                                               call_id=call.call_id))
                else:
                    self._on_queued(call, out.position, out.expected_wait_s)
            elif isinstance(out, d.Overflowed):
                self._on_overflowed(call, out)
            else:
                self._call_event(call, "overflowed", overflowed=CE.CallOverflowed(
                    from_queue_id=call.queue_id, destination=CE.CallOverflowed.DESTINATION_DISCONNECT,
                    reason=out.reason))
                self._call_event(call, "ended", ended=CE.CallEnded(hung_up_by=CE.CallEnded.PARTY_SYSTEM))
                self.summary.overflowed += 1
                self._close(call)

    def _on_queued(self, call: _Call, position: int, ewt: float) -> None:
        if call.phase == "ringing":  # the router took the reservation back (ring-no-answer)
            agent = self._agents.get(call.agent_id)
            self._call_event(call, "ring_no_answer", ring_no_answer=CE.RingNoAnswer(
                agent_id=call.agent_id, queue_id=call.queue_id, ring_ms=round((self.now - call.ring_at) * 1000)))
            if agent is not None and agent.state == "reserved":
                agent.state, agent.call_id = "not_ready", ""
                self._agent_event(agent, "not_ready", not_ready=AE.NotReady(
                    reason=AE.NOT_READY_REASON_RING_NO_ANSWER))
            call.phase, call.agent_id, call.reservation_id = "waiting", "", ""
            return
        if call.phase in ("waiting", "callback"):
            return
        call.phase = "waiting"
        self._call_event(call, "queued", queued=CE.CallQueued(queue_id=call.queue_id, position=max(1, position),
                                                              expected_wait_s=ewt, priority=call.ct.priority))

    def _on_overflowed(self, call: _Call, out: d.Overflowed) -> None:
        if out.destination is d.OverflowDestination.QUEUE:
            self._call_event(call, "overflowed", overflowed=CE.CallOverflowed(
                from_queue_id=call.queue_id, destination=CE.CallOverflowed.DESTINATION_QUEUE,
                to_queue_id=out.to_queue_id, reason=out.reason))
            call.queue_id = out.to_queue_id
            call.phase = "moving"
            call.entered_queue_at = self.now
            return
        if out.destination is d.OverflowDestination.CALLBACK:
            if out.reason == "callback accepted":
                self._call_event(call, "callback_requested", callback_requested=CE.CallbackRequested(
                    queue_id=call.queue_id, callback_number_hash=call.context.caller_hash, keep_position=True))
            else:
                self._call_event(call, "overflowed", overflowed=CE.CallOverflowed(
                    from_queue_id=call.queue_id, destination=CE.CallOverflowed.DESTINATION_CALLBACK,
                    reason=out.reason))
            # the caller hangs up; the router keeps the callback waiting and assigns it later
            self._call_event(call, "ended", ended=CE.CallEnded(hung_up_by=CE.CallEnded.PARTY_CALLER))
            self.summary.callbacks += 1
            call.phase = "callback"
            call.epoch += 1
            self._in_system -= 1
            return
        self._call_event(call, "overflowed", overflowed=CE.CallOverflowed(
            from_queue_id=call.queue_id, destination=CE.CallOverflowed.DESTINATION_VOICEMAIL, reason=out.reason))
        self._call_event(call, "ended", ended=CE.CallEnded(hung_up_by=CE.CallEnded.PARTY_SYSTEM))
        self.summary.overflowed += 1
        self._close(call)

    def _on_assigned(self, call: _Call, out: d.Assigned) -> None:
        agent = self._agents[out.agent_id]
        if call.phase == "callback":
            self._in_system += 1  # the callback is dialled out: it holds a trunk again
        call.phase = "ringing"
        call.agent_id = out.agent_id
        call.reservation_id = out.reservation_id
        call.ring_at = self.now
        agent.state, agent.call_id = "reserved", call.call_id
        self._call_event(call, "ringing", ringing=CE.AgentRinging(agent_id=agent.agent_id, queue_id=call.queue_id))
        self._agent_event(agent, "reserved", reserved=AE.Reserved(call_id=call.call_id, queue_id=call.queue_id))
        ring = min(sample(self.rng, self.sc.ring), self._ring_cap)
        self._push(self.now + ring, _ANSWER, (call.call_id, out.reservation_id))

    def _on_answer(self, payload: tuple[str, str]) -> None:
        call = self._calls.get(payload[0])
        if call is None or call.phase != "ringing" or call.reservation_id != payload[1]:
            return
        result = self._ask(d.AcceptReservation(command_id=f"{call.call_id}/accept/{payload[1]}", now=self.now,
                                               reservation_id=payload[1], call_id=call.call_id,
                                               agent_id=call.agent_id))
        if not result.accepted:
            return
        agent = self._agents[call.agent_id]
        call.phase = "talking"
        call.epoch += 1
        self._call_event(call, "answered", answered=CE.CallAnswered(agent_id=agent.agent_id, queue_id=call.queue_id))
        agent.state = "talking"
        self._agent_event(agent, "talking", talking=AE.Talking(call_id=call.call_id, queue_id=call.queue_id))
        if not call.answered_once:
            call.answered_once = True
            self.summary.answered += 1
            wait = self.now - (call.acd_at if call.acd_at is not None else self.now)
            self.summary.wait_answered_s += wait
            if wait <= self.sc.service_level_s:
                self.summary.answered_within_t += 1
        talk = sample(self.rng, call.ct.talk)
        hold = call.ct.hold
        extra = 0.0
        if hold is not None and hold.share > 0 and self.rng.random() < hold.share:
            extra = sample(self.rng, hold.duration)
            at = self.now + talk * float(self.rng.random())
            self._push(at, _HOLD_START, (call.call_id, call.epoch))
            self._push(at + extra, _HOLD_END, (call.call_id, call.epoch))
        self._push(self.now + talk + extra, _TALK_END, (call.call_id, call.epoch))

    def _live(self, payload: tuple[str, int]) -> _Call | None:
        call = self._calls.get(payload[0])
        return call if call is not None and call.epoch == payload[1] and call.phase == "talking" else None

    def _on_hold_start(self, payload: tuple[str, int]) -> None:
        call = self._live(payload)
        if call is not None:
            self._call_event(call, "hold_started", hold_started=CE.HoldStarted(agent_id=call.agent_id))
            agent = self._agents[call.agent_id]
            self._agent_event(agent, "on_hold", on_hold=AE.OnHold(call_id=call.call_id))

    def _on_hold_end(self, payload: tuple[str, int]) -> None:
        call = self._live(payload)
        if call is not None:
            self._call_event(call, "hold_ended", hold_ended=CE.HoldEnded(agent_id=call.agent_id))
            agent = self._agents[call.agent_id]
            self._agent_event(agent, "talking", talking=AE.Talking(call_id=call.call_id, queue_id=call.queue_id))

    def _on_talk_end(self, payload: tuple[str, int]) -> None:
        call = self._live(payload)
        if call is None:
            return
        tr = call.ct.transfer
        if tr is not None and not call.transferred and tr.share > 0 and self.rng.random() < tr.share:
            warm = tr.warm_share > 0 and self.rng.random() < tr.warm_share
            if warm:  # the agent consults the target while the caller is on hold
                self._call_event(call, "hold_started", hold_started=CE.HoldStarted(agent_id=call.agent_id))
                self._push(self.now + sample(self.rng, tr.consult), _TRANSFER, (call.call_id, call.epoch, True))
            else:
                self._on_transfer((call.call_id, call.epoch, False))
            return
        agent = self._agents[call.agent_id]
        call.hard = call.ct.hard_call_share > 0 and self.rng.random() < call.ct.hard_call_share
        call.resolved = call.ct.resolved_share >= 1 or self.rng.random() < call.ct.resolved_share
        party = CE.CallEnded.PARTY_CALLER if self.rng.random() < 0.5 else CE.CallEnded.PARTY_AGENT
        self._call_event(call, "ended", ended=CE.CallEnded(agent_id=agent.agent_id, hung_up_by=party))
        self._close(call)
        self._start_acw(agent, call, disposition=call.ct.disposition, resolved=call.resolved, hard=call.hard)
        self._ask(d.EndCall(command_id=f"{call.call_id}/end/{agent.agent_id}", now=self.now, call_id=call.call_id,
                            agent_id=agent.agent_id, hard_call=call.hard))
        if not call.resolved:
            self._maybe_repeat(call)

    def _on_transfer(self, payload: tuple[str, int, bool]) -> None:
        call = self._live((payload[0], payload[1]))
        if call is None:
            return
        tr = call.ct.transfer
        assert tr is not None
        warm = payload[2]
        agent = self._agents[call.agent_id]
        if warm:
            self._call_event(call, "hold_ended", hold_ended=CE.HoldEnded(agent_id=agent.agent_id))
        kind = CE.CallTransferred.KIND_WARM if warm else CE.CallTransferred.KIND_BLIND
        self._call_event(call, "transferred", transferred=CE.CallTransferred(
            from_agent_id=agent.agent_id, kind=kind, to_queue_id=tr.to_queue))
        self.summary.transfers += 1
        call.transferred = True
        self._start_acw(agent, call, disposition="transferred", resolved=False, hard=False)
        call.agent_id = call.reservation_id = ""
        call.queue_id = tr.to_queue
        call.phase = "moving"
        call.entered_queue_at = self.now
        self._start_patience(call)
        self._ask(d.TransferCall(command_id=f"{call.call_id}/transfer", now=self.now, call_id=call.call_id,
                                 from_agent_id=agent.agent_id, to_queue_id=tr.to_queue))

    # ------------------------------------------------------------------------------------ agents

    def _start_acw(self, agent: _Agent, call: _Call, *, disposition: str, resolved: bool, hard: bool) -> None:
        agent.state = "acw"
        self._agent_event(agent, "after_call_work", after_call_work=AE.AfterCallWork(call_id=call.call_id,
                                                                                     queue_id=call.queue_id))
        acw = min(sample(self.rng, call.ct.acw), self._acw_cap)
        self._push(self.now + acw, _ACW_END, (agent.agent_id, call, disposition, resolved, hard))

    def _on_acw_end(self, payload: tuple[str, _Call, str, bool, bool]) -> None:
        agent_id, call, disposition, resolved, hard = payload
        agent = self._agents[agent_id]
        self._call_event(call, "wrap_up_ended", wrap_up_ended=CE.WrapUpEnded(
            agent_id=agent_id, disposition_code=disposition, resolved=resolved, hard_call=hard,
            topic=call.ct.call_type))
        agent.call_id = ""
        if agent.pending_logout:
            self._logout(agent)
            return
        if agent.pending_break:
            reason = agent.pending_break
            agent.pending_break = ""
            self._go_break(agent, reason)
            self._ask(self._agent_cmd(agent, d.AgentAction.WRAP_UP_DONE))
            return
        if hard and self.sc.router.cool_down_s > 0:
            agent.state = "cool"
            self._agent_event(agent, "not_ready", not_ready=AE.NotReady(reason=AE.NOT_READY_REASON_COOL_DOWN))
            self._push(self.now + self.sc.router.cool_down_s, _COOL_END, agent_id)
            self._ask(self._agent_cmd(agent, d.AgentAction.WRAP_UP_DONE))
            return
        agent.state = "ready"
        self._agent_event(agent, "ready", ready=AE.Ready())
        self._ask(self._agent_cmd(agent, d.AgentAction.WRAP_UP_DONE))

    def _on_cool_end(self, agent_id: str) -> None:
        agent = self._agents[agent_id]
        if agent.state != "cool":
            return
        if agent.pending_logout:
            self._logout(agent)
        elif agent.pending_break:
            reason, agent.pending_break = agent.pending_break, ""
            self._go_break(agent, reason)
        else:
            agent.state = "ready"
            self._agent_event(agent, "ready", ready=AE.Ready())

    def _agent_cmd(self, agent: _Agent, action: d.AgentAction,
                   reason: d.NotReadyReason = d.NotReadyReason.UNSPECIFIED) -> d.SetAgentState:
        agent.version += 1
        extra: dict[str, Any] = {}
        if action is d.AgentAction.LOGIN:
            extra = {"queues": agent.membership, "skills": agent.skills}
        return d.SetAgentState(command_id=f"{agent.agent_id}/{self._ns}/{agent.version}", now=self.now,
                               agent_id=agent.agent_id, action=action, reason=reason, version=agent.version,
                               **extra)

    def _on_login(self, agent_id: str) -> None:
        agent = self._agents[agent_id]
        agent.state = "ready"
        self._agent_event(agent, "logged_in", logged_in=AE.LoggedIn(extension=agent.extension,
                                                                    team_id=agent.group.team_id))
        for m in agent.membership:
            self._agent_event(agent, "queue_membership_changed", queue_membership_changed=AE.QueueMembershipChanged(
                queue_id=m.queue_id, member=True, queue_priority=m.priority))
        self._agent_event(agent, "ready", ready=AE.Ready())
        self._ask(self._agent_cmd(agent, d.AgentAction.LOGIN))

    def _go_break(self, agent: _Agent, reason: str) -> None:
        agent.state = "not_ready"
        self._agent_event(agent, "not_ready", not_ready=AE.NotReady(reason=_REASONS[reason], detail=reason))
        self._ask(self._agent_cmd(agent, d.AgentAction.NOT_READY, d.NotReadyReason(reason)))
        self._push(max(self.now, agent.break_until), _BREAK_END, agent.agent_id)

    def _on_break_start(self, payload: tuple[str, str, float]) -> None:
        agent_id, reason, seconds = payload
        agent = self._agents[agent_id]
        if agent.state == "out":
            return
        agent.break_until = self.now + seconds
        if agent.state in ("ready", "not_ready"):
            self._go_break(agent, reason)
        else:
            agent.pending_break = reason  # taken when the current call's wrap-up is over (break shortened)

    def _on_break_end(self, agent_id: str) -> None:
        agent = self._agents[agent_id]
        if agent.state != "not_ready" or agent.pending_logout:
            return
        agent.state = "ready"
        self._agent_event(agent, "ready", ready=AE.Ready())
        self._ask(self._agent_cmd(agent, d.AgentAction.READY))

    def _on_shift_end(self, agent_id: str) -> None:
        agent = self._agents[agent_id]
        if agent.state == "out":
            return
        if agent.state in ("ready", "not_ready", "cool"):
            self._logout(agent)
        else:
            agent.pending_logout = True

    def _logout(self, agent: _Agent) -> None:
        agent.state = "out"
        agent.pending_logout = False
        agent.pending_break = ""
        self._agent_event(agent, "logged_out", logged_out=AE.LoggedOut())
        self._ask(self._agent_cmd(agent, d.AgentAction.LOGOUT))

    def _after_free(self, agent: _Agent) -> None:
        """An agent freed by a caller hanging up while ringing: a break or the end of shift may be due."""
        if agent.state != "ready":
            return
        if agent.pending_logout:
            self._logout(agent)
        elif agent.pending_break:
            reason, agent.pending_break = agent.pending_break, ""
            self._go_break(agent, reason)

    def _on_tick(self, _: None) -> None:
        self._tick_at = None
        self._ask(d.Tick(now=self.now))
