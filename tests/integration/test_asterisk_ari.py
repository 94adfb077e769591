"""Asterisk's calls routed by Callstream: a real Asterisk hands 300 generated calls to the ARI bridge (a real
process), which offers them to the real routing service (a real process, over gRPC with a service token) and
rings the agent the router assigns.

What happened is read from Asterisk's own CDRs (Master.csv, by `asterisk_records.read_cdrs`: no Callstream
code) and held against the router's decisions on `cc.routing-decisions.v1`: every call is either bridged with
the agent the router assigned it last, or abandoned; a call of each queue only ever reaches that queue's agents;
the agent who never answers is assigned calls, rings unanswered (Asterisk records NO ANSWER) and never talks.
The bridge's events on the test's topics count the same calls as the CDRs.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import grpc
import httpx
import pytest
from asterisk_records import read_routed_calls
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from confluent_kafka.admin import NewTopic
from google.protobuf import json_format
from grpc_health.v1 import health_pb2, health_pb2_grpc
from scenarios import isolated_topics

from callstream.call.v1 import call_events_pb2
from callstream.routing.v1 import routing_pb2, routing_pb2_grpc
from callstream_core.kafka import admin, apply_topics
from callstream_core.local_asterisk import LocalAsterisk
from callstream_core.local_kafka import free_port
from callstream_ingest.asterisk_calls import CallGenerator, LoadShape, plan_calls

pytestmark = pytest.mark.integration
CALLS = 300
SEED = 20261204
TOKEN = "ari-bridge-test-token"
DECISIONS = "cc.routing-decisions.v1"
# Agent id -> (endpoint Asterisk dials, queues). a9 rings forever (the center's `rna` extension): every
# reservation it gets runs out, a ring-no-answer.
AGENTS = {
    **{f"a{n}": (f"Local/a{n}@agents/n", ["sales"]) for n in (1, 2, 3, 4)},
    "a9": ("Local/rna@agents/n", ["sales"]),
    **{f"b{n}": (f"Local/b{n}@agents/n", ["support"]) for n in (1, 2, 3, 5)},
}
# The router's queues: the ring timeout (reservation) of each queue, as the center's queues.conf has it for
# app_queue; a second of wrap-up.
QUEUES = """queues:
  - queue_id: sales
    reservation_timeout_s: 2
    wrap_up_s: 1
  - queue_id: support
    reservation_timeout_s: 3
    wrap_up_s: 1
"""


def _agents_file(path: Path) -> Path:
    lines = ["agents:"]
    for agent_id, (endpoint, queues) in AGENTS.items():
        lines += [f"  - agent_id: {agent_id}", f"    endpoint: {endpoint}", f"    queues: [{', '.join(queues)}]"]
    path.write_text("\n".join(lines) + "\n")
    return path


def _start(module: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", module], env=env, stdout=out, stderr=subprocess.STDOUT)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def _wait_router_serving(port: int, process: subprocess.Popen[bytes], log: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            assert process.poll() is None, f"the router exited: {log.read_text()[-3000:]}"
            try:
                reply = health.Check(health_pb2.HealthCheckRequest(service="callstream.routing.v1.Router"),
                                     timeout=2)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.2)  # polling a starting process's port with a deadline
    raise TimeoutError(f"router not serving after {timeout_s} s: {log.read_text()[-3000:]}")


def _wait_agents_logged_in(port: int, want: dict[str, int], timeout_s: float) -> None:
    """Until the router counts the bridge's agents logged in per queue (the bridge logs them in at start)."""
    deadline = time.monotonic() + timeout_s
    got: dict[str, int] = {}
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = routing_pb2_grpc.RouterStub(channel)
        while time.monotonic() < deadline:
            got = {q: stub.GetQueueState(routing_pb2.GetQueueStateRequest(queue_id=q), timeout=5,
                                         metadata=(("authorization", f"Bearer {TOKEN}"),)).agents_logged_in
                   for q in want}
            if got == want:
                return
            time.sleep(0.2)  # polling the router's state with a deadline
    raise TimeoutError(f"agents logged in {got}, expected {want}")


def _read(bootstrap: str, topic: str, done: Callable[[list[bytes]], bool], timeout_s: float) -> list[bytes]:
    """Every value of `topic` from its beginning, until `done(values)` or the deadline. (The decisions topic is
    shared by the session's tests: the caller filters by its own call ids, Asterisk's uniqueids.)"""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"t-{uuid.uuid4()}",
                         "enable.auto.commit": False})
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    values: list[bytes] = []
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline and not done(values):
            for msg in consumer.consume(500, 0.5):
                value = msg.value()
                if not msg.error() and value is not None:
                    values.append(value)
    finally:
        consumer.close()
    return values


def _decisions(values: list[bytes], call_ids: set[str]) -> dict[str, list[routing_pb2.RoutingDecision]]:
    """The router's decisions of these calls, in the order it made them (one partition per call)."""
    by_call: dict[str, list[routing_pb2.RoutingDecision]] = {}
    for value in values:
        decision = routing_pb2.RoutingDecision()
        try:
            decision.ParseFromString(value)
        except Exception:  # the JSON wire format
            decision = json_format.Parse(value, routing_pb2.RoutingDecision(), ignore_unknown_fields=True)
        if decision.call_id in call_ids:
            by_call.setdefault(decision.call_id, []).append(decision)
    return by_call


def _call_event_kinds(values: list[bytes]) -> Counter[str]:
    kinds: Counter[str] = Counter()
    for value in values:
        event = json_format.Parse(value, call_events_pb2.CallEvent(), ignore_unknown_fields=True)
        kinds[event.WhichOneof("kind") or ""] += 1
    return kinds


