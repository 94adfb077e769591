"""`POST /v1/plans/week` over real HTTP: history in the body, HR's employees with contracts, a typed answer
equal to the planning pipeline, the roster published as an HR schedule; bad values answered 4xx naming the field."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from callstream_hr.domain.forecast import IntervalFigures
from callstream_hr.domain.history import RecordedHistory

from .conftest import Server
from .test_hr_api import hire, make_team, uid

HISTORY_START = datetime(2026, 10, 5, tzinfo=UTC)
WEEK = HISTORY_START + timedelta(weeks=3)
TEMPLATE = {"name": "8h", "length_slots": 17, "start_slots": list(range(0, 336, 4)),
            "breaks": [{"duration_slots": 1, "earliest_offset": 6, "latest_offset": 10}]}


def _history() -> list[dict[str, Any]]:
    rng = np.random.default_rng(11)
    intervals = []
    for slot in range(3 * 336):
        hour = (slot % 48) / 2
        calls = int(rng.poisson(12.0 if 8 <= hour < 18 else 2.0))
        start = HISTORY_START + slot * timedelta(minutes=30)
        intervals.append({"start": start.isoformat(), "offered": calls, "aht_s": 200.0 if calls else None})
    return [{"queue_id": "sales", "intervals": intervals}]


def _body(employees: list[str], **extra: Any) -> dict[str, Any]:
    return {"week_start": WEEK.isoformat(), "history_weeks": 3, "holdout_weeks": 1,
            "queues": [{"queue_id": "sales", "sl_target": 0.8, "t_s": 20, "patience_s": 180}],
            "history": _history(), "templates": [TEMPLATE], "time_limit_s": 5,
            "employees": [{"employee_id": e, "min_weekly_hours": 0, "max_weekly_hours": 40} for e in employees],
            **extra}


def test_plan_week_rosters_hr_employees_and_publishes_the_schedule(server: Server) -> None:
    team = make_team(server)
    staff = [hire(server, team) for _ in range(12)]
    with server.client("hr") as hr:
        assert hr.put(f"/v1/employees/{staff[0]}/skills", json=[{"skill": "sales", "proficiency": 3}]).status_code \
            in (200, 204)
        body = _body(staff, publish_as=uid("plan"))
        # the first employee's skills come from HR; the others are given in the request
        for e in body["employees"][1:]:
            e["skills"] = ["sales"]
        r = hr.post("/v1/plans/week", json=body)
        assert r.status_code == 200, r.text
        doc = r.json()
        queue = doc["queues"][0]
        assert queue["targets"]["patience_s"] == 180
        assert queue["intervals"][0]["model"] == "erlang_a"
        roster = doc["roster"]
        assert roster["status"] in ("OPTIMAL", "FEASIBLE") and roster["unfilled"] == []
        names = {s["employee_id"]: s["name"] for s in roster["shifts"]}
        assert all(n == f"Name {e}" for e, n in names.items())
        # the roster covers the requirement, recounted from its shifts' times
        cov = [0] * 336
        for sh in roster["shifts"]:
            start = (datetime.fromisoformat(sh["start"]) - WEEK) // timedelta(minutes=30)
            brk = {(datetime.fromisoformat(b["start"]) - WEEK) // timedelta(minutes=30) for b in sh["breaks"]}
            for k in range(17):
                if start + k not in brk:
                    cov[(start + k) % 336] += 1
        assert all(c >= r for c, r in zip(cov, queue["requirement"], strict=True))
        published = doc["published"]
        assert published["shifts"] == len(roster["shifts"]) and published["version"] == 1
        got = hr.get(f"/v1/schedules/{published['schedule_id']}").json()
        assert sorted(s["start"] for s in got["shifts"]) == sorted(
            datetime.fromisoformat(s["start"]).astimezone(UTC).isoformat() for s in roster["shifts"])
        assert {s["team_id"] for s in got["shifts"]} == {team}


def test_plan_week_equals_the_pipeline_on_the_same_history(server: Server) -> None:
    from callstream_hr.domain.roster import Contract, Employee, RosterRules
    from callstream_hr.domain.shifts import BreakRule, ShiftTemplate
    from callstream_hr.service_layer.planning import QueueTargets, RosterOptions, plan_week

    team = make_team(server)
    staff = [hire(server, team) for _ in range(12)]
    body = _body(staff)
    for e in body["employees"]:
        e["skills"] = ["sales"]
    with server.client("manager") as mgr:
        doc = mgr.post("/v1/plans/week", json=body).json()
    history = RecordedHistory({"sales": [IntervalFigures(datetime.fromisoformat(i["start"]), i["offered"], i["aht_s"])
                                         for i in body["history"][0]["intervals"]]})
    tpl = (ShiftTemplate("8h", 17, tuple(range(0, 336, 4)), (BreakRule(1, 6, 10),)),)
    direct = plan_week(history, [QueueTargets("sales", 0.8, 20, 180)], WEEK,
                       RosterOptions(tpl, tuple(Employee(e, "", frozenset({"sales"}), Contract(0, 40)) for e in staff),
                                     RosterRules(time_limit_s=5), 0.0, 5), history_weeks=3)
    assert doc["queues"][0]["requirement"] == [r.agents for r in direct.forecast.queues[0].staffing or []]
    assert doc["queues"][0]["accuracy"]["calls_wape"] == direct.forecast.queues[0].accuracy.calls_wape
    assert doc["queues"][0]["shift_plan"]["paid_hours"] == direct.shift_plans["sales"].paid_hours


def test_bad_plans_are_refused_naming_the_field(server: Server) -> None:
    team = make_team(server)
    emp = hire(server, team)
    with server.client("hr") as hr:
        def refused(body: dict[str, Any], code: int = 422) -> Any:
            r = hr.post("/v1/plans/week", json=body)
            assert r.status_code == code, r.text
            return r.json()["detail"]

        detail = refused({**_body([emp]), "employees": [{"employee_id": emp, "min_weekly_hours": 50,
                                                         "max_weekly_hours": 40}]})
        assert detail[0]["loc"][:3] == ["body", "employees", 0] and "min_weekly_hours" in detail[0]["msg"]
        detail = refused({**_body([emp]), "employees": [{"employee_id": emp, "unavailable_days": [7]}]})
        assert "unavailable_days" in detail[0]["msg"]
        detail = refused(_body(["ghost"]))
        assert detail[0]["loc"] == ["body", "employees", 0, "employee_id"] and "ghost" in detail[0]["msg"]
        detail = refused({**_body([emp]), "queues": [{"queue_id": "sales", "sl_target": 1.5}]})
        assert detail[0]["loc"] == ["body", "queues", 0, "sl_target"]
        detail = refused({**_body([emp]), "shrinkage": 1.0})
        assert detail[0]["loc"] == ["body", "shrinkage"]
        assert "'billing'" in refused({**_body([emp]), "queues": [{"queue_id": "billing"}]})
    with server.client("lead_a") as lead:
        assert lead.post("/v1/plans/week", json=_body([emp])).status_code == 403
