"""Agent states and profiles taken from the agent-events topic by a real router over real Kafka: HR's skills
and a queue membership, then a switch's login and ready, route a call to the agent; a repeat changes nothing;
an event that cannot be a command is dead-lettered with its reason; a skills change keeps a not-ready agent
not ready; and after a restart the state is as before (it was in the command log)."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest
from confluent_kafka import Consumer
from confluent_kafka.admin import NewTopic

from callstream.agent.v1 import agent_events_pb2 as ae
from callstream.routing.v1 import routing_pb2, routing_pb2_grpc
from callstream_core.envelope import new_envelope
from callstream_core.kafka import EventProducer, admin, apply_topics
from callstream_core.topics import DLQ_SUFFIX
from callstream_routing.bootstrap import serve
from callstream_routing.config import RoutingSettings

pytestmark = pytest.mark.integration
TOKEN = "test-switch-token"
AUTH = (("authorization", f"Bearer {TOKEN}"),)
DEADLINE_S = 60


def _event(agent_id: str, kind: str) -> ae.AgentEvent:
    e = ae.AgentEvent(agent_id=agent_id, envelope=new_envelope("test-switch", datetime.now(UTC)))
    getattr(e, kind).SetInParent()
    return e


async def _until(stub: routing_pb2_grpc.RouterStub, agent_id: str, state: str) -> routing_pb2.AgentState:
    deadline = time.monotonic() + DEADLINE_S
    while True:
        try:
            view = await stub.GetAgentState(routing_pb2.GetAgentStateRequest(agent_id=agent_id), timeout=5,
                                            metadata=AUTH)
            if view.state == state:
                return view
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.NOT_FOUND:
                raise
        if time.monotonic() > deadline:
            raise AssertionError(f"{agent_id} did not become {state} within {DEADLINE_S} s")
        await asyncio.sleep(0.05)  # polling the router's state with a deadline


def _dead_letters(bootstrap: str, topic: str, count: int) -> list[str]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"dlq-{uuid.uuid4().hex[:6]}",
                         "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    errors: list[str] = []
    deadline = time.monotonic() + DEADLINE_S
    try:
        while len(errors) < count and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                errors.append(dict(msg.headers() or [])["dlq.error"].decode())
    finally:
        consumer.close()
    return errors


def test_agent_events_drive_the_router(kafka_bootstrap: str, tmp_path: Path) -> None:
    apply_topics(kafka_bootstrap)
    suffix = uuid.uuid4().hex[:8]
    log_topic, events_topic = f"test-routing-log-{suffix}", f"test-agent-events-{suffix}"
    new = [NewTopic(t, num_partitions=n, replication_factor=1)
           for t, n in ((log_topic, 1), (events_topic, 3), (events_topic + DLQ_SUFFIX, 1))]
    client_admin = admin(kafka_bootstrap)  # kept alive until its futures are done
    for future in client_admin.create_topics(new).values():
        future.result(30)
    queues = tmp_path / "queues.yaml"
    queues.write_text("queues:\n  - queue_id: sales\n    wrap_up_s: 0\n")
    settings = RoutingSettings(kafka_bootstrap_servers=kafka_bootstrap, grpc_port=0, queues_file=queues,
                               api_tokens=f"{TOKEN}:service", command_log_topic=log_topic,
                               agent_events_topic=events_topic)
    producer = EventProducer(kafka_bootstrap, client_id="test-switch")

    def send(*events: ae.AgentEvent) -> None:
        producer.produce_sync(events_topic, [(e.agent_id, e) for e in events])

    skills = _event("a1", "skills_changed")  # HR, before the agent ever logged in
    skills.skills_changed.skills.add(skill_id="es", proficiency=4)
    member = _event("a1", "queue_membership_changed")
    member.queue_membership_changed.queue_id = "sales"
    member.queue_membership_changed.member = True
    ready = _event("a1", "ready")

    async def run(stage: str) -> dict[str, object]:
        stop = asyncio.Event()
        started: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        task = asyncio.create_task(serve(settings, ready=started.set_result, stop=stop))
        port = await asyncio.wait_for(started, 60)
        found: dict[str, object] = {}
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = routing_pb2_grpc.RouterStub(channel)
            if stage == "first":
                send(skills, member, _event("a1", "logged_in"), ready, ready, _event("", "ready"),
                     _event("a1", "talking"))
                view = await _until(stub, "a1", "ready")
                found["profile"] = ({q.queue_id for q in view.queues}, {s.skill_id: s.proficiency for s in view.skills})
                offer = await stub.OfferCall(routing_pb2.OfferCallRequest(command_id="offer-1", call_id="c1",
                                                                          queue_id="sales"), timeout=5, metadata=AUTH)
                found["assigned_to"] = offer.assigned.agent_id
                await stub.CancelCall(routing_pb2.CancelCallRequest(command_id="cancel-1", call_id="c1"),
                                      timeout=5, metadata=AUTH)
                lunch = _event("a1", "not_ready")
                lunch.not_ready.reason = ae.NOT_READY_REASON_LUNCH
                more = _event("a1", "skills_changed")
                more.skills_changed.skills.add(skill_id="es", proficiency=5)
                more.skills_changed.skills.add(skill_id="en", proficiency=2)
                send(lunch, more)
                deadline = time.monotonic() + DEADLINE_S
                while time.monotonic() < deadline:  # the skills change is the last event: wait for it
                    view = await _until(stub, "a1", "not_ready")
                    if {s.skill_id for s in view.skills} == {"es", "en"}:
                        break
                    await asyncio.sleep(0.05)  # polling the router's state with a deadline
            view = await _until(stub, "a1", "not_ready")
            found["after"] = (view.state, view.reason, {s.skill_id: s.proficiency for s in view.skills},
                              {q.queue_id for q in view.queues})
        stop.set()
        await asyncio.wait_for(task, 30)
        return found

    first = asyncio.run(run("first"))
    assert first["profile"] == ({"sales"}, {"es": 4})
    assert first["assigned_to"] == "a1"
    assert first["after"] == ("not_ready", ae.NOT_READY_REASON_LUNCH, {"es": 5, "en": 2}, {"sales"})
    assert _dead_letters(kafka_bootstrap, events_topic + DLQ_SUFFIX, 1) == [
        "not an agent state command: agent_id is empty"]
    # Restarted: the state comes back from the command log, and the consumed events are not applied again.
    assert asyncio.run(run("restart"))["after"] == first["after"]
