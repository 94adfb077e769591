"""Call events (cc.call-events.v1 protobufs: a bank file, a queue_log or the simulator, mapped by ingest) ->
the planner's call records, one per offered call.

A call counts once, for the queue it was first offered or queued to (kpis.md: call-level figures count the
call once). Its wait ends at its first answer or its abandonment; its handle time runs from that answer to
the end of the first agent's wrap-up (talk + hold + ACW): the WrapUpEnded, else the call's end plus the
wrap-up the end announces (`CallEnded.wrap_up_ms`, Asterisk's `wrapuptime`), as the sessionizer reads it.
A call answered by the IVR alone, or blocked, is never offered to a queue and makes no record.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from callstream.call.v1 import call_events_pb2 as ce
from callstream_hr.domain.history import CallOutcome, CallRecord


@dataclass(slots=True)
class _Call:
    queue_id: str = ""
    offered_at: datetime | None = None
    answered_at: datetime | None = None
    abandoned_at: datetime | None = None
    ended_at: datetime | None = None
    announced_wrap_up_s: float = 0.0
    wrapped_at: datetime | None = None


def _at(event: ce.CallEvent) -> datetime:
    return event.envelope.occurred_at.ToDatetime(tzinfo=UTC)


def records_from_events(events: Iterable[ce.CallEvent]) -> list[CallRecord]:
    """One record per call offered to a queue, in the order the calls were first seen."""
    calls: dict[str, _Call] = {}
    for e in events:
        c = calls.setdefault(e.call_id, _Call())
        kind = e.WhichOneof("kind")
        at = _at(e)
        if kind == "offered" and c.offered_at is None:
            c.offered_at, c.queue_id = at, c.queue_id or e.offered.context.queue_id
        elif kind == "queued" and not c.queue_id:
            c.queue_id = e.queued.queue_id
        elif kind == "answered" and c.answered_at is None:
            c.answered_at = at
            c.queue_id = c.queue_id or e.answered.queue_id
        elif kind == "abandoned" and c.abandoned_at is None and c.answered_at is None:
            c.abandoned_at = at
        elif kind == "ended" and c.answered_at is not None and c.ended_at is None:
            c.ended_at = at
            c.announced_wrap_up_s = e.ended.wrap_up_ms / 1000
        elif kind == "wrap_up_ended" and c.answered_at is not None and c.wrapped_at is None:
            c.wrapped_at = at
    out = []
    for c in calls.values():
        if c.offered_at is None or not c.queue_id:
            continue
        if c.answered_at is not None:
            end = c.wrapped_at or (c.ended_at + timedelta(seconds=c.announced_wrap_up_s) if c.ended_at else None)
            if end is None:  # still talking when the events stop: answered, handle time unknown
                out.append(CallRecord(c.queue_id, c.offered_at, CallOutcome.OTHER,
                                      max(0.0, (c.answered_at - c.offered_at).total_seconds())))
                continue
            out.append(CallRecord(c.queue_id, c.offered_at, CallOutcome.ANSWERED,
                                  max(0.0, (c.answered_at - c.offered_at).total_seconds()),
                                  max(0.0, (end - c.answered_at).total_seconds())))
        elif c.abandoned_at is not None:
            out.append(CallRecord(c.queue_id, c.offered_at, CallOutcome.ABANDONED,
                                  max(0.0, (c.abandoned_at - c.offered_at).total_seconds())))
        else:
            out.append(CallRecord(c.queue_id, c.offered_at, CallOutcome.OTHER, 0.0))
    return out
