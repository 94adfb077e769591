"""The forecast reads its history from a REAL KPI API: the kpi-stream's FastAPI app served over HTTP on a
chDB engine, seeded with contacts through the kpi-stream's own fact writer. Checked: the adapter reads
offered calls (blocked calls are not offered) and AHT per 30-minute interval exactly as the contacts say;
`POST /v1/forecast` equals the seasonal model, its hold-out accuracy, Erlang staffing and a covering shift
plan on that same history; bad or missing history and an unusable KPI API get a clear answer."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from callstream_core.clickhouse import get_client
from callstream_devtools.local_kafka import free_port
from callstream_devtools.testing import serve_in_thread
from callstream_hr.adapters.kpi_history import KpiApiHistory
from callstream_hr.bootstrap import create_app as create_hr_app
from callstream_hr.domain.erlang import required_agents
from callstream_hr.domain.forecast import IntervalFigures, SeasonalForecaster, evaluate_holdout, history_from_intervals
from callstream_hr.service_layer.planning import HistoryUnavailable
from callstream_kpi.adapters.clickhouse_facts import (
    CONTACT_COLUMNS,
    FactWriter,
    RetryingClient,
    apply_migrations,
    contact_row,
)
from callstream_kpi.config import KpiSettings
from callstream_kpi.domain.contact import ContactRecord
from callstream_kpi.entrypoints.api import create_app as create_kpi_app
from callstream_kpi.entrypoints.broadcast import Broadcaster

from .conftest import Server, settings_for

pytestmark = pytest.mark.integration
KPI_TOKEN = "kpi-reader-hr-0001"
KPI_MANAGER = "kpi-manager-0001"
HISTORY_START = datetime(2026, 10, 5, tzinfo=UTC)  # a Monday
HISTORY_WEEKS = 3
WEEK_START = HISTORY_START + timedelta(weeks=HISTORY_WEEKS)
QUEUES = ("sales", "billing")
SLOT = timedelta(minutes=30)


@dataclass
class KpiApi:
    base_url: str
    expected: dict[str, list[IntervalFigures]]  # per queue, from the contacts as written
    app: Any


def _contacts(rng: random.Random) -> tuple[list[ContactRecord], dict[str, list[IntervalFigures]]]:
    """Seasonal traffic (busier on weekdays 08:00-20:00) for two queues, with blocked calls (not offered),
    abandons, and one night interval whose only call was abandoned (offered, but no AHT)."""
    records: list[ContactRecord] = []
    offered: dict[tuple[str, datetime], int] = defaultdict(int)
    handled: dict[tuple[str, datetime], list[float]] = defaultdict(list)
    for queue, base in zip(QUEUES, (3.0, 1.5), strict=True):
        for slot in range(HISTORY_WEEKS * 7 * 48):
            start = HISTORY_START + slot * SLOT
            day, half_hour = (slot // 48) % 7, slot % 48
            busy = 16 <= half_hour < 40
            mean = base * (1.0 if day < 5 else 0.5) if busy else 0.0
            n = rng.randint(0, round(2 * mean)) if mean else 0
            if queue == "sales" and slot == 48 + 4:  # Tuesday 02:00 of week 0: one abandoned call
                n = 1
            for k in range(n):
                at = start + timedelta(seconds=rng.randrange(0, 1800))
                outcome = "abandoned" if slot == 52 or rng.random() < 0.15 else (
                    "blocked" if rng.random() < 0.05 else "answered")
                talk, hold, acw = rng.uniform(60, 400), rng.choice([0.0, 20.0]), rng.uniform(5, 60)
                answered = outcome == "answered"
                records.append(ContactRecord(
                    call_id=f"{queue}-{slot}-{k}", segment=0, outcome=outcome, offered_at=at, queue_id=queue,
                    agent_id="a1" if answered else "", queued=outcome != "blocked", queue_s=5.0,
                    answered_at=at + timedelta(seconds=5) if answered else None,
                    talk_s=talk if answered else 0.0, hold_s=hold if answered else 0.0,
                    hold_count=int(answered and hold > 0), acw_s=acw if answered else 0.0))
                if outcome != "blocked":
                    offered[(queue, start)] += 1
                if answered:
                    handled[(queue, start)].append(talk + hold + acw)
    expected: dict[str, list[IntervalFigures]] = {q: [] for q in QUEUES}
    for (queue, start), count in sorted(offered.items()):
        times = handled.get((queue, start))
        expected[queue].append(IntervalFigures(start, float(count), sum(times) / len(times) if times else None))
    return records, expected


@pytest.fixture(scope="module")
def kpi_api(clickhouse_url: str) -> Iterator[KpiApi]:
    client = get_client(clickhouse_url, database="t_" + uuid.uuid4().hex[:12])
    apply_migrations(client)
    records, expected = _contacts(random.Random(11))
    FactWriter(RetryingClient(client)).insert("contacts", [contact_row(c.to_proto()) for c in records],
                                              CONTACT_COLUMNS, [("forecast-test", 0, 0)])
    app = create_kpi_app(KpiSettings(api_tokens=f"{KPI_TOKEN}:hr,{KPI_MANAGER}:manager"), client, Broadcaster())
    with serve_in_thread(app) as base_url:
        yield KpiApi(base_url, expected, app)


@pytest.fixture(scope="module")
def hr(kpi_api: KpiApi, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    settings = settings_for(f"sqlite:///{tmp_path_factory.mktemp('hr-forecast')}/hr.db",
                            kpi_api_url=kpi_api.base_url, kpi_api_token=KPI_TOKEN, kpi_api_timeout_s=60)
    app = create_hr_app(settings)
    with serve_in_thread(app) as base_url:
        yield Server(base_url, "sqlite", app)


def test_adapter_reads_offered_calls_and_aht_per_interval(kpi_api: KpiApi) -> None:
    source = KpiApiHistory(kpi_api.base_url, KPI_TOKEN, 60)
    try:
        for queue in QUEUES:
            every = source.intervals(queue, HISTORY_START, WEEK_START)  # three weeks: three requests
            # intervals whose only calls were blocked come back with 0 offered: the same as left out
            got = [p for p in every if p.offered > 0]
            assert len(got) < len(every)
            want = kpi_api.expected[queue]
            assert [(p.start, p.offered) for p in got] == [(p.start, p.offered) for p in want]
            for g, w in zip(got, want, strict=True):
                assert (g.aht_s is None) == (w.aht_s is None) and g.aht_s == pytest.approx(w.aht_s), g.start
        night = [p for p in source.intervals("sales", HISTORY_START, WEEK_START)
                 if p.start == HISTORY_START + timedelta(days=1, hours=2)]
        assert [(p.offered, p.aht_s) for p in night] == [(1.0, None)]
        assert source.intervals("no-such-queue", HISTORY_START, WEEK_START) == []
    finally:
        source.close()


def _private_ca_and_server_cert(folder: Path) -> tuple[str, str, str]:
    """A throwaway CA and a certificate it signed for 127.0.0.1 (openssl CLI): in-cluster TLS in miniature."""
    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True, timeout=60)

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "1", "-subj", "/CN=test-ca")
    openssl("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1")
    (folder / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "server.crt", "-days", "1", "-extfile", "san.ext")
    return str(folder / "ca.crt"), str(folder / "server.crt"), str(folder / "server.key")


@pytest.mark.skipif(shutil.which("openssl") is None, reason="the openssl command makes the test certificates")
def test_tls_kpi_api_is_read_with_the_configured_ca_and_refused_without(kpi_api: KpiApi, tmp_path: Path) -> None:
    ca_file, cert, key = _private_ca_and_server_cert(tmp_path)
    with serve_in_thread(kpi_api.app, ssl_certfile=cert, ssl_keyfile=key) as https_url:
        trusted = KpiApiHistory(https_url, KPI_TOKEN, 30, ca_file=ca_file)
        try:
            got = [p for p in trusted.intervals("sales", HISTORY_START, WEEK_START) if p.offered > 0]
            assert [(p.start, p.offered) for p in got] == [(p.start, p.offered) for p in kpi_api.expected["sales"]]
        finally:
            trusted.close()
        system_cas_only = KpiApiHistory(https_url, KPI_TOKEN, 30)
        try:
            with pytest.raises(HistoryUnavailable, match="CERTIFICATE_VERIFY_FAILED"):
                system_cas_only.intervals("sales", HISTORY_START, WEEK_START)
        finally:
            system_cas_only.close()
        from typer.testing import CliRunner

        from callstream_cli.main import app

        cli = ["forecast", "--api", https_url, "--token", KPI_TOKEN, "--week", "2026-10-26", "--weeks", "3",
               "--queue", "sales", "--format", "json"]
        result = CliRunner().invoke(app, [*cli, "--ca-file", ca_file])
        assert result.exit_code == 0, result.output
        assert json.loads(result.output)["queues"][0]["queue_id"] == "sales"
        unverified = CliRunner().invoke(app, cli)
        assert unverified.exit_code == 2 and "CERTIFICATE_VERIFY_FAILED" in unverified.output


def test_a_missing_ca_file_fails_at_start_up(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="KPI_API_CA_FILE"):
        settings_for("sqlite:///:memory:", kpi_api_url="https://kpi:8001", kpi_api_token=KPI_TOKEN,
                     kpi_api_ca_file=str(tmp_path / "no-such-ca.crt"))


def test_wrong_token_or_no_server_is_history_unavailable(kpi_api: KpiApi) -> None:
    wrong = KpiApiHistory(kpi_api.base_url, "not-the-token-0001", 10)
    with pytest.raises(HistoryUnavailable, match="refused the token"):
        wrong.intervals("sales", HISTORY_START, WEEK_START)
    wrong.close()
    nobody = KpiApiHistory(f"http://127.0.0.1:{free_port()}", KPI_TOKEN, 5)
    with pytest.raises(HistoryUnavailable, match="did not answer"):
        nobody.intervals("sales", HISTORY_START, WEEK_START)
    nobody.close()


GOALS = {"sl_target": 0.8, "t_s": 20, "max_occupancy": 0.85, "shrinkage": 0.25}
TEMPLATES = [{"name": "8h", "length_slots": 17, "breaks": [{"duration_slots": 1, "earliest_offset": 6,
                                                             "latest_offset": 10}]},
             {"name": "4h", "length_slots": 8}]


def test_forecast_endpoint_equals_the_model_on_the_kpi_history(hr: Server, kpi_api: KpiApi) -> None:
    with hr.client("manager") as mgr:
        r = mgr.post("/v1/forecast", json={"queues": list(QUEUES), "week_start": WEEK_START.isoformat(),
                                            "history_weeks": HISTORY_WEEKS, "holdout_weeks": 1, "staffing": GOALS,
                                            "shifts": {"templates": TEMPLATES, "time_limit_s": 20}}, timeout=120)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["week_start"] == WEEK_START.isoformat() and body["history_start"] == HISTORY_START.isoformat()
    model = SeasonalForecaster()
    requirement = [0] * 336
    for queue, out in zip(QUEUES, body["queues"], strict=True):
        history = history_from_intervals(kpi_api.expected[queue], HISTORY_START, HISTORY_WEEKS)
        fc = model.forecast(history)
        accuracy = evaluate_holdout(history, 1, model)
        assert out["queue_id"] == queue and out["history_calls"] == history.calls.sum()
        assert out["accuracy"] == pytest.approx({"holdout_weeks": 1, "intervals": 336,
                                                 "calls_mape": accuracy.calls_mape, "calls_wape": accuracy.calls_wape,
                                                 "aht_mape": accuracy.aht_mape, "aht_wape": accuracy.aht_wape})
        assert 0 < out["accuracy"]["calls_wape"] < 1  # noisy traffic: a real, non-zero error
        intervals = out["intervals"]
        assert len(intervals) == 336 and intervals[0]["start"] == WEEK_START.isoformat()
        assert intervals[1]["start"] == (WEEK_START + SLOT).isoformat()
        assert [i["calls"] for i in intervals] == pytest.approx(list(fc.flat_calls()))
        assert [i["aht_s"] for i in intervals] == pytest.approx(list(fc.flat_aht_s()))
        for i, interval in enumerate(intervals):
            want = required_agents(interval["calls"], 1800, interval["aht_s"], 0.8, 20, max_occupancy=0.85,
                                   shrinkage=0.25)
            assert (interval["agents"], interval["raw_agents"]) == (want.agents, want.raw_agents)
            requirement[i] += want.agents
    assert body["requirement"] == requirement and max(requirement) > 0
    plan = body["shift_plan"]
    assert plan["covered"] is True and plan["status"] in ("OPTIMAL", "FEASIBLE")
    assert all(c >= q for c, q in zip(plan["coverage"], requirement, strict=True))
    assert [c - q for c, q in zip(plan["coverage"], requirement, strict=True)] == plan["over"]
    assert plan["paid_hours"] >= plan["lp_bound_hours"] > 0


def test_bad_or_missing_history_and_roles(hr: Server, kpi_api: KpiApi, tmp_path_factory: pytest.TempPathFactory
                                          ) -> None:
    week = WEEK_START.isoformat()
    with hr.client("hr") as c:
        missing = c.post("/v1/forecast", json={"queues": ["sales", "ghost"], "week_start": week, "history_weeks": 3})
        assert missing.status_code == 422 and "'ghost'" in missing.json()["detail"]
        assert "no offered call in the week from 2026-10-05" in missing.json()["detail"]
        too_long = c.post("/v1/forecast", json={"queues": ["sales"], "week_start": week, "history_weeks": 4})
        assert too_long.status_code == 422 and "week from 2026-09-28" in too_long.json()["detail"]
        odd = c.post("/v1/forecast", json={"queues": ["sales"], "week_start": "2026-10-26T10:15:00Z",
                                           "history_weeks": 2})
        assert odd.status_code == 422 and "30-minute boundary" in odd.json()["detail"]
        for bad, field in (({"history_weeks": 2, "holdout_weeks": 2}, "holdout_weeks"),
                           ({"queues": []}, "queues"), ({"queues": ["sales", "sales"]}, "appear once"),
                           ({"shifts": {"templates": TEMPLATES}}, "staffing goals"),
                           ({"staffing": {**GOALS, "shrinkage": 1.0}}, "shrinkage")):
            r = c.post("/v1/forecast", json={"queues": ["sales"], "week_start": week, **bad})
            assert r.status_code == 422 and field in r.text, (bad, r.text)
    with hr.client("lead_a") as lead:
        assert lead.post("/v1/forecast", json={"queues": ["sales"]}).status_code == 403
    base = tmp_path_factory.mktemp("hr-forecast-bad")
    for name, extra, status, words in (
        ("no-config", {}, 503, "KPI_API_URL"),
        ("wrong-token", {"kpi_api_url": kpi_api.base_url, "kpi_api_token": "wrong-token-0001"}, 502, "refused"),
        ("no-server", {"kpi_api_url": f"http://127.0.0.1:{free_port()}", "kpi_api_token": KPI_TOKEN}, 502,
         "did not answer"),
    ):
        app = create_hr_app(settings_for(f"sqlite:///{base}/{name}.db", kpi_api_timeout_s=5, **extra))
        with serve_in_thread(app) as url, Server(url, "sqlite", app).client("manager") as mgr:
            r = mgr.post("/v1/forecast", json={"queues": ["sales"], "week_start": week, "history_weeks": 2})
        assert r.status_code == status and words in r.json()["detail"], (name, r.text)


def test_a_week_in_the_centers_zone_starts_at_its_local_monday(hr: Server, kpi_api: KpiApi) -> None:
    """UTC+4 (Baku): the local week starts on Sunday 20:00 UTC; history weeks are shifted the same way."""
    local_monday = "2026-10-26T00:00:00+04:00"
    with hr.client("manager") as mgr:
        r = mgr.post("/v1/forecast", json={"queues": ["sales"], "week_start": local_monday, "history_weeks": 2})
    assert r.status_code == 200, r.text
    body = r.json()
    start = datetime(2026, 10, 25, 20, tzinfo=UTC)
    assert body["week_start"] == start.isoformat() and body["history_start"] == (start - timedelta(weeks=2)).isoformat()
    history_start = start - timedelta(weeks=2)
    window = [p for p in kpi_api.expected["sales"] if history_start <= p.start < start]
    want = SeasonalForecaster().forecast(history_from_intervals(window, history_start, 2))
    assert [i["calls"] for i in body["queues"][0]["intervals"]] == pytest.approx(list(want.flat_calls()))


def test_cli_forecast_reads_the_same_history(kpi_api: KpiApi) -> None:
    from typer.testing import CliRunner

    from callstream_cli.main import app

    runner = CliRunner()
    common = ["forecast", "--api", kpi_api.base_url, "--token", KPI_TOKEN, "--week", "2026-10-26", "--weeks", "3",
              "--target", "80/20", "--shrinkage", "0.25", "--max-occupancy", "0.85"]
    result = runner.invoke(app, [*common, "--queue", "sales", "--queue", "billing", "--format", "json"])
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    model = SeasonalForecaster()
    for queue, out in zip(QUEUES, body["queues"], strict=True):
        history = history_from_intervals(kpi_api.expected[queue], HISTORY_START, HISTORY_WEEKS)
        assert [i["calls"] for i in out["intervals"]] == pytest.approx(list(model.forecast(history).flat_calls()))
        assert out["accuracy"]["calls_wape"] == pytest.approx(evaluate_holdout(history, 1, model).calls_wape)
    table = runner.invoke(app, [*common, "--queue", "sales"])
    assert table.exit_code == 0 and "sales" in table.output and "peak" in table.output
    ghost = runner.invoke(app, [*common, "--queue", "ghost"])
    assert ghost.exit_code == 1 and "'ghost'" in ghost.output
    refused = runner.invoke(app, [*[a if a != KPI_TOKEN else "wrong-token-0001" for a in common], "--queue", "sales"])
    assert refused.exit_code == 2 and "refused the token" in refused.output


def test_plan_week_takes_the_targets_stored_in_the_kpi_api(hr: Server, kpi_api: KpiApi) -> None:
    from .test_hr_api import hire, make_team

    with httpx.Client(base_url=kpi_api.base_url, headers={"Authorization": f"Bearer {KPI_MANAGER}"}) as kpi:
        stored = {"sl_threshold_s": 45, "sl_goal_pct": 85, "short_abandon_s": 5, "patience_s": 240}
        assert kpi.put("/v1/queues/sales/targets", json=stored).status_code == 200
    team = make_team(hr)
    staff = [hire(hr, team) for _ in range(6)]
    body = {"week_start": WEEK_START.isoformat(), "history_weeks": HISTORY_WEEKS,
            "queues": [{"queue_id": "sales"}, {"queue_id": "billing", "sl_target": 0.7}],
            "templates": [{"name": "8h", "length_slots": 16, "start_slots": list(range(0, 336, 4))}],
            "employees": [{"employee_id": e, "skills": ["sales", "billing"]} for e in staff], "time_limit_s": 5}
    with hr.client("hr") as c:
        r = c.post("/v1/plans/week", json=body)
    assert r.status_code == 200, r.text
    sales, billing = (q["targets"] for q in r.json()["queues"])
    # stored targets where the request leaves them out; the request's own where it gives them
    assert (sales["sl_target"], sales["t_s"], sales["patience_s"]) == (0.85, 45.0, 240.0)
    assert (billing["sl_target"], billing["t_s"], billing["patience_s"]) == (0.7, 20.0, None)
