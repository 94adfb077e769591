"""The HR API over real HTTP (SQLite and PostgreSQL): people, privacy and audit, training, costs,
schedules, punches (API + CSV), attendance, attrition, workforce planning and the outbox."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import select

from callstream.hr.v1 import hr_events_pb2

from .conftest import Server


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def make_team(srv: Server, team_id: str | None = None, lead: str | None = None) -> str:
    team_id = team_id or uid("team")
    with srv.client("hr") as hr:
        r = hr.post("/v1/teams", json={"id": team_id, "name": "Team", "lead_id": lead})
        assert r.status_code in (201, 409), r.text
    return team_id


def hire(srv: Server, team: str | None, role: str = "agent", hired_on: str = "2025-01-01", **extra: Any) -> str:
    emp = uid("emp")
    body = {"id": emp, "full_name": f"Name {emp}", "email": f"{emp}@example.org", "phone": "+40 700 000 000",
            "role": role, "team_id": team, "hired_on": hired_on, **extra}
    with srv.client("hr") as hr:
        r = hr.post("/v1/employees", json=body)
    assert r.status_code == 201, r.text
    return emp


def test_health_and_auth(server: Server) -> None:
    import httpx

    assert httpx.get(server.base_url + "/healthz").json() == {"status": "ok"}
    assert httpx.get(server.base_url + "/readyz").json()["status"] == "ready"
    assert httpx.get(server.base_url + "/v1/employees").status_code == 401
    with server.client("agent") as c:
        r = c.post("/v1/teams", json={"id": "x", "name": "x"})
        assert r.status_code == 403 and "team_lead" not in r.json()["detail"]


def test_hire_leave_and_bad_input(server: Server) -> None:
    team = make_team(server)
    emp = hire(server, team)
    with server.client("hr") as hr:
        dup = hr.post("/v1/employees", json={"id": emp, "full_name": "x", "role": "agent", "hired_on": "2025-01-01"})
        assert dup.status_code == 409 and emp in dup.json()["detail"]
        bad = hr.post("/v1/employees", json={"id": uid("e"), "full_name": "x", "role": "wizard",
                                             "hired_on": "2025-01-01", "fte": 2})
        assert bad.status_code == 422
        locs = {tuple(e["loc"]) for e in bad.json()["detail"]}
        assert ("body", "role") in locs and ("body", "fte") in locs
        assert hr.post("/v1/employees", json={"id": uid("e"), "full_name": "x", "role": "agent",
                                              "hired_on": "2025-01-01", "team_id": "nope"}).status_code == 404
        assert hr.post("/v1/employees/nobody/leave", json={"left_on": "2026-01-01", "exit_reason": "pay"}
                       ).status_code == 404
        bad_reason = hr.post(f"/v1/employees/{emp}/leave", json={"left_on": "2026-01-01", "exit_reason": "boredom"})
        assert bad_reason.status_code == 422 and bad_reason.json()["detail"][0]["loc"] == ["body", "exit_reason"]
        ok = hr.post(f"/v1/employees/{emp}/leave", json={"left_on": "2026-11-10", "exit_reason": "workload_pressure",
                                                          "exit_interview": "Too many calls per hour."})
        assert ok.status_code == 200 and ok.json()["left_on"] == "2026-11-10"
        again = hr.post(f"/v1/employees/{emp}/leave", json={"left_on": "2026-11-11", "exit_reason": "pay"})
        assert again.status_code == 409


def test_personal_data_roles_and_audit(server: Server) -> None:
    team = make_team(server, "team-a")
    emp = hire(server, team)
    other = hire(server, make_team(server, "team-b"))
    with server.client("manager") as mgr:
        full = mgr.get(f"/v1/employees/{emp}").json()
        assert full["full_name"] == f"Name {emp}" and full["email"].endswith("@example.org")
    with server.client("lead_a") as lead:
        assert lead.get(f"/v1/employees/{emp}").status_code == 403
        listed = lead.get("/v1/employees").json()
        assert emp in {e["id"] for e in listed} and other not in {e["id"] for e in listed}
        assert all("full_name" not in e and "email" not in e for e in listed)
        assert lead.get("/v1/employees", params={"team_id": "team-b"}).status_code == 403
    with server.client("lead_none") as lead:
        assert lead.get("/v1/employees").status_code == 403
    with server.client("agent") as agent:
        assert agent.get(f"/v1/employees/{emp}").status_code == 403
    with server.client("hr") as hr:
        assert hr.get("/v1/employees/nobody").status_code == 404
        assert hr.get("/v1/audit").status_code == 403  # the audit log is for admins
    with server.client("admin") as admin:
        audit = admin.get("/v1/audit", params={"limit": 1000}).json()
    reads = [a for a in audit if a["action"] == "read_employee" and a["target"] == emp]
    assert len(reads) == 1 and reads[0]["role"] == "manager" and reads[0]["subject"].startswith("manager:")
    # the team lead's list had no personal data, so it was not audited; HR's list is
    assert not any(a["role"] == "team_lead" and a["action"] == "list_employees" for a in audit)


def test_skills_training_and_flags(server: Server) -> None:
    emp = hire(server, None, training_stage="theory")
    with server.client("hr") as hr:
        r = hr.put(f"/v1/employees/{emp}/skills", json=[{"skill": "billing", "proficiency": 4},
                                                         {"skill": "spanish", "proficiency": 2}])
        assert r.status_code == 200
        bad = hr.put(f"/v1/employees/{emp}/skills", json=[{"skill": "billing", "proficiency": 6}])
        assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", 0, "proficiency"]
        assert hr.get(f"/v1/employees/{emp}").json()["skills"] == {"billing": 4, "spanish": 2}
        assert hr.put(f"/v1/employees/{emp}/training-stage", json={"stage": "on_site_shadowing"}).json()[
            "training_stage"] == "on_site_shadowing"
        s = hr.post("/v1/training/sessions", json={"type": "rules_ethics", "title": "Call rules",
                                                   "starts_at": "2026-11-02T09:00:00Z",
                                                   "attendance": [{"employee_id": emp, "attended": True}]})
        assert s.status_code == 201
        assert hr.post("/v1/training/sessions", json={"type": "yoga", "title": "x", "starts_at": "2026-11-02T09:00:00Z"}
                       ).status_code == 422
        for day, score in ((3, 55), (4, 61), (5, 68)):
            assert hr.post("/v1/exams", json={"employee_id": emp, "name": f"exam {day}",
                                              "taken_at": f"2026-11-0{day}T10:00:00Z", "score": score,
                                              "pass_mark": 70}).status_code == 201
        naive = hr.post("/v1/exams", json={"employee_id": emp, "name": "x", "taken_at": "2026-11-06T10:00:00",
                                           "score": 90})
        assert naive.status_code == 422 and naive.json()["detail"][0]["loc"] == ["body", "taken_at"]
        flags = {f["employee_id"]: f for f in hr.get("/v1/training/flags").json()}
        assert flags[emp]["recent_scores"] == [55, 61, 68]
        hr.post("/v1/exams", json={"employee_id": emp, "name": "retake", "taken_at": "2026-11-07T10:00:00Z",
                                   "score": 85, "pass_mark": 70})
        assert emp not in {f["employee_id"] for f in hr.get("/v1/training/flags").json()}


def outbox_events(server: Server, topic: str) -> list[bytes]:
    """Read the outbox rows of a topic straight from the service's database."""
    from callstream_hr.adapters.models import Outbox

    sessions = server.app.state.sessions
    with sessions() as session:
        return list(session.scalars(select(Outbox.payload).where(Outbox.topic == topic).order_by(Outbox.id)).all())


