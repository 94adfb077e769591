"""Outbox → real Kafka broker: events written with HR changes reach their topics, decodable with the
contracts, with the event_id fixed in the outbox row; rows stay unsent when Kafka does not confirm."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import TypeVar

import httpx
import pytest
from confluent_kafka import Consumer, Message
from google.protobuf.message import Message as ProtoMessage
from sqlalchemy import select

from callstream.agent.v1 import agent_events_pb2
from callstream.hr.v1 import hr_events_pb2
from callstream_core import wire
from callstream_core.kafka import DeliveryError, EventProducer, apply_topics
from callstream_devtools.local_kafka import free_port
from callstream_devtools.testing import serve_in_thread
from callstream_hr.adapters.models import Outbox
from callstream_hr.adapters.outbox import outbox
from callstream_hr.bootstrap import create_app
from callstream_hr.config import HrSettings

HR_TOKEN = "hr-token-kafka-1"
M = TypeVar("M", bound=ProtoMessage)


def _consume(bootstrap: str, topics: list[str], want: int, match: set[str], timeout: float = 60) -> list[Message]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"hr-test-{uuid.uuid4().hex[:8]}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe(topics)
    found: list[Message] = []
    deadline = time.monotonic() + timeout
    try:
        while len(found) < want and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            if (msg.key() or b"").decode() in match:
                found.append(msg)
    finally:
        consumer.close()
    return found


@pytest.mark.integration
def test_outbox_events_reach_kafka(kafka_bootstrap: str, tmp_path: Path) -> None:
    apply_topics(kafka_bootstrap)
    settings = HrSettings(database_url=f"sqlite:///{tmp_path}/hr.db", api_tokens=f"{HR_TOKEN}:hr",
                          kafka_bootstrap_servers=kafka_bootstrap, outbox_interval_s=0.2)
    app = create_app(settings)
    emp, center = f"emp-{uuid.uuid4().hex[:8]}", f"center-{uuid.uuid4().hex[:8]}"
    with serve_in_thread(app) as base, httpx.Client(
            base_url=base, headers={"Authorization": f"Bearer {HR_TOKEN}"}) as hr:
            assert hr.post("/v1/employees", json={"id": emp, "full_name": "Ana Pop", "role": "agent",
                                                  "hired_on": "2026-11-01"}).status_code == 201
            assert hr.post("/v1/costs", json={"entry_id": f"e-{center}", "cost_center_id": center,
                                              "period_start": "2026-10-01T00:00:00Z",
                                              "period_end": "2026-11-01T00:00:00Z", "amount_minor": 100,
                                              "currency": "EUR", "category": "rent"}).status_code == 201
            assert hr.post("/v1/schedules", json={
                "schedule_id": f"w-{emp}", "period_start": "2026-11-02T00:00:00Z",
                "period_end": "2026-11-09T00:00:00Z",
                "shifts": [{"shift_id": f"s-{emp}", "employee_id": emp, "team_id": "t1",
                            "start": "2026-11-02T22:00:00Z", "end": "2026-11-03T06:00:00Z"}]}).status_code == 201
            assert hr.post("/v1/punches", json={"employee_id": emp, "kind": "in",
                                                "at": "2026-11-02T21:55:00Z"}).status_code == 201
            assert hr.post("/v1/absences", json={"employee_id": emp, "start": "2026-11-04T00:00:00Z",
                                                 "end": "2026-11-05T00:00:00Z", "reason": "vacation"}
                           ).status_code == 201
            assert hr.post("/v1/teams", json={"id": f"team-{emp}", "name": "Night"}).status_code == 201
            assert hr.post(f"/v1/employees/{emp}/changes", json={"effective_on": "2026-11-20",
                                                                 "team_id": f"team-{emp}"}).status_code == 201
            assert hr.put(f"/v1/employees/{emp}/skills", json=[{"skill": "billing", "proficiency": 3}]
                          ).status_code == 200
            deadline = time.monotonic() + 60
            while outbox.pending(app.state.sessions) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert outbox.pending(app.state.sessions) == 0
    topics = ["cc.hr-employment.v1", "cc.hr-costs.v1", "cc.hr-schedules.v1", "cc.hr-attendance.v1",
              "cc.hr-absences.v1", "cc.agent-events.v1"]
    msgs = _consume(kafka_bootstrap, topics, 7, {emp, center})
    by_topic: dict[str, list[Message]] = {}
    for m in msgs:
        by_topic.setdefault(m.topic() or "", []).append(m)
    assert set(by_topic) == set(topics)

    def decode(name: str, kind: type[M], index: int = 0) -> M:
        m = by_topic[name][index]
        return wire.decode(m.value(), kind, wire.header_value(m.headers(), wire.CONTENT_TYPE))

    hired = decode("cc.hr-employment.v1", hr_events_pb2.EmploymentChanged)
    assert hired.kind == hr_events_pb2.EmploymentChanged.KIND_HIRED and hired.role == "agent"
    assert decode("cc.hr-costs.v1", hr_events_pb2.CostEntry).amount_minor == 100
    sched = decode("cc.hr-schedules.v1", hr_events_pb2.SchedulePublished)
    assert sched.version == 1 and sched.shifts[0].shift_id == f"s-{emp}"
    assert decode("cc.hr-attendance.v1", hr_events_pb2.AttendancePunch).kind == hr_events_pb2.AttendancePunch.KIND_IN
    assert decode("cc.hr-absences.v1", hr_events_pb2.Absence).reason == hr_events_pb2.Absence.REASON_VACATION
    moved = decode("cc.hr-employment.v1", hr_events_pb2.EmploymentChanged, 1)  # same key: after the hire
    assert moved.kind == hr_events_pb2.EmploymentChanged.KIND_TEAM_CHANGED and moved.team_id == f"team-{emp}"
    skills = decode("cc.agent-events.v1", agent_events_pb2.AgentEvent)
    assert skills.agent_id == emp and [(k.skill_id, k.proficiency) for k in skills.skills_changed.skills] == [
        ("billing", 3)]
    with app.state.sessions() as session:
        ids = set(session.scalars(select(Outbox.event_id)).all())
    assert hired.envelope.event_id in ids and sched.envelope.event_id in ids


def test_rows_stay_unsent_when_kafka_does_not_confirm(tmp_path: Path) -> None:
    settings = HrSettings(database_url=f"sqlite:///{tmp_path}/hr.db", api_tokens=f"{HR_TOKEN}:hr",
                          outbox_interval_s=0)
    app = create_app(settings)
    with serve_in_thread(app) as base, httpx.Client(
            base_url=base, headers={"Authorization": f"Bearer {HR_TOKEN}"}) as hr:
            hr.post("/v1/employees", json={"id": "emp-1", "full_name": "x", "role": "agent",
                                           "hired_on": "2026-11-01"})
    # nothing listens on this port: the delivery times out and the row must not be marked sent
    dead = EventProducer(f"127.0.0.1:{free_port()}", client_id="hr-test",
                         extra={"delivery.timeout.ms": 1500, "message.timeout.ms": 1500})
    with pytest.raises(DeliveryError):
        outbox.relay_once(app.state.sessions, dead)
    assert outbox.pending(app.state.sessions) == 1
