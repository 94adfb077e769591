"""The HTTP API against a real uvicorn server, on SQLite and on PostgreSQL (see conftest.qa_server)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from callstream.qa.v1 import qa_events_pb2
from callstream_qa.adapters.orm import OutboxRow

FORM = {
    "name": "Voice standard",
    "sections": [
        {"section_id": "open", "title": "Opening", "criteria": [
            {"criterion_id": "greet", "label": "Greets", "weight": 10},
            {"criterion_id": "verify", "label": "Verifies identity", "weight": 20, "critical": True},
        ]},
        {"section_id": "body", "title": "Handling", "criteria": [
            {"criterion_id": "empathy", "label": "Empathy", "weight": 30, "scale": "1-5"},
            {"criterion_id": "solution", "label": "Solution", "weight": 40, "scale": "points", "max_points": 4},
        ]},
    ],
}
GOOD = {"greet": "yes", "verify": "yes", "empathy": "5", "solution": "4"}
MIXED = {"greet": "no", "verify": "yes", "empathy": "3", "solution": "2"}  # 55.0


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def make_form(server: Any) -> str:
    form_id = uid("voice")
    with server.client("qa") as qa:
        r = qa.post("/forms", json={"form_id": form_id, **FORM})
        assert r.status_code == 201, r.text
    return form_id


def evaluate(server: Any, form_id: str, answers: dict[str, str], agent: str = "agent-1", team: str = "team-a",
             submit: bool = True, call_id: str | None = None) -> dict[str, Any]:
    with server.client("qa") as qa:
        r = qa.post("/evaluations", json={
            "call_id": call_id or uid("call"), "agent_id": agent, "team_id": team, "form_id": form_id,
            "answers": answers, "submit": submit, "contact_at": "2026-11-02T09:30:00Z"})
        assert r.status_code == 201, r.text
        return r.json()


def outbox_events(server: Any, evaluation_id: str) -> list[qa_events_pb2.EvaluationChanged]:
    with server.app.state.container.sessions() as s:
        rows = s.scalars(select(OutboxRow).order_by(OutboxRow.id))
        events = [qa_events_pb2.EvaluationChanged.FromString(r.payload) for r in rows]
    return [e for e in events if e.evaluation_id == evaluation_id]


def test_health_and_auth(qa_server: Any) -> None:
    with qa_server.client("qa") as qa:
        assert qa.get("/healthz").json() == {"status": "ok"}
        assert qa.get("/readyz").json()["status"] == "ready"
        assert qa.get("/forms", headers={"Authorization": "Bearer nope-nope-nope"}).status_code == 401
    with qa_server.client("agent1") as agent:
        r = agent.post("/forms", json={"form_id": "x", **FORM})
        assert r.status_code == 403 and "may not" in r.json()["detail"]


def test_form_versions_are_immutable_once_used(qa_server: Any) -> None:
    form_id = make_form(qa_server)
    edited = {**FORM, "name": "Voice standard (edited)"}
    with qa_server.client("qa") as qa:
        r = qa.put(f"/forms/{form_id}", json=edited)  # unused: edited in place
        assert r.status_code == 200 and r.json()["version"] == 1
        evaluate(qa_server, form_id, GOOD)
        r = qa.put(f"/forms/{form_id}", json={**FORM, "name": "v2"})
        assert r.json()["version"] == 2 and r.json()["in_use"] is False
        v1 = qa.get(f"/forms/{form_id}", params={"version": 1}).json()
        assert v1["name"] == "Voice standard (edited)" and v1["in_use"] is True
        assert qa.get(f"/forms/{form_id}").json()["version"] == 2
        assert qa.post("/forms", json={"form_id": form_id, **FORM}).status_code == 409
        assert qa.get("/forms/missing-form").status_code == 404


def test_bad_input_gets_clear_4xx(qa_server: Any) -> None:
    form_id = make_form(qa_server)
    with qa_server.client("qa") as qa:
        bad = {**FORM, "sections": [{"section_id": "s", "criteria": [{"criterion_id": "c", "weight": -1}]}]}
        r = qa.post("/forms", json={"form_id": uid("f"), **bad})
        assert r.status_code == 422
        assert r.json()["detail"][0]["loc"] == ["body", "sections", 0, "criteria", 0, "weight"]
        critical_scale = {**FORM, "sections": [{"section_id": "s", "criteria": [
            {"criterion_id": "c", "weight": 1, "scale": "1-5", "critical": True}]}]}
        r = qa.post("/forms", json={"form_id": uid("f"), **critical_scale})
        assert r.status_code == 422 and "yes_no" in r.json()["detail"][0]["msg"]
        r = qa.post("/evaluations", json={"call_id": "c1", "agent_id": "agent-1", "form_id": form_id,
                                          "answers": {"greet": "perhaps"}})
        assert r.status_code == 422 and "greet" in r.json()["detail"][0]["msg"]
        r = qa.post("/evaluations", json={"call_id": "c1", "agent_id": "agent-1", "form_id": form_id,
                                          "answers": {"greet": "yes"}, "submit": True})
        assert r.status_code == 422 and "not answered" in r.json()["detail"][0]["msg"]
        r = qa.post("/evaluations", json={"call_id": "c1", "form_id": form_id})
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "agent_id"]
        assert qa.get("/evaluations/nope").status_code == 404
        assert qa.get("/reports/monitoring", params={"month": "2026-13"}).status_code == 422


def test_evaluation_life_cycle_scores_coaching_and_events(qa_server: Any) -> None:
    form_id = make_form(qa_server)
    draft = evaluate(qa_server, form_id, {"greet": "no"}, submit=False)
    assert draft["status"] == "draft" and outbox_events(qa_server, draft["evaluation_id"]) == []
    eid = draft["evaluation_id"]
    with qa_server.client("qa") as qa, qa_server.client("agent1") as agent, qa_server.client("agent2") as other:
        assert agent.get(f"/evaluations/{eid}").status_code == 404  # drafts are not shown to the agent
        r = qa.patch(f"/evaluations/{eid}", json={"answers": MIXED, "comments": "see call notes"})
        assert r.status_code == 200
        r = qa.post(f"/evaluations/{eid}/submit")
        assert r.status_code == 200, r.text
        body = r.json()
        assert (body["status"], body["score"], body["critical_failed"], body["revision"]) == ("submitted", 55.0,
                                                                                              False, 1)
        assert qa.patch(f"/evaluations/{eid}", json={"comments": "x"}).status_code == 409
        assert qa.post(f"/evaluations/{eid}/submit").status_code == 409
        # the agent sees it, the other agent does not, QA may not acknowledge for the agent
        assert agent.get(f"/evaluations/{eid}").json()["score"] == 55.0
        assert other.get(f"/evaluations/{eid}").status_code == 404
        assert qa.post(f"/evaluations/{eid}/acknowledge").status_code == 403
        # missed criteria became coaching items for the agent
        items = agent.get("/coaching").json()
        mine = [i for i in items if i["evaluation_id"] == eid]
        assert sorted(i["criterion_id"] for i in mine) == ["empathy", "greet", "solution"]
        assert other.get("/coaching").json() == [] or all(i["agent_id"] == "agent-2" for i in other.get(
            "/coaching").json())
        # dispute -> review with corrected answers -> acknowledge
        assert agent.post(f"/evaluations/{eid}/dispute", json={"reason": ""}).status_code == 422
        assert agent.post(f"/evaluations/{eid}/dispute", json={"reason": "I did greet"}).json()["status"] == "disputed"
        assert agent.post(f"/evaluations/{eid}/acknowledge").status_code == 409
        r = qa.post(f"/evaluations/{eid}/review", json={"reason": "greeting confirmed",
                                                         "answers": {**MIXED, "greet": "yes"}})
        assert r.json()["status"] == "reviewed" and r.json()["score"] == 65.0
        items = [i for i in agent.get("/coaching").json() if i["evaluation_id"] == eid]
        assert sorted(i["criterion_id"] for i in items) == ["empathy", "solution"]
        r = agent.post(f"/coaching/{items[0]['item_id']}/acknowledge")
        assert r.status_code == 200 and r.json()["acknowledged_at"]
        assert agent.post(f"/coaching/{items[0]['item_id']}/acknowledge").status_code == 409
        assert other.post(f"/coaching/{items[1]['item_id']}/acknowledge").status_code == 404
        r = agent.post(f"/evaluations/{eid}/acknowledge")
        assert r.json()["status"] == "acknowledged" and r.json()["revision"] == 4
    events = outbox_events(qa_server, eid)
    assert [e.revision for e in events] == [1, 2, 3, 4]
    assert [e.status for e in events] == [qa_events_pb2.EVALUATION_STATUS_SUBMITTED,
                                          qa_events_pb2.EVALUATION_STATUS_DISPUTED,
                                          qa_events_pb2.EVALUATION_STATUS_REVIEWED,
                                          qa_events_pb2.EVALUATION_STATUS_ACKNOWLEDGED]
    assert len({e.envelope.event_id for e in events}) == 4
    assert events[0].agent_id == "agent-1" and events[0].score == 55.0 and len(events[0].criteria) == 4
    assert events[-1].score == 65.0


def test_critical_failure_and_team_visibility(qa_server: Any) -> None:
    form_id = make_form(qa_server)
    failed = evaluate(qa_server, form_id, {**GOOD, "verify": "no"}, agent="agent-2", team="team-b")
    assert failed["score"] == 0.0 and failed["critical_failed"] is True
    with qa_server.client("lead1") as lead_a, qa_server.client("lead2") as lead_b:
        assert lead_a.get(f"/evaluations/{failed['evaluation_id']}").status_code == 404
        assert lead_b.get(f"/evaluations/{failed['evaluation_id']}").status_code == 200
        assert all(e["team_id"] == "team-a" for e in lead_a.get("/evaluations").json())
        assert lead_b.post(f"/evaluations/{failed['evaluation_id']}/review").status_code == 403


def test_calibration_session(qa_server: Any) -> None:
    form_id = make_form(qa_server)
    with qa_server.client("qa") as qa, qa_server.client("qa2") as qa2:
        r = qa.post("/calibration-sessions", json={"call_id": uid("call"), "agent_id": "agent-1",
                                                   "form_id": form_id})
        assert r.status_code == 201 and r.json()["stats"] is None
        sid = r.json()["session_id"]
        assert qa.post(f"/calibration-sessions/{sid}/scores", json={"answers": GOOD}).status_code == 201
        assert qa.post(f"/calibration-sessions/{sid}/scores", json={"answers": GOOD}).status_code == 409
        qa2.post(f"/calibration-sessions/{sid}/scores", json={"answers": MIXED})
        r = qa.post(f"/calibration-sessions/{sid}/scores", json={"evaluator_id": "qa-09", "answers": {
            **GOOD, "solution": "3"}})
        stats = r.json()["stats"]
        # scores 100, 55, 90 -> mean 81.67
        assert stats["consensus"] == 81.67 and stats["spread"] == 45.0
        assert stats["deviations"] == {"qa-07": 18.33, "qa-08": -26.67, "qa-09": 8.33}
        assert stats["mean_abs_deviation"] == 17.78
        # calibration scores are not the agent's evaluations
        assert all(e["calibration_session_id"] is None for e in qa.get("/evaluations").json())
        assert qa.get("/calibration-sessions/none").status_code == 404


def contact(call_id: str, agent: str, *, version: int = 1, queue: str = "billing", talk: float = 120,
            transfer: str = "", day: int = 3) -> dict[str, Any]:
    return {"callId": call_id, "segment": 0, "agentId": agent, "teamId": "team-a", "queueId": queue,
            "callType": "PS", "outcome": "CONTACT_OUTCOME_ANSWERED", "talkS": talk, "transferKind": transfer,
            "version": str(version), "offeredAt": f"2026-10-{day:02d}T10:00:00Z",
            "answeredAt": f"2026-10-{day:02d}T10:00:20Z"}


def test_sampling_plan_and_coverage(qa_server: Any) -> None:
    agents = [uid("ag"), uid("ag")]
    batch = [contact(f"{a}-c{i}", a, queue="billing" if i % 2 else "sales", talk=900 if i == 4 else 100,
                     transfer="warm" if i == 5 else "", day=1 + i) for a in agents for i in range(12)]
    form_id = make_form(qa_server)
    with qa_server.client("qa") as qa, qa_server.client("manager") as mgr:
        assert qa.post("/contacts", json=batch).json() == {"written": 24}
        assert qa.post("/contacts", json=batch).json() == {"written": 0}  # idempotent
        assert qa.post("/contacts", json=[{**batch[0], "agentId": agents[1], "version": "2"}]).json() == {
            "written": 1}
        assert qa.post("/contacts", json=[{"callId": 5}]).status_code == 422
        plan = {"name": "October", "period_start": "2026-10-01", "period_end": "2026-11-01", "per_agent": 4,
                "seed": 7}
        r = qa.post("/sampling-plans", json=plan)
        assert r.status_code == 201, r.text
        first = r.json()
        mine = [i for i in first["items"] if i["agent_id"] in agents]
        assert len(mine) == 8
        again = qa.post("/sampling-plans", json=plan).json()
        assert [i for i in again["items"] if i["agent_id"] in agents] == mine  # reproducible
        assert qa.post("/sampling-plans", json={**plan, "period_end": "2026-09-01"}).status_code == 422
        picked = [i for i in mine if i["agent_id"] == agents[0]][:2]
        for item in picked:
            evaluate(qa_server, form_id, GOOD, agent=agents[0], call_id=item["call_id"])
        cov = {row["agent_id"]: row for row in mgr.get(f"/sampling-plans/{first['plan_id']}/coverage").json()}
        assert (cov[agents[0]]["planned"], cov[agents[0]]["done"], cov[agents[0]]["coverage"]) == (4, 2, 0.5)
        assert cov[agents[1]]["done"] == 0
        assert qa.get("/sampling-plans/nope/coverage").status_code == 404


def test_reports(qa_server: Any) -> None:
    form_id = make_form(qa_server)
    agent = uid("rep")
    evaluate(qa_server, form_id, GOOD, agent=agent, team="team-r")
    evaluate(qa_server, form_id, MIXED, agent=agent, team="team-r")
    month = datetime.now(UTC).strftime("%Y-%m")
    with qa_server.client("manager") as mgr, qa_server.client("agent1") as agent1:
        rows = {r["agent_id"]: r for r in mgr.get("/reports/monitoring", params={"month": month}).json()}
        assert rows[agent]["monitoring_score"] == 77.5 and rows[agent]["evaluations"] == 2
        assert [m["criterion_id"] for m in rows[agent]["most_missed"]] == ["empathy", "greet", "solution"]
        teams = {r["team_id"]: r for r in mgr.get("/reports/monitoring",
                                                   params={"month": month, "group_by": "team"}).json()}
        assert teams["team-r"]["monitoring_score"] == 77.5
        own = agent1.get("/reports/monitoring", params={"month": month}).json()
        assert {r["agent_id"] for r in own} <= {"agent-1"}
        kpis = mgr.get("/reports/qa-controller", params={"month": month}).json()
        assert kpis["evaluations_done"] >= 2 and kpis["turnaround_hours_mean"] > 0
        assert agent1.get("/reports/qa-controller", params={"month": month}).status_code == 403


def test_a_lone_surrogate_in_a_json_body_is_a_422(qa_server: Any) -> None:
    """issue 17 item 7: `"\\ud800"` is legal JSON but no UTF-8: the 422 that echoes it back was a 500."""
    with qa_server.client("qa") as qa:
        r = qa.post("/forms", content=b'{"form_id": "f-\\ud800", "name": "\\ud800", "sections": []}',
                    headers={"Content-Type": "application/json"})
    assert r.status_code == 422, r.text
    assert ("body", "name") in {tuple(d["loc"]) for d in r.json()["detail"]}
