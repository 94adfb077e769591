"""Teams, rows and the organisation report."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter, Depends

from callstream_hr.entrypoints.dependencies import Web
from callstream_hr.entrypoints.schemas import OrgReportOut, RowListedOut, RowOut, TeamChangedOut, TeamListedOut, TeamOut
from callstream_hr.service_layer import organisation
from callstream_hr.service_layer.commands import RowChangeIn, RowIn, TeamChangeIn, TeamIn
from callstream_hr.service_layer.common import Caller
from callstream_hr.service_layer.unit_of_work import UnitOfWork


def router(web: Web) -> APIRouter:
    api = APIRouter(tags=["organisation"])
    uow = Depends(web.uow())
    hr = Depends(web.caller("hr"))
    readers = Depends(web.caller("hr", "manager", "team_lead"))

    @api.post("/v1/teams", status_code=201)
    def create_team(body: TeamIn, u: UnitOfWork = uow, _c: Caller = hr) -> TeamOut:
        team = organisation.create_team(u, body)
        return TeamOut(id=team.id, name=team.name, lead_id=team.lead_id)

    @api.post("/v1/rows", status_code=201)
    def create_row(body: RowIn, u: UnitOfWork = uow, _c: Caller = hr) -> RowOut:
        row = organisation.create_row(u, body)
        return RowOut(id=row.id, team_id=row.team_id, senior_id=row.senior_id)

    @api.put("/v1/teams/{team_id}")
    def change_team(team_id: str, body: TeamChangeIn, u: UnitOfWork = uow, c: Caller = hr) -> TeamChangedOut:
        done = organisation.change_team(u, team_id, body, c)
        return TeamChangedOut(id=done.team.id, name=done.team.name, lead_id=done.team.lead_id,
                              members_with_new_lead=done.members_with_new_lead)

    @api.put("/v1/rows/{row_id}")
    def change_row(row_id: str, body: RowChangeIn, u: UnitOfWork = uow, _c: Caller = hr) -> RowOut:
        row = organisation.change_row(u, row_id, body)
        return RowOut(id=row.id, team_id=row.team_id, senior_id=row.senior_id)

    @api.get("/v1/org/report")
    def org_report(u: UnitOfWork = uow, _c: Caller = readers) -> OrgReportOut:
        report = organisation.org_report(u)
        return OrgReportOut.model_validate({"teams": report.team_agents, "rows": report.row_agents,
                                            "warnings": [asdict(w) for w in report.warnings]})

    @api.get("/v1/teams")
    def list_teams(u: UnitOfWork = uow, _c: Caller = readers) -> list[TeamListedOut]:
        return [TeamListedOut(id=t.id, name=t.name, lead_id=t.lead_id, agents=n)
                for t, n in organisation.list_teams(u)]

    @api.get("/v1/rows")
    def list_rows(team_id: str | None = None, u: UnitOfWork = uow, _c: Caller = readers) -> list[RowListedOut]:
        return [RowListedOut(id=r.id, team_id=r.team_id, senior_id=r.senior_id, agents=n)
                for r, n in organisation.list_rows(u, team_id)]

    return api
