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

A real KPI worker then reads the bridge's events: its API's figures for the run equal what the CDRs count
(`expected_kpis`): offered, answered and abandoned exactly; ring-no-answers within the agent channels whose end
shares its whole second with the caller's (a caller hanging up while an agent rings is no RONA; whole seconds
cannot tell which came first); the talk time sum within a second a call (billsec: whole seconds from the
agent's answer). One more call after the run, later than its last end plus the worker's allowed lateness,
moves the event-time watermark past every call of the run, as the next calls of a live center would.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from asterisk_records import RoutedCall, read_routed_calls
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from google.protobuf import json_format
from scenarios import TOKEN, isolated_topics, poll_kpis, worker_settings

from callstream.call.v1 import call_events_pb2
from callstream.routing.v1 import routing_pb2
from callstream_core.kafka import apply_topics
from callstream_devtools.local_asterisk import LocalAsterisk, center_dir
from callstream_devtools.routed_center import ROUTED_AGENTS, ROUTED_QUEUES, RoutedCenter
from callstream_ingest.adapters.ami_session import AmiSession
from callstream_ingest.domain.call_plan import LoadShape, PlannedCall, originate_headers, plan_calls
from callstream_ingest.service_layer.call_generator import CallGenerator
from callstream_kpi.bootstrap import build_worker

pytestmark = pytest.mark.integration
CALLS = 300
SEED = 20261204
DECISIONS = "cc.routing-decisions.v1"
SENTINEL_CALLER = "+40729999999"  # the call after the run that moves the KPI worker's watermark past it


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


def expected_kpis(calls: list[RoutedCall]) -> dict[str, tuple[float, float]]:
    """The KPI counters of these calls as Asterisk's CDRs count them: (lowest, highest) allowed."""
    answered = [c for c in calls if c.bridged_with]
    rona = sure = 0
    for call in calls:
        for leg in call.dialled:
            if leg.disposition == "ANSWERED" or leg.end >= call.end:
                rona += 1  # answered and never bridged, or ended with the caller: either may be a RONA
            else:
                sure += 1  # the agent's phone stopped ringing and the caller waited on: a RONA
                rona += 1
    talk = sum(c.talk_s for c in answered)
    return {"offered": (len(calls), len(calls)), "answered": (len(answered), len(answered)),
            "abandoned": (len(calls) - len(answered),) * 2, "ring_no_answers": (sure, rona),
            # billsec runs from the agent's answer in whole seconds, the KPI's talk time from the bridging (after
            # the router accepted the answer): a call's two differ by less than a second
            "sum_talk_s": (talk - len(answered), talk + len(answered))}


async def settle_kpis(port: int, window: tuple[float, float], expected: dict[str, tuple[float, float]],
                      got: dict[str, float]) -> None:
    """Poll the worker's KPI API (with a deadline) until its counters for the run's window are within
    `expected`; what it said last goes to `got`."""
    params = {"from": datetime.fromtimestamp(window[0], UTC).isoformat(),
              "to": datetime.fromtimestamp(window[1], UTC).isoformat(), "grain": "30m"}

    async def within(total: dict[str, Any]) -> bool:
        got.update({k: total["counters"][k] for k in expected})
        return all(lo - 1e-6 <= got[k] <= hi + 1e-6 for k, (lo, hi) in expected.items())

    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60,
                                 headers={"Authorization": f"Bearer {TOKEN}"}) as http:
        await poll_kpis(http, params, within, timeout_s=180)


