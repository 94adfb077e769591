"""An agent's status set at the switch reaches Callstream's router: the test center's Asterisk, the routing
service and the ARI bridge as real processes (`RoutedCenter`).

The agent's phone dials the center's feature code (`callstream asterisk agent`: `<agent>@agent-pause` sets the custom
device state `Custom:agent-<agent>` to BUSY, `@agent-ready` to NOT_INUSE); the bridge, subscribed to the agents'
device states, tells the router. While support's b1 is paused, support calls reach support's other agents (or
sales's, relaxed) and never b1; once b1 is ready again and the other support agents are paused, b1 talks again.
Who talked to whom is read from Asterisk's own CDRs (`asterisk_records.read_routed_calls`); the router's view
from its GetAgentState; the bridge's agent events (`not_ready`, `ready`) from the test's topics.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid
from pathlib import Path

import grpc
import pytest
from asterisk_records import read_routed_calls
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from google.protobuf import json_format
from scenarios import isolated_topics

from callstream.agent.v1 import agent_events_pb2
from callstream.routing.v1 import routing_pb2, routing_pb2_grpc
from callstream_core.kafka import apply_topics
from callstream_devtools.local_asterisk import LocalAsterisk
from callstream_devtools.routed_center import RoutedCenter
from callstream_ingest.domain.call_plan import LoadShape, plan_calls
from callstream_ingest.service_layer.call_generator import CallGenerator

pytestmark = pytest.mark.integration
SUPPORT_ONLY = LoadShape(calls=10, calls_per_s=1.0, queues=(("support", 1.0),), transfer_share=0.0,
                         max_wait_share=0.0)
OTHER_SUPPORT_AGENTS = ("b2", "b3", "b5")


def _set_status(pbx: LocalAsterisk, changes: list[tuple[str, str]]) -> None:
    """As an operator would: `callstream asterisk agent <status> <agent>` (the agent's phone dialling the code)."""
    for agent, status in changes:
        done = subprocess.run([sys.executable, "-m", "callstream_cli.main", "asterisk", "agent", status, agent,
                               "--ami-port", str(pbx.ami_port), "--secret", pbx.secret],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr


def _wait_router_states(center: RoutedCenter, want: dict[str, str], timeout_s: float = 60) -> None:
    """Until the router holds each agent in the wanted state (idle agents: ready, paused ones: not_ready)."""
    got: dict[str, str] = {}
    with grpc.insecure_channel(f"127.0.0.1:{center.grpc_port}") as channel:
        stub = routing_pb2_grpc.RouterStub(channel)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            got = {a: stub.GetAgentState(routing_pb2.GetAgentStateRequest(agent_id=a), timeout=5, metadata=(
                ("authorization", f"Bearer {center.token}"),)).state for a in want}
            if got == want:
                return
            time.sleep(0.2)  # polling the router's state with a deadline
    raise AssertionError(f"router states {got}, expected {want}: {center.bridge_log.read_text()[-3000:]}")


def _calls(pbx: LocalAsterisk, seed: int) -> None:
    # A seed per batch: the call tokens (the dialplan's GLOBAL(ANS_<token>)) must not repeat.
    report = asyncio.run(CallGenerator("127.0.0.1", pbx.ami_port, pbx.ami_user, pbx.secret, context="routed")
                         .run(plan_calls(seed, SUPPORT_ONLY), drain_timeout_s=120))
    assert report.originated == SUPPORT_ONLY.calls and not report.refused


def _talked_to(pbx: LocalAsterisk) -> dict[str, str]:
    """Each routed caller's uniqueid -> the agent extension Asterisk bridged it with ('' if none)."""
    record = read_routed_calls(pbx.cdr_csv, routed_context="routed", agents_context="agents")
    return {c.uniqueid: c.bridged_with for c in record.calls}


def _agent_event_kinds(bootstrap: str, topic: str, agent: str, want: list[str]) -> list[str]:
    """The kinds of `agent`'s events on `topic` in order, read until they include `want` or a deadline."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"t-{uuid.uuid4()}",
                         "enable.auto.commit": False})
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    kinds: list[str] = []
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline and not set(want) <= set(kinds):
            for msg in consumer.consume(500, 0.5):
                value = msg.value()
                if msg.error() or value is None:
                    continue
                event = json_format.Parse(value, agent_events_pb2.AgentEvent(), ignore_unknown_fields=True)
                if event.agent_id == agent:
                    kinds.append(event.WhichOneof("kind") or "")
    finally:
        consumer.close()
    return kinds


@pytest.mark.timeout(600)
def test_an_agent_paused_at_the_switch_gets_no_calls_until_ready_again(kafka_bootstrap: str, tmp_path: Path) -> None:
    apply_topics(kafka_bootstrap)
    prefix = isolated_topics(kafka_bootstrap)
    with LocalAsterisk(tmp_path / "asterisk") as pbx, \
            RoutedCenter(pbx, kafka_bootstrap, tmp_path, topic_prefix=prefix) as center:
        _set_status(pbx, [("b1", "pause")])
        _wait_router_states(center, {"b1": "not_ready"})
        _calls(pbx, seed=1)
        paused_phase = _talked_to(pbx)

        _set_status(pbx, [("b1", "ready"), *((a, "pause") for a in OTHER_SUPPORT_AGENTS)])
        _wait_router_states(center, {"b1": "ready", **dict.fromkeys(OTHER_SUPPORT_AGENTS, "not_ready")})
        _calls(pbx, seed=2)
        ready_phase = {c: agent for c, agent in _talked_to(pbx).items() if c not in paused_phase}

    assert len(paused_phase) == len(ready_phase) == SUPPORT_ONLY.calls, (paused_phase, ready_phase)
    assert "b1" not in paused_phase.values(), paused_phase
    assert {"b2", "b3", "b5"} & set(paused_phase.values()), f"support's other agents took no call: {paused_phase}"
    assert "b1" in ready_phase.values(), f"b1, ready again, took no call: {ready_phase}"
    assert not set(OTHER_SUPPORT_AGENTS) & set(ready_phase.values()), f"a paused agent talked: {ready_phase}"
    kinds = _agent_event_kinds(kafka_bootstrap, prefix + "cc.agent-events.v1", "b1", ["not_ready", "ready", "talking"])
    # Logged in and ready at the bridge's start, paused and ready again at the switch, then on calls.
    assert kinds[:4] == ["logged_in", "ready", "not_ready", "ready"], kinds
    assert "talking" in kinds[4:], kinds
