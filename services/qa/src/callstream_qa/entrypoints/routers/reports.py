"""QA reports: the monitoring score per agent or team, and the QA controller's month."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, HTTPException, status
from sqlalchemy.orm import Session

from callstream_qa.entrypoints.dependencies import Caller, as_db, as_qa_manager, as_reader
from callstream_qa.service_layer import reports

router = APIRouter(tags=["reports"])


@router.get("/reports/monitoring")
def monitoring(month: str, group_by: Literal["agent", "team"] = "agent", caller: Caller = as_reader,
               s: Session = as_db) -> list[dict[str, Any]]:
    rows = [ev for ev in reports.month_evaluations(s, month) if caller.may_see(ev.agent_id, ev.team_id)]
    if caller.role == "agent" and group_by == "team":
        raise HTTPException(status.HTTP_403_FORBIDDEN, "agents see their own monitoring score only")
    return reports.monitoring_report(s, month, group_by, rows=rows)


@router.get("/reports/qa-controller")
def controller(month: str, caller: Caller = as_qa_manager, s: Session = as_db) -> dict[str, Any]:
    return reports.controller_report(s, month)
