"""`callstream targets` against a real KPI API (chDB), and `callstream plan week --targets-api` reading them."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from plan_files import employees_file, queue_log_file
from typer.testing import CliRunner

from callstream_cli.main import app
from callstream_core.clickhouse import get_client
from callstream_devtools.testing import serve_in_thread
from callstream_kpi.adapters.clickhouse_facts import apply_migrations
from callstream_kpi.config import KpiSettings
from callstream_kpi.entrypoints.api import create_app
from callstream_kpi.entrypoints.broadcast import Broadcaster

pytestmark = pytest.mark.integration
runner = CliRunner()
MANAGER, READER = "kpi-manager-0002", "kpi-reader-0002"


@pytest.fixture(scope="module")
def kpi_api(clickhouse_url: str) -> Iterator[str]:
    client = get_client(clickhouse_url, database="t_" + uuid.uuid4().hex[:12])
    apply_migrations(client)
    kpi_app = create_app(KpiSettings(api_tokens=f"{MANAGER}:manager,{READER}:hr"), client, Broadcaster())
    with serve_in_thread(kpi_app) as base_url:
        yield base_url


def test_set_changes_only_what_is_given_and_list_shows_it(kpi_api: str) -> None:
    base = ["--api", kpi_api, "--token", MANAGER]
    first = runner.invoke(app, ["targets", "set", "support", "--sl", "90/30", "--patience", "150",
                                "--kpi", "asa=15", *base])
    assert first.exit_code == 0, first.output
    second = runner.invoke(app, ["targets", "set", "support", "--short-abandon", "5", *base])
    assert second.exit_code == 0, second.output
    listed = runner.invoke(app, ["targets", "list", "--api", kpi_api, "--token", READER])
    assert json.loads(listed.output) == [{"queue_id": "support", "sl_threshold_s": 30.0, "sl_goal_pct": 90.0,
                                          "short_abandon_s": 5.0, "patience_s": 150.0, "kpi_targets": {"asa": 15.0}}]


def test_bad_targets_are_refused_naming_the_field(kpi_api: str) -> None:
    base = ["--api", kpi_api, "--token", MANAGER]
    bad = runner.invoke(app, ["targets", "set", "billing", "--patience", "0", *base])
    assert bad.exit_code == 1 and "422" in bad.output and "patience_s" in bad.output
    unknown = runner.invoke(app, ["targets", "set", "billing", "--kpi", "happiness=5", *base])
    assert unknown.exit_code == 1 and "kpi_targets" in unknown.output and "happiness" in unknown.output
    assert runner.invoke(app, ["targets", "set", "billing", "--kpi", "asa", *base]).exit_code == 2
    reader = runner.invoke(app, ["targets", "set", "billing", "--sl", "80/20", "--api", kpi_api, "--token", READER])
    assert reader.exit_code == 1 and "403" in reader.output


def test_team_targets_are_set_and_listed_apart_from_the_queues(kpi_api: str) -> None:
    base = ["--api", kpi_api, "--token", MANAGER]
    first = runner.invoke(app, ["targets", "set", "t_north", "--team", "--sl", "85/25", "--kpi", "average_acw=40",
                                *base])
    assert first.exit_code == 0, first.output
    second = runner.invoke(app, ["targets", "set", "t_north", "--team", "--kpi", "asa=20", *base])
    assert second.exit_code == 0, second.output
    listed = runner.invoke(app, ["targets", "list", "--team", "--api", kpi_api, "--token", READER])
    assert listed.exit_code == 0, listed.output
    assert json.loads(listed.output) == [{"team_id": "t_north", "sl_threshold_s": 25.0, "sl_goal_pct": 85.0,
                                          "kpi_targets": {"average_acw": 40.0, "asa": 20.0}}]
    queues = runner.invoke(app, ["targets", "list", "--api", kpi_api, "--token", READER])
    assert queues.exit_code == 0 and "t_north" not in queues.output, queues.output
    # a team has no callers' side: the API refuses it, naming the field
    bad = runner.invoke(app, ["targets", "set", "t_north", "--team", "--patience", "100", *base])
    assert bad.exit_code == 1 and "422" in bad.output and "patience_s" in bad.output


def test_plan_week_reads_the_stored_targets(kpi_api: str, tmp_path: Path) -> None:
    assert runner.invoke(app, ["targets", "set", "support", "--sl", "85/40", "--patience", "200", "--api", kpi_api,
                               "--token", MANAGER]).exit_code == 0
    queue_log_file(tmp_path / "queue_log", 2, seed=2)
    staff = employees_file(tmp_path / "staff.csv", [f"A{i:02d},Agent {i},T1,support,0,40,2,,yes,20" for i in range(14)])
    result = runner.invoke(app, ["plan", "week", str(tmp_path / "queue_log"), "--employees", str(staff),
                                 "--time-limit", "5", "--format", "json", "--targets-api", kpi_api,
                                 "--token", READER])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output[result.output.index("{"):])
    assert doc["queues"][0]["targets"] == {"queue_id": "support", "sl_target": 0.85, "t_s": 40.0,
                                           "patience_s": 200.0, "max_occupancy": 1.0, "asa_goal": None,
                                           "abandon_goal": None}
