"""An in-memory unit of work for the QA use cases (service_layer.unit_of_work): the same records as the SQL
repositories, kept in dicts and lists; `commit` counts and keeps the staged events. Nothing rolls back: a use
case that refuses raises before it changes anything (the tests check that)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from google.protobuf.message import Message

from callstream_core.topics import topic as topic_info
from callstream_qa.adapters.orm import CoachingItemRow, ContactRow, EvaluationRow, FormRow
from callstream_qa.service_layer import unit_of_work as ports


class FakeEvaluations:
    def __init__(self) -> None:
        self.items: dict[str, EvaluationRow] = {}

    def get(self, evaluation_id: str) -> EvaluationRow | None:
        return self.items.get(evaluation_id)

    def add(self, evaluation: EvaluationRow) -> None:
        self.items[evaluation.evaluation_id] = evaluation

    def list(self, where: ports.EvaluationFilter) -> Sequence[EvaluationRow]:
        def shown(e: EvaluationRow) -> bool:
            agent_view = where.seen_by_agent is None or (
                e.agent_id == where.seen_by_agent and e.status not in ("draft", "deleted"))
            return (e.calibration_session_id is None and agent_view
                    and where.seen_by_team in (None, e.team_id) and where.agent_id in (None, e.agent_id)
                    and where.team_id in (None, e.team_id) and where.status in (None, e.status))

        return sorted((e for e in self.items.values() if shown(e)), key=lambda e: e.created_at)


class FakeForms:
    def __init__(self, evaluations: FakeEvaluations) -> None:
        self.items: dict[tuple[str, int], FormRow] = {}
        self._evaluations = evaluations

    def get(self, form_id: str, version: int) -> FormRow | None:
        return self.items.get((form_id, version))

    def latest(self, form_id: str) -> FormRow | None:
        versions = [v for (f, v) in self.items if f == form_id]
        return self.items[(form_id, max(versions))] if versions else None

    def add(self, form: FormRow) -> None:
        self.items[(form.form_id, form.version)] = form

    def list(self) -> Sequence[FormRow]:
        return [self.items[key] for key in sorted(self.items)]

    def in_use(self, form_id: str, version: int) -> bool:
        return any((e.form_id, e.form_version) == (form_id, version) for e in self._evaluations.items.values())


class FakeContacts:
    def __init__(self) -> None:
        self.items: list[ContactRow] = []

    def first_segment(self, call_id: str) -> ContactRow | None:
        return min((c for c in self.items if c.call_id == call_id), key=lambda c: c.segment, default=None)


class FakeCoaching:
    def __init__(self) -> None:
        self.items: list[CoachingItemRow] = []

    def add(self, item: CoachingItemRow) -> None:
        self.items.append(item)

    def remove_open(self, evaluation_id: str) -> None:
        self.items = [i for i in self.items if i.evaluation_id != evaluation_id or i.acknowledged_at is not None]


class FakeUnitOfWork(ports.UnitOfWork):
    """The repositories above; `published` holds the events of committed work."""

    # the fakes' own types: the tests read what they hold
    forms: FakeForms
    evaluations: FakeEvaluations
    contacts: FakeContacts
    coaching: FakeCoaching

    def __init__(self) -> None:
        self.evaluations = evaluations = FakeEvaluations()
        self.forms, self.contacts, self.coaching = FakeForms(evaluations), FakeContacts(), FakeCoaching()
        self.staged: list[tuple[str, str, Message, datetime | None]] = []
        self.published: list[tuple[str, str, Message, datetime | None]] = []
        self.commits = 0

    def publish(self, topic: str, key: str, message: Message, occurred_at: datetime | None = None) -> None:
        # the outbox's own check (callstream_core.outbox): a topic carries one message type
        assert isinstance(message, topic_info(topic).message_type), (topic, type(message))
        self.staged.append((topic, key, message, occurred_at))

    def commit(self) -> None:
        self.commits += 1
        self.published += self.staged
        self.staged = []