@pytest.mark.timeout(900)
def test_asterisk_calls_routed_by_callstream(kafka_bootstrap: str, tmp_path: Path) -> None:
    apply_topics(kafka_bootstrap)
    prefix = isolated_topics(kafka_bootstrap)
    log_topic = f"test-ari-routing-log-{uuid.uuid4().hex[:8]}"
    client_admin = admin(kafka_bootstrap)
    for future in client_admin.create_topics([NewTopic(log_topic, num_partitions=1, replication_factor=1)]).values():
        future.result(30)
    queues = tmp_path / "queues.yaml"
    queues.write_text(QUEUES)
    grpc_port = free_port()
    base_env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "CALLSTREAM_ENV": "development"}
    router_env = {**base_env, "GRPC_PORT": str(grpc_port), "METRICS_PORT": str(free_port(avoid=[grpc_port])),
                  "QUEUES_FILE": str(queues), "API_TOKENS": f"{TOKEN}:service", "COMMAND_LOG_TOPIC": log_topic,
                  # the bridge sets agent states over gRPC; its agent events are for the KPIs
                  "AGENT_EVENTS_TOPIC": "", "SNAPSHOTS_ENABLED": "false"}
    router_log, bridge_log = tmp_path / "router.log", tmp_path / "bridge.log"
    router = _start("callstream_routing", router_env, router_log)
    plan = plan_calls(SEED, LoadShape(calls=CALLS, transfer_share=0.0, max_wait_share=0.0))
    try:
        _wait_router_serving(grpc_port, router, router_log, 90)
        with LocalAsterisk(tmp_path / "asterisk") as pbx:
            bridge_env = {**base_env, "TOPIC_PREFIX": prefix, "ARI_URL": f"http://127.0.0.1:{pbx.http_port}",
                          "ARI_USERNAME": pbx.ami_user, "ARI_PASSWORD": pbx.secret,
                          "ROUTER_TARGET": f"127.0.0.1:{grpc_port}", "ROUTER_TOKEN": TOKEN,
                          "AGENTS_FILE": str(_agents_file(tmp_path / "agents.yaml"))}
            bridge = _start("callstream_ingest.ari", bridge_env, bridge_log)
            try:
                _wait_agents_logged_in(grpc_port, {"sales": 5, "support": 4}, 60)
                _wait_app_registered(pbx, 30)
                generator = CallGenerator("127.0.0.1", pbx.ami_port, pbx.ami_user, pbx.secret, context="routed")
                report = asyncio.run(generator.run(plan, drain_timeout_s=180))
                assert report.originated == CALLS and not report.refused
            finally:
                _stop(bridge)
            record = read_routed_calls(pbx.cdr_csv, routed_context="routed", agents_context="agents")
    finally:
        _stop(router)

    assert bridge.returncode == 0, bridge_log.read_text()[-3000:]
    calls = record.calls
    assert not [c for c in calls if c.bridged_twice], "a caller was bridged with two agents"
    assert len(calls) == CALLS, f"Asterisk recorded {len(calls)} routed callers, not {CALLS}"
    by_id = {c.uniqueid: c for c in calls}
    values = _read(kafka_bootstrap, DECISIONS,
                   lambda v: set(_decisions(v, set(by_id))) == set(by_id), 120)
    decisions = _decisions(values, set(by_id))
    assert set(decisions) == set(by_id), "calls the router never decided"

    endpoint_agent = {endpoint.split("/")[1].split("@")[0]: agent for agent, (endpoint, _) in AGENTS.items()}
    answered = [c for c in calls if c.bridged_with]
    for call in answered:
        assigned = [x.assigned.agent_id for x in decisions[call.uniqueid] if x.WhichOneof("outcome") == "assigned"]
        talked_to = endpoint_agent[call.bridged_with]
        assert assigned and assigned[-1] == talked_to, (call, assigned)
        assert call.queue in AGENTS[talked_to][1], f"{call.queue} call bridged with {talked_to}"  # queue routing
    assert {c.queue for c in answered} == {"sales", "support"}
    abandoned = [c for c in calls if not c.bridged_with]
    assert len(answered) + len(abandoned) == CALLS and len(answered) > CALLS // 2 and abandoned
    # Ring-no-answer: the never-answering agent was assigned calls, Asterisk recorded its rings unanswered,
    # and every such call was assigned again (or its caller gave up) - none talked to a9.
    rona_calls = {cid for cid, ds in decisions.items() if any(x.assigned.agent_id == "a9" for x in ds)}
    assert rona_calls, "the router never assigned the agent who does not answer"
    assert all(by_id[cid].bridged_with != "rna" for cid in rona_calls)
    assert record.agent_legs[("rna", "NO ANSWER")] >= 1, record.agent_legs
    assert not [leg for leg in record.agent_legs if leg[0] == "rna" and leg[1] == "ANSWERED"]
    # The bridge's events on the test's topics: one offer per call, one answer per bridged call.
    kinds = _call_event_kinds(_read(kafka_bootstrap, prefix + "cc.call-events.v1",
                                    lambda v: _call_event_kinds(v)["answered"] >= len(answered), 60))
    assert kinds["offered"] == CALLS and kinds["answered"] == len(answered)
    assert kinds["abandoned"] == len(abandoned) and kinds["ring_no_answer"] >= 1


def _wait_app_registered(pbx: LocalAsterisk, timeout_s: float) -> None:
    """Until Asterisk lists the bridge's Stasis application (its events WebSocket is open)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        response = httpx.get(f"http://127.0.0.1:{pbx.http_port}/ari/applications/callstream",
                             auth=(pbx.ami_user, pbx.secret), timeout=5)
        if response.status_code == 200:
            return
        time.sleep(0.2)  # polling Asterisk with a deadline
    raise TimeoutError("the ARI bridge never registered its Stasis application")

