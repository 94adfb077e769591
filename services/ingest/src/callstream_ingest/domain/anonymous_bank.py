"""Anonymous Bank (Technion SEE lab, 1999) call records -> CallEvents.

Pure: takes lines (already read) and yields events or defects. See
docs/anonymous-bank-mapping.md for the column mapping and every defect reason.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from callstream.call.v1 import call_events_pb2 as ce
from callstream.common.v1 import envelope_pb2
from callstream_ingest.domain import identity
from callstream_ingest.domain.events import call_event

HEADER = (
    "vru+line",
    "call_id",
    "customer_id",
    "priority",
    "type",
    "date",
    "vru_entry",
    "vru_exit",
    "vru_time",
    "q_start",
    "q_exit",
    "q_time",
    "outcome",
    "ser_start",
    "ser_exit",
    "ser_time",
    "server",
)
KNOWN_TYPES = frozenset({"PS", "PE", "IN", "NE", "NW", "TT"})
NEVER = "0:00:00"
IVR_ID = "anonymous-bank-vru"
# A stage time earlier than the IVR entry by more than this is taken to be on the next day.
_ROLLOVER_TOLERANCE = timedelta(hours=1)

# Defect reason codes (documented in docs/anonymous-bank-mapping.md).
FIELD_COUNT = "field_count"
BAD_DATE = "bad_date"
BAD_TIME = "bad_time"
BAD_NUMBER = "bad_number"
NEGATIVE_DURATION = "negative_duration"
UNKNOWN_CALL_TYPE = "unknown_call_type"
UNKNOWN_OUTCOME = "unknown_outcome"
PHANTOM = "phantom_record"
INCONSISTENT = "inconsistent_record"
DUPLICATE_KEY = "duplicate_key"
MISSING_SERVICE = "missing_service_times"
HANG_WITH_SERVICE = "hang_with_service"
NO_SERVER = "NO_SERVER"


@dataclass(frozen=True, slots=True)
class RowDefect:
    file: str
    line: int
    reason_code: str
    message: str


@dataclass(slots=True)
class ReplaySummary:
    rows: int = 0
    calls: int = 0
    events_by_kind: Counter[str] = field(default_factory=Counter)
    answered_without_agent: int = 0  # AGENT rows with server NO_SERVER: mapped, agent_id ""
    defects_by_reason: Counter[str] = field(default_factory=Counter)

    @property
    def events(self) -> int:
        return sum(self.events_by_kind.values())

    @property
    def defects(self) -> int:
        return sum(self.defects_by_reason.values())


@dataclass(frozen=True, slots=True)
class BankConfig:
    source: str = "anonymous-bank"
    timezone: str = "Asia/Jerusalem"
    caller_salt: str = "callstream"


class _Defect(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def caller_hash(customer_id: str, salt: str) -> str:
    """Salted sha256 of the customer id; "0" (unidentified) -> ""."""
    return "" if customer_id == "0" else identity.caller_hash(salt, customer_id)


def _parse_date(s: str) -> date:
    if len(s) != 6 or not s.isdigit():
        raise _Defect(BAD_DATE, f"date {s!r} is not YYMMDD")
    try:
        return date(1900 + int(s[:2]) if int(s[:2]) >= 50 else 2000 + int(s[:2]), int(s[2:4]), int(s[4:]))
    except ValueError as e:
        raise _Defect(BAD_DATE, f"date {s!r}: {e}") from None


def _parse_time(col: str, s: str) -> time | None:
    """None for "0:00:00" (never reached)."""
    if s == NEVER:
        return None
    parts = s.split(":")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        raise _Defect(BAD_TIME, f"{col} {s!r} is not H:MM:SS")
    try:
        return time(int(parts[0]), int(parts[1]), int(parts[2]))
    except ValueError as e:
        raise _Defect(BAD_TIME, f"{col} {s!r}: {e}") from None


def _parse_int(col: str, s: str) -> int:
    try:
        return int(s)
    except ValueError:
        raise _Defect(BAD_NUMBER, f"{col} {s!r} is not an integer") from None


def map_row(fields: list[str], cfg: BankConfig, tz: ZoneInfo | None = None) -> tuple[str, list[ce.CallEvent]]:  # noqa: C901 (one check per column of the bank's row)
    """Map one split data row to (call_id, events in event-time order); raises ``_Defect``."""
    if len(fields) != len(HEADER):
        raise _Defect(FIELD_COUNT, f"expected {len(HEADER)} fields, got {len(fields)}")
    zone = tz or ZoneInfo(cfg.timezone)
    r = dict(zip(HEADER, fields, strict=True))
    d = _parse_date(r["date"])
    priority = _parse_int("priority", r["priority"])
    for col in ("vru_time", "q_time", "ser_time"):
        if _parse_int(col, r[col]) < 0:
            raise _Defect(NEGATIVE_DURATION, f"{col} is {r[col]}")
    outcome = r["outcome"]
    if outcome == "PHANTOM":
        raise _Defect(PHANTOM, "PHANTOM record: no real caller, not a call")
    if outcome not in ("AGENT", "HANG"):
        raise _Defect(UNKNOWN_OUTCOME, f"outcome {outcome!r}")
    ctype = r["type"]
    if ctype not in KNOWN_TYPES:
        raise _Defect(UNKNOWN_CALL_TYPE, f"call type {ctype!r} is not one of {sorted(KNOWN_TYPES)}")
    times = {c: _parse_time(c, r[c]) for c in ("vru_entry", "vru_exit", "q_start", "q_exit", "ser_start", "ser_exit")}
    vru_entry_t = times["vru_entry"]
    if vru_entry_t is None:
        raise _Defect(INCONSISTENT, "vru_entry is 0:00:00: the call has no start")
    start = datetime.combine(d, vru_entry_t, tzinfo=zone)

    def at(col: str) -> datetime:
        t = times[col]
        assert t is not None
        dt = datetime.combine(d, t, tzinfo=zone)
        if dt < start - _ROLLOVER_TOLERANCE:  # crosses midnight: next day
            dt = datetime.combine(d + timedelta(days=1), t, tzinfo=zone)
        return dt

    queued = times["q_start"] is not None
    served = outcome == "AGENT"
    server = r["server"]
    agent_id = "" if server == NO_SERVER else server  # served, agent not recorded: unknown agent
    if times["vru_exit"] is None:
        raise _Defect(INCONSISTENT, "vru_exit is 0:00:00")
    if queued and times["q_exit"] is None:
        raise _Defect(INCONSISTENT, "q_start set but q_exit is 0:00:00")
    if served and (times["ser_start"] is None or times["ser_exit"] is None):
        raise _Defect(MISSING_SERVICE, "outcome AGENT but ser_start/ser_exit are 0:00:00: answer time unknown")
    if not served and (times["ser_start"] is not None or server != "NO_SERVER"):
        raise _Defect(HANG_WITH_SERVICE, "outcome HANG with service times or a server: ambiguous")

    call_id = f"{r['vru+line']}-{r['date']}-{r['call_id']}"
    key = call_id
    qid = ctype
    ctx = ce.CallContext(
        queue_id=qid,
        call_type=ctype,
        priority=priority,
        caller_hash=caller_hash(r["customer_id"], cfg.caller_salt),
        channel=envelope_pb2.CHANNEL_CALLBACK if ctype == "TT" else envelope_pb2.CHANNEL_VOICE,
    )
    src = cfg.source
    evs: list[ce.CallEvent] = []

    def add(ts: datetime, kind: str, payload: object) -> None:
        evs.append(call_event(src, key, call_id, ts, kind, payload))

    vru_exit = at("vru_exit")
    if vru_exit < start:
        raise _Defect(NEGATIVE_DURATION, "vru_exit before vru_entry")
    add(start, "ivr_entered", ce.IvrEntered(ivr_id=IVR_ID, context=ctx))
    if not queued and not served:
        add(vru_exit, "ivr_left", ce.IvrLeft(ivr_id=IVR_ID, outcome=ce.IvrLeft.OUTCOME_SELF_SERVICE))
        add(vru_exit, "ended", ce.CallEnded(hung_up_by=ce.CallEnded.PARTY_CALLER))
        return call_id, evs
    add(vru_exit, "ivr_left", ce.IvrLeft(ivr_id=IVR_ID, outcome=ce.IvrLeft.OUTCOME_TO_AGENT))
    if queued:
        q_start, q_exit = at("q_start"), at("q_exit")
        if q_exit < q_start:
            q_exit += timedelta(days=1)
        add(q_start, "offered", ce.CallOffered(context=ctx))
        add(q_start, "queued", ce.CallQueued(queue_id=qid, priority=priority))
        if not served:
            add(q_exit, "abandoned", ce.CallAbandoned(queue_id=qid, phase=ce.CallAbandoned.PHASE_IN_QUEUE))
            add(q_exit, "ended", ce.CallEnded(hung_up_by=ce.CallEnded.PARTY_CALLER))
            return call_id, evs
    ser_start, ser_exit = at("ser_start"), at("ser_exit")
    if ser_exit < ser_start:  # service crossing midnight
        ser_exit += timedelta(days=1)
    if not queued:  # straight from the IVR to a free agent: offered at answer, queue time 0
        add(ser_start, "offered", ce.CallOffered(context=ctx))
    add(ser_start, "answered", ce.CallAnswered(agent_id=agent_id, queue_id=qid))
    add(ser_exit, "ended", ce.CallEnded(agent_id=agent_id))
    add(ser_exit, "wrap_up_ended", ce.WrapUpEnded(agent_id=agent_id, disposition_code="unknown", resolved=False))
    # stable sort by event time keeps the logical order for equal timestamps
    evs.sort(key=lambda e: e.envelope.occurred_at.ToMilliseconds())
    return call_id, evs


class AnonymousBankMapper:
    """Maps the lines of one file; keeps the summary and the defects."""

    def __init__(self, file: str, config: BankConfig | None = None) -> None:
        self.file = file
        self.config = config or BankConfig()
        self._tz = ZoneInfo(self.config.timezone)
        self.summary = ReplaySummary()
        self.defects: list[RowDefect] = []
        self._seen: set[str] = set()

    def _defect(self, line: int, reason: str, message: str) -> RowDefect:
        d = RowDefect(self.file, line, reason, message)
        self.defects.append(d)
        self.summary.defects_by_reason[reason] += 1
        return d

    def map_lines(self, lines: Iterable[str]) -> Iterator[ce.CallEvent | RowDefect]:
        """Yield events and defects in file order. Line 1 must be the header.

        Line terminators (CRLF or LF) are stripped; an empty last line is not a row.
        """
        for lineno, raw in enumerate(lines, start=1):
            line = raw.rstrip("\r\n")
            if lineno == 1:
                if tuple(line.split("\t")) != HEADER:
                    yield self._defect(1, "bad_header", f"unexpected header {line[:200]!r}")
                continue
            if not line:
                continue
            self.summary.rows += 1
            try:
                call_id, evs = map_row(line.split("\t"), self.config, self._tz)
            except _Defect as d:
                yield self._defect(lineno, d.reason, d.message)
                continue
            if call_id in self._seen:
                yield self._defect(lineno, DUPLICATE_KEY, f"call {call_id} already seen in this file")
                continue
            self._seen.add(call_id)
            self.summary.calls += 1
            if any(e.WhichOneof("kind") == "answered" and not e.answered.agent_id for e in evs):
                self.summary.answered_without_agent += 1
            for e in evs:
                self.summary.events_by_kind[e.WhichOneof("kind") or ""] += 1
                yield e


def parse_text(
    text: str, file: str = "<memory>", config: BankConfig | None = None
) -> tuple[list[ce.CallEvent], list[RowDefect], ReplaySummary]:
    """Convenience: map a whole file's text."""
    m = AnonymousBankMapper(file, config)
    events: list[ce.CallEvent] = []
    defects: list[RowDefect] = []
    for item in m.map_lines(text.split("\n")):
        (defects if isinstance(item, RowDefect) else events).append(item)
    return events, defects, m.summary
