"""Per-queue and per-team targets through the real KPI API on chDB: written, read back, used by the KPI queries
(the SL threshold), refused with a 422 naming the field when a value is bad, and a team's KPI answer judged
against its targets (figures recomputed here from the seeded calls)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from callstream_core.clickhouse import get_client
from callstream_devtools.testing import serve_in_thread
from callstream_kpi.adapters.clickhouse_facts import (
    CONTACT_COLUMNS,
    FactWriter,
    RetryingClient,
    apply_migrations,
    contact_row,
)
from callstream_kpi.config import KpiSettings
from callstream_kpi.domain.contact import ContactRecord
from callstream_kpi.domain.targets import QueueSettings, ScopeKind, ScopeRef, TargetBook, TeamSettings
from callstream_kpi.entrypoints.api import create_app
from callstream_kpi.entrypoints.broadcast import Broadcaster

pytestmark = pytest.mark.integration
MANAGER, READER = "kpi-manager-0001", "kpi-reader-0001"
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
WAITS = [5.0, 15.0, 25.0, 35.0, 50.0, 70.0, 90.0, 120.0]  # answered calls' queue times
# Queue support's calls answered by team t_north (queue time, talk time); t_south's must not count for it.
NORTH = [(4.0, 200.0), (12.0, 150.0), (18.0, 90.0), (26.0, 300.0), (33.0, 120.0), (41.0, 240.0), (65.0, 60.0)]
SOUTH = [(2.0, 100.0), (3.0, 100.0)]


@pytest.fixture(scope="module")
def api(clickhouse_url: str) -> Iterator[str]:
    client = get_client(clickhouse_url, database="t_" + uuid.uuid4().hex[:12])
    apply_migrations(client)
    records = [ContactRecord(call_id=f"c{i}", segment=0, outcome="answered", offered_at=T0 + timedelta(minutes=i),
                             queue_id="sales", agent_id="a1", queued=True, queue_s=w,
                             answered_at=T0 + timedelta(minutes=i, seconds=w), talk_s=100.0)
               for i, w in enumerate(WAITS)]
    records += [ContactRecord(call_id=f"{team}-{i}", segment=0, outcome="answered",
                              offered_at=T0 + timedelta(minutes=i), queue_id="support", agent_id=f"{team}-agent",
                              team_id=team, queued=True, queue_s=wait,
                              answered_at=T0 + timedelta(minutes=i, seconds=wait), talk_s=talk)
                for team, calls in (("t_north", NORTH), ("t_south", SOUTH)) for i, (wait, talk) in enumerate(calls)]
    FactWriter(RetryingClient(client)).insert("contacts", [contact_row(c.to_proto()) for c in records],
                                              CONTACT_COLUMNS, [("targets-test", 0, 0)])
    app = create_app(KpiSettings(api_tokens=f"{MANAGER}:manager,{READER}:hr"), client, Broadcaster())
    with serve_in_thread(app) as base_url:
        yield base_url


def _client(base: str, token: str) -> httpx.Client:
    return httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30)


def _service_level(c: httpx.Client) -> float:
    r = c.get("/v1/kpis", params={"from": T0.isoformat(), "to": (T0 + timedelta(minutes=30)).isoformat(),
                                  "scope": "queue", "id": "sales", "kpi": "service_level"})
    assert r.status_code == 200, r.text
    return float(r.json()["rows"][0]["service_level"])


def test_targets_are_written_read_and_used_by_the_kpis(api: str) -> None:
    with _client(api, MANAGER) as mgr, _client(api, READER) as reader:
        assert reader.get("/v1/queues/sales/targets").status_code == 404
        body = {"sl_threshold_s": 60, "sl_goal_pct": 90, "short_abandon_s": 5, "patience_s": 150,
                "kpi_targets": {"asa": 15, "abandon_rate": 3}}
        assert mgr.put("/v1/queues/sales/targets", json=body).status_code == 200
        got = reader.get("/v1/queues/sales/targets").json()
        assert got == {"queue_id": "sales", **body}
        # a new version replaces the old one
        assert mgr.put("/v1/queues/sales/targets", json={**body, "sl_threshold_s": 30}).status_code == 200
        listed = reader.get("/v1/queues/targets").json()
        assert [(q["queue_id"], q["sl_threshold_s"]) for q in listed] == [("sales", 30.0)]
        # the KPI query takes T from the queue's settings: answered within 30 s of the 8 calls, by hand
        assert _service_level(reader) == pytest.approx(100 * sum(w <= 30 for w in WAITS) / len(WAITS))


def test_bad_targets_are_refused_naming_the_field(api: str) -> None:
    with _client(api, MANAGER) as mgr, _client(api, READER) as reader:
        for field, value in (("sl_threshold_s", 0), ("sl_goal_pct", 120), ("short_abandon_s", -1),
                             ("patience_s", 0), ("sl_goal_pct", "high")):
            r = mgr.put("/v1/queues/billing/targets", json={field: value})
            assert r.status_code == 422, (field, r.text)
            assert r.json()["detail"][0]["loc"][-1] == field
        r = mgr.put("/v1/queues/billing/targets", json={"kpi_targets": {"happiness": 5}})
        assert r.status_code == 422 and r.json()["detail"][0]["loc"][-1] == "kpi_targets"
        assert "happiness" in r.json()["detail"][0]["msg"]
        assert mgr.put("/v1/queues/billing/targets", json={"colour": "red"}).json()["detail"][0]["loc"][-1] == "colour"
        assert reader.put("/v1/queues/billing/targets", json={}).status_code == 403
        assert reader.get("/v1/queues/billing/targets").status_code == 404


@pytest.mark.parametrize("settings_type, kind", [(QueueSettings, "queue"), (TeamSettings, "team")])
def test_stored_targets_override_the_alert_targets_of_their_scope_only(
        settings_type: type[QueueSettings | TeamSettings], kind: ScopeKind) -> None:
    book = TargetBook()
    settings_type("x", sl_goal_pct=90, kpi_targets={"asa": 15}).apply(book)
    own, other = ScopeRef(kind, "x"), ScopeRef(kind, "y")
    assert book.get("service_level", own).value == 90 and book.get("service_level", other).value == 80
    assert book.get("asa", own).value == 15 and book.get("asa", other).value == 30
    with pytest.raises(ValueError, match="happiness"):
        settings_type("x", kpi_targets={"happiness": 1})


def _team_answer(c: httpx.Client, team: str) -> dict[str, Any]:
    r = c.get("/v1/kpis", params={"from": T0.isoformat(), "to": (T0 + timedelta(minutes=30)).isoformat(),
                                  "scope": "team", "id": team, "kpi": ["service_level", "asa", "transfer_rate"]})
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_team_targets_are_written_and_read_back(api: str) -> None:
    with _client(api, MANAGER) as mgr, _client(api, READER) as reader:
        assert reader.get("/v1/teams/t_east/targets").status_code == 404
        body = {"sl_threshold_s": 25.0, "sl_goal_pct": 85.0, "kpi_targets": {"average_acw": 40.0}}
        r = mgr.put("/v1/teams/t_east/targets", json=body)
        assert r.status_code == 200, r.text
        assert reader.get("/v1/teams/t_east/targets").json() == {"team_id": "t_east", **body}
        # a new version replaces the old one; a team without T measures each call by its queue's T
        assert mgr.put("/v1/teams/t_east/targets", json={"sl_goal_pct": 70}).status_code == 200
        listed = [t for t in reader.get("/v1/teams/targets").json() if t["team_id"] == "t_east"]
        assert listed == [{"team_id": "t_east", "sl_threshold_s": None, "sl_goal_pct": 70.0, "kpi_targets": {}}]


def test_bad_team_targets_are_refused_naming_the_field(api: str) -> None:
    with _client(api, MANAGER) as mgr, _client(api, READER) as reader:
        for field, value in (("sl_threshold_s", 0), ("sl_threshold_s", 4000), ("sl_goal_pct", 101),
                             ("sl_goal_pct", "high"), ("short_abandon_s", 5), ("patience_s", 120)):
            r = mgr.put("/v1/teams/t_west/targets", json={field: value})
            assert r.status_code == 422, (field, r.text)
            assert r.json()["detail"][0]["loc"][-1] == field, r.text
        r = mgr.put("/v1/teams/t_west/targets", json={"kpi_targets": {"happiness": 5}})
        assert r.status_code == 422 and r.json()["detail"][0]["loc"][-1] == "kpi_targets"
        assert "happiness" in r.json()["detail"][0]["msg"]
        assert reader.put("/v1/teams/t_west/targets", json={}).status_code == 403
        assert mgr.get("/v1/teams/t_west/targets").status_code == 404  # nothing was written


def test_the_team_answer_is_judged_against_the_teams_targets(api: str) -> None:
    """SL and ASA of t_north's calls by hand; met/not met by comparing them with the goals written here."""
    with _client(api, MANAGER) as mgr, _client(api, READER) as reader:
        plain = _team_answer(reader, "t_north")
        assert plain["stored_targets"] is None
        assert plain["targets"]["service_level"] == {"comparison": ">=", "value": 80.0, "source": "handbook"}
        within_20 = 100 * sum(w <= 20 for w, _ in NORTH) / len(NORTH)  # no team T: the queue's (default 20 s)
        assert plain["total"]["service_level"] == pytest.approx(within_20)
        assert plain["total"]["met"]["service_level"] is (within_20 >= 80)

        asa = sum(w for w, _ in NORTH) / len(NORTH)
        within_30 = 100 * sum(w <= 30 for w, _ in NORTH) / len(NORTH)
        goal_met, asa_goal_missed = within_30 - 1, asa - 1  # just below the SL, just below the ASA
        body = {"sl_threshold_s": 30, "sl_goal_pct": goal_met, "kpi_targets": {"asa": asa_goal_missed}}
        assert mgr.put("/v1/teams/t_north/targets", json=body).status_code == 200
        judged = _team_answer(reader, "t_north")
        assert judged["stored_targets"] == {"team_id": "t_north", "sl_threshold_s": 30.0, "sl_goal_pct": goal_met,
                                            "kpi_targets": {"asa": asa_goal_missed}}
        total = judged["total"]
        assert total["service_level"] == pytest.approx(within_30)  # the team's T measures its calls
        assert total["asa"] == pytest.approx(asa)
        assert total["met"] == {"service_level": True, "asa": False, "transfer_rate": True}  # no transfers: 0 ≤ 2
        assert judged["targets"]["service_level"] == {"comparison": ">=", "value": goal_met, "source": "override"}
        assert judged["targets"]["asa"] == {"comparison": "<=", "value": asa_goal_missed, "source": "override"}
        assert judged["targets"]["transfer_rate"]["source"] == "handbook"
        (row,) = judged["rows"]  # one 30-minute interval: the same calls, the same verdicts
        assert row["met"] == total["met"]

        # a goal just above the team's SL is missed; t_south's answer keeps the defaults
        assert mgr.put("/v1/teams/t_north/targets",
                       json={**body, "sl_goal_pct": within_30 + 1}).status_code == 200
        assert _team_answer(reader, "t_north")["total"]["met"]["service_level"] is False
        south = _team_answer(reader, "t_south")
        assert south["stored_targets"] is None and south["total"]["service_level"] == pytest.approx(100.0)
        assert south["total"]["met"]["service_level"] is True
