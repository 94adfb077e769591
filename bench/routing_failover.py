"""The router's take-over as the switch sees it: a leader and a hot standby (each `python -m callstream_routing`,
production heartbeat and lease), a switch (RouterClient with both addresses) offering and ending calls at a
steady rate, and the leader SIGKILLed mid-load. Per round: kill -> standby SERVING, the longest a command of the
switch waited (the gap the switch sees: the command in flight at the kill, retried until the new leader answered
it), and the retries. The baseline, in the same run and on the same
processes' kind: a clean stop (SIGTERM: the leader resigns, the standby takes over at once).

    uv run --frozen python -m bench.routing_failover        (ROUNDS=3 by default)
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
import uuid
from contextlib import ExitStack
from pathlib import Path

from google.protobuf.message import Message

from bench.common import percentile, print_figures
from bench.kafka_baseline import bootstrap_servers
from callstream.routing.v1 import routing_pb2
from callstream_core.kafka import apply_topics
from callstream_devtools.router_processes import SERVING, new_log_topic, start_router
from callstream_routing.client import RouterClient
from callstream_routing.config import RoutingSettings

TOKEN = "bench-switch-token"
ROUNDS = int(os.environ.get("ROUNDS", "3"))
AGENTS = 20
# Commands per second the switch sends (an offer, later its end): a busy small center, well below the router's
# rate on this machine, so what is measured is the take-over and not a backlog.
RATE = 40.0
# The load runs this long before the kill (the standby is following and the log has a tail to catch up on).
BEFORE_KILL_S = 5.0
DEFAULTS = RoutingSettings(kafka_bootstrap_servers="unused:9092")


class Switch:
    """Offers a call, ends the one before it (its agent frees up), at RATE commands per second."""

    def __init__(self, client: RouterClient, name: str) -> None:
        self.client = client
        self.name = name
        self.answered: list[tuple[float, float]] = []  # (sent, answered), monotonic
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="switch", daemon=True)

    def _timed(self, method: str, request: Message) -> object:
        sent = time.monotonic()
        reply = self.client.call(method, request)
        self.answered.append((sent, time.monotonic()))
        return reply

    def _run(self) -> None:
        for i in range(AGENTS):
            for action in (routing_pb2.AgentStateRequest.ACTION_LOGIN, routing_pb2.AgentStateRequest.ACTION_READY):
                self._timed("SetAgentState", routing_pb2.AgentStateRequest(
                    command_id=f"{self.name}-{i}-{action}", agent_id=f"{self.name}-agent-{i}", action=action,
                    queues=[routing_pb2.QueueMembership(queue_id="sales")]))
        held: list[tuple[str, str]] = []
        n = 0
        next_at = time.monotonic()
        while not self.stop.is_set():
            call = f"{self.name}-call-{n}"
            reply = self._timed("OfferCall", routing_pb2.OfferCallRequest(
                command_id=f"offer-{call}", call_id=call, queue_id="sales"))
            assert isinstance(reply, routing_pb2.RoutingDecision)
            if reply.WhichOneof("outcome") == "assigned":
                held.append((call, reply.assigned.agent_id))
            if len(held) > AGENTS // 2:
                done, agent = held.pop(0)
                self._timed("EndCall", routing_pb2.EndCallRequest(command_id=f"end-{done}", call_id=done,
                                                                   agent_id=agent))
            n += 1
            next_at += 2 / RATE
            self.stop.wait(max(0.0, next_at - time.monotonic()))


def one_round(bootstrap: str, workdir: Path, kill: bool) -> dict[str, float]:
    name = f"r{uuid.uuid4().hex[:6]}"
    log_topic = new_log_topic(bootstrap, "bench-failover-log")
    queues = workdir / "queues.yaml"
    queues.write_text("queues:\n  - queue_id: sales\n    wrap_up_s: 0\n    reservation_timeout_s: 3600\n")
    heartbeat, lease = DEFAULTS.heartbeat_interval_s, DEFAULTS.lease_timeout_s
    leader = start_router(bootstrap, log_topic, queues, TOKEN, workdir, role="leader", instance_id=f"{name}-a",
                          heartbeat_s=heartbeat, lease_s=lease)
    standby = start_router(bootstrap, log_topic, queues, TOKEN, workdir, role="standby", instance_id=f"{name}-b",
                           heartbeat_s=heartbeat, lease_s=lease)
    try:
        leader.wait_for(SERVING)
        standby.wait_for(SERVING, service="")
        client = RouterClient([leader.address, standby.address], TOKEN)
        switch = Switch(client, name)
        switch.thread.start()
        time.sleep(BEFORE_KILL_S)  # the load before the fault (a bench's run length, not a synchronisation)
        if kill:
            gone = leader.kill()
        else:
            gone = time.monotonic()
            leader.stop()
        serving = standby.wait_for(SERVING, timeout=60)
        deadline = time.monotonic() + 30
        while not any(answered > serving for _sent, answered in switch.answered):
            assert time.monotonic() < deadline and switch.thread.is_alive(), "the switch did not go on"
            time.sleep(0.01)  # polling interval of a deadline-bound wait
        switch.stop.set()
        switch.thread.join(30)
        client.close()
        return {"standby SERVING s": serving - gone, "longest command s": max(a - s for s, a in switch.answered),
                "retries": float(client.retries),
                "commands": float(len(switch.answered))}
    finally:
        leader.stop()
        standby.stop()


def main() -> None:
    with ExitStack() as stack:
        bootstrap = bootstrap_servers(stack)
        apply_topics(bootstrap)
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="callstream-failover-")))
        rounds: dict[bool, list[dict[str, float]]] = {True: [], False: []}
        for _ in range(ROUNDS):  # interleaved, so a change in the machine's load touches both alike
            for kill in (False, True):
                figures = one_round(bootstrap, workdir, kill)
                rounds[kill].append(figures)
                print(f"  {'SIGKILL' if kill else 'SIGTERM'}: " + ", ".join(f"{k} {v:.2f}" for k, v in figures.items()))

    def summary(samples: list[dict[str, float]]) -> dict[str, float]:
        out: dict[str, float] = {}
        for key in ("standby SERVING s", "longest command s"):
            values = [s[key] for s in samples]
            out[f"{key} p50"] = percentile(values, 50)
            out[f"{key} max"] = max(values)
        out["retries p50"] = percentile([s["retries"] for s in samples], 50)
        return out

    baseline = summary(rounds[False])
    print_figures(f"Clean stop (SIGTERM, the leader resigns), {ROUNDS} rounds: the baseline", baseline)
    print_figures(f"Leader SIGKILLed mid-load, lease {DEFAULTS.lease_timeout_s:g} s, heartbeat "
                  f"{DEFAULTS.heartbeat_interval_s:g} s, {ROUNDS} rounds", summary(rounds[True]), baseline)


if __name__ == "__main__":
    main()
