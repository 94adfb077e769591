"""Outbox relay (at-least-once, marks sent only after confirmation), contacts store (idempotent), settings."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from callstream.kpi.v1 import kpi_events_pb2
from callstream.qa.v1 import qa_events_pb2
from callstream_core.db import make_engine, session_factory
from callstream_core.kafka import DeliveryError
from callstream_core.outbox import OutboxRelay
from callstream_core.topics import QA_EVALUATIONS
from callstream_qa.adapters.contacts import store_contacts
from callstream_qa.adapters.db import migrate
from callstream_qa.adapters.orm import ContactRow, EvaluationRow, OutboxRow
from callstream_qa.adapters.outbox import outbox
from callstream_qa.adapters.repositories import SqlUnitOfWork
from callstream_qa.config import QASettings
from callstream_qa.service_layer import evaluations, forms

NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
DEFINITION = {"sections": [{"section_id": "s", "criteria": [
    {"criterion_id": "a", "weight": 1}, {"criterion_id": "b", "weight": 3}]}]}


@pytest.fixture
def sessions(tmp_path: Path) -> sessionmaker[Session]:
    engine = make_engine(f"sqlite:///{tmp_path / 'qa.db'}")
    migrate(engine)
    migrate(engine)  # idempotent
    return session_factory(engine)


def submit_one(sessions: sessionmaker[Session], agent: str = "agent-1") -> str:
    with sessions() as s:
        uow = SqlUnitOfWork(s)
        if uow.forms.latest("f") is None:
            forms.save_form(uow, "f", "form", DEFINITION, NOW)
        row = evaluations.create_evaluation(uow, evaluations.NewEvaluation(
            call_id="call-1", agent_id=agent, evaluator_id="qa-1", form_id="f", answers={"a": "no", "b": "yes"},
            submit=True, contact_at=NOW), NOW)
        return row.evaluation_id


class FakeProducer:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.sent: list[tuple[str, str, Any]] = []

    def produce_sync(self, topic: str, messages: list[tuple[str, Any]], timeout: float = 120.0) -> int:
        if self.fail:
            raise DeliveryError("broker down")
        self.sent += [(topic, k, m) for k, m in messages]
        return len(messages)


def test_relay_marks_sent_only_after_confirmation(sessions: sessionmaker[Session]) -> None:
    eid = submit_one(sessions)
    down = FakeProducer(fail=True)
    with pytest.raises(DeliveryError):
        OutboxRelay(outbox, sessions, down).run_once()
    with sessions() as s:
        assert s.scalars(select(OutboxRow.sent_at)).all() == [None]
    up = FakeProducer()
    relay = OutboxRelay(outbox, sessions, up)
    assert relay.run_once() == 1
    assert relay.run_once() == 0
    (topic, key, event), = up.sent
    assert (topic, key, event.evaluation_id, event.score) == (QA_EVALUATIONS, "agent-1", eid, 75.0)
    with sessions() as s:
        row = s.scalars(select(OutboxRow)).one()
        assert row.sent_at is not None and row.event_id == event.envelope.event_id


def test_event_id_is_stable_across_resends(sessions: sessionmaker[Session]) -> None:
    submit_one(sessions)
    first, second = FakeProducer(), FakeProducer()
    OutboxRelay(outbox, sessions, first).run_once()
    with sessions() as s, s.begin():  # a crash after Kafka confirmed but before the mark: the row goes again
        s.scalars(select(OutboxRow)).one().sent_at = None
    OutboxRelay(outbox, sessions, second).run_once()
    assert first.sent[0][2].envelope.event_id == second.sent[0][2].envelope.event_id


class CommitFails(SqlUnitOfWork):
    def commit(self) -> None:
        raise RuntimeError("the commit fails after the event was staged")


def test_outbox_row_is_in_the_same_transaction(sessions: sessionmaker[Session]) -> None:
    with sessions() as s:
        forms.save_form(SqlUnitOfWork(s), "f", "form", DEFINITION, NOW)
    with pytest.raises(RuntimeError), sessions() as s:
        evaluations.create_evaluation(CommitFails(s), evaluations.NewEvaluation(
            call_id="c", agent_id="a", evaluator_id="q", form_id="f", answers={"a": "yes", "b": "yes"},
            submit=True), NOW)
    with sessions() as s:
        assert s.scalars(select(OutboxRow)).all() == []
        assert s.scalars(select(EvaluationRow)).all() == []


def contact(version: int, agent: str = "agent-1", segment: int = 0) -> kpi_events_pb2.Contact:
    c = kpi_events_pb2.Contact(call_id="call-9", segment=segment, agent_id=agent, queue_id="billing",
                               call_type="PS", version=version, talk_s=60.0)
    c.offered_at.FromDatetime(datetime(2026, 11, 2, 9, 0))
    return c


def test_contacts_are_idempotent_per_call_segment_version(sessions: sessionmaker[Session]) -> None:
    with sessions() as s, s.begin():
        assert store_contacts(s, [contact(1), contact(1), contact(1, segment=1)]) == 2
    with sessions() as s, s.begin():
        assert store_contacts(s, [contact(1)]) == 0
        assert store_contacts(s, [contact(3, agent="agent-3"), contact(2, agent="agent-2")]) == 1
    with sessions() as s, s.begin():
        assert store_contacts(s, [contact(2, agent="agent-2")]) == 0  # older than what is stored
        rows = s.scalars(select(ContactRow).order_by(ContactRow.segment)).all()
        assert [(r.segment, r.version, r.agent_id) for r in rows] == [(0, 3, "agent-3"), (1, 1, "agent-1")]


def test_settings_fail_fast() -> None:
    with pytest.raises(ValidationError, match="DATABASE_URL"):
        QASettings(database_url="mysql://x")
    with pytest.raises(ValidationError, match="needs an agent id"):
        QASettings(api_tokens="agent-token-1:agent")
    with pytest.raises(ValidationError, match="needs a team"):
        QASettings(api_tokens="lead-token-1:team_lead", qa_principals="lead-token-1=someone@")
    with pytest.raises(ValidationError, match="missing from API_TOKENS"):
        QASettings(qa_principals="ghost-token=a@b")
    with pytest.raises(ValidationError, match="TOKEN=PERSON@TEAM"):
        QASettings(qa_principals="tok-without-binding")
    ok = QASettings(api_tokens="agent-token-1:agent", qa_principals="agent-token-1=agent-7@team-2")
    assert ok.principals()["agent-token-1"].team_id == "team-2"


def test_evaluation_event_carries_the_contract_fields(sessions: sessionmaker[Session]) -> None:
    submit_one(sessions)
    with sessions() as s:
        event = qa_events_pb2.EvaluationChanged.FromString(s.scalars(select(OutboxRow.payload)).one())
    assert event.status == qa_events_pb2.EVALUATION_STATUS_SUBMITTED
    assert event.form_id == "f" and event.form_version == 1 and event.revision == 1
    assert event.contact_at.ToDatetime(tzinfo=UTC) == NOW
    assert event.envelope.source == "callstream-qa"


def test_migrations_match_the_models(tmp_path: Path) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from callstream_qa.adapters.orm import Base

    engine = make_engine(f"sqlite:///{tmp_path / 'drift.db'}")
    migrate(engine)
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
