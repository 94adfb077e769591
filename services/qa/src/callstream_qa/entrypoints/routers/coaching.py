"""Coaching items (from failed criteria): list, and the agent's acknowledgement."""

from __future__ import annotations

from fastapi import APIRouter

from callstream_core.db import now
from callstream_qa.adapters.orm import CoachingItemRow
from callstream_qa.entrypoints.dependencies import Caller, as_agent, as_reader, as_uow, visible
from callstream_qa.entrypoints.schemas import CoachingItemOut
from callstream_qa.service_layer import common, evaluations
from callstream_qa.service_layer.unit_of_work import CoachingFilter, UnitOfWork

router = APIRouter(tags=["coaching"])


def coaching_json(row: CoachingItemRow) -> CoachingItemOut:
    return CoachingItemOut(
        item_id=row.item_id, evaluation_id=row.evaluation_id, agent_id=row.agent_id, team_id=row.team_id,
        criterion_id=row.criterion_id, note=row.note, due_date=row.due_date,
        acknowledged_at=common.utc(row.acknowledged_at))


@router.get("/coaching")
def list_coaching(agent_id: str | None = None, open_only: bool = False, caller: Caller = as_reader,
                  uow: UnitOfWork = as_uow) -> list[CoachingItemOut]:
    where = CoachingFilter(agent_id=agent_id or None, open_only=open_only,
                           seen_by_agent=caller.person_id if caller.role == "agent" else None,
                           seen_by_team=caller.team_id if caller.role == "team_lead" else None)
    return [coaching_json(r) for r in uow.coaching.list(where)]


@router.post("/coaching/{item_id}/acknowledge")
def acknowledge_coaching(item_id: str, caller: Caller = as_agent, uow: UnitOfWork = as_uow) -> CoachingItemOut:
    row = evaluations.get_coaching_item(uow, item_id)
    visible(caller, row.agent_id, row.team_id)
    return coaching_json(evaluations.acknowledge_coaching(uow, row, now()))