@pytest.mark.timeout(900)
def test_asterisk_calls_routed_by_callstream(kafka_bootstrap: str, clickhouse_url: str, tmp_path: Path) -> None:
    agents = center_agents()
    assert center_relaxation() == {"support": (5.0, "sales")}, "the center's routed-queues.yaml changed"
    relax_after_s = center_relaxation()["support"][0]
    apply_topics(kafka_bootstrap)
    prefix = isolated_topics(kafka_bootstrap)
    plan = plan_calls(SEED, LoadShape(calls=CALLS, transfer_share=0.0, max_wait_share=0.0))
    kpi_settings = worker_settings(kafka_bootstrap, clickhouse_url, prefix)
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
            run_window = [time.time()]
            report = asyncio.run(generator.run(plan, drain_timeout_s=180, on_progress=progress))
            run_window.append(time.time())
            assert report.originated == CALLS and not report.refused
            sentinel = replace(plan_calls(SEED + 1, LoadShape(calls=1))[0], caller_number=SENTINEL_CALLER,
                               at_s=kpi_settings.allowed_lateness_s + 3)
            asyncio.run(CallGenerator("127.0.0.1", pbx.ami_port, pbx.ami_user, pbx.secret,
                                      context="routed").run([sentinel]))
        # Asterisk writes a call's CDR after its channels are gone, not with their end: once, in CI, the
        # sentinel's record was not yet in the file when the generator saw no channel left.
        _poll(lambda: _has_caller(pbx.cdr_csv, SENTINEL_CALLER), "the sentinel call's CDR", 30)
        record = read_routed_calls(pbx.cdr_csv, routed_context="routed", agents_context="agents")
    calls = [c for c in record.calls if c.caller != SENTINEL_CALLER]
    kpis: dict[str, float] = {}
    expected = expected_kpis(calls)
    worker = build_worker(kpi_settings)
    asyncio.run(worker.serve(lambda: settle_kpis(kpi_settings.http_port, (run_window[0] - 1, run_window[1]),
                                                 expected, kpis)))

    bridge = center.bridge
    assert bridge is not None and bridge.returncode == 0, center.bridge_log.read_text()[-3000:]
    assert take_over_s and take_over_s[0] <= 2 + 4, f"the standby led {take_over_s} s after the leader died"
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
    # The bridge's events on the test's topics (the run's calls and the one after): one offer per call, one
    # answer per bridged call.
    bridged = sum(bool(c.bridged_with) for c in record.calls)

    def every_call_told(values: list[bytes]) -> bool:
        # Each call's offer and its end (answered or abandoned): the read goes partition by partition, so one
        # kind complete says nothing of the others (once, in CI, every answer was read before the sentinel's offer).
        seen = _call_event_kinds(values)
        return (seen["offered"] >= len(record.calls) and seen["answered"] >= bridged
                and seen["abandoned"] >= len(record.calls) - bridged)

    kinds = _call_event_kinds(_read(kafka_bootstrap, prefix + "cc.call-events.v1", every_call_told, 60))
    assert kinds["offered"] == len(record.calls) == CALLS + 1 and kinds["answered"] == bridged
    assert kinds["abandoned"] == len(record.calls) - bridged and kinds["ring_no_answer"] >= 1
    # The KPI worker's figures for the run: what the CDRs count (no transfers in this load).
    assert expected["ring_no_answers"][0] >= 1 and expected["sum_talk_s"][0] > 0, expected
    for name, (lo, hi) in expected.items():
        assert name in kpis and lo - 1e-6 <= kpis[name] <= hi + 1e-6, (name, kpis.get(name), (lo, hi))



def _wait_idle(center: RoutedCenter, pbx: LocalAsterisk, queues: list[str], timeout_s: float) -> None:
    """Until the router has no call waiting in `queues` and Asterisk no channel (every callback done)."""
    deadline = time.monotonic() + timeout_s
    url = f"http://127.0.0.1:{pbx.http_port}/ari/channels"
    waiting: dict[str, int] = {}
    channels: list[object] = []
    while time.monotonic() < deadline:
        waiting = {q: s.calls_waiting for q, s in center.queue_states(queues).items()}
        channels = httpx.get(url, auth=(pbx.ami_user, pbx.secret), timeout=5).json()
        if not any(waiting.values()) and not channels:
            return
        time.sleep(0.2)  # polling the router and Asterisk with a deadline
    raise TimeoutError(f"still waiting in the router {waiting}, channels in Asterisk {channels}")


