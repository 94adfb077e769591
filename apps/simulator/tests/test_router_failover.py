"""issue 17 item 6: a router take-over reaches the switch side.

The simulator drives a leader and a hot standby, each `python -m callstream_routing` in its own process, over
gRPC (RouterClient with both addresses), while it sends its call and agent events to a list. Mid-load the
leader is SIGKILLed. Before the fix the simulator died on the first UNAVAILABLE; now it rides the take-over out:
it finishes the day, every call it offered reaches an end, no call rings two agents at once, and every
assignment on the decisions topic (the router's own record) is one the simulator heard of, each reservation once.
The take-over is measured and printed (kill -> standby SERVING, and the longest a command of the simulator
waited) and held to the bound docs/routing.md states: LEASE_TIMEOUT_S + 4 s with the production defaults.

A second router started on a port already taken fails at start-up with one clear line (it used to bind too,
through SO_REUSEPORT, and answer half the connections UNAVAILABLE).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
import yaml
from confluent_kafka import Consumer, TopicPartition

from callstream.routing.v1 import routing_pb2
from callstream_core import wire
from callstream_core.topics import ROUTING_DECISIONS
from callstream_devtools.router_processes import SERVING, new_log_topic, start_router
from callstream_routing import domain as d
from callstream_routing.client import RetryPolicy, RouterClient
from callstream_routing.grpc_router import GrpcRouter
from callstream_simulator import Engine, ListSink, parse_scenario, queue_configs
from callstream_simulator.clock import Pacer, run

from .test_simulator import check_call, kinds_by_call, small

pytestmark = pytest.mark.integration
TOKEN = "failover-test-token"
# The production defaults (RoutingSettings): the bound asserted is the one docs/routing.md gives for them.
HEARTBEAT_S = 1.0
LEASE_S = 5.0
# docs/routing.md, "Standby and take-over": a SIGKILLed leader is replaced within LEASE_TIMEOUT_S + 4 s.
TAKEOVER_BOUND_S = LEASE_S + 4.0
# Virtual seconds per wall second: ~50 s of wall time for the day, a take-over in the middle of it.
SPEED = 40.0


@pytest.fixture
def log_topic(kafka_bootstrap: str) -> str:
    return new_log_topic(kafka_bootstrap, "test-failover-log")


class TimedRouter(GrpcRouter):
    """The simulator's router port, timing every command it sends (a Tick is not sent)."""

    def __init__(self, client: RouterClient) -> None:
        super().__init__(client)
        self.commands: list[tuple[float, float]] = []  # (sent, answered), monotonic

    def handle(self, cmd: d.Command) -> d.Result:
        began = time.monotonic()
        result = super().handle(cmd)
        if not isinstance(cmd, d.Tick):
            self.commands.append((began, time.monotonic()))
        return result


