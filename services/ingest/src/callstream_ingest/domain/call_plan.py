"""The test center's calls, planned (pure): each from a seeded random generator (`plan_calls`): Poisson arrivals, a
queue, the caller's patience, ring and talk times, whether the caller or the agent ends the call, a blind transfer,
a maximum wait; and the AMI `Originate` that places one (`originate_headers`, the plan in inherited channel
variables the dialplan reads). `service_layer.call_generator` places them.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PlannedCall:
    token: str
    at_s: float  # seconds after the start of the run
    queue: str
    caller_number: str
    patience_s: float
    ring_s: float
    agent_talk_s: float
    caller_talk_s: float
    transfer: bool
    max_wait_s: int  # 0: no limit

    def variables(self) -> dict[str, str]:
        # "__": inherited by the ;2 half of the Local channel and by the members' channels app_queue dials.
        return {"__CALLTOKEN": self.token, "PATIENCE": f"{self.patience_s:.2f}",
                "CALLER_TALK": f"{self.caller_talk_s:.2f}", "__RING": f"{self.ring_s:.2f}",
                "__TALK": f"{self.agent_talk_s:.2f}", "__XFER": "1" if self.transfer else "0",
                "__MAXWAIT": str(self.max_wait_s) if self.max_wait_s else ""}


def originate_headers(call: PlannedCall, context: str) -> dict[str, str]:
    """AMI `Originate` of a planned call into `context` (with `call.variables()`): the ;2 half of the Local
    channel runs the center's dialplan, the ;1 half the caller's."""
    return {"Channel": f"Local/{call.queue}@{context}/n", "Context": "caller", "Exten": "s", "Priority": "1",
            "CallerID": f'"Caller" <{call.caller_number}>', "Async": "true", "Timeout": "30000"}


@dataclass(frozen=True, slots=True)
class LoadShape:
    calls: int = 300
    calls_per_s: float = 3.0
    queues: tuple[tuple[str, float], ...] = (("sales", 0.55), ("support", 0.45))
    patience_s: tuple[float, float] = (0.5, 12.0)
    ring_s: tuple[float, float] = (0.2, 1.0)
    agent_talk_s: tuple[float, float] = (1.0, 4.0)
    caller_talk_s: tuple[float, float] = (1.5, 6.0)
    transfer_share: float = 0.03
    max_wait_share: float = 0.08
    max_wait_s: int = 4
    callers: int = 150  # distinct caller numbers: some call again


def plan_calls(seed: int, shape: LoadShape = LoadShape()) -> list[PlannedCall]:
    rng = random.Random(seed)
    names = [q for q, _ in shape.queues]
    weights = [w for _, w in shape.queues]
    at = 0.0
    calls: list[PlannedCall] = []
    for n in range(shape.calls):
        at += rng.expovariate(shape.calls_per_s)
        calls.append(PlannedCall(
            token=f"g{seed}x{n:05d}", at_s=at, queue=rng.choices(names, weights)[0],
            caller_number=f"+4072{rng.randrange(shape.callers):07d}",
            patience_s=rng.uniform(*shape.patience_s), ring_s=rng.uniform(*shape.ring_s),
            agent_talk_s=rng.uniform(*shape.agent_talk_s), caller_talk_s=rng.uniform(*shape.caller_talk_s),
            transfer=rng.random() < shape.transfer_share,
            max_wait_s=shape.max_wait_s if rng.random() < shape.max_wait_share else 0))
    return calls
