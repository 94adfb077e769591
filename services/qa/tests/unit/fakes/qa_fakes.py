"""An in-memory unit of work for the QA use cases (service_layer.unit_of_work): the same records as the SQL
repositories, kept in dicts and lists; `commit` counts and keeps the staged events. Nothing rolls back: a use
case that refuses raises before it changes anything (the tests check that)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime

from google.protobuf.message import Message

from callstream_core.topics import topic as topic_info
from callstream_qa.adapters import orm as m
from callstream_qa.domain.states import SCORED, Status
from callstream_qa.service_layer import unit_of_work as ports


class FakeEvaluations:
    def __init__(self) -> None:
        self.items: dict[str, m.EvaluationRow] = {}

    def get(self, evaluation_id: str) -> m.EvaluationRow | None:
        return self.items.get(evaluation_id)

    def add(self, evaluation: m.EvaluationRow) -> None:
        self.items[evaluation.evaluation_id] = evaluation

    def list(self, where: ports.EvaluationFilter) -> Sequence[m.EvaluationRow]:
        def shown(e: m.EvaluationRow) -> bool:
            agent_view = where.seen_by_agent is None or (
                e.agent_id == where.seen_by_agent and e.status not in ("draft", "deleted"))
            return (e.calibration_session_id is None and agent_view
                    and where.seen_by_team in (None, e.team_id) and where.agent_id in (None, e.agent_id)
                    and where.team_id in (None, e.team_id) and where.status in (None, e.status))

        return sorted((e for e in self.items.values() if shown(e)), key=lambda e: e.created_at)

    def of_calibration(self, session_id: str) -> Sequence[m.EvaluationRow]:
        return sorted((e for e in self.items.values() if e.calibration_session_id == session_id),
                      key=lambda e: e.updated_at)

    def _scored(self) -> Sequence[m.EvaluationRow]:
        return [e for e in self.items.values() if Status(e.status) in SCORED and e.calibration_session_id is None]

    def scored_calls(self) -> set[tuple[str, str]]:
        return {(e.agent_id, e.call_id) for e in self._scored()}

    def scored_submitted(self, start: datetime, end: datetime) -> Sequence[m.EvaluationRow]:
        return [e for e in self._scored() if e.submitted_at is not None and start <= e.submitted_at < end]


class FakeCalibrations:
    def __init__(self) -> None:
        self.items: dict[str, m.CalibrationSessionRow] = {}

    def get(self, session_id: str) -> m.CalibrationSessionRow | None:
        return self.items.get(session_id)

    def add(self, session: m.CalibrationSessionRow) -> None:
        self.items[session.session_id] = session

    def created(self, start: datetime, end: datetime) -> Sequence[m.CalibrationSessionRow]:
        return [c for c in self.items.values() if start <= c.created_at < end]


class FakePlans:
    def __init__(self) -> None:
        self.plan_items: dict[str, m.SamplingPlanRow] = {}
        self.item_rows: list[m.PlanItemRow] = []

    def get(self, plan_id: str) -> m.SamplingPlanRow | None:
        return self.plan_items.get(plan_id)

    def add(self, plan: m.SamplingPlanRow, items: Sequence[m.PlanItemRow]) -> None:
        self.plan_items[plan.plan_id] = plan
        self.item_rows += items

    def items(self, plan_id: str) -> Sequence[m.PlanItemRow]:
        return sorted((i for i in self.item_rows if i.plan_id == plan_id),
                      key=lambda i: (i.agent_id, i.call_id, i.segment))

    def starting(self, start: date, end: date) -> Sequence[m.SamplingPlanRow]:
        return [p for p in self.plan_items.values() if start <= p.period_start < end]


class FakeForms:
    def __init__(self, evaluations: FakeEvaluations) -> None:
        self.items: dict[tuple[str, int], m.FormRow] = {}
        self._evaluations = evaluations

    def get(self, form_id: str, version: int) -> m.FormRow | None:
        return self.items.get((form_id, version))

    def latest(self, form_id: str) -> m.FormRow | None:
        versions = [v for (f, v) in self.items if f == form_id]
        return self.items[(form_id, max(versions))] if versions else None

    def add(self, form: m.FormRow) -> None:
        self.items[(form.form_id, form.version)] = form

    def list(self) -> Sequence[m.FormRow]:
        return [self.items[key] for key in sorted(self.items)]

    def in_use(self, form_id: str, version: int) -> bool:
        return any((e.form_id, e.form_version) == (form_id, version) for e in self._evaluations.items.values())


class FakeContacts:
    def __init__(self) -> None:
        self.items: list[m.ContactRow] = []

    def first_segment(self, call_id: str) -> m.ContactRow | None:
        return min((c for c in self.items if c.call_id == call_id), key=lambda c: c.segment, default=None)

    def offered(self, start: datetime, end: datetime) -> Sequence[m.ContactRow]:
        return [c for c in self.items if start <= c.offered_at < end and c.agent_id != ""]

    def calls_of_team(self, team_id: str) -> set[str]:
        return {c.call_id for c in self.items if c.team_id == team_id}


class FakeCoaching:
    def __init__(self) -> None:
        self.items: list[m.CoachingItemRow] = []

    def get(self, item_id: str) -> m.CoachingItemRow | None:
        return next((i for i in self.items if i.item_id == item_id), None)

    def add(self, item: m.CoachingItemRow) -> None:
        self.items.append(item)

    def list(self, where: ports.CoachingFilter) -> Sequence[m.CoachingItemRow]:
        return sorted((i for i in self.items if where.seen_by_agent in (None, i.agent_id)
                       and where.seen_by_team in (None, i.team_id) and where.agent_id in (None, i.agent_id)
                       and (not where.open_only or i.acknowledged_at is None)),
                      key=lambda i: (i.due_date, i.criterion_id))

    def remove_open(self, evaluation_id: str) -> None:
        self.items = [i for i in self.items if i.evaluation_id != evaluation_id or i.acknowledged_at is not None]


class FakeUnitOfWork(ports.UnitOfWork):
    """The repositories above; `published` holds the events of committed work."""

    # the fakes' own types: the tests read what they hold
    forms: FakeForms
    evaluations: FakeEvaluations
    calibrations: FakeCalibrations
    plans: FakePlans
    contacts: FakeContacts
    coaching: FakeCoaching

    def __init__(self) -> None:
        self.evaluations = evaluations = FakeEvaluations()
        self.forms, self.contacts, self.coaching = FakeForms(evaluations), FakeContacts(), FakeCoaching()
        self.calibrations, self.plans = FakeCalibrations(), FakePlans()
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