@pytest.mark.timeout(300)
def test_a_call_that_waits_past_its_queues_limit_is_called_back(kafka_bootstrap: str, tmp_path: Path) -> None:
    """billing (one agent, b6) gives a call that waited 2 s a callback (routed-queues.yaml): three calls at once,
    the first talks 3 s with b6, the other two are released and called back once b6 is free. From Asterisk's
    CDRs: those two callers were never bridged on their own call, and a channel of the [callbacks] context
    dialled each one's own number and was bridged with b6's channel rung for that caller; the router's decisions
    say callback and then assigned b6."""
    apply_topics(kafka_bootstrap)
    prefix = isolated_topics(kafka_bootstrap)
    plan = [replace(call, queue="billing", caller_number=f"+4073000000{n}", at_s=0.1 * n, patience_s=60.0,
                    ring_s=0.3, agent_talk_s=3.0, caller_talk_s=30.0)
            for n, call in enumerate(plan_calls(SEED + 2, LoadShape(calls=3, transfer_share=0.0,
                                                                   max_wait_share=0.0)))]
    with LocalAsterisk(tmp_path / "asterisk") as pbx:
        with RoutedCenter(pbx, kafka_bootstrap, tmp_path, topic_prefix=prefix) as center:
            generator = CallGenerator("127.0.0.1", pbx.ami_port, pbx.ami_user, pbx.secret, context="routed")
            report = asyncio.run(generator.run(plan, drain_timeout_s=60))
            assert report.originated == len(plan) and not report.refused
            _wait_idle(center, pbx, ["billing"], 90)
        record = read_routed_calls(pbx.cdr_csv, routed_context="routed", agents_context="agents")
    bridge = center.bridge
    assert bridge is not None and bridge.returncode == 0, center.bridge_log.read_text()[-3000:]
    assert len(record.calls) == len(plan)
    called_back = [c for c in record.calls if c.called_back_number]
    assert len(called_back) == 2, record.calls  # b6 talks 3 s with the first: the others wait past 2 s
    for call in called_back:
        assert not call.bridged_with and call.called_back_number == call.caller and call.called_back_by == "b6"
    by_id = {c.uniqueid: c for c in called_back}
    decisions = _decisions(_read(kafka_bootstrap, DECISIONS, lambda v: set(_decisions(v, set(by_id))) == set(by_id),
                                 60), set(by_id))
    for call_id in by_id:
        outcomes = [x.WhichOneof("outcome") for x in decisions.get(call_id, [])]
        assert "overflowed" in outcomes, outcomes
        released = outcomes.index("overflowed")
        overflow = decisions[call_id][released].overflowed
        assert overflow.destination == routing_pb2.Overflowed.DESTINATION_CALLBACK
        assert [x.assigned.agent_id for x in decisions[call_id][released:] if x.WhichOneof("outcome") == "assigned"
                ][-1:] == ["b6"]
    # The bridge's events: each callback a call of its own, offered on the callback channel and answered.
    def callback_kinds(values: list[bytes]) -> dict[str, set[str]]:
        events = [json_format.Parse(v, call_events_pb2.CallEvent(), ignore_unknown_fields=True) for v in values]
        return {call_id: {e.WhichOneof("kind") or "" for e in events if e.call_id == call_id + "-callback"}
                for call_id in by_id}

    every = {"offered", "queued", "ringing", "answered", "ended"}
    kinds = callback_kinds(_read(kafka_bootstrap, prefix + "cc.call-events.v1",
                                 lambda v: all(k >= every for k in callback_kinds(v).values()), 60))
    assert all(k >= every for k in kinds.values()), kinds


RESTART_CALLS = 6