def _assignments_on_topic(bootstrap: str, prefix: str) -> dict[str, routing_pb2.RoutingDecision]:
    """Every Assigned decision of this run's calls on the decisions topic, by event id, read to its end."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"failover-check-{uuid.uuid4().hex[:8]}",
                         "enable.auto.commit": False})
    try:
        partitions = consumer.list_topics(ROUTING_DECISIONS, timeout=30).topics[ROUTING_DECISIONS].partitions
        ends: dict[int, int] = {}
        for p in partitions:
            _low, high = consumer.get_watermark_offsets(TopicPartition(ROUTING_DECISIONS, p), timeout=30) or (0, 0)
            ends[p] = high
        consumer.assign([TopicPartition(ROUTING_DECISIONS, p, 0) for p in partitions])
        found: dict[str, routing_pb2.RoutingDecision] = {}
        deadline = time.monotonic() + 60
        positions = dict.fromkeys(partitions, 0)
        while any(positions[p] < ends[p] for p in partitions):
            assert time.monotonic() < deadline, "the decisions topic was not read to its end within 60 s"
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            partition, offset, key = msg.partition(), msg.offset(), msg.key()
            assert partition is not None and offset is not None
            positions[partition] = offset + 1
            if not (key.decode() if isinstance(key, bytes) else key or "").startswith(prefix):
                continue
            decision = wire.decode(msg.value(), routing_pb2.RoutingDecision,
                                   wire.header_value(msg.headers(), "content-type"))
            if decision.WhichOneof("outcome") == "assigned":
                earlier = found.setdefault(decision.envelope.event_id, decision)
                assert earlier == decision, f"two different decisions with one event id: {earlier} / {decision}"
        return found
    finally:
        consumer.close()


def test_the_simulator_rides_out_a_leader_killed_mid_load(kafka_bootstrap: str, log_topic: str,
                                                          tmp_path: Path) -> None:
    name = f"failover-{uuid.uuid4().hex[:6]}"
    # 10 agents, ~400 calls an hour for 0.4 h: busy, some queueing, a few abandons; no hard calls (the remote
    # router's cool-down runs on its wall clock, docs/simulator.md).
    sc = parse_scenario(small(
        name=name, queues=[{"queue_id": "q1"}],
        call_types=[{"call_type": "A", "queue_id": "q1", "arrivals": {"rate_per_hour": 400, "hours": 0.4},
                     "talk": {"dist": "exponential", "mean": 80}, "acw": {"dist": "constant", "value": 5},
                     "patience": {"dist": "exponential", "mean": 120}}],
        agents=[{"id_prefix": f"{name}-a", "count": 10, "queues": [{"queue_id": "q1"}], "shift_end_h": 0.5}]))
    queues = tmp_path / "queues.yaml"
    queues.write_text(yaml.safe_dump({"queues": [{"queue_id": c.queue_id, "wrap_up_s": c.wrap_up_s}
                                                 for c in queue_configs(sc)]}))
    leader = start_router(kafka_bootstrap, log_topic, queues, TOKEN, tmp_path, role="leader", instance_id="router-a",
                          heartbeat_s=HEARTBEAT_S, lease_s=LEASE_S)
    standby = start_router(kafka_bootstrap, log_topic, queues, TOKEN, tmp_path, role="standby",
                           instance_id="router-b", heartbeat_s=HEARTBEAT_S, lease_s=LEASE_S)
    found: dict[str, Any] = {}
    try:
        leader.wait_for(SERVING)
        standby.wait_for(SERVING, service="")  # up and following (the Router service is NOT_SERVING)
        router = TimedRouter(RouterClient([leader.address, standby.address], TOKEN))
        sink = ListSink()
        engine = Engine(sc, router, sink)
        expected_calls = 400 * 0.4

        def kill_mid_load() -> None:
            while engine.summary.received < expected_calls * 0.4 and not engine.done:
                time.sleep(0.01)  # polling interval (bounded: the day ends)
            found["killed_virtual_s"] = engine.now
            found["killed"] = leader.kill()
            found["serving"] = standby.wait_for(SERVING, timeout=60)

        killer = threading.Thread(target=kill_mid_load, name="killer")
        killer.start()
        try:
            summary = run(engine, Pacer(SPEED))
        finally:
            router.close()
            killer.join(90)
        # The gap the switch sees: the command in flight at the kill, retried until the new leader answered it.
        found["longest_command_s"] = max(answered - sent for sent, answered in router.commands)
        found["retries"] = router.client.retries
        found["served_by_standby"] = router.client.leader == standby.address
    finally:
        leader.stop()
        standby.stop()

    takeover = found["serving"] - found["killed"]
    print(f"\nleader SIGKILLed mid-load (lease {LEASE_S:g} s, heartbeat {HEARTBEAT_S:g} s): standby SERVING after "
          f"{takeover:.2f} s; the simulator's longest command {found['longest_command_s']:.2f} s; "
          f"{found['retries']} retries; bound {TAKEOVER_BOUND_S:g} s")
    assert found["served_by_standby"], "the simulator must end on the new leader"
    assert found["retries"] > 0, "the kill must have been felt by the switch (retries), else nothing was tested"
    assert takeover <= TAKEOVER_BOUND_S
    assert found["longest_command_s"] <= TAKEOVER_BOUND_S + RetryPolicy().backoff_max_s

    # The simulator's record: every call it offered reached an end, in a switch's order (check_call).
    calls = kinds_by_call(sink)
    fates: dict[str, int] = defaultdict(int)
    for events in calls.values():
        fates[check_call(events)] += 1
    assert summary.received == len(calls) and summary.received > expected_calls * 0.6
    assert summary.answered > 0 and fates["answered"] + fates["transferred"] == summary.answered
    # No call rings two agents at once: a ring is followed by its answer or its ring-no-answer before the next.
    rings: dict[str, list[tuple[str, str]]] = {}
    ring_at: dict[tuple[str, str], float] = {}  # virtual seconds from the start
    for call_id, events in calls.items():
        open_ring = None
        for event in events:
            virtual_s = event.envelope.occurred_at.ToMilliseconds() / 1000 - engine.start.timestamp()
            kind = event.WhichOneof("kind")
            if kind == "ringing":
                assert open_ring is None, f"{call_id} rings {event.ringing.agent_id} while ringing {open_ring}"
                open_ring = event.ringing.agent_id
                rings.setdefault(call_id, []).append((call_id, open_ring))
                ring_at[(call_id, open_ring)] = virtual_s
            elif kind in ("answered", "ring_no_answer", "abandoned"):
                open_ring = None

    # The router's record: every assignment on the decisions topic was heard by the simulator (none made
    # behind the switch's back in the take-over), and each reservation was decided once.
    on_topic = _assignments_on_topic(kafka_bootstrap, name)
    reservations: dict[str, set[str]] = defaultdict(set)
    for decision in on_topic.values():
        reservations[decision.assigned.reservation_id].add(decision.envelope.event_id)
    assert all(len(ids) == 1 for ids in reservations.values()), "a reservation was decided twice"
    heard = {pair for pairs in rings.values() for pair in pairs}
    decided = {(x.call_id, x.assigned.agent_id) for x in on_topic.values()}
    assert decided <= heard, f"assignments the simulator never heard of: {sorted(decided - heard)[:5]}"
    print(f"{summary.received} calls ({summary.answered} answered, {summary.abandoned} abandoned), "
          f"{len(on_topic)} assignments on the decisions topic, {len(heard - decided)} heard but not on it "
          f"(rung at {sorted(round(ring_at[p] - found['killed_virtual_s'], 1) for p in heard - decided)} virtual s "
          f"from the kill; {SPEED:g} virtual s a wall second)")
