"""The routing core's mutable records of queues, agents and calls (see `core`). Plain slotted objects, owned and
changed by `RoutingCore` only; `snapshot` turns them into plain data and back."""

from __future__ import annotations

from typing import Any

from callstream_routing.domain.model import CallState, Channel, NotReadyReason, QueueConfig, Strategy
from callstream_routing.domain.pools import Pool, Req

# An agent's status as the core holds it (the views show `AgentStatus`, worked out from it and the holds).
READY = "ready"
NOT_READY = "not_ready"
LOGGED_OUT = "logged_out"


class QueueRecord:
    __slots__ = ("abandons", "cfg", "exposure_s", "handle_s", "last_delay_s", "members", "order", "pools")

    def __init__(self, cfg: QueueConfig) -> None:
        self.cfg = cfg
        self.members: dict[str, None] = {}  # logged-in member agents
        self.order: list[tuple[int, float, int, str]] = []  # waiting calls (home queue), sorted
        self.pools: dict[tuple[Channel, Req], Pool] = {}
        self.handle_s: float | None = None  # estimated mean handle time
        self.last_delay_s: float | None = None  # wait of the last caller to enter service
        self.abandons = 0
        self.exposure_s = 0.0  # total waiting time of callers who left the queue


class AgentRecord:
    __slots__ = (
        "agent_id", "busy_s", "calls", "capacity", "cool_until", "delay_until", "handled", "idle_since", "load",
        "misses", "pools", "queues", "reason", "reservations", "rr", "seq", "since", "skills", "status", "token",
        "version", "wrap_until", "wrap_up_s",
    )

    def __init__(self, agent_id: str, seq: int) -> None:
        self.agent_id = agent_id
        self.seq = seq
        self.status = LOGGED_OUT
        self.reason = NotReadyReason.UNSPECIFIED
        self.version = 0
        self.since = 0.0
        self.queues: dict[str, int] = {}
        self.skills: dict[str, int] = {}
        self.capacity: dict[Channel, int] = {}
        self.load: dict[Channel, int] = {}
        self.reservations: dict[str, str] = {}  # reservation id -> call id
        self.calls: dict[str, None] = {}  # connected call ids
        self.wrap_until: float | None = None
        self.cool_until: float | None = None
        self.delay_until: float | None = None
        self.misses = 0
        self.idle_since = 0.0
        self.busy_s = 0.0
        self.handled = 0
        self.rr: dict[str, int] = {}
        self.wrap_up_s: float | None = None
        self.token = 0
        self.pools: list[Pool] = []

    def hold_end(self) -> float | None:
        """The latest of wrap-up, cool-down and delay ends (None: held by none). Asked several times per command."""
        end = self.wrap_until
        cool, delay = self.cool_until, self.delay_until
        if cool is not None and (end is None or cool > end):
            end = cool
        if delay is not None and (end is None or delay > end):
            end = delay
        return end

    def qualifies(self, queue_id: str, req: Req) -> bool:
        return queue_id in self.queues and all(self.skills.get(s, 0) >= lvl for s, lvl in req)

    def pool_entry(self, p: Pool) -> tuple[Any, ...]:
        """Its heap entry in the pool: the strategy's key, then agent id and token.

        One flat tuple, not (key, id, token): a pop compares entries at every level of the heap, and a nested
        key costs another object to reach (a cache miss in a large center) and another comparison per level.
        Keys are as long as each other within a pool (one strategy) and end with the agent's seq, so the order
        is the nested one's."""
        pen = -1 if p.queue_id.startswith("@") else self.queues.get(p.queue_id, 0)
        s = p.strategy
        if s is Strategy.LEAST_OCCUPIED:
            return (pen, self.busy_s, self.idle_since, self.seq, self.agent_id, self.token)
        if s is Strategy.FEWEST_CALLS:
            return (pen, self.handled, self.idle_since, self.seq, self.agent_id, self.token)
        if s is Strategy.ROUND_ROBIN:
            return (pen, self.rr.get(p.queue_id, -1), self.seq, self.agent_id, self.token)
        if s is Strategy.SKILLS:
            skill = -sum(self.skills.get(sk, 0) for sk, _ in p.req)
            return (pen, skill, self.idle_since, self.seq, self.agent_id, self.token)
        return (pen, self.idle_since, self.seq, self.agent_id, self.token)


class CallRecord:
    __slots__ = (
        "accepted_at",
        "aged",
        "agent_id",
        "call_id",
        "callback",
        "callback_allowed",
        "caller_hash",
        "channel",
        "entered_at",
        "pools",
        "priority",
        "queue_id",
        "relax_stage",
        "required",
        "res_expires",
        "reservation_id",
        "seq",
        "state",
        "sticky_agent",
        "sticky_until",
        "token",
        "venq",
        "visited",
        "wait_mark",
    )

    def __init__(self, call_id: str, seq: int) -> None:
        self.call_id = call_id
        self.seq = seq
        self.queue_id = ""
        self.priority = 0  # as given (offer, UpdatePriority)
        self.aged = 0  # priority gained by waiting in the current queue (PriorityAging)
        self.required: Req = ()
        self.caller_hash = ""
        self.channel = Channel.VOICE
        self.venq = 0.0
        self.entered_at = 0.0
        self.wait_mark = 0.0
        self.callback_allowed = False
        self.callback = False
        self.state = CallState.NEW
        self.agent_id: str | None = None
        self.reservation_id: str | None = None
        self.res_expires = 0.0
        self.accepted_at = 0.0
        self.relax_stage = 0
        self.sticky_agent: str | None = None
        self.sticky_until = 0.0
        self.visited: list[str] = []
        self.token = 0
        self.pools: list[Pool] = []

    @property
    def rank(self) -> int:
        """The priority the queue serves it by."""
        return self.priority + self.aged

    def order_key(self) -> tuple[int, float, int, str]:
        return (-self.rank, self.venq, self.seq, self.call_id)
