"""Use cases of the QA service: each runs in the caller's transaction (session) and raises domain errors."""

from __future__ import annotations

import statistics
import uuid
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from callstream.qa.v1 import qa_events_pb2
from callstream_qa.adapters import outbox
from callstream_qa.adapters.orm import (
    CalibrationSessionRow,
    CoachingItemRow,
    ContactRow,
    EvaluationRow,
    FormRow,
    PlanItemRow,
    SamplingPlanRow,
)
from callstream_qa.domain import sampling
from callstream_qa.domain.calibration import CalibrationStats, calibration_stats
from callstream_qa.domain.forms import Criterion, Form, FormError, Scale, Section
from callstream_qa.domain.scoring import ScoreResult, score
from callstream_qa.domain.states import SCORED, Status, transition

ABANDONED = 2  # callstream.kpi.v1.CONTACT_OUTCOME_ABANDONED


class NotFound(LookupError):
    pass


class Conflict(Exception):
    pass


def utc(moment: datetime | None) -> datetime | None:
    """SQLite gives naive datetimes back: every stored time is UTC."""
    if moment is None:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


# -- forms ------------------------------------------------------------------------------------------------------
def form_from_definition(form_id: str, version: int, name: str, definition: Mapping[str, Any]) -> Form:
    sections = []
    for s in definition["sections"]:
        criteria = tuple(
            Criterion(criterion_id=c["criterion_id"], label=c.get("label", ""), weight=float(c["weight"]),
                      scale=Scale(c.get("scale", "yes_no")), critical=bool(c.get("critical", False)),
                      max_points=int(c.get("max_points", 0)), allow_na=bool(c.get("allow_na", True)))
            for c in s["criteria"])
        sections.append(Section(section_id=s["section_id"], title=s.get("title", ""), criteria=criteria))
    return Form(form_id=form_id, version=version, name=name, sections=tuple(sections))


def to_form(row: FormRow) -> Form:
    return form_from_definition(row.form_id, row.version, row.name, row.definition)


def latest_form(session: Session, form_id: str) -> FormRow | None:
    return session.scalars(select(FormRow).where(FormRow.form_id == form_id)
                           .order_by(FormRow.version.desc()).limit(1)).first()


def get_form(session: Session, form_id: str, version: int | None = None) -> FormRow:
    row = latest_form(session, form_id) if version is None else session.get(FormRow, (form_id, version))
    if row is None:
        raise NotFound(f"form {form_id!r}" + (f" version {version}" if version else "") + " not found")
    return row


def form_in_use(session: Session, form_id: str, version: int) -> bool:
    used = session.scalar(select(func.count()).select_from(EvaluationRow).where(
        EvaluationRow.form_id == form_id, EvaluationRow.form_version == version))
    return bool(used)


def save_form(session: Session, form_id: str, name: str, definition: dict[str, Any], now: datetime) -> FormRow:
    """Create the form, or edit its newest version: in place while unused, as a new version once in use."""
    current = latest_form(session, form_id)
    version = 1 if current is None else current.version
    if current is not None and form_in_use(session, form_id, current.version):
        version += 1
        current = None
    form_from_definition(form_id, version, name, definition)  # validates (FormError)
    if current is None:
        current = FormRow(form_id=form_id, version=version, created_at=now)
        session.add(current)
    current.name = name
    current.definition = definition
    session.flush()
    return current


# -- evaluations ------------------------------------------------------------------------------------------------
STATUS_PB = {
    Status.DRAFT: qa_events_pb2.EVALUATION_STATUS_DRAFT,
    Status.SUBMITTED: qa_events_pb2.EVALUATION_STATUS_SUBMITTED,
    Status.ACKNOWLEDGED: qa_events_pb2.EVALUATION_STATUS_ACKNOWLEDGED,
    Status.DISPUTED: qa_events_pb2.EVALUATION_STATUS_DISPUTED,
    Status.REVIEWED: qa_events_pb2.EVALUATION_STATUS_REVIEWED,
    Status.DELETED: qa_events_pb2.EVALUATION_STATUS_DELETED,
}


def get_evaluation(session: Session, evaluation_id: str) -> EvaluationRow:
    row = session.get(EvaluationRow, evaluation_id)
    if row is None:
        raise NotFound(f"evaluation {evaluation_id!r} not found")
    return row


