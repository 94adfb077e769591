"""Replay a file into Kafka: the Anonymous Bank call records and an Asterisk queue_log.

Every data line ends as events or as one defect; defects are counted, the first few are kept for the
report, and each one is dead-lettered to ``cc.call-events.v1.dlq`` (value = the raw line, headers
``ingest.file``, ``ingest.line``, ``ingest.reason``, ``dlq.error``) so nothing is dropped silently.
The report is final only after ``EventSink.confirm()``: Kafka confirmed every event.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from callstream_core.topics import CALL_EVENTS
from callstream_ingest.domain.anonymous_bank import AnonymousBankMapper, BankConfig, RowDefect
from callstream_ingest.domain.queue_log import LineDefect, QueueLogMapper
from callstream_ingest.service_layer.event_sink import EventSink

FIRST_DEFECTS = 10
Progress = Callable[["ReplayReport"], None]


@dataclass(slots=True)
class ReplayReport:
    file: str
    rows: int = 0
    calls: int | None = None
    events_by_kind: Counter[str] = field(default_factory=Counter)
    defects_by_reason: Counter[str] = field(default_factory=Counter)
    first_defects: list[str] = field(default_factory=list)
    produced: int = 0
    dead_lettered: int = 0
    confirmed: bool = False
    wall_s: float = 0.0
    error: str = ""

    @property
    def events(self) -> int:
        return sum(self.events_by_kind.values())

    @property
    def defects(self) -> int:
        return sum(self.defects_by_reason.values())

    @property
    def events_per_s(self) -> float:
        return self.produced / self.wall_s if self.wall_s > 0 else 0.0

    def lines(self) -> list[str]:
        """Human-readable summary."""
        out = [f"file: {self.file}", f"rows: {self.rows:,}"]
        if self.calls is not None:
            out.append(f"calls: {self.calls:,}")
        out.append(f"events produced: {self.produced:,}" + ("" if self.confirmed else " (NOT confirmed by Kafka)"))
        for kind, n in sorted(self.events_by_kind.items()):
            out.append(f"  {kind:26} {n:10,}")
        out.append(f"defects: {self.defects:,} (dead-lettered: {self.dead_lettered:,})")
        for reason, n in self.defects_by_reason.most_common():
            out.append(f"  {reason:26} {n:10,}")
        if self.first_defects:
            out.append("first defects:")
            out += [f"  {d}" for d in self.first_defects]
        out.append(f"wall time: {self.wall_s:.2f} s, {self.events_per_s:,.0f} events/s")
        if self.error:
            out.append(f"error: {self.error}")
        return out


def _dead_letter(sink: EventSink, adapter: str, defect: RowDefect | LineDefect, raw: str) -> None:
    sink.dead_letter(adapter, CALL_EVENTS, raw.encode("utf-8", "replace"), {
        "ingest.file": defect.file, "ingest.line": str(defect.line), "ingest.reason": defect.reason_code,
        "dlq.error": f"{defect.reason_code}: {defect.message}",
    })


class _Lines:
    """Iterates the lines of a file remembering the last few, so a defect's raw line can be dead-lettered."""

    def __init__(self, lines: Iterable[str], first_line: int = 1) -> None:
        self._it = iter(lines)
        self.number = first_line - 1
        self.recent: dict[int, str] = {}

    def __iter__(self) -> Iterator[str]:
        for line in self._it:
            self.number += 1
            self.recent[self.number] = line
            if len(self.recent) > 64:
                self.recent.pop(self.number - 64, None)
            yield line


def _record_defect(report: ReplayReport, sink: EventSink, adapter: str, defect: RowDefect | LineDefect,
                   lines: _Lines, dlq: bool) -> None:
    report.defects_by_reason[defect.reason_code] += 1
    sink.rejected(adapter, defect.reason_code)
    if len(report.first_defects) < FIRST_DEFECTS:
        report.first_defects.append(f"{defect.file}:{defect.line}: {defect.reason_code}: {defect.message}")
    if dlq:
        _dead_letter(sink, adapter, defect, lines.recent.get(defect.line, "").rstrip("\r\n"))
        report.dead_lettered += 1


def replay_anonymous_bank(
    path: Path, sink: EventSink, *, config: BankConfig | None = None, dlq: bool = True,
    progress: Progress | None = None, progress_every: int = 10_000, confirm_timeout: float = 120.0,
) -> ReplayReport:
    """Map and produce the whole file; the report says what Kafka confirmed."""
    adapter = "anonymous-bank"
    mapper = AnonymousBankMapper(path.name, config)
    report = ReplayReport(file=str(path))
    started = time.perf_counter()
    next_progress = progress_every
    with path.open(encoding="utf-8", errors="replace", newline="") as f:
        lines = _Lines(f)
        for item in mapper.map_lines(lines):
            if isinstance(item, RowDefect):
                _record_defect(report, sink, adapter, item, lines, dlq)
                continue
            sink.send(item, adapter)
            report.produced += 1
            if progress and mapper.summary.rows >= next_progress:
                next_progress += progress_every
                report.rows = mapper.summary.rows
                report.wall_s = time.perf_counter() - started
                progress(report)
    summary = mapper.summary
    sink.received(adapter, summary.rows)
    report.rows, report.calls = summary.rows, summary.calls
    report.events_by_kind = Counter(summary.events_by_kind)
    _finish(report, sink, confirm_timeout, started)
    return report


def replay_queue_log(
    path: Path, sink: EventSink, *, source: str = "asterisk-queue-log", caller_salt: str = "callstream",
    dlq: bool = True, progress: Progress | None = None, progress_every: int = 10_000,
    confirm_timeout: float = 120.0,
) -> ReplayReport:
    adapter = "queue-log"
    mapper = QueueLogMapper(path.name, source, caller_salt)
    report = ReplayReport(file=str(path))
    started = time.perf_counter()
    next_progress = progress_every
    with path.open(encoding="utf-8", errors="replace", newline="") as f:
        lines = _Lines(f)
        for item in mapper.map_lines(lines):
            if isinstance(item, LineDefect):
                _record_defect(report, sink, adapter, item, lines, dlq)
                continue
            sink.send(item, adapter)
            report.produced += 1
            if progress and lines.number >= next_progress:
                next_progress += progress_every
                report.rows = mapper.summary.lines
                report.wall_s = time.perf_counter() - started
                progress(report)
    sink.received(adapter, mapper.summary.lines)
    report.rows = mapper.summary.lines
    report.events_by_kind = Counter(mapper.summary.events_by_kind)
    _finish(report, sink, confirm_timeout, started)
    return report


def _finish(report: ReplayReport, sink: EventSink, timeout: float, started: float) -> None:
    try:
        sink.confirm(timeout)
        report.confirmed = True
    except Exception as exc:  # DeliveryError, KafkaException: reported, exit code says it
        report.error = str(exc)
    report.wall_s = time.perf_counter() - started