def _reconciled(port: int, action: str) -> float:
    """The bridge's callstream_ari_reconciled_total{action} (0 before the first)."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    found = re.search(rf'^callstream_ari_reconciled_total\{{action="{action}"\}} (\S+)$', text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


async def _originate(pbx: LocalAsterisk, calls: list[PlannedCall]) -> None:
    session = AmiSession("127.0.0.1", pbx.ami_port)
    await session.open(pbx.ami_user, pbx.secret)
    try:
        for call in calls:
            reply = await session.action("Originate", originate_headers(call, "routed"), call.variables())
            assert reply.get("Response", "").lower() == "success", reply
    finally:
        await session.close()


def _has_caller(cdr_csv: Path, caller: str) -> bool:
    try:
        return any(c.caller == caller for c in read_routed_calls(cdr_csv, routed_context="routed",
                                                                 agents_context="agents").calls)
    except ValueError:  # a line Asterisk is still writing
        return False


def _poll(condition: Callable[[], bool], what: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout_s:.0f} s")
        time.sleep(0.2)  # polling Asterisk, the router or the bridge's metrics with a deadline


@pytest.mark.timeout(300)
def test_after_asterisk_dies_the_bridge_reconciles_with_the_router(kafka_bootstrap: str, tmp_path: Path) -> None:
    """Six sales calls that would last two minutes: four talk with a1-a4, the others wait. Asterisk is SIGKILLed
    (it says nothing: no hangup reaches the bridge) and started again. The bridge reconnects, re-reads the
    channels in its app (none now) and ends every call it held with the router: none is left waiting there, the
    agents are free again, and the bridge's metrics count the six calls the re-read ended. A call placed after
    the restart is routed and bridged with a sales agent (Asterisk's CDR)."""
    apply_topics(kafka_bootstrap)
    prefix = isolated_topics(kafka_bootstrap)
    plan = [replace(call, queue="sales", caller_number=f"+4074000000{n}", at_s=0.0, patience_s=120.0, ring_s=0.3,
                    agent_talk_s=120.0, caller_talk_s=120.0)
            for n, call in enumerate(plan_calls(SEED + 3, LoadShape(calls=RESTART_CALLS, transfer_share=0.0,
                                                                   max_wait_share=0.0)))]
    after = replace(plan_calls(SEED + 4, LoadShape(calls=1))[0], queue="sales", caller_number="+40749999999",
                    at_s=0.0, patience_s=60.0, ring_s=0.3, agent_talk_s=2.0, caller_talk_s=30.0, transfer=False,
                    max_wait_s=0)
    with LocalAsterisk(tmp_path / "asterisk") as pbx:
        with RoutedCenter(pbx, kafka_bootstrap, tmp_path, topic_prefix=prefix) as center:
            asyncio.run(_originate(pbx, plan))
            bridges_url = f"http://127.0.0.1:{pbx.http_port}/ari/bridges"

            def talking_and_waiting() -> bool:
                bridges = httpx.get(bridges_url, auth=(pbx.ami_user, pbx.secret), timeout=5).json()
                talking = sum(len(b["channels"]) == 2 for b in bridges)
                return talking == 4 and center.queue_states(["sales"])["sales"].calls_waiting >= 1

            _poll(talking_and_waiting, "four calls talking and one waiting", 60)
            assert _reconciled(center.bridge_metrics_port, "ended") == 0
            killed = pbx.process
            assert killed is not None
            os.killpg(killed.pid, signal.SIGKILL)
            killed.wait(30)
            pbx.process = None
            pbx.start()

            def reconciled() -> bool:
                sales = center.queue_states(["sales"])["sales"]
                return (_reconciled(center.bridge_metrics_port, "ended") >= RESTART_CALLS
                        and sales.calls_waiting == 0 and sales.agents_idle >= 4)

            _poll(reconciled, "every call ended with the router, a1-a4 free", 90)
            assert _reconciled(center.bridge_metrics_port, "ended") == RESTART_CALLS
            generator = CallGenerator("127.0.0.1", pbx.ami_port, pbx.ami_user, pbx.secret, context="routed")
            report = asyncio.run(generator.run([after], drain_timeout_s=60))
            assert report.originated == 1 and not report.refused
        record = read_routed_calls(pbx.cdr_csv, routed_context="routed", agents_context="agents")
    bridge = center.bridge
    assert bridge is not None and bridge.returncode == 0, center.bridge_log.read_text()[-3000:]
    (later,) = [c for c in record.calls if c.caller == after.caller_number]
    assert later.bridged_with in {"a1", "a2", "a3", "a4"}, later
