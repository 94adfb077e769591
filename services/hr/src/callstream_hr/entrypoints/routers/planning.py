"""Attrition (KPI 23) and workforce planning: staffing, shift plans, the forecast and the week's roster."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter, Depends, Query

from callstream_hr.domain.erlang import StaffingResult
from callstream_hr.entrypoints.dependencies import Web
from callstream_hr.entrypoints.schemas import AttritionOut, ForecastOut, PlanWeekOut, PublishedOut, ShiftPlanOut
from callstream_hr.service_layer import attrition, workforce
from callstream_hr.service_layer.commands import ForecastIn, PlanWeekIn, ShiftPlanIn, StaffingIn
from callstream_hr.service_layer.common import Caller
from callstream_hr.service_layer.planning import plan_dict
from callstream_hr.service_layer.unit_of_work import UnitOfWork


def router(web: Web) -> APIRouter:
    api = APIRouter(tags=["attrition and planning"])
    uow = Depends(web.uow())
    hr_mgr = Depends(web.caller("hr", "manager"))
    readers = Depends(web.caller("hr", "manager", "team_lead"))

    @api.get("/v1/attrition", response_model_exclude_unset=True)
    def attrition_rate(period: str = Query("month", pattern="^(month|quarter|year)$"),
                       year: int = Query(ge=2000, le=2100), index: int = Query(1, ge=1, le=12),
                       by: str | None = Query(None, pattern="^(exit_reason|team_lead)$"), agents_only: bool = True,
                       u: UnitOfWork = uow, _c: Caller = hr_mgr) -> AttritionOut:
        found = attrition.attrition(u, period, year, index, by, agents_only)
        out = {"period": period, **asdict(found.total)}
        if found.by is not None:
            out["by"] = {k: asdict(v) for k, v in found.by.items()}
        return AttritionOut.model_validate(out)

    @api.post("/v1/staffing")
    def staffing(body: StaffingIn, _c: Caller = readers) -> StaffingResult:
        return workforce.staffing(body)

    @api.post("/v1/shifts/plan")
    def plan(body: ShiftPlanIn, _c: Caller = hr_mgr) -> ShiftPlanOut:
        return ShiftPlanOut.model_validate(plan_dict(workforce.plan(body)))

    @api.post("/v1/forecast", response_model_exclude_unset=True)
    def forecast(body: ForecastIn, _c: Caller = hr_mgr) -> ForecastOut:
        return ForecastOut.model_validate(workforce.forecast(web.history, body).as_dict())

    @api.post("/v1/plans/week")
    def plan_roster(body: PlanWeekIn, u: UnitOfWork = uow, c: Caller = hr_mgr) -> PlanWeekOut:
        """History -> forecast -> agents -> shifts -> a roster of HR's employees under the given contracts;
        with `publish_as`, published as that schedule."""
        roster, published = workforce.plan_roster(u, web.history, web.targets, body, c)
        out = PlanWeekOut.model_validate(roster.as_dict())
        if published is not None:
            out.published = PublishedOut.model_validate(asdict(published))
        return out

    return api