def test_costs_publish_cost_entries(server: Server) -> None:
    entry = uid("cost")
    body = {"entry_id": entry, "cost_center_id": "center-main", "period_start": "2026-10-01T00:00:00Z",
            "period_end": "2026-11-01T00:00:00Z", "amount_minor": 18_250_000_000, "currency": "EUR",
            "category": "salaries"}
    with server.client("manager") as mgr:
        assert mgr.post("/v1/costs", json=body).status_code == 201
        assert mgr.post("/v1/costs", json=body).status_code == 409
        bad = mgr.post("/v1/costs", json={**body, "entry_id": uid("c"), "period_end": "2026-09-01T00:00:00Z"})
        assert bad.status_code == 422 and "period_end" in bad.text
        assert any(c["entry_id"] == entry and c["amount_minor"] == 18_250_000_000 for c in mgr.get("/v1/costs").json())
    events = [hr_events_pb2.CostEntry.FromString(p) for p in outbox_events(server, "cc.hr-costs.v1")]
    mine = [e for e in events if e.entry_id == entry]
    assert len(mine) == 1 and mine[0].amount_minor == 18_250_000_000 and mine[0].envelope.event_id


def test_schedule_versions_team_scope_and_events(server: Server) -> None:
    team_a, team_b = make_team(server, "team-a"), make_team(server, "team-b")
    a1, a2, b1 = hire(server, team_a), hire(server, team_a), hire(server, team_b)
    sched = uid("2026-W46")

    def shift(emp: str, team: str, day: int, start: int, hours: int = 8) -> dict[str, Any]:
        end_day, end_h = (day, start + hours) if start + hours < 24 else (day + 1, start + hours - 24)
        return {"shift_id": uid("s"), "employee_id": emp, "team_id": team,
                "start": f"2026-11-{day:02d}T{start:02d}:00:00Z", "end": f"2026-11-{end_day:02d}T{end_h:02d}:00:00Z",
                "breaks": [{"start": f"2026-11-{day:02d}T{(start + 4) % 24:02d}:00:00Z",
                            "end": f"2026-11-{day:02d}T{(start + 4) % 24:02d}:30:00Z", "activity": "lunch"}]
                if start + 4 < 24 else []}

    body = {"schedule_id": sched, "period_start": "2026-11-09T00:00:00Z", "period_end": "2026-11-16T00:00:00Z",
            "shifts": [shift(a1, team_a, 9, 6), shift(a2, team_a, 9, 14), shift(b1, team_b, 9, 22)]}
    with server.client("hr") as hr:
        r = hr.post("/v1/schedules", json=body)
        assert r.status_code == 201 and r.json()["version"] == 1
        v2 = {**body, "shifts": [shift(a1, team_a, 10, 6), shift(b1, team_b, 10, 22)]}  # a2 dropped
        assert hr.post("/v1/schedules", json=v2).json()["version"] == 2
        bad = hr.post("/v1/schedules", json={**body, "shifts": [{**shift(a1, team_a, 9, 6),
                                                                 "end": "2026-11-09T05:00:00Z"}]})
        assert bad.status_code == 422 and bad.json()["detail"][0]["loc"][:3] == ["body", "shifts", 0]
        assert hr.post("/v1/schedules", json={**body, "shifts": [shift("ghost", team_a, 9, 6)]}).status_code == 404
        assert hr.get(f"/v1/schedules/{uid('x')}").status_code == 404
    with server.client("lead_a") as lead:
        got = lead.get(f"/v1/schedules/{sched}").json()
        assert got["version"] == 2 and {s["employee_id"] for s in got["shifts"]} == {a1}
        assert lead.get(f"/v1/schedules/{sched}", params={"team_id": team_b}).status_code == 403
    events = [hr_events_pb2.SchedulePublished.FromString(p) for p in outbox_events(server, "cc.hr-schedules.v1")]
    mine = [e for e in events if e.schedule_id == sched]
    assert [(e.version, e.employee_id in (a1, a2, b1)) for e in mine].count((1, True)) == 3
    v2_events = {e.employee_id: e for e in mine if e.version == 2}
    assert set(v2_events) == {a1, a2, b1}
    assert len(v2_events[a2].shifts) == 0  # dropped from version 2: an empty list replaces the old shifts
    assert v2_events[a1].shifts[0].breaks[0].activity == "lunch"
    assert len({e.envelope.event_id for e in mine}) == len(mine)


