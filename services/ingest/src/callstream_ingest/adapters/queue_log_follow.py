"""Follow a live Asterisk queue_log: tail it, survive rotation and truncation, resume from a checkpoint.

The checkpoint (file identity, byte offset, line number) advances only after Kafka confirmed every event
of the lines before it: ``EventSink.confirm()`` (flush) first, then the checkpoint is written atomically
(temp file + fsync + rename). A crash between the two replays a few lines: their event ids are
deterministic (uuid5 of source + line + kind), so the sinks drop the repeats.

Rotation: when the path names another inode, the rest of the old file is read first, then the new file
from its start. Truncation (same inode, size below our offset): read again from the start. At start-up,
a checkpoint of another inode (the file was rotated while we were down) starts the current file from 0.
Limit: the per-call context of the mapper (queue of a call, DID) is not in the checkpoint; after a
restart, events of calls that began before it carry the queue named on their own line only.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import IO

from callstream_core.kafka import DeliveryError
from callstream_core.topics import CALL_EVENTS
from callstream_ingest.domain.identity import AgentDirectory
from callstream_ingest.domain.queue_log import LineDefect, QueueLogMapper
from callstream_ingest.service_layer.event_sink import EventSink

log = logging.getLogger(__name__)
ADAPTER = "queue-log"


@dataclass(frozen=True, slots=True)
class Position:
    inode: int
    device: int
    offset: int  # bytes of complete lines already confirmed
    line: int  # number of the last confirmed line


class Checkpoint:
    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> Position | None:
        try:
            data = json.loads(self.path.read_text())
            return Position(int(data["inode"]), int(data["device"]), int(data["offset"]), int(data["line"]))
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"checkpoint {self.path} is unreadable ({exc}); remove it to start over") from exc

    def save(self, pos: Position) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        with tmp.open("w") as f:
            json.dump(asdict(pos), f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)


def default_checkpoint(log_path: Path) -> Path:
    return log_path.with_name(f".{log_path.name}.callstream-checkpoint.json")


class QueueLogFollower:
    """Call ``run(stop)`` in a thread (or ``step()`` repeatedly); reads complete lines only."""

    def __init__(self, path: Path, sink: EventSink, checkpoint: Path, *, source: str = "asterisk-queue-log",
                 caller_salt: str = "callstream", wrap_up_s: Mapping[str, float] | None = None,
                 agents: AgentDirectory | None = None, poll_interval_s: float = 0.2, confirm_every_s: float = 1.0,
                 confirm_timeout_s: float = 120.0, dlq: bool = True) -> None:
        self.path = path
        self.sink = sink
        self.checkpoint = Checkpoint(checkpoint)
        self._new_mapper = partial(QueueLogMapper, path.name, source, caller_salt, wrap_up_s=wrap_up_s,
                                   agents=agents)
        self.mapper = self._new_mapper()
        self.poll_interval_s = poll_interval_s
        self.confirm_every_s = confirm_every_s
        self.confirm_timeout_s = confirm_timeout_s
        self.dlq = dlq
        self._f: IO[bytes] | None = None
        self._ident: tuple[int, int] = (0, 0)
        self._buf = b""
        self._offset = 0  # offset after the last complete line read
        self._line = 0
        self._dirty = False
        self._last_confirm = time.monotonic()
        self.produced = 0
        self.defects = 0
        self.rotations = 0
        self.saved: Position | None = None

    # -- file handling ------------------------------------------------------------------------------
    def _open(self, resume: Position | None) -> bool:
        try:
            f = self.path.open("rb")
        except FileNotFoundError:
            return False
        st = os.fstat(f.fileno())
        self._f, self._ident, self._buf = f, (st.st_ino, st.st_dev), b""
        self._offset, self._line = 0, 0
        if resume and (resume.inode, resume.device) == self._ident and resume.offset <= st.st_size:
            f.seek(resume.offset)
            self._offset, self._line = resume.offset, resume.line
            log.info("queue_log %s: resuming at line %d (byte %d)", self.path, resume.line, resume.offset)
        elif resume:
            log.warning("queue_log %s was rotated or truncated since the checkpoint: reading it from the start",
                        self.path)
        return True

    def _read_available(self) -> int:
        assert self._f is not None
        chunk = self._f.read(1 << 20)
        if not chunk:
            return 0
        data = self._buf + chunk
        end = data.rfind(b"\n")
        if end < 0:
            self._buf = data
            return 0
        complete, self._buf = data[: end + 1], data[end + 1 :]
        text = complete.decode("utf-8", "replace").split("\n")[:-1]
        first = self._line + 1
        for item in self.mapper.map_lines(text, first_line=first):
            if isinstance(item, LineDefect):
                self.defects += 1
                self.sink.rejected(ADAPTER, item.reason_code)
                if self.dlq:
                    raw = text[item.line - first] if 0 <= item.line - first < len(text) else ""
                    self.sink.dead_letter(ADAPTER, CALL_EVENTS, raw.encode(), {
                        "ingest.file": str(self.path), "ingest.line": str(item.line),
                        "ingest.reason": item.reason_code, "dlq.error": f"{item.reason_code}: {item.message}"})
                continue
            self.sink.send(item, ADAPTER)
            self.produced += 1
        self.sink.received(ADAPTER, len(text))
        self._line += len(text)
        self._offset += len(complete)
        self._dirty = True
        return len(text)

    def _check_rotation(self) -> bool:
        """At EOF: switch to a new file at the path, or rewind on truncation; True when it did."""
        assert self._f is not None
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return False  # rotated away, new file not created yet: keep the old one
        if (st.st_ino, st.st_dev) != self._ident:
            self._read_available()  # whatever was appended to the old file before rotation
            self.commit()
            self._f.close()
            self._f = None
            self.rotations += 1
            log.info("queue_log %s rotated: following the new file", self.path)
            self._open(None)
            return True
        if st.st_size < self._offset:
            self.commit()
            log.warning("queue_log %s truncated: reading it from the start", self.path)
            self._f.seek(0)
            self._buf, self._offset, self._line = b"", 0, 0
            self.rotations += 1
            self._dirty = True
            return True
        return False

    # -- checkpoint ---------------------------------------------------------------------------------
    def commit(self) -> None:
        """Flush to Kafka, then (only if everything was confirmed) write the checkpoint."""
        if not self._dirty:
            return
        self.sink.confirm(self.confirm_timeout_s, ADAPTER)  # raises: the checkpoint stays where it was
        pos = Position(self._ident[0], self._ident[1], self._offset, self._line)
        self.checkpoint.save(pos)
        self.saved = pos
        self._dirty = False
        self._last_confirm = time.monotonic()

    def step(self) -> int:
        """Read what is there now; returns the number of lines read. Commits every ``confirm_every_s``."""
        if self._f is None and not self._open(self.checkpoint.load()):
            return 0
        n = 0
        while self._f is not None:
            got = self._read_available()
            n += got
            if got and time.monotonic() - self._last_confirm >= self.confirm_every_s:
                self.commit()
            if not got and not self._check_rotation():
                break
        if time.monotonic() - self._last_confirm >= self.confirm_every_s or n == 0:
            self.commit()
        return n

    def rewind(self) -> None:
        """Forget what was read after the checkpoint: the next step reopens the file at the checkpoint and
        produces those lines again (after a delivery failure; repeats carry the same event ids)."""
        if self._f is not None:
            self._f.close()
            self._f = None
        self._buf, self._dirty = b"", False
        self.mapper = self._new_mapper()

    def run(self, stop: threading.Event, retry_s: float = 5.0) -> None:
        """Follow until ``stop`` is set. ``retry_s`` > 0: a Kafka failure rewinds to the checkpoint and retries
        after that delay; ``retry_s`` == 0: it raises (the CLI stops with the checkpoint intact)."""
        try:
            while not stop.is_set():
                try:
                    if self.step() == 0:
                        stop.wait(self.poll_interval_s)
                except DeliveryError as exc:
                    if retry_s <= 0:
                        raise
                    log.error("queue_log %s: Kafka did not confirm (%s); rewinding to the checkpoint, retry in "
                              "%.0f s", self.path, exc, retry_s)
                    self.rewind()
                    stop.wait(retry_s)
            self.commit()
        finally:
            if self._f is not None:
                self._f.close()
                self._f = None
