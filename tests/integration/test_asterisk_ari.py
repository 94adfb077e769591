"""Asterisk's calls routed by Callstream: a real Asterisk hands 300 generated calls to the ARI bridge (a real
process), which offers them to the real routing service (a real process, over gRPC with a service token) and
rings the agent the router assigns.

What happened is read from Asterisk's own CDRs (Master.csv, by `asterisk_records.read_routed_calls`: no
Callstream code) and held against the router's decisions on `cc.routing-decisions.v1`: every call is either
bridged with the agent the router assigned it last, or abandoned; a sales call only ever reaches sales's agents,
a support call support's, or sales's once it has waited into its queue's relaxation step (which happens); the
agent who never answers is assigned calls, rings unanswered (Asterisk records NO ANSWER) and never talks.
The bridge's events on the test's topics count the same calls as the CDRs. The leading router is SIGKILLed at
the 120th call: its standby leads within the documented bound, and the checks above hold across the take-over
(no call lost: every caller decided and answered or abandoned; none bridged twice or to an agent the router did
not assign it last).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from asterisk_records import read_routed_calls
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from google.protobuf import json_format
from scenarios import isolated_topics

from callstream.call.v1 import call_events_pb2
from callstream.routing.v1 import routing_pb2
from callstream_core.kafka import apply_topics
from callstream_core.local_asterisk import LocalAsterisk, center_dir
from callstream_ingest.ari.local import ROUTED_AGENTS, ROUTED_QUEUES, RoutedCenter
from callstream_ingest.asterisk_calls import CallGenerator, LoadShape, plan_calls

pytestmark = pytest.mark.integration
CALLS = 300
SEED = 20261204
DECISIONS = "cc.routing-decisions.v1"


def center_agents() -> dict[str, tuple[str, list[str]]]:
    """agent id -> (endpoint, queues), as the center's routed-agents.yaml gives the bridge."""
    entries = yaml.safe_load((center_dir() / ROUTED_AGENTS).read_text())["agents"]
    return {e["agent_id"]: (e["endpoint"], e["queues"]) for e in entries}


def center_relaxation() -> dict[str, tuple[float, str]]:
    """queue -> (after_s, added queue) of its first relaxation step, as routed-queues.yaml gives the router."""
    queues = yaml.safe_load((center_dir() / ROUTED_QUEUES).read_text())["queues"]
    return {q["queue_id"]: (float(q["relaxation"][0]["after_s"]), q["relaxation"][0]["add_queue_id"])
            for q in queues if q.get("relaxation")}


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
    agents = center_agents()
    assert center_relaxation() == {"support": (5.0, "sales")}, "the center's routed-queues.yaml changed"
    relax_after_s = center_relaxation()["support"][0]
    apply_topics(kafka_bootstrap)
    prefix = isolated_topics(kafka_bootstrap)
    plan = plan_calls(SEED, LoadShape(calls=CALLS, transfer_share=0.0, max_wait_share=0.0))
    take_over_s: list[float] = []
    with LocalAsterisk(tmp_path / "asterisk") as pbx:
        with RoutedCenter(pbx, kafka_bootstrap, tmp_path, topic_prefix=prefix, standby=True) as center:

            def progress(placed: int) -> None:
                if placed == CALLS * 2 // 5 and not take_over_s:
                    # Mid-load, the leading router dies without a goodbye; the standby must lead within the
                    # bound docs/routing.md states (LEASE_TIMEOUT_S + 4 s; the center's lease is 2 s).
                    killed_at = time.monotonic()
                    center.kill_leader()
                    center.wait_standby_leads(30)
                    take_over_s.append(time.monotonic() - killed_at)

            generator = CallGenerator("127.0.0.1", pbx.ami_port, pbx.ami_user, pbx.secret, context="routed")
            report = asyncio.run(generator.run(plan, drain_timeout_s=180, on_progress=progress))
            assert report.originated == CALLS and not report.refused
        record = read_routed_calls(pbx.cdr_csv, routed_context="routed", agents_context="agents")

    bridge = center.bridge
    assert bridge is not None and bridge.returncode == 0, center.bridge_log.read_text()[-3000:]
    assert take_over_s and take_over_s[0] <= 2 + 4, f"the standby led {take_over_s} s after the leader died"
    calls = record.calls
    assert not [c for c in calls if c.bridged_twice], "a caller was bridged with two agents"
    assert len(calls) == CALLS, f"Asterisk recorded {len(calls)} routed callers, not {CALLS}"
    by_id = {c.uniqueid: c for c in calls}
    values = _read(kafka_bootstrap, DECISIONS,
                   lambda v: set(_decisions(v, set(by_id))) == set(by_id), 120)
    decisions = _decisions(values, set(by_id))
    assert set(decisions) == set(by_id), "calls the router never decided"

    endpoint_agent = {endpoint.split("/")[1].split("@")[0]: agent for agent, (endpoint, _) in agents.items()}
    answered = [c for c in calls if c.bridged_with]
    relaxed = 0
    for call in answered:
        assigned = [x for x in decisions[call.uniqueid] if x.WhichOneof("outcome") == "assigned"]
        talked_to = endpoint_agent[call.bridged_with]
        assert assigned and assigned[-1].assigned.agent_id == talked_to, (call, assigned)
        if call.queue not in agents[talked_to][1]:
            # Only the relaxation step lets a call reach another queue's agents, and only after its wait.
            waited_s = (assigned[-1].envelope.occurred_at.ToMilliseconds()
                        - decisions[call.uniqueid][0].envelope.occurred_at.ToMilliseconds()) / 1000
            assert call.queue == "support" and "sales" in agents[talked_to][1], f"{call} bridged with {talked_to}"
            assert waited_s >= relax_after_s - 0.01, f"{call} relaxed after {waited_s} s"
            relaxed += 1
    assert {c.queue for c in answered} == {"sales", "support"}
    assert relaxed >= 1, "no support call waited into the relaxation step and was answered by a sales agent"
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

