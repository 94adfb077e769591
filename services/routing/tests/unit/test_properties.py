"""Property-based tests: random command sequences on a virtual clock, invariants after every command.

Invariants (see callstream_routing.domain.invariants): no agent holds more calls than its capacity and the
load agrees with the calls held; no call waits while an eligible idle agent exists; each queue is in
(priority, virtual enqueue time) order; every call ends completed, abandoned, overflowed, called back or
rejected at the door; replaying the command log (or restoring a snapshot mid-way and replaying the rest)
yields identical decisions and state; a duplicate command changes nothing.
"""

from __future__ import annotations

import json
import os
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from callstream_routing.domain import (
    AcceptCallback,
    AcceptReservation,
    AgentAction,
    Assigned,
    CallOutcome,
    CallState,
    CancelCall,
    Channel,
    ChannelCapacity,
    Command,
    ConfigureQueue,
    EndCall,
    OfferCall,
    OverflowDestination,
    OverflowTarget,
    PriorityAging,
    QueueConfig,
    QueueMembership,
    RejectReservation,
    RelaxStep,
    RequiredSkill,
    Result,
    RouterConfig,
    RoutingCore,
    SetAgentState,
    Skill,
    Strategy,
    Tick,
    TimeoutReservation,
    TransferCall,
    UpdatePriority,
    to_plain,
)
from callstream_routing.domain.invariants import check_invariants

QUEUES = ["q0", "q1", "q2", "q3"]
SKILLS = ["s0", "s1", "s2"]
AGENTS = ["a0", "a1", "a2", "a3", "a4", "a5"]
# 60 random command sequences per test keep `make test` within its budget on 2 cores; set
# ROUTING_PROPERTY_EXAMPLES=1500 for a long exploration.
EXAMPLES = int(os.environ.get("ROUTING_PROPERTY_EXAMPLES", "60"))
TERMINAL = {CallOutcome.COMPLETED, CallOutcome.ABANDONED, CallOutcome.OVERFLOWED, CallOutcome.CALLED_BACK,
            CallOutcome.REJECTED}


class Run:
    def __init__(self, config: RouterConfig) -> None:
        self.core = RoutingCore(config)
        self.t = 0.0
        self.n = 0
        self.log: list[Command] = []
        self.results: list[Result] = []
        self.reservations: list[str] = []
        self.offered: list[str] = []

    def do(self, cls: type[Command], **kw: Any) -> Result:
        self.n += 1
        cmd = cls(command_id=f"c{self.n}", now=self.t, **kw)
        return self.send(cmd)

    def send(self, cmd: Command) -> Result:
        self.log.append(cmd)
        r = self.core.handle(cmd)
        self.results.append(r)
        for d in r.decisions:
            if isinstance(d.outcome, Assigned):
                self.reservations.append(d.outcome.reservation_id)
        errors = check_invariants(self.core)
        if errors and os.environ.get("ROUTING_DUMP"):  # the failing command log, for debugging
            with open(os.environ["ROUTING_DUMP"], "w") as f:
                json.dump([to_plain(c) for c in self.log], f)
        assert not errors, errors
        return r


@st.composite
def queue_configs(draw: Any, queue_id: str) -> QueueConfig:
    others = [q for q in QUEUES if q != queue_id]
    overflow = draw(st.sampled_from([
        OverflowTarget(destination=OverflowDestination.VOICEMAIL),
        OverflowTarget(destination=OverflowDestination.CALLBACK),
        OverflowTarget(destination=OverflowDestination.QUEUE, queue_id=draw(st.sampled_from(others))),
    ]))
    relax = draw(st.lists(st.builds(
        RelaxStep, after_s=st.sampled_from([5.0, 15.0, 40.0]), lower_min_by=st.integers(0, 2),
        drop_skills=st.booleans(), add_queue_id=st.none() | st.sampled_from(others)), max_size=2))
    relax.sort(key=lambda s: s.after_s)
    return QueueConfig(
        queue_id=queue_id, strategy=draw(st.sampled_from(list(Strategy))),
        skills=tuple(draw(st.lists(st.builds(RequiredSkill, skill_id=st.sampled_from(SKILLS),
                                             min_proficiency=st.integers(1, 3)), max_size=1))),
        max_length=draw(st.none() | st.integers(0, 4)), join_when_empty=draw(st.booleans()),
        leave_when_empty=draw(st.booleans()), max_wait_s=draw(st.sampled_from([30.0, 60.0, 120.0])),
        overflow=overflow, wrap_up_s=draw(st.sampled_from([0.0, 3.0, 10.0])),
        reservation_timeout_s=draw(st.sampled_from([5.0, 15.0])), relaxation=tuple(relax),
        sticky_window_s=draw(st.sampled_from([0.0, 300.0])), sticky_wait_s=draw(st.sampled_from([0.0, 8.0])),
        callback_threshold_s=draw(st.none() | st.just(20.0)),
        service_time_s=draw(st.none() | st.just(60.0)),
        aging=draw(st.none() | st.builds(PriorityAging, every_s=st.sampled_from([5.0, 20.0]),
                                         max_boost=st.integers(1, 3))),
    )