def test_punches_csv_attendance_and_lateness(server: Server) -> None:
    team = make_team(server, uid("team"))
    on_time, late, absent = hire(server, team), hire(server, team), hire(server, team)
    sched = uid("att")
    shifts = [{"shift_id": uid("s"), "employee_id": e, "team_id": team, "start": "2026-11-02T08:00:00Z",
               "end": "2026-11-02T16:00:00Z"} for e in (on_time, late, absent)]
    with server.client("hr") as hr:
        hr.post("/v1/schedules", json={"schedule_id": sched, "period_start": "2026-11-02T00:00:00Z",
                                       "period_end": "2026-11-03T00:00:00Z", "shifts": shifts})
        r = hr.post("/v1/punches", json={"employee_id": on_time, "kind": "in", "at": "2026-11-02T07:58:00Z",
                                         "device": "badge-1"})
        assert r.status_code == 201
        assert hr.post("/v1/punches", json={"employee_id": on_time, "kind": "in", "at": "2026-11-02T07:58:00Z"}
                       ).status_code == 409
        assert hr.post("/v1/punches", json={"employee_id": on_time, "kind": "sideways",
                                            "at": "2026-11-02T07:58:00Z"}).status_code == 422
        bad_csv = (f"employee_id,kind,at,device\n{late},in,2026-11-02T08:17:00Z,badge-2\n"
                   f"{late},inn,2026-11-02T09:00:00Z,badge-2\nghost,in,2026-11-02T08:00:00Z,badge-2\n"
                   f"{late},out,not-a-time,badge-2\n")
        r = hr.post("/v1/punches/import", params={"filename": "clock-1102.csv"}, content=bad_csv,
                    headers={"content-type": "text/csv"})
        assert r.status_code == 422
        detail = r.json()["detail"]
        assert detail["file"] == "clock-1102.csv" and detail["imported"] == 0
        assert [(e["line"], e["reason"].split(":")[0]) for e in detail["errors"]] == [
            (3, "kind"), (4, "unknown employee 'ghost'"), (5, "at")]
        good_csv = (f"employee_id,kind,at,device\n{late},in,2026-11-02T08:17:00Z,badge-2\n"
                    f"{late},out,2026-11-02T16:02:00Z,badge-2\n")
        r = hr.post("/v1/punches/import", content=good_csv, headers={"content-type": "text/csv"})
        assert r.json() == {"file": "upload.csv", "imported": 2, "already_present": 0}
        again = hr.post("/v1/punches/import", content=good_csv, headers={"content-type": "text/csv"})
        assert again.json()["imported"] == 0 and again.json()["already_present"] == 2
        missing_col = hr.post("/v1/punches/import", content="who,when\nx,y\n")
        assert missing_col.status_code == 422 and missing_col.json()["detail"]["errors"][0]["line"] == 1
        ab = hr.post("/v1/absences", json={"employee_id": absent, "start": "2026-11-02T00:00:00Z",
                                           "end": "2026-11-03T00:00:00Z", "reason": "sick"})
        assert ab.status_code == 201
        report = hr.get("/v1/attendance", params={"from": "2026-11-02T00:00:00Z", "to": "2026-11-03T00:00:00Z",
                                                  "team_id": team}).json()
        assert hr.get("/v1/attendance", params={"from": "2026-11-02T00:00:00", "to": "2026-11-03T00:00:00Z"}
                      ).status_code == 422
    assert report["rates"] == [{"team_id": team, "shift_label": "08:00", "scheduled": 3, "present": 2, "late": 1,
                                "rate": pytest.approx(200 / 3)}]
    assert [(x["employee_id"], x["late_minutes"]) for x in report["late"]] == [(late, 17.0)]
    assert [(x["employee_id"], x["reason"]) for x in report["absent"]] == [(absent, "sick")]
    punches = [hr_events_pb2.AttendancePunch.FromString(p) for p in outbox_events(server, "cc.hr-attendance.v1")]
    assert sum(1 for p in punches if p.employee_id == late) == 2  # the failed import staged nothing
    absences = [hr_events_pb2.Absence.FromString(p) for p in outbox_events(server, "cc.hr-absences.v1")]
    assert any(a.employee_id == absent and a.reason == hr_events_pb2.Absence.REASON_SICK for a in absences)


