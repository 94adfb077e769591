"""The SQL that cannot import callstream_core.kpi_definitions (the migrations' views, the generated Grafana
dashboards) holds the same constants: a changed definition that misses one of them fails here."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from callstream_core.kpi_definitions import FCR_WINDOW_S, NOT_OFFERED, SL_GOAL_PCT, SL_THRESHOLD_S

ROOT = Path(__file__).resolve().parents[4]
MIGRATIONS = sorted((ROOT / "services/kpi-stream/src/callstream_kpi/adapters/migrations").glob("*.sql"))
DASHBOARDS = sorted((ROOT / "deploy/grafana/dashboards").glob("*.json"))


def sql_texts() -> list[tuple[str, str]]:
    texts = [(p.name, p.read_text()) for p in MIGRATIONS]
    for path in DASHBOARDS:
        raw = json.dumps(json.loads(path.read_text()))
        texts += [(path.name, sql) for sql in re.findall(r'"rawSql": "((?:[^"\\]|\\.)*)"', raw)]
    return texts


def test_the_sources_are_there() -> None:
    # the patterns below still match something: a rewritten query must not make the checks pass vacuously
    sql = "\n".join(text for _, text in sql_texts())
    assert re.search(r"outcome\s+NOT IN", sql) and re.search(r"if\(s\.queue_id = '', [\d.]+, s\.sl_goal_pct\)", sql)


@pytest.mark.parametrize(("name", "sql"), sql_texts())
def test_not_offered_outcomes(name: str, sql: str) -> None:
    for listed in re.findall(r"outcome\s+NOT IN\s*\(([^)]*)\)", sql):
        assert set(re.findall(r"'([^']*)'", listed)) == NOT_OFFERED, (name, listed)


@pytest.mark.parametrize(("name", "sql"), sql_texts())
def test_defaults_for_a_queue_without_settings(name: str, sql: str) -> None:
    for value in re.findall(r"if\(s\.queue_id = '', ([\d.]+), s\.sl_threshold_s\)", sql):
        assert float(value) == SL_THRESHOLD_S, name
    for value in re.findall(r"if\(s\.queue_id = '', ([\d.]+), s\.sl_goal_pct\)", sql):
        assert float(value) == SL_GOAL_PCT, name


def test_fcr_window_of_the_dashboard_views() -> None:
    windows = [float(w) for _, sql in sql_texts()
               for w in re.findall(r"dateDiff\('second', first_offered, next_offered\) <= (\d+)", sql)]
    assert windows and set(windows) == {FCR_WINDOW_S}
