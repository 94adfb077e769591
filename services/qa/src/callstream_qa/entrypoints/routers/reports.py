"""QA reports: the monitoring score per agent or team, and the QA controller's month."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, HTTPException, status

from callstream_qa.entrypoints.dependencies import Caller, as_qa_manager, as_reader, as_uow
from callstream_qa.entrypoints.schemas import AgentMonitoringOut, ControllerOut, TeamMonitoringOut
from callstream_qa.service_layer import reports
from callstream_qa.service_layer.unit_of_work import UnitOfWork

router = APIRouter(tags=["reports"])


@router.get("/reports/monitoring", response_model=list[AgentMonitoringOut | TeamMonitoringOut])
def monitoring(month: str, group_by: Literal["agent", "team"] = "agent", caller: Caller = as_reader,
               uow: UnitOfWork = as_uow) -> list[dict[str, Any]]:
    rows = [ev for ev in reports.month_evaluations(uow, month) if caller.may_see(ev.agent_id, ev.team_id)]
    if caller.role == "agent" and group_by == "team":
        raise HTTPException(status.HTTP_403_FORBIDDEN, "agents see their own monitoring score only")
    return reports.monitoring_report(uow, month, group_by, rows=rows)


@router.get("/reports/qa-controller", response_model=ControllerOut)
def controller(month: str, caller: Caller = as_qa_manager, uow: UnitOfWork = as_uow) -> dict[str, Any]:
    return reports.controller_report(uow, month)