def test_attrition_endpoint(server: Server) -> None:
    lead = uid("lead")
    team = make_team(server, uid("team"), lead=lead)
    agents = [hire(server, team, hired_on="2026-01-01") for _ in range(4)]
    with server.client("hr") as hr:
        hr.post(f"/v1/employees/{agents[0]}/leave", json={"left_on": "2026-11-16", "exit_reason": "supervisor"})
        r = hr.get("/v1/attrition", params={"period": "month", "year": 2026, "index": 11, "by": "team_lead"})
        assert r.status_code == 200
        mine = r.json()["by"][lead]
        # 3 agents × 30 days + 15 days = 105 / 30 = 3.5 average FTE; 1 leaver
        assert mine["leavers"] == 1 and mine["average_fte"] == pytest.approx(3.5)
        assert mine["rate"] == pytest.approx(100 / 3.5)
        by_reason = hr.get("/v1/attrition", params={"period": "quarter", "year": 2026, "index": 4,
                                                    "by": "exit_reason"}).json()
        assert by_reason["by"]["supervisor"]["leavers"] >= 1
        assert hr.get("/v1/attrition", params={"period": "quarter", "year": 2026, "index": 5}).status_code == 422
        assert hr.get("/v1/attrition", params={"period": "week", "year": 2026}).status_code == 422
    with server.client("lead_a") as lead_client:
        assert lead_client.get("/v1/attrition", params={"year": 2026}).status_code == 403
    employment = [hr_events_pb2.EmploymentChanged.FromString(p) for p in outbox_events(server, "cc.hr-employment.v1")]
    left = [e for e in employment if e.employee_id == agents[0] and e.kind == e.KIND_LEFT]
    assert len(left) == 1 and left[0].exit_reason == hr_events_pb2.EXIT_REASON_SUPERVISOR
    assert left[0].team_lead_id == lead


def test_org_report_warns_on_sizes(server: Server) -> None:
    team = make_team(server, uid("team"))
    for _ in range(2):
        hire(server, team)
    with server.client("manager") as mgr:
        report = mgr.get("/v1/org/report").json()
    assert report["teams"][team] == 2
    assert any(w["id"] == team and "10–15" in w["message"] for w in report["warnings"])
    assert any(w["id"] == team and w["message"] == "no team lead" for w in report["warnings"])