def login_cmd(draw: Any, agent_id: str, version: int) -> dict[str, Any]:
    queues = draw(st.lists(st.sampled_from(QUEUES), min_size=1, max_size=3, unique=True))
    return dict(
        agent_id=agent_id, action=AgentAction.LOGIN, version=version,
        queues=tuple(QueueMembership(queue_id=q, priority=draw(st.integers(0, 2))) for q in queues),
        skills=tuple(Skill(skill_id=s, proficiency=draw(st.integers(1, 5)))
                     for s in draw(st.lists(st.sampled_from(SKILLS), unique=True))),
        capacity=(ChannelCapacity(channel=Channel.CHAT, capacity=draw(st.integers(0, 2))),),
        wrap_up_s=draw(st.none() | st.sampled_from([0.0, 4.0])),
    )


def random_step(draw: Any, run: Run, versions: dict[str, int]) -> None:
    core = run.core
    run.t += draw(st.sampled_from([0.0, 0.0, 1.0, 2.5, 7.0, 20.0]))
    active = list(core.active_call_ids())
    some_call = st.sampled_from(active + run.offered[-5:] + ["nope"])
    kind = draw(st.sampled_from(
        ["offer", "offer", "offer", "accept", "accept", "accept", "reject", "timeout", "cancel", "end", "end",
         "transfer", "agent", "agent", "priority", "callback", "tick", "duplicate"]))
    if kind == "offer":
        cid = f"x{len(run.offered)}"
        if run.offered and draw(st.integers(0, 9)) == 0:  # re-entry of a finished call id
            cid = draw(st.sampled_from(run.offered))
        run.offered.append(cid)
        run.do(OfferCall, call_id=cid, queue_id=draw(st.sampled_from([*QUEUES, "unknown"])),
               priority=draw(st.integers(0, 2)),
               required_skills=tuple(draw(st.lists(st.builds(RequiredSkill, skill_id=st.sampled_from(SKILLS),
                                                             min_proficiency=st.integers(1, 5)), max_size=2))),
               caller_hash=draw(st.sampled_from(["", "h0", "h1"])),
               channel=draw(st.sampled_from([Channel.VOICE, Channel.VOICE, Channel.CHAT, Channel.CALLBACK])),
               virtual_enqueue_time=draw(st.none() | st.floats(0, run.t).map(lambda x: round(x, 1))),
               callback_allowed=draw(st.booleans()))
    elif kind in ("accept", "reject", "timeout"):
        if not run.reservations:
            return
        rid = draw(st.sampled_from(run.reservations[-6:]))  # mostly live ones, sometimes stale
        if kind == "accept":
            run.do(AcceptReservation, reservation_id=rid)
        elif kind == "reject":
            run.do(RejectReservation, reservation_id=rid, busy=draw(st.booleans()))
        else:
            run.do(TimeoutReservation, reservation_id=rid)
    elif kind == "cancel":
        run.do(CancelCall, call_id=draw(some_call))
    elif kind == "end":
        run.do(EndCall, call_id=draw(some_call), hard_call=draw(st.booleans()))
    elif kind == "transfer":
        if draw(st.booleans()):
            run.do(TransferCall, call_id=draw(some_call), to_queue_id=draw(st.sampled_from(QUEUES)))
        else:
            run.do(TransferCall, call_id=draw(some_call), to_agent_id=draw(st.sampled_from(AGENTS)))
    elif kind == "agent":
        aid = draw(st.sampled_from(AGENTS))
        version = versions.get(aid, 0) + draw(st.sampled_from([1, 1, 1, 0, -1]))
        versions[aid] = max(versions.get(aid, 0), version)
        action = draw(st.sampled_from(list(AgentAction)))
        if action in (AgentAction.LOGIN, AgentAction.UPDATE_PROFILE):  # both carry a whole profile
            run.do(SetAgentState, **{**login_cmd(draw, aid, version), "action": action})
        else:
            run.do(SetAgentState, agent_id=aid, action=action, version=version)
    elif kind == "priority":
        run.do(UpdatePriority, call_id=draw(some_call), priority=draw(st.integers(0, 3)))
    elif kind == "callback":
        run.do(AcceptCallback, call_id=draw(some_call))
    elif kind == "tick":
        deadline = core.next_deadline()
        if deadline is not None and draw(st.booleans()):
            run.t = max(run.t, deadline)
        run.do(Tick)
    elif kind == "duplicate" and run.log:
        i = draw(st.integers(0, len(run.log) - 1))
        before = core.snapshot()
        again = run.send(run.log[i])
        assert again == run.results[i]
        assert core.snapshot() == before