def _apply_score(row: EvaluationRow, result: ScoreResult) -> None:
    row.score = result.score
    row.critical_failed = result.critical_failed
    row.criteria = [
        {"criterion_id": c.criterion_id, "answer": c.answer, "points": c.points, "max_points": c.max_points,
         "critical_failed": c.critical_failed, "missed": c.missed} for c in result.criteria]


def _form_of(session: Session, row: EvaluationRow) -> Form:
    return to_form(get_form(session, row.form_id, row.form_version))


@dataclass(frozen=True)
class NewEvaluation:
    call_id: str
    agent_id: str
    evaluator_id: str
    form_id: str
    answers: dict[str, str]
    form_version: int | None = None
    team_id: str = ""
    comments: str = ""
    contact_at: datetime | None = None
    submit: bool = False
    calibration_session_id: str | None = None


def create_evaluation(session: Session, new: NewEvaluation, now: datetime, coaching_days: int = 14) -> EvaluationRow:
    form_row = get_form(session, new.form_id, new.form_version)
    form = to_form(form_row)
    team_id, contact_at = new.team_id, new.contact_at
    contact = session.scalars(select(ContactRow).where(ContactRow.call_id == new.call_id)
                              .order_by(ContactRow.segment)).first()
    if contact is not None:
        team_id = team_id or contact.team_id
        contact_at = contact_at or utc(contact.offered_at)
    row = EvaluationRow(
        evaluation_id=str(uuid.uuid4()), call_id=new.call_id, agent_id=new.agent_id, team_id=team_id,
        evaluator_id=new.evaluator_id, form_id=form.form_id, form_version=form.version, status=Status.DRAFT.value,
        answers=dict(new.answers), comments=new.comments, revision=0,
        calibration_session_id=new.calibration_session_id, contact_at=contact_at, created_at=now, updated_at=now,
    )
    _apply_score(row, score(form, new.answers, complete=False))
    session.add(row)
    session.flush()
    if new.submit:
        act(session, row, "submit", now, coaching_days=coaching_days)
    return row


def update_draft(session: Session, row: EvaluationRow, answers: dict[str, str] | None, comments: str | None,
                 now: datetime) -> EvaluationRow:
    transition(Status(row.status), "update")
    if answers is not None:
        _apply_score(row, score(_form_of(session, row), answers, complete=False))
        row.answers = dict(answers)
    if comments is not None:
        row.comments = comments
    row.updated_at = now
    return row


def act(session: Session, row: EvaluationRow, action: str, now: datetime, *, reason: str = "",
        answers: dict[str, str] | None = None, coaching_days: int = 14) -> EvaluationRow:
    """submit | acknowledge | dispute | review | delete; publishes an event for every non-draft change."""
    before = Status(row.status)
    after = transition(before, action)
    if action == "submit":
        _apply_score(row, score(_form_of(session, row), row.answers, complete=True))
        row.submitted_at = now
        _make_coaching(session, row, now, coaching_days)
    elif action == "review" and answers is not None:
        _apply_score(row, score(_form_of(session, row), answers, complete=True))
        row.answers = dict(answers)
        for item in list(session.scalars(select(CoachingItemRow).where(
                CoachingItemRow.evaluation_id == row.evaluation_id, CoachingItemRow.acknowledged_at.is_(None)))):
            session.delete(item)
        session.flush()
        _make_coaching(session, row, now, coaching_days)
    elif action == "dispute":
        if not reason.strip():
            raise FormError("a dispute needs a reason")
        row.dispute_reason = reason
    if reason and action == "review":
        row.comments = (row.comments + "\n" if row.comments else "") + f"review: {reason}"
    row.status = after.value
    row.updated_at = now
    if before is not Status.DRAFT or after is Status.SUBMITTED:
        row.revision += 1
        outbox.outbox.add(session, outbox.QA_TOPIC, row.agent_id, evaluation_event(row), now)
    session.flush()
    return row


def evaluation_event(row: EvaluationRow) -> qa_events_pb2.EvaluationChanged:
    """The event of `row`'s current state (the outbox fills its envelope)."""
    event = qa_events_pb2.EvaluationChanged(
        agent_id=row.agent_id,
        evaluation_id=row.evaluation_id, call_id=row.call_id, evaluator_id=row.evaluator_id, team_id=row.team_id,
        form_id=row.form_id, form_version=row.form_version, status=STATUS_PB[Status(row.status)], score=row.score,
        critical_failed=row.critical_failed, revision=row.revision,
        calibration=row.calibration_session_id is not None,
    )
    for c in row.criteria:
        event.criteria.add(criterion_id=c["criterion_id"], answer=c["answer"], points=c["points"],
                           max_points=c["max_points"], critical_failed=c["critical_failed"])
    contact_at = utc(row.contact_at)
    if contact_at is not None:
        event.contact_at.FromDatetime(contact_at)
    return event


