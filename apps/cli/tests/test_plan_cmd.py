"""`callstream plan week`: a history file and an employees file in, a roster out; bad files named with the line."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from plan_files import employees_file, queue_log_file
from typer.testing import CliRunner

from callstream_cli.main import app

runner = CliRunner()
BANK = Path("/work/shared/data/anonymous-bank/january.txt")
EXAMPLE_EMPLOYEES = Path(__file__).parents[3] / "services" / "hr" / "examples" / "bank-employees.csv"


def test_a_queue_log_becomes_a_roster_csv_that_respects_skills_and_hours(tmp_path: Path) -> None:
    queue_log_file(tmp_path / "queue_log", 3, seed=5)
    staff = employees_file(tmp_path / "staff.csv", [f"A{i:02d},Agent {i},T1,support,0,40,2,,yes,20" for i in range(14)])
    out = tmp_path / "roster.csv"
    result = runner.invoke(app, ["plan", "week", str(tmp_path / "queue_log"), "--employees", str(staff),
                                 "--time-limit", "5", "--out", str(out), "--queue-target", "support=90/30",
                                 "--patience", "support=120", "--replay"])
    assert result.exit_code == 0, result.output
    assert "support" in result.output and "90%/30s" in result.output
    # the replay judged the planned week's intervals against the queue's 90/30 target
    assert "replay: " in result.output and "(target 90%/30s)" in result.output
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert rows and {r["queue_id"] for r in rows} == {"support"}
    hours: dict[str, float] = {}
    for r in rows:
        hours[r["employee_id"]] = hours.get(r["employee_id"], 0.0) + float(r["paid_hours"])
        start, end = datetime.fromisoformat(r["start"]), datetime.fromisoformat(r["end"])
        assert end - start == timedelta(hours=8, minutes=30)
        b_start, b_end = (datetime.fromisoformat(x) for x in r["breaks"].split("/"))
        assert start < b_start < b_end < end
    assert max(hours.values()) <= 40
    # the planned week is the Monday after the history (3 weeks from 2026-11-02)
    assert min(datetime.fromisoformat(r["start"]) for r in rows) >= datetime(2026, 11, 23, tzinfo=UTC)


def test_the_bank_month_plans_every_queue_and_the_json_is_a_schedule(tmp_path: Path) -> None:
    if not BANK.exists():
        pytest.skip("the anonymous-bank data is not on this machine")
    out = tmp_path / "roster.json"
    result = runner.invoke(app, ["plan", "week", str(BANK), "--employees", str(EXAMPLE_EMPLOYEES),
                                 "--time-limit", "5", "--out", str(out)])
    assert result.exit_code in (0, 3), result.output
    assert "phantom_record" in result.output  # the file's defective rows are reported, with their lines
    assert "january.txt:65: phantom_record" in result.output
    doc = json.loads(out.read_text())
    assert doc["history_weeks"] == 4
    assert datetime.fromisoformat(doc["week_start"]) == datetime(1999, 2, 1, tzinfo=UTC) - timedelta(hours=2)
    skills = {r["employee_id"]: set(r["skills"].split(";"))
              for r in csv.DictReader(io.StringIO(EXAMPLE_EMPLOYEES.read_text()))}
    for shift in doc["roster"]["shifts"]:
        assert shift["queue_id"] in skills[shift["employee_id"]]
    assert len(doc["schedule"]["shifts"]) == len(doc["roster"]["shifts"])
    assert {q["queue_id"] for q in doc["queues"]} == {"IN", "NE", "NW", "PE", "PS", "TT"}


@pytest.mark.parametrize(("row", "message"), [
    ("A1,Ann,T1,support,50,40,2,,yes,20", "staff.csv:3: min_weekly_hours must be >= 0 and <= max_weekly_hours"),
    ("A1,Ann,T1,support,0,40,2,someday,yes,20", "staff.csv:3: unavailable_days 'someday'"),
    ("A1,Ann,T1,support,0,forty,2,,yes,20", "staff.csv:3: max_weekly_hours 'forty' is not a number"),
    ("A1,Ann,T1,support,0,40,2,,maybe,20", "staff.csv:3: nights_allowed 'maybe'"),
    ("A0,Ann,T1,support,0,40,2,,yes,20", "staff.csv:3: employee A0 is already on line 2"),
    ("A1,Ann,T1,,0,40,2,,yes,20", "staff.csv:3: skills is empty"),
    ("A1,Ann,T1,support,0,40,2,,yes,20,extra", "staff.csv:3: more fields than the header has"),
])
def test_a_bad_employees_file_is_refused_naming_file_and_line(tmp_path: Path, row: str, message: str) -> None:
    (tmp_path / "queue_log").write_text("1700000100|1.1|support|NONE|ENTERQUEUE||5551234|1\n")
    staff = employees_file(tmp_path / "staff.csv", ["A0,Al,T1,support,0,40,2,,yes,20", row])
    result = runner.invoke(app, ["plan", "week", str(tmp_path / "queue_log"), "--employees", str(staff)])
    assert result.exit_code == 1
    assert message in result.output


def test_a_history_too_short_to_hold_a_week_out_is_refused(tmp_path: Path) -> None:
    queue_log_file(tmp_path / "queue_log", 1, seed=1)
    staff = employees_file(tmp_path / "staff.csv", ["A0,Al,T1,support,0,40,2,,yes,20"])
    result = runner.invoke(app, ["plan", "week", str(tmp_path / "queue_log"), "--employees", str(staff)])
    assert result.exit_code == 1
    assert "queue_log: the history before" in result.output and "two or more are needed" in result.output


def _between(start: str, end: str) -> float:
    """Seconds from one H:MM:SS to the next (across midnight when the end is earlier)."""
    def seconds(text: str) -> int:
        h, m, sec = (int(x) for x in text.split(":"))
        return h * 3600 + m * 60 + sec
    return float((seconds(end) - seconds(start)) % 86400)


def test_call_records_of_the_bank_file_match_its_raw_columns(tmp_path: Path) -> None:
    """Wait and handle time of each call record against the raw row's clock times: queue entry to answer
    (ser_start − q_start) or to hang-up (q_exit − q_start), answer to end (ser_exit − ser_start: kpis.md
    handle time, the bank reports no hold or ACW); abandoned calls are the queued HANG rows."""
    if not BANK.exists():
        pytest.skip("the anonymous-bank data is not on this machine")
    from callstream_cli.plan_cmd import read_call_events
    from callstream_hr.adapters.call_events import records_from_events
    from callstream_hr.domain.history import CallOutcome

    lines = BANK.read_text(encoding="utf-8").splitlines()[:2001]
    sample = tmp_path / "bank.txt"
    sample.write_text("\n".join(lines) + "\n")
    events, _, _, kind = read_call_events(sample)
    assert kind == "anonymous-bank"
    got = sorted((r.outcome.value, r.queue_id, r.wait_s, r.handle_s) for r in records_from_events(events))
    want = []
    for line in lines[1:]:
        f = line.split("\t")
        if len(f) != 17 or f[12] == "PHANTOM" or f[4] not in ("PS", "PE", "IN", "NE", "NW", "TT"):
            continue
        if any(int(f[i]) < 0 for i in (8, 11, 15)):
            continue
        queued, outcome = f[9] != "0:00:00", f[12]
        if outcome == "AGENT" and f[13] != "0:00:00":
            want.append(("answered", f[4], _between(f[9], f[13]) if queued else 0.0, _between(f[13], f[14])))
        elif outcome == "HANG" and queued and f[13] == "0:00:00" and f[16] == "NO_SERVER":
            want.append(("abandoned", f[4], _between(f[9], f[10]), None))
    assert got and sorted(want) == got
    assert {o for o, *_ in got} == {CallOutcome.ANSWERED.value, CallOutcome.ABANDONED.value}
