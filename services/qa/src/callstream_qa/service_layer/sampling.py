"""Sampling plans: contacts of a period drawn per agent (seeded, stratified), and each plan's coverage."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, date, datetime
from typing import Any

from callstream_qa.adapters.orm import PlanItemRow, SamplingPlanRow
from callstream_qa.domain import sampling
from callstream_qa.domain.forms import FormError
from callstream_qa.service_layer.common import NotFound
from callstream_qa.service_layer.unit_of_work import UnitOfWork

ABANDONED = 2  # callstream.kpi.v1.CONTACT_OUTCOME_ABANDONED


def create_plan(uow: UnitOfWork, *, name: str, period_start: date, period_end: date, per_agent: int, seed: int,
                long_call_s: float, now: datetime) -> tuple[SamplingPlanRow, list[sampling.Pick]]:
    if period_end <= period_start:
        raise FormError("period_end must be after period_start")
    start = datetime.combine(period_start, datetime.min.time(), UTC)
    end = datetime.combine(period_end, datetime.min.time(), UTC)
    rows = uow.contacts.offered(start, end)
    records = [sampling.ContactRecord(
        call_id=r.call_id, segment=r.segment, agent_id=r.agent_id, queue_id=r.queue_id, call_type=r.call_type,
        talk_s=r.talk_s, transferred=bool(r.transfer_kind),
        abandoned_after_answer=r.answered and r.outcome == ABANDONED,
    ) for r in rows]
    picks = sampling.sample(records, per_agent, seed, long_call_s)
    plan = SamplingPlanRow(plan_id=str(uuid.uuid4()), name=name, period_start=period_start, period_end=period_end,
                           per_agent=per_agent, seed=seed, long_call_s=long_call_s, created_at=now)
    uow.plans.add(plan, [PlanItemRow(plan_id=plan.plan_id, call_id=p.call_id, segment=p.segment,
                                     agent_id=p.agent_id, stratum=p.stratum) for p in picks])
    uow.commit()
    return plan, picks


def get_plan(uow: UnitOfWork, plan_id: str) -> SamplingPlanRow:
    plan = uow.plans.get(plan_id)
    if plan is None:
        raise NotFound(f"sampling plan {plan_id!r} not found")
    return plan


def coverage(uow: UnitOfWork, plan_id: str) -> list[dict[str, Any]]:
    """Per agent: contacts planned, of them evaluated (a scored evaluation of that call for that agent)."""
    get_plan(uow, plan_id)
    done_calls = uow.evaluations.scored_calls()
    planned: Counter[str] = Counter()
    done: Counter[str] = Counter()
    for item in uow.plans.items(plan_id):
        planned[item.agent_id] += 1
        done[item.agent_id] += (item.agent_id, item.call_id) in done_calls
    return [{"agent_id": a, "planned": planned[a], "done": done[a],
             "coverage": round(done[a] / planned[a], 4) if planned[a] else 0.0} for a in sorted(planned)]
