"""The calibration, coaching, sampling and report use cases on the in-memory unit of work. A two-criterion form
(a: critical, b; yes/no, weight 1 each) gives scores 100 (both yes), 50 (b missed) and 0 (a missed): the
figures below follow from those by hand."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from qa_fakes import FakeUnitOfWork

from callstream_qa.adapters.orm import ContactRow, PlanItemRow, SamplingPlanRow
from callstream_qa.domain.forms import FormError
from callstream_qa.service_layer import calibration, evaluations, forms, reports, sampling
from callstream_qa.service_layer.common import Conflict, NotFound

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
LATER = NOW + timedelta(hours=1)
FORM = {"sections": [{"section_id": "s", "criteria": [
    {"criterion_id": "a", "weight": 1, "critical": True}, {"criterion_id": "b", "weight": 1}]}]}
FULL, HALF, ZERO = {"a": "yes", "b": "yes"}, {"a": "yes", "b": "no"}, {"a": "no", "b": "yes"}


@pytest.fixture
def uow() -> FakeUnitOfWork:
    unit = FakeUnitOfWork()
    forms.create_form(unit, "f", "Form", FORM, NOW)
    return unit


def evaluate(uow: FakeUnitOfWork, agent: str, call: str, answers: dict[str, str], at: datetime = NOW,
             submit: bool = True, contact_at: datetime | None = None) -> str:
    return evaluations.create_evaluation(uow, evaluations.NewEvaluation(
        call_id=call, agent_id=agent, evaluator_id="qa-1", form_id="f", answers=answers, submit=submit,
        team_id=f"team-{agent}", contact_at=contact_at), at).evaluation_id


def test_calibration_scores_against_the_mean_or_the_reference(uow: FakeUnitOfWork) -> None:
    cal = calibration.open_session(uow, call_id="c1", agent_id="a1", form_id="f", form_version=None,
                                   reference_evaluator=None, now=NOW)
    assert (cal.form_version, calibration.calibration_report(uow, cal.session_id)[1]) == (1, None)
    calibration.add_score(uow, cal.session_id, "q1", FULL, "", NOW)
    calibration.add_score(uow, cal.session_id, "q2", HALF, "", LATER)
    _, stats = calibration.calibration_report(uow, cal.session_id)
    assert stats is not None
    # mean 75; spread 100 - 50; population stdev of (100, 50) = 25; |+25| and |-25| average 25
    assert (stats.consensus, stats.spread, stats.stdev, stats.deviations, stats.mean_abs_deviation) == (
        75.0, 50.0, 25.0, {"q1": 25.0, "q2": -25.0}, 25.0)
    assert uow.coaching.items == []  # calibration judges the evaluators
    assert [e.calibration for _, _, e, _ in uow.published] == [True, True]  # type: ignore[attr-defined]
    with pytest.raises(Conflict, match="'q1' has already scored"):
        calibration.add_score(uow, cal.session_id, "q1", HALF, "", LATER)
    assert len(uow.evaluations.of_calibration(cal.session_id)) == 2


def test_a_reference_evaluator_is_the_consensus_once_scored(uow: FakeUnitOfWork) -> None:
    cal = calibration.open_session(uow, call_id="c1", agent_id="a1", form_id="f", form_version=1,
                                   reference_evaluator="lead-qa", now=NOW)
    calibration.add_score(uow, cal.session_id, "q2", HALF, "", NOW)
    assert calibration.calibration_report(uow, cal.session_id)[1] is None  # the reference has not scored
    calibration.add_score(uow, cal.session_id, "lead-qa", FULL, "", LATER)
    _, stats = calibration.calibration_report(uow, cal.session_id)
    assert stats is not None
    # consensus = the reference's 100; q2 is 50 below; the reference's own 0 is not averaged
    assert (stats.consensus, stats.deviations, stats.mean_abs_deviation) == (
        100.0, {"lead-qa": 0.0, "q2": -50.0}, 50.0)


def test_unknown_calibration_session_or_form(uow: FakeUnitOfWork) -> None:
    with pytest.raises(NotFound, match="calibration session 'nope' not found"):
        calibration.add_score(uow, "nope", "q1", FULL, "", NOW)
    with pytest.raises(NotFound, match="form 'g' not found"):
        calibration.open_session(uow, call_id="c1", agent_id="a1", form_id="g", form_version=None,
                                 reference_evaluator=None, now=NOW)
    assert uow.calibrations.items == {}


def test_a_coaching_item_is_acknowledged_once(uow: FakeUnitOfWork) -> None:
    evaluate(uow, "a1", "c1", HALF)
    (item,) = uow.coaching.items
    commits = uow.commits
    evaluations.acknowledge_coaching(uow, evaluations.get_coaching_item(uow, item.item_id), LATER)
    assert (item.acknowledged_at, uow.commits) == (LATER, commits + 1)
    with pytest.raises(Conflict, match="already acknowledged"):
        evaluations.acknowledge_coaching(uow, item, LATER + timedelta(hours=1))
    assert item.acknowledged_at == LATER
    with pytest.raises(NotFound, match="coaching item 'nope' not found"):
        evaluations.get_coaching_item(uow, "nope")


def test_coverage_counts_scored_evaluations_of_planned_calls(uow: FakeUnitOfWork) -> None:
    uow.plans.add(SamplingPlanRow(plan_id="p1", name="March", period_start=date(2026, 3, 1),
                                  period_end=date(2026, 4, 1), per_agent=2, seed=1, long_call_s=600.0,
                                  created_at=NOW),
                  [PlanItemRow(plan_id="p1", call_id=c, segment=0, agent_id=a, stratum="x")
                   for a, c in [("a1", "c1"), ("a1", "c2"), ("a2", "c3")]])
    evaluate(uow, "a1", "c1", HALF)  # scored: counts
    evaluate(uow, "a2", "c3", FULL, submit=False)  # a draft: does not
    evaluate(uow, "a2", "c1", FULL)  # another agent's evaluation of a1's call: does not
    assert sampling.coverage(uow, "p1") == [
        {"agent_id": "a1", "planned": 2, "done": 1, "coverage": 0.5},
        {"agent_id": "a2", "planned": 1, "done": 0, "coverage": 0.0}]
    with pytest.raises(NotFound, match="sampling plan 'p2' not found"):
        sampling.coverage(uow, "p2")


def test_a_plan_samples_the_period_contacts_that_reached_an_agent(uow: FakeUnitOfWork) -> None:
    def contact(call: str, agent: str, offered: datetime) -> ContactRow:
        return ContactRow(call_id=call, segment=0, agent_id=agent, team_id="t", queue_id="q", call_type="",
                          talk_s=60.0, transfer_kind="", answered=True, outcome=1, offered_at=offered)

    uow.contacts.items += [contact("c1", "a1", NOW), contact("c2", "a1", NOW + timedelta(days=3)),
                           contact("c3", "", NOW),  # abandoned before an agent: not in the frame
                           contact("c4", "a2", datetime(2026, 4, 1, tzinfo=UTC))]  # after the period
    plan, picks = sampling.create_plan(uow, name="March", period_start=date(2026, 3, 1),
                                       period_end=date(2026, 4, 1), per_agent=5, seed=7, long_call_s=600.0,
                                       now=NOW)
    assert sorted((p.agent_id, p.call_id) for p in picks) == [("a1", "c1"), ("a1", "c2")]  # fewer than 5
    assert [(i.agent_id, i.call_id) for i in uow.plans.items(plan.plan_id)] == [("a1", "c1"), ("a1", "c2")]
    with pytest.raises(FormError, match="period_end must be after period_start"):
        sampling.create_plan(uow, name="x", period_start=date(2026, 3, 1), period_end=date(2026, 3, 1),
                             per_agent=1, seed=1, long_call_s=600.0, now=NOW)
    assert list(uow.plans.plan_items) == [plan.plan_id]


def test_monitoring_report_per_agent_for_the_month(uow: FakeUnitOfWork) -> None:
    evaluate(uow, "a1", "c1", FULL)
    evaluate(uow, "a1", "c2", HALF)
    evaluate(uow, "a2", "c3", ZERO)
    evaluate(uow, "a2", "c4", HALF, submit=False)  # a draft
    evaluate(uow, "a2", "c5", FULL, at=datetime(2026, 4, 1, tzinfo=UTC))  # next month
    assert reports.monitoring_report(uow, "2026-03", "agent") == [
        {"agent_id": "a1", "month": "2026-03", "evaluations": 2, "monitoring_score": 75.0,  # (100 + 50) / 2
         "critical_failures": 0, "most_missed": [{"criterion_id": "b", "misses": 1}]},
        {"agent_id": "a2", "month": "2026-03", "evaluations": 1, "monitoring_score": 0.0,
         "critical_failures": 1, "most_missed": [{"criterion_id": "a", "misses": 1}]},
    ]


def test_controller_report(uow: FakeUnitOfWork) -> None:
    evaluate(uow, "a1", "c1", FULL, contact_at=NOW - timedelta(hours=2))
    evaluate(uow, "a2", "c2", HALF, contact_at=NOW - timedelta(hours=6))
    uow.plans.add(SamplingPlanRow(plan_id="p1", name="March", period_start=date(2026, 3, 1),
                                  period_end=date(2026, 4, 1), per_agent=2, seed=1, long_call_s=600.0,
                                  created_at=NOW),
                  [PlanItemRow(plan_id="p1", call_id=c, segment=0, agent_id=a, stratum="x")
                   for a, c in [("a1", "c1"), ("a1", "c9"), ("a2", "c8"), ("a3", "c7")]])
    cal = calibration.open_session(uow, call_id="c1", agent_id="a1", form_id="f", form_version=None,
                                   reference_evaluator=None, now=NOW)
    calibration.add_score(uow, cal.session_id, "q1", FULL, "", NOW)
    calibration.add_score(uow, cal.session_id, "q2", ZERO, "", NOW)
    lone = calibration.open_session(uow, call_id="c2", agent_id="a2", form_id="f", form_version=None,
                                    reference_evaluator=None, now=NOW)
    calibration.add_score(uow, lone.session_id, "q1", FULL, "", NOW)  # one score: no deviation to count
    assert reports.controller_report(uow, "2026-03") == {
        "month": "2026-03", "evaluations_done": 2, "planned": 4, "planned_done": 1, "plan_coverage": 0.25,
        "calibration_sessions": 1, "calibration_mean_abs_deviation": 50.0,  # 100 and 0 around their mean 50
        "turnaround_hours_mean": 4.0, "turnaround_hours_median": 4.0,  # 2 h and 6 h
    }
