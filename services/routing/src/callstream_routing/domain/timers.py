"""The routing core's timers: one heap of (due time, kind, seq, id) with lazy deletion. A timer is valid while
the state that set it still says it is due then (`RoutingCore._timer_valid`); the rest are dropped when they
surface or at a compaction. Every deadline the core keeps (listed in `core`'s docstring) is one of these."""

from __future__ import annotations

import heapq
from collections.abc import Callable

from callstream_routing.domain.model import QueueConfig
from callstream_routing.domain.records import CallRecord

TIMER_RES, TIMER_AGENT, TIMER_CALL = 0, 1, 2
# (due time, kind, seq of the agent or call that set it, its id)
Timer = tuple[float, int, int, str]


class Timers:
    __slots__ = ("floor", "heap", "pushes")

    def __init__(self) -> None:
        self.heap: list[Timer] = []
        self.floor = 0  # live timers at the last compaction (compact) ...
        self.pushes = 0  # ... and timers pushed since

    def push(self, t: float, kind: int, seq: int, ident: str) -> None:
        heapq.heappush(self.heap, (t, kind, seq, ident))
        self.pushes += 1

    def compaction_due(self) -> bool:
        return self.pushes > self.floor + 64

    def compact(self, valid: Callable[[Timer], bool]) -> None:
        """Drop the timers that can no longer fire.

        Lazy deletion leaves one behind per accepted reservation (until its timeout) and per call served before
        its max wait (for up to that wait, 15 minutes say): in a large center they are most of the heap, which
        every timer that fires and every `next_deadline()` pays for in depth. Called between commands, when
        every live timer's state is settled; an invalid timer never becomes valid again (a state change that
        moves a deadline pushes a new timer), so this changes no firing. Triggered by pushes, not by the heap's
        length: timers also leave by firing, and a heap that was large once (a burst of calls waiting) would
        otherwise keep a threshold that the live ones, fewer later, never reach again. The heap holds at most
        the live timers of the last compaction plus the pushes since, so a compaction is O(1) per push."""
        h = self.heap
        h[:] = [e for e in h if valid(e)]
        heapq.heapify(h)
        self.floor = len(h)
        self.pushes = 0

    def next_due(self, valid: Callable[[Timer], bool]) -> float | None:
        """The due time of the earliest valid timer (invalid ones before it are dropped), or None."""
        h = self.heap
        while h and not valid(h[0]):
            heapq.heappop(h)
        return h[0][0] if h else None


def call_next_time(c: CallRecord, cfg: QueueConfig) -> float | None:
    """The next deadline of a waiting call in its queue (configured as `cfg`): sticky agent, relaxation, max wait
    or aging, whichever comes first; None when it has none."""
    best: float | None = None
    if c.sticky_agent is not None:
        best = c.sticky_until
    if c.relax_stage < len(cfg.relaxation):
        t = c.entered_at + cfg.relaxation[c.relax_stage].after_s
        best = t if best is None else min(best, t)
    if cfg.max_wait_s is not None and cfg.overflow is not None and not c.callback:
        t = c.entered_at + cfg.max_wait_s
        best = t if best is None else min(best, t)
    if cfg.aging is not None and c.aged < cfg.aging.max_boost:
        t = c.entered_at + (c.aged + 1) * cfg.aging.every_s
        best = t if best is None else min(best, t)
    return best