def drain(run: Run) -> None:
    """Staff every queue with a super agent and let time pass until every call has ended."""
    run.do(SetAgentState, agent_id="zz", action=AgentAction.LOGIN, wrap_up_s=0.0,
           queues=tuple(QueueMembership(queue_id=q) for q in QUEUES),
           skills=tuple(Skill(skill_id=s, proficiency=5) for s in SKILLS),
           capacity=(ChannelCapacity(channel=Channel.CHAT, capacity=5),))
    for _ in range(1000):
        if not run.core.active_call_ids():
            break
        for cid in run.core.active_call_ids():
            view = run.core.call_state(cid)
            if view is None:
                continue
            if view.state is CallState.RESERVED and view.reservation_id:
                run.do(AcceptReservation, reservation_id=view.reservation_id)
            elif view.state is CallState.CONNECTED:
                run.do(EndCall, call_id=cid)
        deadline = run.core.next_deadline()
        run.t = max(run.t, deadline) if deadline is not None else run.t + 30
        run.do(Tick)
    assert run.core.active_call_ids() == ()
    for cid in run.offered:
        assert run.core.call_outcome(cid) in TERMINAL, cid


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_random_command_sequences_keep_invariants_and_replay(data: st.DataObject) -> None:
    draw = data.draw
    run = Run(RouterConfig(max_ring_misses=2, rna_delay_s=3, reject_delay_s=4, busy_delay_s=6, cool_down_s=20,
                           global_longest_waiting=draw(st.booleans())))
    for q in QUEUES:
        run.do(ConfigureQueue, config=draw(queue_configs(q)))
    versions: dict[str, int] = {}
    for aid in AGENTS[: draw(st.integers(0, len(AGENTS)))]:
        versions[aid] = 1
        run.do(SetAgentState, **login_cmd(draw, aid, 1))
    for _ in range(draw(st.integers(5, 60))):
        random_step(draw, run, versions)
    if draw(st.booleans()):  # reconfigure a queue mid-flight
        run.do(ConfigureQueue, config=draw(queue_configs(draw(st.sampled_from(QUEUES)))))
        for _ in range(draw(st.integers(0, 20))):
            random_step(draw, run, versions)
    drain(run)
    if os.environ.get("ROUTING_DUMP"):
        with open(os.environ["ROUTING_DUMP"], "w") as f:
            json.dump([to_plain(c) for c in run.log], f)

    # replay determinism: the log rebuilds identical decisions and state
    fresh = RoutingCore(run.core.config)
    assert fresh.handle_all(run.log) == run.results
    assert fresh.snapshot() == run.core.snapshot()

    # snapshot mid-way (through JSON), restore, replay the rest: identical again
    k = draw(st.integers(0, len(run.log)))
    head = RoutingCore(run.core.config)
    head.handle_all(run.log[:k])
    restored = RoutingCore.restore(json.loads(json.dumps(head.snapshot())))
    assert restored.handle_all(run.log[k:]) == run.results[k:]
    assert restored.snapshot() == run.core.snapshot()


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.data())
def test_fifo_within_priority_class(data: st.DataObject) -> None:
    """One pool (no skills): whenever a waiting call is assigned, no same-priority call still waiting
    has an earlier virtual enqueue time."""
    draw = data.draw
    run = Run(RouterConfig(rna_delay_s=2, reject_delay_s=2, busy_delay_s=2, max_ring_misses=99))
    run.do(ConfigureQueue, config=QueueConfig(queue_id="q", strategy=draw(st.sampled_from(list(Strategy))),
                                              reservation_timeout_s=10))
    for aid in ("a0", "a1", "a2"):
        run.do(SetAgentState, agent_id=aid, action=AgentAction.LOGIN, queues=(QueueMembership(queue_id="q"),))
    n_calls = 0
    for _ in range(draw(st.integers(5, 80))):
        run.t += draw(st.sampled_from([0.0, 1.0, 3.0]))
        before = {cid: run.core.call_state(cid) for cid in run.core.waiting_calls("q")}
        kind = draw(st.sampled_from(["offer", "offer", "accept", "end", "reject", "ready", "not_ready", "tick"]))
        active = list(run.core.active_call_ids())
        if kind == "offer":
            n_calls += 1
            r = run.do(OfferCall, call_id=f"x{n_calls}", queue_id="q", priority=draw(st.integers(0, 1)),
                       virtual_enqueue_time=draw(st.none() | st.floats(0, run.t).map(lambda x: round(x))))
        elif kind in ("accept", "reject") and run.reservations:
            rid = draw(st.sampled_from(run.reservations[-3:]))
            r = run.do(AcceptReservation if kind == "accept" else RejectReservation, reservation_id=rid)
        elif kind == "end" and active:
            r = run.do(EndCall, call_id=draw(st.sampled_from(active)))
        elif kind in ("ready", "not_ready"):
            action = AgentAction.READY if kind == "ready" else AgentAction.NOT_READY
            r = run.do(SetAgentState, agent_id=draw(st.sampled_from(["a0", "a1", "a2"])), action=action)
        else:
            r = run.do(Tick)
        still = set(run.core.waiting_calls("q"))
        for d in r.decisions:
            if isinstance(d.outcome, Assigned) and d.call_id in before:
                served = before[d.call_id]
                for cid in still & set(before):
                    other = before[cid]
                    assert not (other.priority == served.priority
                                and other.virtual_enqueue_time < served.virtual_enqueue_time), (served, other)
