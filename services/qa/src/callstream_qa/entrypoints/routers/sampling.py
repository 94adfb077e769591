"""Contacts (the sampling frame) and sampling plans: import, plan, read, coverage."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from google.protobuf import json_format
from sqlalchemy.orm import Session

from callstream.kpi.v1 import kpi_events_pb2
from callstream_core.db import now
from callstream_qa.adapters.contacts import store_contacts
from callstream_qa.entrypoints.dependencies import Caller, as_db, as_lead, as_qa, as_uow
from callstream_qa.entrypoints.schemas import ContactsWrittenOut, CoverageOut, PlanCreatedOut, PlanIn, PlanOut
from callstream_qa.service_layer import sampling
from callstream_qa.service_layer.unit_of_work import UnitOfWork

router = APIRouter(tags=["sampling"])


@router.post("/contacts", response_model=ContactsWrittenOut)
def import_contacts(contacts: list[dict[str, Any]], caller: Caller = as_qa, s: Session = as_db) -> dict[str, int]:
    """Contacts in the protobuf JSON mapping of callstream.kpi.v1.Contact (the topic consumer does the same)."""
    parsed = []
    for i, item in enumerate(contacts):
        try:
            parsed.append(json_format.ParseDict(item, kpi_events_pb2.Contact()))
        except json_format.ParseError as exc:
            return JSONResponse({"detail": [{"loc": ["body", i], "msg": str(exc), "type": "value_error"}]},
                                status_code=422)  # type: ignore[return-value]
    return {"written": store_contacts(s, parsed)}


@router.post("/sampling-plans", status_code=201, response_model=PlanCreatedOut)
def create_plan(body: PlanIn, caller: Caller = as_qa, uow: UnitOfWork = as_uow) -> dict[str, Any]:
    plan, picks = sampling.create_plan(uow, name=body.name, period_start=body.period_start,
                                       period_end=body.period_end, per_agent=body.per_agent, seed=body.seed,
                                       long_call_s=body.long_call_s, now=now())
    return {"plan_id": plan.plan_id, "name": plan.name, "seed": plan.seed, "per_agent": plan.per_agent,
            "items": [{"agent_id": p.agent_id, "call_id": p.call_id, "segment": p.segment,
                       "stratum": p.stratum} for p in picks]}


@router.get("/sampling-plans/{plan_id}", response_model=PlanOut)
def read_plan(plan_id: str, caller: Caller = as_lead, uow: UnitOfWork = as_uow) -> dict[str, Any]:
    plan = sampling.get_plan(uow, plan_id)
    items = uow.plans.items(plan_id)
    if caller.role == "team_lead":  # a team lead sees the picks of the team's contacts only
        team_calls = uow.contacts.calls_of_team(caller.team_id)
        items = [i for i in items if i.call_id in team_calls]
    return {"plan_id": plan.plan_id, "name": plan.name, "period_start": plan.period_start.isoformat(),
            "period_end": plan.period_end.isoformat(), "per_agent": plan.per_agent, "seed": plan.seed,
            "items": [{"agent_id": i.agent_id, "call_id": i.call_id, "segment": i.segment,
                       "stratum": i.stratum} for i in items]}


@router.get("/sampling-plans/{plan_id}/coverage", response_model=list[CoverageOut])
def plan_coverage(plan_id: str, caller: Caller = as_lead, uow: UnitOfWork = as_uow) -> list[dict[str, Any]]:
    return sampling.coverage(uow, plan_id)