def test_staffing_and_shift_plan(server: Server) -> None:
    with server.client("manager") as mgr:
        r = mgr.post("/v1/staffing", json={"calls": 100, "interval_s": 1800, "aht_s": 180, "sl_target": 0.8,
                                           "t_s": 20, "shrinkage": 0.3})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["raw_agents"] >= 10 and body["agents"] > body["raw_agents"] and body["service_level"] >= 0.8
        # the same goals as `callstream staffing`: an ASA goal and, with a patience, an abandon-rate goal
        asa = mgr.post("/v1/staffing", json={"calls": 100, "aht_s": 180, "asa_goal": 3}).json()
        assert asa["raw_agents"] > body["raw_agents"] and asa["asa_s"] <= 3
        patient = {"calls": 100, "aht_s": 180, "sl_target": 0, "patience_s": 60}
        loose, tight = (mgr.post("/v1/staffing", json={**patient, "abandon_goal": g}).json() for g in (0.2, 0.01))
        assert loose["model"] == "erlang_a" and tight["abandon_rate"] <= 0.01 < loose["abandon_rate"] <= 0.2
        assert tight["raw_agents"] > loose["raw_agents"]
        bad = mgr.post("/v1/staffing", json={"calls": 100, "aht_s": 0})
        assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "aht_s"]
        plan = mgr.post("/v1/shifts/plan", json={"requirement": [1, 2, 2, 1] * 12, "cyclic": True,
                                                 "templates": [{"name": "8h", "length_slots": 16,
                                                                "breaks": [{"duration_slots": 1,
                                                                            "earliest_offset": 6,
                                                                            "latest_offset": 9}]}],
                                                 "time_limit_s": 5})
        assert plan.status_code == 200, plan.text
        planned = plan.json()
        assert planned["covered"] is True
        assert planned["over"] == [c - r for c, r in zip(planned["coverage"], [1, 2, 2, 1] * 12, strict=True)]
        assert planned["under"] == [0] * 48 and planned["headcount"] >= 2
        assert mgr.post("/v1/shifts/plan", json={"requirement": [1], "templates": [
            {"name": "x", "length_slots": 2, "breaks": [{"duration_slots": 2, "earliest_offset": 0,
                                                         "latest_offset": 0}]}]}).status_code == 422


def test_team_lead_sees_only_own_team_attendance(server: Server) -> None:
    make_team(server, "team-a")
    make_team(server, "team-b")
    a, b = hire(server, "team-a"), hire(server, "team-b")
    with server.client("hr") as hr:
        hr.post("/v1/schedules", json={"schedule_id": uid("lead"), "period_start": "2026-12-01T00:00:00Z",
                                       "period_end": "2026-12-02T00:00:00Z", "shifts": [
            {"shift_id": uid("s"), "employee_id": e, "team_id": t, "start": "2026-12-01T10:00:00Z",
             "end": "2026-12-01T18:00:00Z"} for e, t in ((a, "team-a"), (b, "team-b"))]})
    params = {"from": "2026-12-01T00:00:00Z", "to": "2026-12-02T00:00:00Z"}
    with server.client("lead_a") as lead:
        report = lead.get("/v1/attendance", params=params).json()
        assert {r["team_id"] for r in report["rates"]} == {"team-a"}
        assert lead.get("/v1/attendance", params={**params, "team_id": "team-b"}).status_code == 403
    with server.client("manager") as mgr:
        assert {r["team_id"] for r in mgr.get("/v1/attendance", params=params).json()["rates"]} >= {"team-a", "team-b"}
    with server.client("agent") as agent:
        assert agent.get("/v1/attendance", params=params).status_code == 403
    with server.client("admin") as admin:
        audit = admin.get("/v1/audit", params={"limit": 1000}).json()
    reads = {(a["role"], a["target"].split(" ")[1]) for a in audit if a["action"] == "read_attendance"}
    assert {("team_lead", "team=team-a"), ("manager", "team=*")} <= reads


