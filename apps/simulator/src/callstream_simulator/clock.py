"""Pacing virtual time against wall time: real time (1×), N×, or as fast as possible (max).

The engine never sleeps; `run` sleeps only to keep virtual time from running ahead of wall time × speed.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from callstream_simulator.engine import Engine, Summary


class Pacer:
    """speed None = as fast as possible; otherwise virtual seconds per wall second."""

    def __init__(self, speed: float | None, *, monotonic: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if speed is not None and speed <= 0:
            raise ValueError("speed must be > 0 (or None for as fast as possible)")
        self.speed = speed
        self._monotonic = monotonic
        self._sleep = sleep
        self._t0 = monotonic()

    def virtual_now(self) -> float:
        """Virtual seconds that wall time allows so far (inf when unpaced)."""
        if self.speed is None:
            return math.inf
        return (self._monotonic() - self._t0) * self.speed

    def sleep_until(self, virtual_t: float, max_slice: float) -> bool:
        """Sleep until wall time reaches virtual_t, at most max_slice wall seconds; True when it got there."""
        if self.speed is None:
            return True
        wait = virtual_t / self.speed - (self._monotonic() - self._t0)
        if wait > 0:
            self._sleep(min(wait, max_slice))
        return wait <= max_slice


def parse_speed(text: str) -> float | None:
    """`max` → None; `1`, `10`, `60x` → a float."""
    t = text.strip().lower()
    if t in ("max", "inf", "fast"):
        return None
    t = t.removesuffix("x")
    value = float(t)
    if value <= 0:
        raise ValueError("speed must be > 0 or 'max'")
    return value


def run(engine: Engine, pacer: Pacer, *, progress: Callable[[Engine], None] | None = None,
        progress_every_s: float = 5.0, poll_s: float = 0.2, monotonic: Callable[[], float] = time.monotonic) -> Summary:
    """Drive the engine to the end of the scenario at the pacer's speed; `progress` every few wall seconds.
    With a remote router, the loop wakes at least every `poll_s` wall seconds to take streamed decisions."""
    last_report = monotonic()
    while True:
        nxt = engine.next_time()
        if nxt is None:
            break
        if pacer.speed is None:
            # in slices, so progress can be reported on long runs
            engine.run_until(nxt + 1800.0)
        else:
            allowed = pacer.virtual_now()
            if allowed < nxt:
                reached = pacer.sleep_until(nxt, poll_s)
                engine.run_until(nxt if reached else min(pacer.virtual_now(), nxt))
            else:
                engine.run_until(allowed)
        now = monotonic()
        if progress is not None and now - last_report >= progress_every_s:
            last_report = now
            progress(engine)
    return engine.finish()