# -- coaching ---------------------------------------------------------------------------------------------------
def _make_coaching(session: Session, row: EvaluationRow, now: datetime, days: int) -> None:
    if row.calibration_session_id is not None:
        return  # calibration scores judge the evaluators, not the agent
    labels = _form_of(session, row).criteria
    for c in row.criteria:
        if c["missed"]:
            label = labels[c["criterion_id"]].label or c["criterion_id"]
            session.add(CoachingItemRow(
                item_id=str(uuid.uuid4()), evaluation_id=row.evaluation_id, agent_id=row.agent_id,
                team_id=row.team_id, criterion_id=c["criterion_id"],
                note=f"missed: {label}" + (" (critical)" if c["critical_failed"] else ""),
                due_date=(now + timedelta(days=days)).date(), created_at=now))


# -- sampling ---------------------------------------------------------------------------------------------------
def create_plan(session: Session, *, name: str, period_start: date, period_end: date, per_agent: int, seed: int,
                long_call_s: float, now: datetime) -> tuple[SamplingPlanRow, list[sampling.Pick]]:
    if period_end <= period_start:
        raise FormError("period_end must be after period_start")
    start = datetime.combine(period_start, datetime.min.time(), UTC)
    end = datetime.combine(period_end, datetime.min.time(), UTC)
    rows = session.scalars(select(ContactRow).where(ContactRow.offered_at >= start, ContactRow.offered_at < end,
                                                    ContactRow.agent_id != ""))
    records = [sampling.ContactRecord(
        call_id=r.call_id, segment=r.segment, agent_id=r.agent_id, queue_id=r.queue_id, call_type=r.call_type,
        talk_s=r.talk_s, transferred=bool(r.transfer_kind),
        abandoned_after_answer=r.answered and r.outcome == ABANDONED,
    ) for r in rows]
    picks = sampling.sample(records, per_agent, seed, long_call_s)
    plan = SamplingPlanRow(plan_id=str(uuid.uuid4()), name=name, period_start=period_start, period_end=period_end,
                           per_agent=per_agent, seed=seed, long_call_s=long_call_s, created_at=now)
    session.add(plan)
    session.flush()
    session.add_all(PlanItemRow(plan_id=plan.plan_id, call_id=p.call_id, segment=p.segment, agent_id=p.agent_id,
                                stratum=p.stratum) for p in picks)
    session.flush()
    return plan, picks


def get_plan(session: Session, plan_id: str) -> SamplingPlanRow:
    plan = session.get(SamplingPlanRow, plan_id)
    if plan is None:
        raise NotFound(f"sampling plan {plan_id!r} not found")
    return plan


def plan_items(session: Session, plan_id: str) -> list[PlanItemRow]:
    return list(session.scalars(select(PlanItemRow).where(PlanItemRow.plan_id == plan_id)
                                .order_by(PlanItemRow.agent_id, PlanItemRow.call_id, PlanItemRow.segment)))


def _scored_calls(session: Session) -> set[tuple[str, str]]:
    return {(a, c) for a, c in session.execute(select(EvaluationRow.agent_id, EvaluationRow.call_id).where(
        EvaluationRow.status.in_([s.value for s in SCORED]), EvaluationRow.calibration_session_id.is_(None)))}


def coverage(session: Session, plan_id: str) -> list[dict[str, Any]]:
    """Per agent: contacts planned, of them evaluated (a scored evaluation of that call for that agent)."""
    get_plan(session, plan_id)
    done_calls = _scored_calls(session)
    planned: Counter[str] = Counter()
    done: Counter[str] = Counter()
    for item in plan_items(session, plan_id):
        planned[item.agent_id] += 1
        done[item.agent_id] += (item.agent_id, item.call_id) in done_calls
    return [{"agent_id": a, "planned": planned[a], "done": done[a],
             "coverage": round(done[a] / planned[a], 4) if planned[a] else 0.0} for a in sorted(planned)]


