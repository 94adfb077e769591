"""The outbox relay's events reach a real Kafka broker; the contacts consumer stores cc.contacts.v1 records."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from confluent_kafka import Consumer
from sqlalchemy import select

from callstream.kpi.v1 import kpi_events_pb2
from callstream.qa.v1 import qa_events_pb2
from callstream_core import wire
from callstream_core.db import make_engine, session_factory
from callstream_core.kafka import DeadLetters, EventConsumer, EventProducer, apply_topics
from callstream_core.outbox import OutboxRelay
from callstream_core.topics import QA_EVALUATIONS, topic
from callstream_qa.adapters.contacts import ContactsConsumer
from callstream_qa.adapters.db import migrate
from callstream_qa.adapters.orm import ContactRow, OutboxRow
from callstream_qa.adapters.outbox import outbox
from callstream_qa.adapters.repositories import SqlUnitOfWork
from callstream_qa.service_layer import evaluations, forms

pytestmark = pytest.mark.integration
NOW = datetime.now(UTC)


def test_outbox_events_reach_kafka(kafka_bootstrap: str, tmp_path: Path) -> None:
    apply_topics(kafka_bootstrap, [topic(QA_EVALUATIONS), topic("cc.contacts.v1")])
    engine = make_engine(f"sqlite:///{tmp_path / 'qa.db'}")
    migrate(engine)
    sessions = session_factory(engine)
    agent = f"agent-{uuid.uuid4().hex[:8]}"
    with sessions() as s:
        uow = SqlUnitOfWork(s)
        forms.save_form(uow, "f", "form", {"sections": [{"section_id": "s", "criteria": [
            {"criterion_id": "a", "weight": 1}, {"criterion_id": "b", "weight": 1}]}]}, NOW)
        row = evaluations.create_evaluation(uow, evaluations.NewEvaluation(
            call_id="call-k", agent_id=agent, evaluator_id="qa-1", form_id="f", answers={"a": "yes", "b": "no"},
            submit=True), NOW)
        evaluations.act(uow, row, "acknowledge", NOW)
        eid = row.evaluation_id

    producer = EventProducer(kafka_bootstrap, client_id="qa-test")
    relay = OutboxRelay(outbox, sessions, producer)
    assert relay.run_once() == 2
    with sessions() as s:
        outbox_ids = {r.event_id for r in s.scalars(select(OutboxRow))}
        assert all(r.sent_at is not None for r in s.scalars(select(OutboxRow)))

    consumer = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": f"qa-test-{uuid.uuid4().hex}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([QA_EVALUATIONS])
    got: list[qa_events_pb2.EvaluationChanged] = []
    deadline = time.monotonic() + 60
    try:
        while len(got) < 2 and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            event = wire.decode(msg.value(), qa_events_pb2.EvaluationChanged,
                                wire.header_value(msg.headers(), wire.CONTENT_TYPE))
            if event.evaluation_id == eid:
                assert msg.key().decode() == agent
                got.append(event)
    finally:
        consumer.close()
    assert [e.revision for e in got] == [1, 2]
    assert [e.status for e in got] == [qa_events_pb2.EVALUATION_STATUS_SUBMITTED,
                                       qa_events_pb2.EVALUATION_STATUS_ACKNOWLEDGED]
    assert {e.envelope.event_id for e in got} == outbox_ids
    assert got[0].score == 50.0


def test_contacts_consumer_stores_contacts(kafka_bootstrap: str, tmp_path: Path) -> None:
    apply_topics(kafka_bootstrap, [topic("cc.contacts.v1")])
    engine = make_engine(f"sqlite:///{tmp_path / 'qa.db'}")
    migrate(engine)
    sessions = session_factory(engine)
    call_id = f"call-{uuid.uuid4().hex[:8]}"
    contacts = []
    for version in (1, 2, 1):  # a revision and a repeat of the first version
        c = kpi_events_pb2.Contact(call_id=call_id, segment=0, agent_id=f"agent-v{version}", queue_id="billing",
                                   version=version)
        c.offered_at.FromDatetime(datetime(2026, 11, 2, 9, 0))
        contacts.append((call_id, c))
    EventProducer(kafka_bootstrap, client_id="qa-test").produce_sync("cc.contacts.v1", contacts)
    dlq = DeadLetters(EventProducer(kafka_bootstrap, client_id="qa-test-dlq"))
    consumer: EventConsumer[kpi_events_pb2.Contact] = EventConsumer(
        kafka_bootstrap, group_id=f"qa-test-{uuid.uuid4().hex}", topic=topic("cc.contacts.v1"), dead_letters=dlq)
    adapter = ContactsConsumer(consumer, sessions)
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            adapter.run_once(timeout=0.5)
            with sessions() as s:
                row = s.scalars(select(ContactRow).where(ContactRow.call_id == call_id)).one_or_none()
                if row is not None and row.version == 2:
                    break
    finally:
        consumer.close()
    with sessions() as s:
        row = s.scalars(select(ContactRow).where(ContactRow.call_id == call_id)).one()
        assert (row.version, row.agent_id) == (2, "agent-v2")
