"""Anonymous Bank mapper: unit cases and the full January 1999 file."""

from __future__ import annotations

import csv
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from callstream.call.v1 import call_events_pb2 as ce
from callstream_ingest.domain.anonymous_bank import (
    HEADER,
    AnonymousBankMapper,
    BankConfig,
    ReplaySummary,
    RowDefect,
    caller_hash,
    parse_text,
)
from callstream_ingest.domain.events import event_id

JANUARY = Path("/work/shared/data/anonymous-bank/january.txt")
HDR = "\t".join(HEADER)


BASE = "AA0101 1 123 2 PS 990101 10:00:00 10:00:10 10 10:00:10 10:01:00 50 AGENT 10:01:00 10:05:00 240 MICHAL"


def row(**over: str) -> str:
    base = dict(zip(HEADER, BASE.split(" "), strict=True))
    base.update({k.replace("vru_line", "vru+line"): v for k, v in over.items()})
    return "\t".join(base[h] for h in HEADER)


def parse(*rows: str, cfg: BankConfig | None = None) -> tuple[list[ce.CallEvent], list[RowDefect], ReplaySummary]:
    return parse_text("\r\n".join([HDR, *rows, ""]), "t.txt", cfg)


def kinds(evs: list[ce.CallEvent]) -> list[str]:
    return [e.WhichOneof("kind") or "" for e in evs]


def ts(e: ce.CallEvent) -> datetime:
    return datetime.fromtimestamp(e.envelope.occurred_at.ToMilliseconds() / 1000, UTC)


def test_queued_answered_call() -> None:
    evs, defects, _ = parse(row())
    assert not defects
    assert kinds(evs) == ["ivr_entered", "ivr_left", "offered", "queued", "answered", "ended", "wrap_up_ended"]
    # Jerusalem is UTC+2 in January
    assert ts(evs[0]) == datetime(1999, 1, 1, 8, 0, 0, tzinfo=UTC)
    assert ts(evs[4]) == datetime(1999, 1, 1, 8, 1, 0, tzinfo=UTC)
    assert evs[1].ivr_left.outcome == ce.IvrLeft.OUTCOME_TO_AGENT
    assert evs[2].offered.context.queue_id == "PS"
    assert evs[2].offered.context.priority == 2
    assert evs[2].offered.context.caller_hash == caller_hash("123", "callstream")
    assert evs[4].answered.agent_id == "MICHAL"
    assert evs[6].wrap_up_ended.disposition_code == "unknown"
    assert not evs[6].wrap_up_ended.resolved
    for e in evs:
        assert e.call_id == "AA0101-990101-1"
        assert e.envelope.source == "anonymous-bank"
        assert e.envelope.schema_version == 1
    assert len({e.envelope.event_id for e in evs}) == len(evs)


def test_event_ids_are_deterministic() -> None:
    a, _, _ = parse(row())
    b, _, _ = parse(row())
    assert [e.envelope.event_id for e in a] == [e.envelope.event_id for e in b]
    assert a[0].envelope.event_id == event_id("anonymous-bank", "AA0101-990101-1", "ivr_entered")
    c, _, _ = parse(row(), cfg=BankConfig(source="other"))
    assert a[0].envelope.event_id != c[0].envelope.event_id


def test_configurable_timezone() -> None:
    evs, _, _ = parse(row(), cfg=BankConfig(timezone="UTC"))
    assert ts(evs[0]) == datetime(1999, 1, 1, 10, 0, 0, tzinfo=UTC)


def test_abandoned_in_queue() -> None:
    evs, defects, _ = parse(
        row(outcome="HANG", ser_start="0:00:00", ser_exit="0:00:00", ser_time="0", server="NO_SERVER")
    )
    assert not defects
    assert kinds(evs) == ["ivr_entered", "ivr_left", "offered", "queued", "abandoned", "ended"]
    assert evs[4].abandoned.phase == ce.CallAbandoned.PHASE_IN_QUEUE
    assert evs[5].ended.hung_up_by == ce.CallEnded.PARTY_CALLER


def test_ivr_self_service_is_not_offered() -> None:
    r = row(
        customer_id="0",
        priority="0",
        q_start="0:00:00",
        q_exit="0:00:00",
        q_time="0",
        outcome="HANG",
        ser_start="0:00:00",
        ser_exit="0:00:00",
        ser_time="0",
        server="NO_SERVER",
    )
    evs, defects, _ = parse(r)
    assert not defects
    assert kinds(evs) == ["ivr_entered", "ivr_left", "ended"]
    assert evs[1].ivr_left.outcome == ce.IvrLeft.OUTCOME_SELF_SERVICE
    assert evs[0].ivr_entered.context.caller_hash == ""


def test_straight_to_agent_offered_at_answer() -> None:
    evs, defects, _ = parse(row(q_start="0:00:00", q_exit="0:00:00", q_time="0", ser_start="10:00:12"))
    assert not defects
    assert kinds(evs) == ["ivr_entered", "ivr_left", "offered", "answered", "ended", "wrap_up_ended"]
    assert ts(evs[2]) == ts(evs[3])


def test_service_crossing_midnight_is_next_day() -> None:
    r = row(
        vru_entry="23:58:00",
        vru_exit="23:58:10",
        q_start="23:58:10",
        q_exit="23:59:00",
        ser_start="23:59:00",
        ser_exit="0:02:00",
        ser_time="180",
    )
    evs, defects, _ = parse(r)
    assert not defects
    ended = next(e for e in evs if e.HasField("ended"))
    assert ts(ended) == datetime(1999, 1, 1, 22, 2, 0, tzinfo=UTC)  # 00:02 on Jan 2 local
    assert [ts(e) for e in evs] == sorted(ts(e) for e in evs)


