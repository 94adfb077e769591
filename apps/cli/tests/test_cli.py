"""The `callstream` command's own logic: argument parsing, errors that name the bad value, outputs."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from callstream_cli.main import app
from callstream_hr.domain.erlang import required_agents

runner = CliRunner()


def test_staffing_equals_the_domain_and_refuses_bad_input() -> None:
    result = runner.invoke(app, ["staffing", "--calls", "100", "--interval", "30m", "--aht", "180",
                                 "--target", "80/20", "--patience", "120", "--shrinkage", "0.3", "--format", "json"])
    assert result.exit_code == 0, result.output
    expected = required_agents(100, 1800, 180, 0.8, 20, patience_s=120, shrinkage=0.3)
    figures = json.loads(result.output)
    assert figures["agents"] == expected.agents == 18 and figures["model"] == "erlang_a"
    table = runner.invoke(app, ["staffing", "--calls", "100", "--aht", "180"])
    assert "agents needed          14" in table.output  # the classic 10-Erlang example, 80/20
    # every goal of the form: max occupancy, ASA and (with a patience) abandon rate
    goals = runner.invoke(app, ["staffing", "--calls", "100", "--interval", "30m", "--aht", "180", "--target", "80/20",
                                "--max-occupancy", "0.7", "--asa", "5", "--format", "json"])
    assert goals.exit_code == 0, goals.output
    want = required_agents(100, 1800, 180, 0.8, 20, max_occupancy=0.7, asa_goal=5)
    assert json.loads(goals.output)["raw_agents"] == want.raw_agents == 15 and want.occupancy <= 0.7
    abandon = runner.invoke(app, ["staffing", "--calls", "100", "--aht", "180", "--target", "1/20", "--patience", "60",
                                  "--abandon", "0.01", "--format", "json"])
    want = required_agents(100, 1800, 180, 0.01, 20, patience_s=60, abandon_goal=0.01)
    assert json.loads(abandon.output)["raw_agents"] == want.raw_agents and want.abandon_rate <= 0.01
    for bad in (["--interval", "30x"], ["--target", "80-20"], ["--target", "180/20"]):
        refused = runner.invoke(app, ["staffing", "--calls", "100", "--aht", "180", *bad])
        assert refused.exit_code == 2
        assert bad[1] in refused.output


def test_topics_doc_renders_every_topic() -> None:
    result = runner.invoke(app, ["topics", "doc"])
    assert result.exit_code == 0
    assert "## `cc.call-events.v1`" in result.output and "## `cc.alerts.v1`" in result.output


def test_kpi_needs_one_scope_at_most() -> None:
    result = runner.invoke(app, ["kpi", "--from", "2026-01-01", "--to", "2026-01-02", "--queue", "a", "--agent", "b",
                                 "--token", "x"])
    assert result.exit_code == 2
    assert "at most one of" in result.output
