"""Coaching items (from failed criteria): list, and the agent's acknowledgement."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from sqlalchemy import select
from sqlalchemy.orm import Session

from callstream_core.db import now
from callstream_qa.adapters.orm import CoachingItemRow
from callstream_qa.entrypoints.dependencies import Caller, as_agent, as_db, as_reader, visible
from callstream_qa.service_layer import common

router = APIRouter(tags=["coaching"])


def coaching_json(row: CoachingItemRow) -> dict[str, Any]:
    return {"item_id": row.item_id, "evaluation_id": row.evaluation_id, "agent_id": row.agent_id,
            "team_id": row.team_id, "criterion_id": row.criterion_id, "note": row.note,
            "due_date": row.due_date.isoformat(), "acknowledged_at": common.utc(row.acknowledged_at)}


@router.get("/coaching")
def list_coaching(agent_id: str | None = None, open_only: bool = False, caller: Caller = as_reader,
                  s: Session = as_db) -> list[dict[str, Any]]:
    query = select(CoachingItemRow)
    if caller.role == "agent":
        query = query.where(CoachingItemRow.agent_id == caller.person_id)
    elif caller.role == "team_lead":
        query = query.where(CoachingItemRow.team_id == caller.team_id)
    if agent_id:
        query = query.where(CoachingItemRow.agent_id == agent_id)
    if open_only:
        query = query.where(CoachingItemRow.acknowledged_at.is_(None))
    rows = s.scalars(query.order_by(CoachingItemRow.due_date, CoachingItemRow.criterion_id))
    return [coaching_json(r) for r in rows]


@router.post("/coaching/{item_id}/acknowledge")
def acknowledge_coaching(item_id: str, caller: Caller = as_agent, s: Session = as_db) -> dict[str, Any]:
    row = s.get(CoachingItemRow, item_id)
    if row is None:
        raise common.NotFound(f"coaching item {item_id!r} not found")
    visible(caller, row.agent_id, row.team_id)
    if row.acknowledged_at is not None:
        raise common.Conflict("coaching item already acknowledged")
    row.acknowledged_at = now()
    return coaching_json(row)
