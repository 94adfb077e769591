"""The evaluations use cases (service_layer.evaluations) on the in-memory unit of work: the life cycle
draft -> submitted -> acknowledged, or disputed -> reviewed -> acknowledged (domain/states.py), the score of
the README's formula worked out by hand below, the coaching items of missed criteria, and one outbox event per
non-draft change, committed with it."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from qa_fakes import FakeUnitOfWork

from callstream.qa.v1 import qa_events_pb2
from callstream_qa.adapters.orm import ContactRow
from callstream_qa.domain.forms import FormError
from callstream_qa.domain.states import IllegalTransition
from callstream_qa.service_layer import evaluations, forms
from callstream_qa.service_layer.common import NotFound

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
LATER = NOW + timedelta(hours=5)
TOPIC = "cc.qa-evaluations.v1"  # docs/topics.md
# greet (yes/no, weight 10), verify (yes/no, 20, critical), empathy (1-5, 30), solution (0..4 points, 40)
VOICE = {"sections": [
    {"section_id": "open", "title": "Opening", "criteria": [
        {"criterion_id": "greet", "label": "Greets with name", "weight": 10},
        {"criterion_id": "verify", "label": "Verifies identity", "weight": 20, "critical": True}]},
    {"section_id": "body", "title": "Handling", "criteria": [
        {"criterion_id": "empathy", "label": "Empathy", "weight": 30, "scale": "1-5"},
        {"criterion_id": "solution", "weight": 40, "scale": "points", "max_points": 4}]},
]}
# greet 0/10, verify 20/20, empathy (3-1)/4 * 30 = 15, solution 2/4 * 40 = 20: 55 of 100
MIXED = {"greet": "no", "verify": "yes", "empathy": "3", "solution": "2"}


@pytest.fixture
def uow() -> FakeUnitOfWork:
    unit = FakeUnitOfWork()
    forms.create_form(unit, "voice", "Voice", VOICE, NOW)
    unit.commits = 0
    return unit


def new(answers: dict[str, str], **fields: object) -> evaluations.NewEvaluation:
    return evaluations.NewEvaluation(call_id="call-1", agent_id="agent-7", evaluator_id="qa-1", form_id="voice",
                                     answers=answers, **fields)  # type: ignore[arg-type]


def submitted(uow: FakeUnitOfWork, answers: dict[str, str] = MIXED) -> str:
    return evaluations.create_evaluation(uow, new(answers, submit=True), NOW).evaluation_id


def statuses(uow: FakeUnitOfWork) -> list[tuple[int, float, int]]:
    """(status, score, revision) of each committed event."""
    return [(e.status, e.score, e.revision) for _, _, e, _ in uow.published]  # type: ignore[attr-defined]


def test_a_draft_scores_its_answered_criteria_and_publishes_nothing(uow: FakeUnitOfWork) -> None:
    # greet 10/10 and empathy (3-1)/4 * 30 = 15 of the answered 10 + 30: 25/40 = 62.5
    row = evaluations.create_evaluation(uow, new({"greet": "yes", "empathy": "3"}), NOW)
    assert (row.status, row.score, row.critical_failed, row.revision) == ("draft", 62.5, False, 0)
    assert (row.form_version, row.created_at, row.updated_at, row.submitted_at) == (1, NOW, NOW, None)
    assert uow.evaluations.get(row.evaluation_id) is row
    assert (uow.commits, uow.published, uow.coaching.items) == (1, [], [])


def test_the_stored_contact_gives_team_and_contact_time_unless_the_request_does(uow: FakeUnitOfWork) -> None:
    uow.contacts.items += [
        ContactRow(call_id="call-1", segment=1, team_id="team-late", offered_at=NOW - timedelta(hours=1)),
        ContactRow(call_id="call-1", segment=0, team_id="team-3", offered_at=NOW - timedelta(hours=2)),
    ]
    from_contact = evaluations.create_evaluation(uow, new({}), NOW)
    assert (from_contact.team_id, from_contact.contact_at) == ("team-3", NOW - timedelta(hours=2))
    told = evaluations.create_evaluation(uow, new({}, team_id="team-9", contact_at=NOW - timedelta(days=1)), NOW)
    assert (told.team_id, told.contact_at) == ("team-9", NOW - timedelta(days=1))


def test_submitting_scores_all_criteria_makes_coaching_items_and_publishes(uow: FakeUnitOfWork) -> None:
    row = evaluations.get_evaluation(uow, submitted(uow))
    assert (row.status, row.score, row.critical_failed, row.revision, row.submitted_at) == (
        "submitted", 55.0, False, 1, NOW)
    assert row.criteria[0] == {"criterion_id": "greet", "answer": "no", "points": 0.0, "max_points": 10.0,
                               "critical_failed": False, "missed": True}
    assert [(i.criterion_id, i.note, i.due_date, i.agent_id) for i in uow.coaching.items] == [
        ("greet", "missed: Greets with name", date(2026, 3, 16), "agent-7"),  # 14 days after NOW
        ("empathy", "missed: Empathy", date(2026, 3, 16), "agent-7"),
        ("solution", "missed: solution", date(2026, 3, 16), "agent-7"),  # no label: the criterion id
    ]
    ((topic, key, event, occurred_at),) = uow.published
    assert (topic, key, occurred_at) == (TOPIC, "agent-7", NOW)
    assert isinstance(event, qa_events_pb2.EvaluationChanged)
    assert (event.evaluation_id, event.status, event.score, event.revision, event.calibration) == (
        row.evaluation_id, qa_events_pb2.EVALUATION_STATUS_SUBMITTED, 55.0, 1, False)
    assert [(c.criterion_id, c.points, c.max_points) for c in event.criteria] == [
        ("greet", 0.0, 10.0), ("verify", 20.0, 20.0), ("empathy", 15.0, 30.0), ("solution", 20.0, 40.0)]
    assert uow.commits == 1  # the evaluation, its items and its event: one transaction


def test_a_failed_critical_item_zeroes_the_score(uow: FakeUnitOfWork) -> None:
    # without the critical rule this would be 10 + 0 + 30 + 40 = 80 of 100
    row = evaluations.get_evaluation(uow, submitted(
        uow, {"greet": "yes", "verify": "no", "empathy": "5", "solution": "4"}))
    assert (row.score, row.critical_failed) == (0.0, True)
    assert [i.note for i in uow.coaching.items] == ["missed: Verifies identity (critical)"]
    assert uow.published[0][2].critical_failed  # type: ignore[attr-defined]


def test_not_applicable_drops_the_weight(uow: FakeUnitOfWork) -> None:
    # greet N/A: 20 + 30 + 20 earned of 20 + 30 + 40 = 70/90 = 77.78
    row = evaluations.get_evaluation(uow, submitted(
        uow, {"greet": "na", "verify": "yes", "empathy": "5", "solution": "2"}))
    assert row.score == 77.78
    assert [i.criterion_id for i in uow.coaching.items] == ["solution"]


def test_submitting_an_incomplete_draft_is_refused_and_changes_nothing(uow: FakeUnitOfWork) -> None:
    row = evaluations.create_evaluation(uow, new({"greet": "yes"}), NOW)
    with pytest.raises(FormError, match=r"criteria not answered: \['verify', 'empathy', 'solution'\]"):
        evaluations.act(uow, row, "submit", LATER)
    assert (row.status, row.revision, row.submitted_at, row.score) == ("draft", 0, None, 100.0)
    assert (uow.commits, uow.staged, uow.published, uow.coaching.items) == (1, [], [], [])


def test_a_draft_is_edited_and_rescored_until_submitted(uow: FakeUnitOfWork) -> None:
    row = evaluations.create_evaluation(uow, new({"greet": "yes"}), NOW)
    evaluations.update_draft(uow, row, {"greet": "no", "verify": "yes"}, "first pass", LATER)
    # greet 0/10, verify 20/20: 20/30 = 66.67
    assert (row.answers, row.score, row.comments, row.updated_at) == (
        {"greet": "no", "verify": "yes"}, 66.67, "first pass", LATER)
    evaluations.update_draft(uow, row, None, "second pass", LATER)  # comments only: answers kept
    assert (row.answers, row.comments) == ({"greet": "no", "verify": "yes"}, "second pass")
    assert (uow.commits, uow.published) == (3, [])
    evaluations.update_draft(uow, row, MIXED, None, LATER)
    evaluations.act(uow, row, "submit", LATER)
    assert (row.status, row.score) == ("submitted", 55.0)
    with pytest.raises(IllegalTransition, match="cannot update an evaluation that is submitted"):
        evaluations.update_draft(uow, row, {"greet": "yes"}, None, LATER)
    assert row.answers == MIXED


def test_dispute_needs_a_reason_then_review_rescores_and_replaces_open_coaching(uow: FakeUnitOfWork) -> None:
    row = evaluations.get_evaluation(uow, submitted(uow))
    with pytest.raises(FormError, match="a dispute needs a reason"):
        evaluations.act(uow, row, "dispute", LATER, reason="  ")
    assert (row.status, row.revision, len(uow.published)) == ("submitted", 1, 1)

    greet_item = uow.coaching.items[0]
    greet_item.acknowledged_at = LATER  # the agent acknowledged this one: it stays
    evaluations.act(uow, row, "dispute", LATER, reason="I did greet")
    assert (row.status, row.dispute_reason, row.revision) == ("disputed", "I did greet", 2)

    # reviewed: greet 10 + verify 20 + empathy 30 + solution 3/4 * 40 = 30: 90 of 100
    review = {"greet": "yes", "verify": "yes", "empathy": "5", "solution": "3"}
    evaluations.act(uow, row, "review", LATER, reason="greeting heard", answers=review)
    assert (row.status, row.score, row.answers, row.revision) == ("reviewed", 90.0, review, 3)
    assert row.comments == "review: greeting heard"
    assert [(i.criterion_id, i.acknowledged_at) for i in uow.coaching.items] == [
        ("greet", LATER), ("solution", None)]

    evaluations.act(uow, row, "acknowledge", LATER)
    assert (row.status, row.revision) == ("acknowledged", 4)
    pb = qa_events_pb2
    assert statuses(uow) == [
        (pb.EVALUATION_STATUS_SUBMITTED, 55.0, 1), (pb.EVALUATION_STATUS_DISPUTED, 55.0, 2),
        (pb.EVALUATION_STATUS_REVIEWED, 90.0, 3), (pb.EVALUATION_STATUS_ACKNOWLEDGED, 90.0, 4)]
    assert uow.staged == []


def test_a_review_without_answers_keeps_score_and_appends_its_reason(uow: FakeUnitOfWork) -> None:
    row = evaluations.get_evaluation(uow, submitted(uow))
    row.comments = "call was noisy"
    evaluations.act(uow, row, "dispute", LATER, reason="unfair")
    evaluations.act(uow, row, "review", LATER, reason="score stands")
    assert (row.status, row.score, row.answers) == ("reviewed", 55.0, MIXED)
    assert row.comments == "call was noisy\nreview: score stands"
    assert len(uow.coaching.items) == 3  # unchanged: no new answers


@pytest.mark.parametrize(("path", "refused"), [
    ((), "acknowledge"),  # a draft
    ((), "review"),
    (("submit",), "submit"),
    (("submit",), "review"),  # only a disputed evaluation is reviewed
    (("submit",), "delete"),  # only drafts are deleted
    (("submit", "acknowledge"), "dispute"),
    (("delete",), "submit"),
])
def test_illegal_transitions_are_refused_without_an_event(uow: FakeUnitOfWork, path: tuple[str, ...],
                                                          refused: str) -> None:
    row = evaluations.create_evaluation(uow, new(MIXED), NOW)
    for action in path:
        evaluations.act(uow, row, action, NOW, reason="why")
    before = (row.status, row.revision, len(uow.published), uow.commits)
    with pytest.raises(IllegalTransition, match=f"cannot {refused} an evaluation that is {row.status}"):
        evaluations.act(uow, row, refused, LATER, reason="why")
    assert (row.status, row.revision, len(uow.published), uow.commits) == before


def test_deleting_a_draft_publishes_nothing(uow: FakeUnitOfWork) -> None:
    row = evaluations.create_evaluation(uow, new(MIXED), NOW)
    evaluations.act(uow, row, "delete", LATER)
    assert (row.status, row.revision, uow.published) == ("deleted", 0, [])


def test_a_calibration_score_makes_no_coaching_and_is_flagged(uow: FakeUnitOfWork) -> None:
    row = evaluations.create_evaluation(uow, new(MIXED, submit=True, calibration_session_id="cal-1"), NOW)
    assert (row.status, row.score) == ("submitted", 55.0)
    assert uow.coaching.items == []  # it judges the evaluator, not the agent
    assert uow.published[0][2].calibration  # type: ignore[attr-defined]


def test_coaching_is_due_after_the_configured_days(uow: FakeUnitOfWork) -> None:
    evaluations.create_evaluation(uow, new(MIXED, submit=True), NOW, coaching_days=3)
    assert {i.due_date for i in uow.coaching.items} == {date(2026, 3, 5)}


def test_unknown_evaluation_form_or_criterion_is_refused(uow: FakeUnitOfWork) -> None:
    with pytest.raises(NotFound, match="evaluation 'nope' not found"):
        evaluations.get_evaluation(uow, "nope")
    with pytest.raises(NotFound, match="form 'voice' version 2 not found"):
        evaluations.create_evaluation(uow, new({}, form_version=2), NOW)
    with pytest.raises(FormError, match=r"not on form voice v1: \['tone'\]"):
        evaluations.create_evaluation(uow, new({"tone": "yes"}), NOW)
    assert (uow.evaluations.items, uow.commits) == ({}, 0)
