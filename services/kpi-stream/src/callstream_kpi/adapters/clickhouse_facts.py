"""Writes the KPI stream's facts to ClickHouse, exactly once under retries.

Each batch carries a deterministic `insert_deduplication_token` built from the Kafka offsets it came
from, so a batch re-sent after a crash (offsets not yet committed) is stored once; rows also carry
their event id or version, so a repeat that arrives in another batch is collapsed by the
ReplacingMergeTree and read away with FINAL.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import re
import struct
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from importlib.resources import files
from pathlib import Path
from typing import Any, TypeVar

from clickhouse_connect.datatypes.base import ClickHouseType
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DatabaseError, DataError, OperationalError, ProgrammingError
from google.protobuf.timestamp_pb2 import Timestamp

from callstream.agent.v1 import agent_events_pb2
from callstream.call.v1 import call_events_pb2
from callstream.hr.v1 import hr_events_pb2
from callstream.kpi.v1 import kpi_events_pb2
from callstream.qa.v1 import qa_events_pb2
from callstream_core.clickhouse import load_migrations, migrate
from callstream_core.kafka import DeadLetters
from callstream_core.topics import (
    AGENT_EVENTS,
    CALL_EVENTS,
    CONTACTS,
    HR_ATTENDANCE,
    HR_COSTS,
    HR_EMPLOYMENT,
    HR_SCHEDULES,
    QA_EVALUATIONS,
)
from callstream_kpi.domain.agent_states import StateInterval

COMPONENT = "kpi-stream"
T = TypeVar("T")


def migrations_dir() -> Path:
    return Path(str(files("callstream_kpi.adapters") / "migrations"))


def apply_migrations(client: Client) -> list[int]:
    return migrate(client, load_migrations(migrations_dir()), component=COMPONENT)


def ts(stamp: Timestamp) -> datetime:
    return stamp.ToDatetime(tzinfo=UTC)


def optional_ts(stamp: Timestamp, present: bool) -> datetime | None:
    return ts(stamp) if present else None


def interval_start(moment: datetime) -> datetime:
    """The 30-minute interval an event time falls in (the base grain of every KPI)."""
    return moment.replace(minute=moment.minute - moment.minute % 30, second=0, microsecond=0)


def dedup_token(table: str, offsets: Sequence[tuple[str, int, int]]) -> str:
    """(topic, partition, offset) of every message in the batch, folded into a stable token."""
    spans: dict[tuple[str, int], list[int]] = {}
    for topic, partition, offset in offsets:
        span = spans.setdefault((topic, partition), [offset, offset])
        span[0], span[1] = min(span[0], offset), max(span[1], offset)
    parts = [f"{t}/{p}/{lo}-{hi}" for (t, p), (lo, hi) in sorted(spans.items())]
    return f"{table}:" + ",".join(parts)


# Errors of the rows themselves: a value its column cannot hold, a row of the wrong shape. Sending the same
# rows again cannot help, so they are not retried: the writer stores the rest and dead-letters those rows.
# Raised while clickhouse-connect serializes the rows (DataError wraps struct.error and None in a
# non-Nullable column; the Python errors come from converting a value) ...
_ROW_ERROR_TYPES = (DataError, ProgrammingError, ValueError, TypeError, AttributeError, OverflowError, struct.error)
# ... or by ClickHouse parsing them (CANNOT_PARSE_*, TYPE_MISMATCH, ARGUMENT_OUT_OF_BOUND, CANNOT_CONVERT_TYPE,
# TOO_LARGE_STRING_SIZE, VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE, ...).
_ROW_ERROR_CODES = frozenset({6, 26, 27, 38, 41, 53, 69, 70, 72, 131, 321})
_CODE = re.compile(r"\bCode: (\d+)\.")


def is_row_error(exc: BaseException) -> bool:
    """Whether `exc` says the rows cannot be stored, as opposed to the store being unable now (connection
    refused, timeout, a read-only or full disk, too many parts: conditions that pass, so retried)."""
    if isinstance(exc, OperationalError):
        return False
    if isinstance(exc, _ROW_ERROR_TYPES):
        return True
    code = _CODE.search(str(exc)) if isinstance(exc, DatabaseError) else None
    return code is not None and int(code.group(1)) in _ROW_ERROR_CODES


class RetryingClient:
    """Retries a dependency outage (ClickHouse down, unwritable, slow) with back-off; it never gives up on good
    data. A row error (`is_row_error`) is raised at once: retrying it would stall the stream forever.

    `on_retry` lets the caller count retries and report not-ready while they last.
    """

    def __init__(self, client: Client, *, max_backoff_s: float = 30.0,
                 on_retry: Callable[[Exception], None] | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.client = client
        self._max_backoff_s = max_backoff_s
        self._on_retry = on_retry
        self._sleep = sleep

    def run(self, action: Callable[[Client], T]) -> T:
        backoff = 0.1
        while True:
            try:
                return action(self.client)
            except Exception as exc:
                if is_row_error(exc):
                    raise
                if self._on_retry is not None:
                    self._on_retry(exc)
                self._sleep(backoff)
                backoff = min(self._max_backoff_s, backoff * 2)


CONTACT_COLUMNS = [
    "call_id", "segment", "version", "interval_start", "offered_at", "answered_at", "ended_at", "queue_id",
    "agent_id", "team_id", "call_type", "caller_hash", "priority", "outcome", "ivr_s", "queue_s", "ring_s",
    "talk_s", "hold_s", "acw_s", "hold_count", "queued", "short_abandon", "transfer_kind", "disposition_code",
    "resolved", "hard_call", "topic", "timed_out",
]

OUTCOME_NAMES = {
    value: name.removeprefix("CONTACT_OUTCOME_").lower()
    for name, value in kpi_events_pb2.ContactOutcome.items()
}


def contact_row(c: kpi_events_pb2.Contact) -> list[Any]:
    offered = ts(c.offered_at)
    return [
        c.call_id, c.segment, c.version, interval_start(offered), offered,
        optional_ts(c.answered_at, c.HasField("answered_at")), optional_ts(c.ended_at, c.HasField("ended_at")),
        c.queue_id, c.agent_id, c.team_id, c.call_type, c.caller_hash, c.priority, OUTCOME_NAMES[c.outcome],
        c.ivr_s, c.queue_s, c.ring_s, c.talk_s, c.hold_s, c.acw_s, c.hold_count, int(c.queued),
        int(c.short_abandon), c.transfer_kind, c.disposition_code, int(c.resolved), int(c.hard_call), c.topic,
        int(c.timed_out),
    ]


def _comparable(value: Any) -> Any:
    """A contact column as stored: times to the millisecond (DateTime64(3)), in UTC."""
    if isinstance(value, datetime):
        moment = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return moment.replace(microsecond=moment.microsecond // 1000 * 1000)
    return value


def contact_content(row: Sequence[Any]) -> tuple[Any, ...]:
    """What a contact row (CONTACT_COLUMNS) says, without its key and version, as the store keeps it."""
    return tuple(_comparable(v) for v in row[3:])


def stored_contacts(client: RetryingClient, call_ids: Sequence[str]) -> dict[tuple[str, int], tuple[Any, ...]]:
    """The stored content (`contact_content`) of the contacts of `call_ids`, by (call id, segment)."""
    if not call_ids:
        return {}
    columns = ", ".join(CONTACT_COLUMNS)
    rows = client.run(lambda c: c.query(f"SELECT {columns} FROM contacts FINAL WHERE call_id IN {{ids:Array(String)}}",
                                        parameters={"ids": list(call_ids)}).result_rows)
    return {(row[0], int(row[1])): contact_content(row) for row in rows}


CONSUMED_OFFSET_COLUMNS = ["consumer_group", "topic", "partition", "next_offset"]


def consumed_offsets(client: RetryingClient, consumer_group: str) -> dict[tuple[str, int], int]:
    """Next offset to read per (topic, partition), as far as this store holds the facts of `consumer_group`."""
    rows = client.run(lambda c: c.query(
        "SELECT topic, partition, max(next_offset) FROM consumed_offsets WHERE consumer_group = {g:String} "
        "GROUP BY topic, partition", parameters={"g": consumer_group}).result_rows)
    return {(str(t), int(p)): int(o) for t, p, o in rows}


def holds_stream_facts(client: RetryingClient) -> bool:
    """True when the store holds raw events (it was written by a stream, with or without offsets kept)."""
    return bool(client.run(lambda c: c.query(
        "SELECT (SELECT count() FROM call_events) + (SELECT count() FROM agent_events)").result_rows[0][0]))


def _stored_call_event_rows(client: RetryingClient, where: str,
                            parameters: dict[str, Any]) -> Sequence[Sequence[Any]]:
    """(payload, partition, offset) of stored raw call events matching `where`, in event time order."""
    return client.run(lambda c: c.query(
        f"SELECT payload, kafka_partition, kafka_offset FROM call_events FINAL WHERE {where} ORDER BY occurred_at",
        parameters=parameters, column_formats={"payload": "bytes"}).result_rows)


def stored_call_events(client: RetryingClient, call_ids: Sequence[str]) -> list[call_events_pb2.CallEvent]:
    """Every stored raw event of the calls `call_ids`, in event time order (a late event's call rebuilt)."""
    rows = _stored_call_event_rows(client, "call_id IN {ids:Array(String)}", {"ids": list(call_ids)})
    return [call_events_pb2.CallEvent.FromString(row[0]) for row in rows]


def call_events_to_recover(client: RetryingClient, horizon_s: int, read_again: Sequence[tuple[int, int]]
                           ) -> list[tuple[call_events_pb2.CallEvent, int, int]]:
    """(event, partition, offset) of every stored raw event, in event time order, of the calls a restart
    rebuilds: a call with an event in the last `horizon_s` before the newest stored event, a call with no
    stored contact, and a call with an event at or past `read_again`'s (partition, offset) pairs."""
    rows = _stored_call_event_rows(
        client,
        "call_id IN (SELECT call_id FROM call_events WHERE "
        "occurred_at >= (SELECT max(occurred_at) FROM call_events) - toIntervalSecond({t:UInt32}) "
        "OR call_id NOT IN (SELECT call_id FROM contacts) "
        "OR (indexOf({parts:Array(UInt32)}, kafka_partition) > 0 "
        "AND kafka_offset >= {offsets:Array(UInt64)}[indexOf({parts:Array(UInt32)}, kafka_partition)]))",
        {"t": horizon_s, "parts": [p for p, _ in read_again], "offsets": [o for _, o in read_again]})
    return [(call_events_pb2.CallEvent.FromString(row[0]), int(row[1]), int(row[2])) for row in rows]


def _kind(event: call_events_pb2.CallEvent | agent_events_pb2.AgentEvent) -> str:
    return event.WhichOneof("kind") or "unknown"


def call_event_row(e: call_events_pb2.CallEvent, partition: int, offset: int) -> list[Any]:
    kind = _kind(e)
    body = getattr(e, kind) if kind != "unknown" else None
    queue_id = getattr(body, "queue_id", "") or (body.context.queue_id if body is not None
                                                   and hasattr(body, "context") else "")
    agent_id = getattr(body, "agent_id", "") or getattr(body, "from_agent_id", "")
    # The payload is the binary protobuf: a tenth of the cost of JSON on the hot path; recovery parses it.
    return [e.envelope.event_id, e.call_id, ts(e.envelope.occurred_at), kind, queue_id, agent_id,
            e.envelope.source, e.SerializeToString(), partition, offset]


CALL_EVENT_COLUMNS = ["event_id", "call_id", "occurred_at", "kind", "queue_id", "agent_id", "source", "payload",
                      "kafka_partition", "kafka_offset"]


def agent_event_row(e: agent_events_pb2.AgentEvent, partition: int, offset: int) -> list[Any]:
    return [e.envelope.event_id, e.agent_id, ts(e.envelope.occurred_at), _kind(e),
            e.SerializeToString(), partition, offset]


INTERVAL_COLUMNS = ["agent_id", "team_id", "state", "reason", "started_at", "ended_at", "duration_s", "version"]


def interval_row(iv: StateInterval, version: int) -> list[Any]:
    """One agent state interval (already cut at 30-minute boundaries) with the version it is written under."""
    return [iv.agent_id, iv.team_id, iv.state, iv.reason, iv.start, iv.end, iv.duration_s, version]


AGENT_EVENT_COLUMNS = ["event_id", "agent_id", "occurred_at", "kind", "payload", "kafka_partition", "kafka_offset"]

QA_COLUMNS = ["evaluation_id", "revision", "agent_id", "team_id", "evaluator_id", "call_id", "form_id",
              "form_version", "status", "score", "critical_failed", "calibration", "contact_at", "occurred_at"]


def qa_row(e: qa_events_pb2.EvaluationChanged) -> list[Any]:
    status = qa_events_pb2.EvaluationStatus.Name(e.status).removeprefix("EVALUATION_STATUS_").lower()
    contact_at = ts(e.contact_at) if e.HasField("contact_at") else ts(e.envelope.occurred_at)
    return [e.evaluation_id, e.revision, e.agent_id, e.team_id, e.evaluator_id, e.call_id, e.form_id,
            e.form_version, status, e.score, int(e.critical_failed), int(e.calibration), contact_at,
            ts(e.envelope.occurred_at)]


SHIFT_COLUMNS = ["employee_id", "schedule_id", "schedule_version", "shift_id", "team_id", "shift_start",
                 "shift_end", "on_phone_s"]


def shift_rows(e: hr_events_pb2.SchedulePublished) -> list[list[Any]]:
    rows = []
    for shift in e.shifts:
        start, end = ts(shift.start), ts(shift.end)
        breaks = sum((ts(b.end) - ts(b.start)).total_seconds() for b in shift.breaks)
        rows.append([e.employee_id, e.schedule_id, e.version, shift.shift_id, shift.team_id, start, end,
                     max(0.0, (end - start).total_seconds() - breaks)])
    return rows


ATTENDANCE_COLUMNS = ["event_id", "employee_id", "kind", "shift_id", "occurred_at"]


def attendance_row(e: hr_events_pb2.AttendancePunch) -> list[Any]:
    kind = hr_events_pb2.AttendancePunch.Kind.Name(e.kind).removeprefix("KIND_").lower()
    return [e.envelope.event_id, e.employee_id, kind, e.shift_id, ts(e.envelope.occurred_at)]


EMPLOYMENT_COLUMNS = ["event_id", "employee_id", "kind", "role", "team_id", "team_lead_id", "fte", "exit_reason",
                      "voluntary", "occurred_at"]


def employment_row(e: hr_events_pb2.EmploymentChanged) -> list[Any]:
    kind = hr_events_pb2.EmploymentChanged.Kind.Name(e.kind).removeprefix("KIND_").lower()
    reason = hr_events_pb2.ExitReason.Name(e.exit_reason).removeprefix("EXIT_REASON_").lower()
    return [e.envelope.event_id, e.employee_id, kind, e.role, e.team_id, e.team_lead_id, e.fte, reason,
            int(e.voluntary), ts(e.envelope.occurred_at)]


COST_COLUMNS = ["entry_id", "cost_center_id", "period_start", "period_end", "amount", "currency", "category",
                "occurred_at"]


def cost_row(e: hr_events_pb2.CostEntry) -> list[Any]:
    return [e.entry_id, e.cost_center_id, ts(e.period_start), ts(e.period_end), e.amount_minor / 100, e.currency,
            e.category, ts(e.envelope.occurred_at)]


def content_token(table: str, rows: Sequence[Sequence[Any]]) -> str:
    """For derived rows (contacts, intervals): what they contain depends on the stream's state, not only on
    the batch, so only an identical re-send may be dropped; a different derivation is stored (and the
    ReplacingMergeTree keeps the newest version). Pickled, not repr'd: a third of the cost on the hot path,
    and equal rows of one process (a retry re-sends the same rows) pickle to the same bytes."""
    digest = hashlib.sha256(pickle.dumps([list(r) for r in rows], protocol=5)).hexdigest()
    return f"{table}:sha256:{digest}"


# Where a row of each table came from: its rejection goes to that topic's DLQ.
TABLE_TOPICS = {"call_events": CALL_EVENTS, "agent_events": AGENT_EVENTS,
                "contacts": CONTACTS, "agent_state_intervals": AGENT_EVENTS,
                "qa_evaluations": QA_EVALUATIONS, "hr_shifts": HR_SCHEDULES,
                "hr_attendance": HR_ATTENDANCE, "hr_employment": HR_EMPLOYMENT,
                "hr_costs": HR_COSTS}

RejectRow = Callable[[str, dict[str, Any], str], None]


class RowDeadLetters:
    """A row ClickHouse cannot store, as JSON (column -> value) on the DLQ of the topic it came from, with the
    reason; confirmed by Kafka before the batch goes on, so it is never lost on the way."""

    def __init__(self, dead_letters: DeadLetters, topic_prefix: str = "") -> None:
        self._dead_letters = dead_letters
        self._prefix = topic_prefix

    def __call__(self, table: str, row: dict[str, Any], reason: str) -> None:
        value = json.dumps(row, default=repr, sort_keys=True).encode()
        self._dead_letters.send_record(self._prefix + TABLE_TOPICS[table], int(row.get("kafka_partition", -1)),
                                       int(row.get("kafka_offset", -1)), None, value,
                                       [("dlq.table", table.encode())], f"ClickHouse refused the row: {reason}")
        self._dead_letters.flush()


class FactWriter:
    """Inserts rows of one table with a dedup token, retrying outages; rows ClickHouse cannot store go to
    `reject` with the reason (found by halving the batch) and the rest is stored."""

    def __init__(self, client: RetryingClient, reject: RejectRow | None = None) -> None:
        self._client = client
        self._reject = reject
        # Column types per (table, columns), read from ClickHouse at the first insert: without them every
        # insert asked for the table's description first, a second round trip per insert (a third of the
        # insert time in the worker's profile). The tables' columns are fixed once the migrations ran.
        self._types: dict[tuple[str, tuple[str, ...]], Sequence[ClickHouseType]] = {}

    def insert(self, table: str, rows: Sequence[Sequence[Any]], columns: Sequence[str],
               offsets: Sequence[tuple[str, int, int]] | None) -> None:
        """`offsets`: the Kafka records the rows are (raw facts); None for derived rows."""
        if not rows:
            return
        token = dedup_token(table, offsets) if offsets is not None else content_token(table, rows)
        try:
            self._insert(table, rows, columns, token)
        except Exception as exc:
            if self._reject is None or not is_row_error(exc):
                raise
            self._insert_apart(table, rows, columns, exc)

    def _insert(self, table: str, rows: Sequence[Sequence[Any]], columns: Sequence[str], token: str) -> None:
        key = (table, tuple(columns))

        def send(c: Client) -> None:
            types = self._types.get(key)
            if types is None:
                types = self._types[key] = c.create_insert_context(table, list(columns)).column_types
            # Columns, not rows: clickhouse-connect serializes by column, and hands rows to a transposition first.
            c.insert(table, list(zip(*rows, strict=True)), column_names=list(columns), column_types=types,
                     column_oriented=True, settings={"insert_deduplication_token": token})

        self._client.run(send)

    def _insert_apart(self, table: str, rows: Sequence[Sequence[Any]], columns: Sequence[str],
                      error: Exception) -> None:
        """Store what can be stored of `rows` (which failed with `error`) and reject the rest, row by row.
        Halves carry content tokens: a re-sent half is the same rows, so it is dropped as a repeat."""
        assert self._reject is not None
        if len(rows) == 1:
            self._reject(table, dict(zip(columns, rows[0], strict=False)), f"{type(error).__name__}: {error}")
            return
        middle = len(rows) // 2
        for half in (rows[:middle], rows[middle:]):
            try:
                self._insert(table, half, columns, content_token(table, half))
            except Exception as exc:
                if not is_row_error(exc):
                    raise
                self._insert_apart(table, half, columns, exc)
