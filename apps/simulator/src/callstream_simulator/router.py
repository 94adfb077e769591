"""The Router port of the simulator and its in-process adapter around the deterministic routing core."""

from __future__ import annotations

from typing import Protocol

from callstream_routing import domain as d
from callstream_simulator.scenario import Scenario


class Router(Protocol):
    """What the virtual PBX asks of an ACD. Times are the simulator's virtual seconds from the scenario start
    (the gRPC adapter ignores them: the remote router runs on its own wall clock)."""

    def handle(self, cmd: d.Command) -> d.Result: ...

    def next_deadline(self) -> float | None:
        """When a Tick changes something (in-process), or None (a remote router fires its own timers)."""
        ...

    def drain(self) -> list[d.Decision]:
        """Decisions that arrived on their own (assignments streamed by a remote router); [] in-process."""
        ...

    def close(self) -> None: ...


def queue_configs(scenario: Scenario) -> list[d.QueueConfig]:
    """The router's queues for a scenario. Wrap-up is the ACW cap: the simulator ends wrap-up itself."""
    out = []
    for q in scenario.queues:
        overflow = (d.OverflowTarget(destination=d.OverflowDestination.QUEUE, queue_id=q.overflow_to_queue)
                    if q.overflow_to_queue else None)
        out.append(d.QueueConfig(
            queue_id=q.queue_id, strategy=d.Strategy(q.strategy), max_length=q.max_length,
            max_wait_s=q.max_wait_s, overflow=overflow, wrap_up_s=scenario.router.acw_cap_s,
            reservation_timeout_s=scenario.router.reservation_timeout_s,
            callback_threshold_s=q.callback_threshold_s))
    return out


class InProcessRouter:
    """The routing core in this process, on the simulator's virtual clock: the fast path (any speed)."""

    def __init__(self, scenario: Scenario) -> None:
        self.core = d.RoutingCore(d.RouterConfig(cool_down_s=scenario.router.cool_down_s))
        for cfg in queue_configs(scenario):
            self.core.handle(d.ConfigureQueue(config=cfg, now=0.0))

    def handle(self, cmd: d.Command) -> d.Result:
        return self.core.handle(cmd)

    def next_deadline(self) -> float | None:
        return self.core.next_deadline()

    def drain(self) -> list[d.Decision]:
        return []

    def close(self) -> None:
        return None
