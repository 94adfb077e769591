"""Brute-force checks of the core's invariants from its public views (for tests and the simulator).

O(calls x agents): a referee, not something to run per command in production.
"""

from __future__ import annotations

from collections import Counter

from callstream_routing.domain.core import RoutingCore
from callstream_routing.domain.model import AgentView, CallState, CallView, Channel, capacity_channel


def _eligible(agent: AgentView, call: CallView) -> bool:
    if capacity_channel(call.channel) not in agent.available_channels:
        return False
    if call.preferred_agent_id is not None:
        return agent.agent_id == call.preferred_agent_id
    if not any(m.queue_id in call.eligible_queues for m in agent.queues):
        return False
    skills = {s.skill_id: s.proficiency for s in agent.skills}
    return all(skills.get(r.skill_id, 0) >= r.min_proficiency for r in call.requirement)


def check_invariants(core: RoutingCore) -> list[str]:
    """Every violated invariant, described; empty when all hold."""
    errors: list[str] = []
    agents = [v for v in (core.agent_state(a) for a in core.agent_ids()) if v is not None]
    calls = [v for v in (core.call_state(c) for c in core.active_call_ids()) if v is not None]

    held: Counter[tuple[str, Channel]] = Counter()
    for c in calls:
        if c.state is not CallState.WAITING:
            if c.agent_id is None:
                errors.append(f"{c.call_id} {c.state.value} without an agent")
            else:
                held[(c.agent_id, capacity_channel(c.channel))] += 1
        elif c.agent_id is not None:
            errors.append(f"{c.call_id} waiting but held by {c.agent_id}")
    for a in agents:
        cap = {x.channel: x.capacity for x in a.capacity}
        load = {x.channel: x.capacity for x in a.load}
        for ch in set(cap) | set(load) | {k[1] for k in held if k[0] == a.agent_id}:
            n = held[(a.agent_id, ch)]
            if n != load.get(ch, 0):
                errors.append(f"{a.agent_id} load {load.get(ch, 0)} on {ch.value} but holds {n} calls")
            if n > cap.get(ch, 0):
                errors.append(f"{a.agent_id} holds {n} {ch.value} calls, capacity {cap.get(ch, 0)}")

    for c in calls:
        if c.state is CallState.WAITING:
            idle = [a.agent_id for a in agents if _eligible(a, c)]
            if idle:
                errors.append(f"{c.call_id} waits while eligible agents are idle: {idle[:3]}")

    for qid in core.queue_ids():
        waiting = [core.call_state(x) for x in core.waiting_calls(qid)]
        keys = [(-w.priority, w.virtual_enqueue_time) for w in waiting if w is not None]
        if keys != sorted(keys):
            errors.append(f"queue {qid} not in (priority, virtual enqueue time) order")
        for i, w in enumerate(waiting, start=1):
            if w is None or w.position != i:
                errors.append(f"queue {qid} position {i} wrong")
    return errors