def test_role_and_team_changes_keep_history_and_publish_events(server: Server) -> None:
    lead1, lead2 = uid("lead"), uid("lead")
    t1, t2 = make_team(server, uid("team"), lead=lead1), make_team(server, uid("team"), lead=lead2)
    r1, r2 = uid("row"), uid("row")
    with server.client("hr") as hr:
        assert hr.post("/v1/rows", json={"id": r1, "team_id": t1}).status_code == 201
        assert hr.post("/v1/rows", json={"id": r2, "team_id": t2}).status_code == 201
    emp = hire(server, t1, row_id=r1)
    with server.client("hr") as hr:
        moved = hr.post(f"/v1/employees/{emp}/changes", json={"effective_on": "2026-03-01", "team_id": t2,
                                                               "reason": "second team needs evening cover"})
        assert moved.status_code == 201, moved.text
        assert moved.json()["change"] == "team" and moved.json()["employee"]["row_id"] is None  # rows belong to teams
        promoted = hr.post(f"/v1/employees/{emp}/changes", json={"effective_on": "2026-06-01",
                                                                  "role": "senior_operator", "row_id": r2})
        assert promoted.status_code == 201 and promoted.json()["change"] == "role+team"
        assert promoted.json()["previous"] == {"role": "agent", "team_id": t2, "row_id": None}
        for bad, status, words in (
            ({"effective_on": "2026-05-01", "role": "agent"}, 422, "before the last recorded change (2026-06-01)"),
            ({"effective_on": "2999-01-01", "role": "agent"}, 422, "in the future"),
            ({"effective_on": "2026-06-02", "role": "senior_operator"}, 422, "nothing changes"),
            ({"effective_on": "2026-06-02", "row_id": r1}, 422, f"belongs to team {t1!r}"),
            ({"effective_on": "2026-06-02", "team_id": "no-such-team"}, 404, "not found"),
            ({"effective_on": "2026-06-02"}, 422, "at least one of"),
            ({"effective_on": "2026-06-02", "role": None}, 422, "role cannot be null"),
            ({"effective_on": "2026-06-02", "role": "wizard"}, 422, "role"),
        ):
            r = hr.post(f"/v1/employees/{emp}/changes", json=bad)
            assert r.status_code == status and words in r.text, (bad, r.text)
        assert hr.post("/v1/employees/nobody/changes", json={"effective_on": "2026-06-02", "role": "qa"}
                       ).status_code == 404
        early = hr.post(f"/v1/employees/{emp}/leave", json={"left_on": "2026-05-01", "exit_reason": "pay"})
        assert early.status_code == 422 and "2026-06-01" in early.text
        assert hr.post(f"/v1/employees/{emp}/leave", json={"left_on": "2026-07-10", "exit_reason": "pay"}
                       ).status_code == 200
        assert hr.post(f"/v1/employees/{emp}/changes", json={"effective_on": "2026-07-11", "role": "qa"}
                       ).status_code == 409
        history = hr.get(f"/v1/employees/{emp}/history").json()
        attrition = hr.get("/v1/attrition", params={"period": "month", "year": 2026, "index": 7, "by": "team_lead",
                                                    "agents_only": False}).json()
    assert [(h["effective_on"], h["change"], h["role"], h["team_id"], h["row_id"], h["team_lead_id"])
            for h in history] == [
        ("2025-01-01", "hired", "agent", t1, r1, lead1), ("2026-03-01", "team", "agent", t2, None, lead2),
        ("2026-06-01", "role+team", "senior_operator", t2, r2, lead2),
        ("2026-07-10", "left", "senior_operator", t2, r2, lead2)]
    assert history[1]["reason"] == "second team needs evening cover" and history[1]["recorded_by"].startswith("hr:")
    assert attrition["by"][lead2]["leavers"] == 1 and lead1 not in attrition["by"]  # the lead at leaving
    events = [e for e in (hr_events_pb2.EmploymentChanged.FromString(p)
                          for p in outbox_events(server, "cc.hr-employment.v1")) if e.employee_id == emp]
    kinds = hr_events_pb2.EmploymentChanged
    assert [(e.kind, e.envelope.occurred_at.ToDatetime().date().isoformat()) for e in events] == [
        (kinds.KIND_HIRED, "2025-01-01"), (kinds.KIND_TEAM_CHANGED, "2026-03-01"),
        (kinds.KIND_ROLE_CHANGED, "2026-06-01"), (kinds.KIND_TEAM_CHANGED, "2026-06-01"),
        (kinds.KIND_LEFT, "2026-07-10")]
    team_move = events[1]
    assert (team_move.previous_team_id, team_move.previous_row_id, team_move.team_id, team_move.team_lead_id,
            team_move.row_id, team_move.role, team_move.previous_role) == (t1, r1, t2, lead2, "", "agent", "agent")
    assert team_move.reason_detail == "second team needs evening cover"
    for e in events[2:4]:  # one change of role and row: both events carry the whole new state
        assert (e.role, e.previous_role, e.team_id, e.row_id) == ("senior_operator", "agent", t2, r2)
    assert len({e.envelope.event_id for e in events}) == 5


def test_history_privacy_team_leads_see_own_team_without_reasons(server: Server) -> None:
    make_team(server, "team-a")
    make_team(server, "team-b")
    emp = hire(server, "team-a")
    with server.client("hr") as hr:
        assert hr.post(f"/v1/employees/{emp}/changes", json={"effective_on": "2026-02-01", "team_id": "team-b",
                                                             "reason": "personal circumstances"}).status_code == 201
    with server.client("lead_a") as lead:
        assert lead.get(f"/v1/employees/{emp}/history").status_code == 403  # no longer their team
    with server.client("lead_b") as lead:
        seen = lead.get(f"/v1/employees/{emp}/history").json()
        assert [h["change"] for h in seen] == ["hired", "team"] and all("reason" not in h for h in seen)
    with server.client("agent") as agent:
        assert agent.get(f"/v1/employees/{emp}/history").status_code == 403
    with server.client("manager") as mgr:
        assert mgr.get(f"/v1/employees/{emp}/history").json()[1]["reason"] == "personal circumstances"
    with server.client("admin") as admin:
        audit = admin.get("/v1/audit", params={"limit": 1000}).json()
    reads = [a for a in audit if a["action"] == "read_employment_history" and a["target"] == emp]
    assert [a["role"] for a in reads] == ["manager"]


