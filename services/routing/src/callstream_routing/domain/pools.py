"""The routing core's matching pools: what a pool is and how its heaps are kept is in `core`'s docstring
("Indexes"); the agents' entries are `AgentRecord.pool_entry`."""

from __future__ import annotations

from typing import Any

from callstream_routing.domain.model import Channel, Strategy

# A skill requirement: (skill id, minimum proficiency) pairs, sorted.
Req = tuple[tuple[str, int], ...]


class Pool:
    __slots__ = ("agent_floor", "agents", "call_floor", "calls", "channel", "n_calls", "queue_id", "req", "strategy")

    def __init__(self, queue_id: str, channel: Channel, req: Req, strategy: Strategy) -> None:
        self.queue_id = queue_id  # "@<agent>" for a sticky pool
        self.channel = channel
        self.req = req
        self.strategy = strategy
        self.agents: list[tuple[Any, ...]] = []  # (*strategy key, agent id, token): AgentRecord.pool_entry
        self.calls: list[tuple[int, float, int, str, int]] = []
        self.n_calls = 0  # live waiting calls
        self.agent_floor = 0
        self.call_floor = 0
