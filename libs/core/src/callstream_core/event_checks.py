"""What a call or agent event must carry before anything counts it, and the event times a service accepts.

Protobuf decoding alone lets through `{}`, `[]`-like empty messages and events without an envelope, event
id, event time or kind: every field has a default, so such a message decodes into a "call" at
1970-01-01. `event_problem` names what is missing or out of range; the caller sends the record to the
DLQ (consumers) or answers 4xx (the webhook) with that reason. Event times are compared as whole seconds
(no datetime arithmetic): a year-9999 time must be refused here, not overflow later.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from google.protobuf.message import Message

from callstream.agent.v1 import agent_events_pb2
from callstream.call.v1 import call_events_pb2

# The field naming what an event is about, per event type (the topic's key).
_SUBJECT = {call_events_pb2.CallEvent.DESCRIPTOR.full_name: "call_id",
            agent_events_pb2.AgentEvent.DESCRIPTOR.full_name: "agent_id"}


@dataclass(frozen=True, slots=True)
class EventTimeWindow:
    """Event times accepted relative to the wall clock: at most `max_future_s` ahead (clocks drift, a
    simulator may run ahead) and, when `max_age_s` is set, at most that far behind."""

    max_future_s: float
    max_age_s: float | None = None

    def problem(self, seconds: int, now: datetime) -> str | None:
        """Why an event time (unix seconds) is refused at `now`, or None."""
        now_s = now.timestamp()
        if seconds <= 0:
            return "event time is not after 1970-01-01T00:00:00Z (unset or before the Unix epoch)"
        if seconds > now_s + self.max_future_s:
            return f"event time {_iso(seconds)} is more than {self.max_future_s:g} s ahead of the clock ({_iso(now_s)})"
        if self.max_age_s is not None and seconds < now_s - self.max_age_s:
            return f"event time {_iso(seconds)} is more than {self.max_age_s:g} s older than the clock ({_iso(now_s)})"
        return None


def _iso(seconds: float) -> str:
    try:
        return datetime.fromtimestamp(seconds, tz=UTC).isoformat().replace("+00:00", "Z")
    except (OverflowError, ValueError, OSError):  # beyond what datetime holds: say the raw figure
        return f"{seconds:.0f} s since the epoch"


def event_problem(event: Message, window: EventTimeWindow | None = None, now: datetime | None = None) -> str | None:
    """Why a decoded CallEvent or AgentEvent must not be counted (it goes to the DLQ), or None.

    Checks the envelope (present, with an event id and an event time), the kind (one is set) and the
    subject (call_id / agent_id not empty); with `window`, the event time against `now` (default: the clock).
    """
    subject = _SUBJECT.get(event.DESCRIPTOR.full_name)
    if subject is None:
        raise TypeError(f"{event.DESCRIPTOR.full_name} is not a call or agent event")
    if not event.HasField("envelope"):
        return "the event has no envelope"
    envelope = event.envelope  # type: ignore[attr-defined]
    if not envelope.event_id:
        return "envelope.event_id is empty"
    if not envelope.HasField("occurred_at"):
        return "envelope.occurred_at is not set"
    if event.WhichOneof("kind") is None:
        return "the event has no kind (offered, answered, ready, ...)"
    if not getattr(event, subject):
        return f"{subject} is empty"
    if window is not None:
        problem = window.problem(envelope.occurred_at.seconds, now or datetime.now(UTC))
        if problem is not None:
            return f"envelope.occurred_at: {problem}"
    return None