def test_list_endpoints_for_hr_with_team_scope_and_audit(server: Server) -> None:
    make_team(server, "team-a")
    make_team(server, "team-b")
    row = uid("row")
    with server.client("hr") as hr:
        assert hr.post("/v1/rows", json={"id": row, "team_id": "team-a"}).status_code == 201
    a, b = hire(server, "team-a", row_id=row), hire(server, "team-b")
    lead = hire(server, "team-a", role="team_lead")
    with server.client("hr") as hr:
        teams = {t["id"]: t for t in hr.get("/v1/teams").json()}
        assert teams["team-a"]["agents"] >= 1 and teams["team-a"]["name"] == "Team"
        assert [(r["id"], r["agents"]) for r in hr.get("/v1/rows", params={"team_id": "team-a"}).json()
                if r["id"] == row] == [(row, 1)]
        leads = hr.get("/v1/employees", params={"role": "team_lead", "active": True}).json()
        assert lead in {e["id"] for e in leads} and all(e["role"] == "team_lead" for e in leads)
        title = uid("systems")
        assert hr.post("/v1/training/sessions", json={"type": "systems", "title": title,
                                                      "starts_at": "2026-09-01T09:00:00Z", "attendance": [
            {"employee_id": a, "attended": True}, {"employee_id": b, "attended": False}]}).status_code == 201
        listed = [x for x in hr.get("/v1/training/sessions", params={"from": "2026-09-01T00:00:00Z",
                                                                     "to": "2026-09-02T00:00:00Z",
                                                                     "type": "systems"}).json()
                  if x["title"] == title]
        assert [{p["employee_id"] for p in x["attendance"]} for x in listed] == [{a, b}]
        assert hr.get("/v1/training/sessions", params={"from": "2026-09-01T00:00:00"}).status_code == 422
        for emp, day, score in ((a, 2, 50), (a, 3, 60), (a, 4, 65), (b, 2, 40), (b, 3, 45), (b, 4, 50)):
            assert hr.post("/v1/exams", json={"employee_id": emp, "name": "rules", "score": score,
                                              "taken_at": f"2026-09-0{day}T10:00:00Z"}).status_code == 201
        exams = hr.get("/v1/exams", params={"employee_id": a}).json()
        assert [e["score"] for e in exams] == [50, 60, 65] and not any(e["passed"] for e in exams)
        for emp, at in ((a, "2026-09-03T08:01:00Z"), (b, "2026-09-03T08:02:00Z"), (a, "2026-12-03T08:00:00Z")):
            assert hr.post("/v1/punches", json={"employee_id": emp, "kind": "in", "at": at}).status_code == 201
        sept = {"from": "2026-09-01T00:00:00Z", "to": "2026-10-01T00:00:00Z"}
        punches = hr.get("/v1/punches", params={**sept, "team_id": "team-a"}).json()
        assert [(p["employee_id"], p["at"]) for p in punches if p["employee_id"] in (a, b)] == [
            (a, "2026-09-03T08:01:00+00:00")]
        assert hr.get("/v1/punches", params={"from": "2026-01-01T00:00:00Z", "to": "2026-12-31T00:00:00Z"}
                      ).status_code == 422  # at most 93 days of punches
        assert hr.get("/v1/punches", params={"from": "2026-09-02T00:00:00Z", "to": "2026-09-01T00:00:00Z"}
                      ).status_code == 422
        assert hr.post("/v1/absences", json={"employee_id": b, "start": "2026-09-10T00:00:00Z",
                                             "end": "2026-09-12T00:00:00Z", "reason": "vacation"}).status_code == 201
        absences = hr.get("/v1/absences", params={**sept, "employee_id": b}).json()
        assert [(x["reason"], x["start"]) for x in absences] == [("vacation", "2026-09-10T00:00:00+00:00")]
        sched = uid("sept")
        hr.post("/v1/schedules", json={"schedule_id": sched, "period_start": "2026-09-07T00:00:00Z",
                                       "period_end": "2026-09-14T00:00:00Z", "shifts": [
            {"shift_id": uid("s"), "employee_id": a, "team_id": "team-a", "start": "2026-09-07T08:00:00Z",
             "end": "2026-09-07T16:00:00Z"}]})
        schedules = {x["schedule_id"]: x for x in hr.get("/v1/schedules", params=sept).json()}
        assert schedules[sched]["shifts"] == 1 and schedules[sched]["version"] == 1
        assert sched not in {x["schedule_id"] for x in hr.get("/v1/schedules", params={
            "from": "2026-10-01T00:00:00Z"}).json()}
        hr_flags = {f["employee_id"] for f in hr.get("/v1/training/flags").json()}
        assert {a, b} <= hr_flags
    with server.client("lead_a") as lead_a:
        assert lead_a.get("/v1/exams", params={"team_id": "team-b"}).status_code == 403
        assert {e["employee_id"] for e in lead_a.get("/v1/exams").json()} >= {a}
        assert b not in {e["employee_id"] for e in lead_a.get("/v1/exams").json()}
        assert b not in {f["employee_id"] for f in lead_a.get("/v1/training/flags").json()}
        assert a in {f["employee_id"] for f in lead_a.get("/v1/training/flags").json()}
        assert b not in {p["employee_id"] for p in lead_a.get("/v1/punches", params=sept).json()}
        assert lead_a.get("/v1/absences", params={**sept, "employee_id": b}).json() == []
        sessions = [x for x in lead_a.get("/v1/training/sessions").json() if x["title"] == title]
        assert [[p["employee_id"] for p in x["attendance"]] for x in sessions] == [[a]]
    with server.client("agent") as agent:
        assert agent.get("/v1/punches", params=sept).status_code == 403
    with server.client("admin") as admin:
        audit = admin.get("/v1/audit", params={"limit": 1000}).json()
    actions = {(x["action"], x["role"]) for x in audit}
    assert {("list_exams", "hr"), ("list_exams", "team_lead"), ("list_punches", "hr"), ("list_punches", "team_lead"),
            ("list_absences", "hr"), ("read_training_flags", "team_lead")} <= actions


