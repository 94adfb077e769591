"""queue_log follower: tail, rotation, truncation, restart from the checkpoint, and a checkpoint that does
not move when Kafka did not confirm."""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from callstream_core.kafka import DeliveryError
from callstream_core.topics import AGENT_EVENTS, CALL_EVENTS
from callstream_devtools.local_kafka import free_port
from callstream_ingest.adapters.queue_log_follow import QueueLogFollower
from callstream_ingest.service_layer.event_sink import EventSink, make_producer


def call_lines(start: int, n: int, tag: str) -> str:
    """n calls, each ENTERQUEUE + CONNECT + COMPLETECALLER: 2 + 3 + 2 events (call and agent; CONNECT's ring
    time of 1 s is a ringing event)."""
    out = []
    for i in range(start, start + n):
        t = 1700000000 + i * 10
        cid = f"{tag}.{i}"
        out += [f"{t}|{cid}|support|NONE|ENTERQUEUE||5551234|1",
                f"{t + 2}|{cid}|support|SIP/1001|CONNECT|2|{cid}.1|1",
                f"{t + 5}|{cid}|support|SIP/1001|COMPLETECALLER|2|3|1"]
    return "\n".join(out) + "\n"


def append(path: Path, text: str) -> None:
    with path.open("a") as f:
        f.write(text)


def call_ids(consume: Callable[..., Any], source: str, n_calls: int) -> list[str]:
    got = consume(CALL_EVENTS, 5 * n_calls, source=source, timeout=30)
    return [k for k, _, _ in got]


def test_follow_rotation_truncation_and_restart(tmp_path: Path, ingest_kafka: str,
                                                consume: Callable[..., Any]) -> None:
    source = f"ql-follow-{uuid.uuid4().hex[:8]}"
    log, ckpt = tmp_path / "queue_log", tmp_path / "ckpt.json"
    sink = EventSink(make_producer(ingest_kafka))
    append(log, call_lines(0, 3, "a") + "1700000000|x|q|NONE")  # last line incomplete: not read yet
    f = QueueLogFollower(log, sink, ckpt, source=source, confirm_every_s=0)
    assert f.step() == 9
    saved = json.loads(ckpt.read_text())
    assert saved["line"] == 9 and saved["offset"] == len(call_lines(0, 3, "a"))
    append(log, "|ENTERQUEUE||1|1\n")  # completes line 10
    assert f.step() == 1 and f.saved is not None and f.saved.line == 10

    # rotation: the old file gets one more call before it is renamed; the new file starts fresh
    append(log, call_lines(3, 1, "a"))
    os.rename(log, tmp_path / "queue_log.1")
    append(log, call_lines(4, 2, "a"))
    f.step()  # reads the tail of the old file, then switches
    f.step()
    assert f.rotations == 1 and f.saved is not None and f.saved.line == 6

    # restart: a new follower resumes at the checkpoint and reads only what is new
    f2 = QueueLogFollower(log, sink, ckpt, source=source, confirm_every_s=0)
    append(log, call_lines(6, 1, "a"))
    assert f2.step() == 3 and f2.saved is not None and f2.saved.line == 9

    # truncation (copytruncate): read again from the start
    log.write_text(call_lines(7, 1, "a"))
    f2.step()
    f2.step()
    assert f2.rotations == 1 and f2.saved is not None and f2.saved.line == 3

    ids = call_ids(consume, source, 8)
    # ENTERQUEUE of the completed line 10 (call "x") plus 8 calls x (offered, queued, ringing, answered, ended)
    assert sorted(set(ids)) == sorted({f"a.{i}" for i in range(8)} | {"x"})
    assert len(ids) == 8 * 5 + 2  # nothing read twice
    agents = consume(AGENT_EVENTS, 16, source=source, timeout=30)
    assert len(agents) == 16 and {k for k, _, _ in agents} == {"SIP/1001"}


def test_run_thread_follows_live_appends(tmp_path: Path, ingest_kafka: str, consume: Callable[..., Any]) -> None:
    source = f"ql-live-{uuid.uuid4().hex[:8]}"
    log, ckpt = tmp_path / "queue_log", tmp_path / "ckpt.json"
    log.write_text("")
    f = QueueLogFollower(log, EventSink(make_producer(ingest_kafka)), ckpt, source=source, poll_interval_s=0.05,
                         confirm_every_s=0.2)
    stop = threading.Event()
    t = threading.Thread(target=f.run, args=(stop,))
    t.start()
    try:
        for i in range(5):
            append(log, call_lines(i, 1, "live"))
            time.sleep(0.1)
        deadline = time.monotonic() + 30
        while (f.saved is None or f.saved.line < 15) and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        stop.set()
        t.join(30)
    assert f.saved is not None and f.saved.line == 15
    assert len(call_ids(consume, source, 5)) == 25


def test_checkpoint_does_not_move_when_kafka_is_down(tmp_path: Path) -> None:
    log, ckpt = tmp_path / "queue_log", tmp_path / "ckpt.json"
    log.write_text(call_lines(0, 2, "down"))
    sink = EventSink(make_producer(f"127.0.0.1:{free_port()}", extra={"message.timeout.ms": 1000}))
    f = QueueLogFollower(log, sink, ckpt, confirm_every_s=0, confirm_timeout_s=10)
    with pytest.raises(DeliveryError):
        f.step()
    assert not ckpt.exists() and f.saved is None


def test_rewind_after_failure_produces_the_lines_again(tmp_path: Path, ingest_kafka: str,
                                                       consume: Callable[..., Any]) -> None:
    source = f"ql-rewind-{uuid.uuid4().hex[:8]}"
    log, ckpt = tmp_path / "queue_log", tmp_path / "ckpt.json"
    log.write_text(call_lines(0, 1, "rw"))
    good = EventSink(make_producer(ingest_kafka))
    f = QueueLogFollower(log, good, ckpt, source=source, confirm_every_s=0)
    assert f.step() == 3  # checkpoint at line 3
    append(log, call_lines(1, 2, "rw"))
    f.sink = EventSink(make_producer(f"127.0.0.1:{free_port()}", extra={"message.timeout.ms": 1000}))
    with pytest.raises(DeliveryError):
        f.step()
    assert f.saved is not None and f.saved.line == 3 and json.loads(ckpt.read_text())["line"] == 3
    f.sink = good  # Kafka is back
    f.rewind()
    assert f.step() == 6 and f.saved is not None and f.saved.line == 9
    assert sorted(set(call_ids(consume, source, 3))) == ["rw.0", "rw.1", "rw.2"]