def test_answered_without_server_keeps_the_call() -> None:
    evs, defects, summary = parse(row(server="NO_SERVER"))
    assert not defects
    assert next(e for e in evs if e.HasField("answered")).answered.agent_id == ""
    assert summary.answered_without_agent == 1


@pytest.mark.parametrize(
    ("r", "reason"),
    [
        (row() + "\textra", "field_count"),
        ("AA0101\t1\t2", "field_count"),
        (row(date="991301"), "bad_date"),
        (row(date="99011"), "bad_date"),
        (row(vru_entry="10:61:00"), "bad_time"),
        (row(q_exit="ten"), "bad_time"),
        (row(priority="x"), "bad_number"),
        (row(vru_entry="10:00:30", vru_time="-20"), "negative_duration"),
        (row(vru_entry="10:00:30"), "negative_duration"),
        (row(outcome="PHANTOM", server="NO_SERVER"), "phantom_record"),
        (row(outcome="LOST"), "unknown_outcome"),
        (row(type="AA"), "unknown_call_type"),
        (row(ser_start="0:00:00", ser_exit="0:00:00", ser_time="0"), "missing_service_times"),
        (row(outcome="HANG", server="NO_SERVER"), "hang_with_service"),
        (row(vru_entry="0:00:00"), "inconsistent_record"),
        (row(q_exit="0:00:00"), "inconsistent_record"),
    ],
)
def test_defects(r: str, reason: str) -> None:
    evs, defects, summary = parse(r, row(call_id="2"))
    assert [d.reason_code for d in defects] == [reason]
    assert defects[0].line == 2 and defects[0].file == "t.txt" and defects[0].message
    assert summary.rows == 2 and summary.calls == 1
    assert {e.call_id for e in evs} == {"AA0101-990101-2"}


def test_duplicate_and_header() -> None:
    m = AnonymousBankMapper("x")
    out = list(m.map_lines(["bad header\r\n", row() + "\r\n", row() + "\r\n"]))
    defects = [o for o in out if isinstance(o, RowDefect)]
    assert [d.reason_code for d in defects] == ["bad_header", "duplicate_key"]
    assert defects[1].line == 3
    assert m.summary.calls == 1 and m.summary.rows == 2


# ---------------------------------------------------------------- the real January file


def independent_counts(path: Path) -> Counter[str]:
    """A separate, simple classification of the file with the csv module."""
    c: Counter[str] = Counter()
    with path.open(newline="") as f:
        rd = csv.reader(f, delimiter="\t")
        header = next(rd)
        assert header == list(HEADER)
        for rec in rd:
            c["rows"] += 1
            if len(rec) != 17:
                c["defect"] += 1
                continue
            (_, _, _, _, typ, _, _, _, vru_t, q_start, _, q_t, outcome, ser_start, _, ser_t, server) = rec
            ok = (
                outcome in ("AGENT", "HANG")
                and min(int(vru_t), int(q_t), int(ser_t)) >= 0
                and typ in {"PS", "PE", "IN", "NE", "NW", "TT"}
                and not (outcome == "AGENT" and ser_start == "0:00:00")
                and not (outcome == "HANG" and (ser_start != "0:00:00" or server != "NO_SERVER"))
            )
            if not ok:
                c["defect"] += 1
                continue
            c["calls"] += 1
            queued = q_start != "0:00:00"
            if outcome == "AGENT":
                c["offered"] += 1
                c["answered"] += 1
            elif queued:
                c["offered"] += 1
                c["abandoned"] += 1
            else:
                c["ivr_only"] += 1
            if outcome == "PHANTOM":
                c["phantom"] += 1
    return c


@pytest.mark.skipif(not JANUARY.exists(), reason="shared data not mounted")
def test_january_accounting() -> None:
    text = JANUARY.read_bytes().decode("ascii")
    evs, defects, s = parse_text(text, "january.txt")
    assert s.rows == 31599
    assert s.rows == s.calls + s.defects == s.calls + len(defects)
    by_kind = Counter(e.WhichOneof("kind") for e in evs)
    assert by_kind == s.events_by_kind
    ind = independent_counts(JANUARY)
    assert ind["rows"] == s.rows
    assert ind["calls"] == s.calls
    assert ind["defect"] == s.defects
    assert by_kind["offered"] == ind["offered"]
    assert by_kind["answered"] == ind["answered"]
    assert by_kind["abandoned"] == ind["abandoned"]
    assert by_kind["ivr_entered"] == s.calls == by_kind["ended"]
    # every line is accounted for exactly once
    defect_lines = {d.line for d in defects}
    assert len(defect_lines) == len(defects)
    assert len({e.call_id for e in evs}) == s.calls
    # the figures documented in docs/anonymous-bank-mapping.md
    assert dict(s.defects_by_reason) == {
        "phantom_record": 239,
        "negative_duration": 33,
        "hang_with_service": 83,
        "missing_service_times": 42,
        "unknown_call_type": 2,
    }
    assert (s.calls, s.events) == (31200, 197153)
    # idempotent replay: identical ids, all unique
    ids = [e.envelope.event_id for e in evs]
    assert len(set(ids)) == len(ids)
    again, _, _ = parse_text(text, "january.txt")
    assert [e.envelope.event_id for e in again] == ids
    # per call, events are in event-time order
    last: dict[str, int] = {}
    for e in evs:
        t = e.envelope.occurred_at.ToMilliseconds()
        assert t >= last.get(e.call_id, t)
        last[e.call_id] = t