def test_skills_are_published_for_routing(server: Server) -> None:
    from callstream.agent.v1 import agent_events_pb2

    emp = hire(server, None)
    with server.client("manager") as mgr:
        assert mgr.put(f"/v1/employees/{emp}/skills", json=[{"skill": "billing", "proficiency": 4}]).status_code == 200
        assert mgr.put(f"/v1/employees/{emp}/skills", json=[{"skill": "billing", "proficiency": 5},
                                                             {"skill": "spanish", "proficiency": 2}]).status_code == 200
    events = [e for e in (agent_events_pb2.AgentEvent.FromString(p)
                          for p in outbox_events(server, "cc.agent-events.v1")) if e.agent_id == emp]
    assert [{s.skill_id: s.proficiency for s in e.skills_changed.skills} for e in events] == [
        {"billing": 4}, {"billing": 5, "spanish": 2}]


def test_new_team_lead_takes_over_the_members_from_its_date(server: Server) -> None:
    old_lead, new_lead = uid("lead"), uid("lead")
    team = make_team(server, uid("team"), lead=old_lead)
    a, b = hire(server, team), hire(server, team)
    row = uid("row")
    with server.client("hr") as hr:
        assert hr.post("/v1/rows", json={"id": row, "team_id": team}).status_code == 201
        assert hr.put(f"/v1/rows/{row}", json={"senior_id": a}).json()["senior_id"] == a
        assert hr.put("/v1/rows/nope", json={"senior_id": a}).status_code == 404
        assert hr.put(f"/v1/teams/{team}", json={"effective_on": "2999-01-01", "lead_id": new_lead}
                      ).status_code == 422
        assert hr.put(f"/v1/teams/{team}", json={"effective_on": "2024-12-01", "lead_id": new_lead}
                      ).status_code == 422  # before the members' hire
        assert hr.put("/v1/teams/nope", json={"effective_on": "2026-11-11", "lead_id": new_lead}).status_code == 404
        assert hr.put(f"/v1/teams/{team}", json={"effective_on": "2026-11-11"}).status_code == 422
        r = hr.put(f"/v1/teams/{team}", json={"effective_on": "2026-11-11", "lead_id": new_lead, "name": "Night"})
        assert r.status_code == 200 and sorted(r.json()["members_with_new_lead"]) == sorted([a, b])
        assert {t["id"]: t["name"] for t in hr.get("/v1/teams").json()}[team] == "Night"
        hr.post(f"/v1/employees/{b}/leave", json={"left_on": "2026-11-21", "exit_reason": "supervisor"})
        by_lead = hr.get("/v1/attrition", params={"period": "month", "year": 2026, "index": 11,
                                                  "by": "team_lead"}).json()["by"]
        assert [h["team_lead_id"] for h in hr.get(f"/v1/employees/{a}/history").json()] == [old_lead, new_lead]
    # November: both agents 10 days with the old lead; then a 20 days and b 10 days (left on the 21st) with the new
    assert (by_lead[old_lead]["leavers"], by_lead[old_lead]["average_fte"]) == (0, pytest.approx(20 / 30))
    assert (by_lead[new_lead]["leavers"], by_lead[new_lead]["average_fte"]) == (1, pytest.approx(30 / 30))
    events = [e for e in (hr_events_pb2.EmploymentChanged.FromString(p)
                          for p in outbox_events(server, "cc.hr-employment.v1"))
              if e.employee_id in (a, b) and e.kind == e.KIND_TEAM_CHANGED]
    assert sorted((e.employee_id, e.team_id, e.team_lead_id) for e in events) == sorted(
        [(a, team, new_lead), (b, team, new_lead)])


def test_a_lone_surrogate_in_a_json_body_is_a_422(server: Server) -> None:
    """issue 17 item 7: `"\\ud800"` is legal JSON but no UTF-8: the 422 that echoes it back was a 500."""
    with server.client("hr") as c:
        r = c.post("/v1/teams", content=b'{"id": "t-\\ud800", "name": "\\udfff"}',
                   headers={"Content-Type": "application/json"})
    assert r.status_code == 422, r.text
    assert {tuple(d["loc"]) for d in r.json()["detail"]} >= {("body", "id"), ("body", "name")}
