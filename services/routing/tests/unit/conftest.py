"""A small driver around the routing core: numbered command ids, a virtual clock, invariants after each command."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from callstream_routing.domain import (
    AcceptReservation,
    AgentAction,
    AgentStatus,
    Assigned,
    ChannelCapacity,
    Command,
    ConfigureQueue,
    EndCall,
    OfferCall,
    QueueConfig,
    QueueMembership,
    RequiredSkill,
    Result,
    RouterConfig,
    RoutingCore,
    SetAgentState,
    Skill,
    Tick,
)
from callstream_routing.domain.invariants import check_invariants


class Center:
    def __init__(self, config: RouterConfig | None = None) -> None:
        self.core = RoutingCore(config)
        self.t = 0.0
        self.n = 0
        self.log: list[Command] = []
        self.results: list[Result] = []

    def do(self, cls: type[Command], **kw: Any) -> Result:
        self.n += 1
        kw.setdefault("command_id", f"c{self.n}")
        kw.setdefault("now", self.t)
        cmd = cls(**kw)
        self.log.append(cmd)
        result = self.core.handle(cmd)
        self.results.append(result)
        errors = check_invariants(self.core)
        assert not errors, errors
        return result

    def queue(self, queue_id: str, **kw: Any) -> Result:
        return self.do(ConfigureQueue, config=QueueConfig(queue_id=queue_id, **kw))

    def login(self, agent_id: str, queues: dict[str, int] | list[str], skills: dict[str, int] | None = None,
              capacity: dict[Any, int] | None = None, **kw: Any) -> Result:
        qs = queues if isinstance(queues, dict) else dict.fromkeys(queues, 0)
        return self.do(
            SetAgentState, agent_id=agent_id, action=AgentAction.LOGIN,
            queues=tuple(QueueMembership(queue_id=q, priority=p) for q, p in qs.items()),
            skills=tuple(Skill(skill_id=s, proficiency=p) for s, p in (skills or {}).items()),
            capacity=tuple(ChannelCapacity(channel=c, capacity=n) for c, n in (capacity or {}).items()), **kw)

    def agent(self, agent_id: str, action: AgentAction, **kw: Any) -> Result:
        return self.do(SetAgentState, agent_id=agent_id, action=action, **kw)

    def offer(self, call_id: str, queue_id: str, skills: dict[str, int] | None = None, **kw: Any) -> Result:
        req = tuple(RequiredSkill(skill_id=s, min_proficiency=m) for s, m in (skills or {}).items())
        return self.do(OfferCall, call_id=call_id, queue_id=queue_id, required_skills=req, **kw)

    def reservation(self, call_id: str) -> str:
        view = self.core.call_state(call_id)
        assert view is not None and view.reservation_id is not None, view
        return view.reservation_id

    def accept(self, call_id: str) -> Result:
        return self.do(AcceptReservation, reservation_id=self.reservation(call_id))

    def end(self, call_id: str, hard: bool = False) -> Result:
        return self.do(EndCall, call_id=call_id, hard_call=hard)

    def talk(self, call_id: str, hard: bool = False) -> Result:
        self.accept(call_id)
        return self.end(call_id, hard)

    def tick(self, t: float) -> Result:
        self.t = t
        return self.do(Tick)

    def agent_of(self, call_id: str) -> str | None:
        view = self.core.call_state(call_id)
        return view.agent_id if view else None

    def state(self, agent_id: str) -> AgentStatus:
        view = self.core.agent_state(agent_id)
        assert view is not None
        return view.state


def assignments(result: Result) -> dict[str, str]:
    return {d.call_id: d.outcome.agent_id for d in result.decisions if isinstance(d.outcome, Assigned)}


@pytest.fixture
def center() -> Callable[..., Center]:
    return Center


@pytest.fixture
def assigned() -> Callable[[Result], dict[str, str]]:
    return assignments
