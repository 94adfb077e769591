"""File replay into the real broker: the Anonymous Bank file (a slice plus broken rows) and a queue_log,
through the `callstream replay` commands; defects are reported and dead-lettered."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from callstream.call.v1.call_events_pb2 import CallEvent
from callstream_cli.replay_cmd import app
from callstream_core.topics import CALL_EVENTS
from callstream_devtools.local_kafka import find_repo_root
from callstream_ingest.adapters.replay import replay_anonymous_bank
from callstream_ingest.domain.anonymous_bank import AnonymousBankMapper, BankConfig, RowDefect
from callstream_ingest.domain.queue_log import LineDefect, QueueLogMapper
from callstream_ingest.service_layer.event_sink import EventSink, make_producer

SAMPLE_QUEUE_LOG = Path(__file__).parents[1] / "unit" / "data" / "queue_log.sample"


def bank_file() -> Path:
    shared = Path(os.environ.get("CALLSTREAM_SHARED_DIR", find_repo_root().parent / "shared"))
    path = shared / "data" / "anonymous-bank" / "january.txt"
    if not path.is_file():
        pytest.skip(f"Anonymous Bank file not found at {path} (set CALLSTREAM_SHARED_DIR)")
    return path


def bank_slice(tmp_path: Path, rows: int) -> Path:
    with bank_file().open(newline="") as f:
        lines = [next(f) for _ in range(rows + 1)]
    lines.append("broken\trow\r\n")  # field_count
    lines.append(lines[1])  # duplicate_key
    out = tmp_path / "slice.txt"
    out.write_text("".join(lines), newline="")
    return out


def test_cli_replays_bank_slice_with_defects(tmp_path: Path, ingest_kafka: str, consume: Callable[..., Any]) -> None:
    path = bank_slice(tmp_path, 400)
    source = f"bank-test-{uuid.uuid4().hex[:8]}"
    expected = AnonymousBankMapper("slice.txt", BankConfig(source=source))
    items = list(expected.map_lines(path.open(newline="")))
    events = [e for e in items if not isinstance(e, RowDefect)]
    result = CliRunner().invoke(app, ["anonymous-bank", str(path), "--source", source, "--bootstrap", ingest_kafka,
                                      "--progress-every", "100"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert f"rows: {expected.summary.rows:,}" in out
    assert f"calls: {expected.summary.calls:,}" in out
    assert f"events produced: {len(events):,}" in out and "NOT confirmed" not in out
    assert "field_count" in out and "duplicate_key" in out
    assert f"slice.txt:{expected.summary.rows}: field_count" in out  # header is line 1
    assert f"slice.txt:{expected.summary.rows + 1}: duplicate_key" in out
    assert "events/s" in out and "… 100 rows" in out
    got = consume(CALL_EVENTS, len(events), source=source)
    assert len(got) == len(events)
    assert all(key == value.call_id for key, value, _ in got)
    assert {v.envelope.event_id for _, v, _ in got} == {e.envelope.event_id for e in events}
    dlq = consume(CALL_EVENTS + ".dlq", 1, keep=lambda v, h: h.get("ingest.file") == b"slice.txt"
                  and h.get("ingest.reason") == b"field_count" and v == b"broken\trow")
    assert dlq and dlq[-1][2]["ingest.line"] == str(expected.summary.rows).encode()


def test_cli_exit_1_when_nothing_produced(tmp_path: Path, ingest_kafka: str) -> None:
    path = tmp_path / "header-only.txt"
    path.write_text(bank_file().open().readline())
    result = CliRunner().invoke(app, ["anonymous-bank", str(path), "--bootstrap", ingest_kafka])
    assert result.exit_code == 1
    assert "events produced: 0" in result.output


def test_cli_replays_queue_log(tmp_path: Path, ingest_kafka: str, consume: Callable[..., Any]) -> None:
    source = f"ql-test-{uuid.uuid4().hex[:8]}"
    path = tmp_path / "queue_log"
    path.write_text(SAMPLE_QUEUE_LOG.read_text() + "garbage line\n1700009999|c9|support|NONE\n")
    result = CliRunner().invoke(app, ["queue-log", str(path), "--source", source, "--bootstrap", ingest_kafka])
    assert result.exit_code == 0, result.output
    assert "field_count" in result.output
    produced = int(result.output.split("events produced: ")[1].split()[0].replace(",", ""))
    assert produced > 0
    mapper = QueueLogMapper("queue_log", source)
    items = [e for e in mapper.map_lines(path.open()) if not isinstance(e, LineDefect)]
    assert produced == len(items)
    n_calls = sum(1 for e in items if isinstance(e, CallEvent))
    calls = consume(CALL_EVENTS, n_calls, source=source)
    agents = consume("cc.agent-events.v1", produced - n_calls, source=source)
    assert len(calls) + len(agents) == produced
    assert all(k == v.call_id for k, v, _ in calls) and all(k == v.agent_id for k, v, _ in agents)


def test_replay_reports_kafka_down(tmp_path: Path) -> None:
    from callstream_devtools.local_kafka import free_port

    sink = EventSink(make_producer(f"127.0.0.1:{free_port()}", extra={"message.timeout.ms": 1000}))
    report = replay_anonymous_bank(bank_slice(tmp_path, 20), sink, dlq=False, confirm_timeout=10)
    assert not report.confirmed and report.error
    assert "NOT confirmed" in "\n".join(report.lines())