# -- calibration ------------------------------------------------------------------------------------------------
def get_session_row(session: Session, session_id: str) -> CalibrationSessionRow:
    row = session.get(CalibrationSessionRow, session_id)
    if row is None:
        raise NotFound(f"calibration session {session_id!r} not found")
    return row


def calibration_report(session: Session, session_id: str) -> tuple[CalibrationSessionRow, CalibrationStats | None]:
    cal = get_session_row(session, session_id)
    scores: dict[str, float] = {}
    for ev in session.scalars(select(EvaluationRow).where(
            EvaluationRow.calibration_session_id == session_id,
            EvaluationRow.status.in_([s.value for s in SCORED])).order_by(EvaluationRow.updated_at)):
        scores[ev.evaluator_id] = ev.score
    if not scores or (cal.reference_evaluator is not None and cal.reference_evaluator not in scores):
        return cal, None
    return cal, calibration_stats(scores, cal.reference_evaluator)


# -- reports ----------------------------------------------------------------------------------------------------
def month_bounds(month: str) -> tuple[datetime, datetime]:
    try:
        start = datetime.strptime(month, "%Y-%m").replace(tzinfo=UTC)
    except ValueError:
        raise FormError(f"month must be YYYY-MM, not {month!r}") from None
    end = (start + timedelta(days=32)).replace(day=1)
    return start, end


def _month_evaluations(session: Session, month: str) -> list[EvaluationRow]:
    start, end = month_bounds(month)
    return list(session.scalars(select(EvaluationRow).where(
        EvaluationRow.status.in_([s.value for s in SCORED]), EvaluationRow.calibration_session_id.is_(None),
        EvaluationRow.submitted_at >= start, EvaluationRow.submitted_at < end)))


def monitoring_report(session: Session, month: str, group_by: str, top: int = 3,
                      rows: Sequence[EvaluationRow] | None = None) -> list[dict[str, Any]]:
    """KPI 12: mean score per agent or team for a month, with the criteria most often missed."""
    groups: dict[str, list[EvaluationRow]] = defaultdict(list)
    for ev in rows if rows is not None else _month_evaluations(session, month):
        groups[ev.agent_id if group_by == "agent" else ev.team_id].append(ev)
    out = []
    for key in sorted(groups):
        evs = groups[key]
        missed = Counter(c["criterion_id"] for ev in evs for c in ev.criteria if c["missed"])
        out.append({
            f"{group_by}_id": key, "month": month, "evaluations": len(evs),
            "monitoring_score": round(statistics.fmean(ev.score for ev in evs), 2),
            "critical_failures": sum(ev.critical_failed for ev in evs),
            "most_missed": [{"criterion_id": c, "misses": n} for c, n in
                            sorted(missed.items(), key=lambda kv: (-kv[1], kv[0]))[:top]],
        })
    return out


def controller_report(session: Session, month: str) -> dict[str, Any]:
    """QA controller KPIs: evaluations done vs plan, calibration deviation, turnaround call -> evaluation."""
    start, end = month_bounds(month)
    evaluations = _month_evaluations(session, month)
    plans = list(session.scalars(select(SamplingPlanRow).where(
        SamplingPlanRow.period_start >= start.date(), SamplingPlanRow.period_start < end.date())))
    planned = done = 0
    for plan in plans:
        for row in coverage(session, plan.plan_id):
            planned += row["planned"]
            done += row["done"]
    deviations = []
    for cal in session.scalars(select(CalibrationSessionRow).where(
            CalibrationSessionRow.created_at >= start, CalibrationSessionRow.created_at < end)):
        _, stats = calibration_report(session, cal.session_id)
        if stats is not None and len(stats.deviations) > 1:
            deviations.append(stats.mean_abs_deviation)
    turnaround = [((utc(ev.submitted_at) or end) - contact_at).total_seconds() / 3600
                  for ev in evaluations if (contact_at := utc(ev.contact_at)) is not None]
    return {
        "month": month, "evaluations_done": len(evaluations), "planned": planned, "planned_done": done,
        "plan_coverage": round(done / planned, 4) if planned else None,
        "calibration_sessions": len(deviations),
        "calibration_mean_abs_deviation": round(statistics.fmean(deviations), 2) if deviations else None,
        "turnaround_hours_mean": round(statistics.fmean(turnaround), 2) if turnaround else None,
        "turnaround_hours_median": round(statistics.median(turnaround), 2) if turnaround else None,
    }
