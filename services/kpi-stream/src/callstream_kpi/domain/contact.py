"""A contact record: one segment of a call (one agent leg), as the KPIs count it (kpis.md, "Vocabulary"),
and its `kpi.v1.Contact` message."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime

from callstream.kpi.v1 import kpi_events_pb2
from callstream_core.envelope import deterministic_event_id, new_envelope

Outcome = kpi_events_pb2.ContactOutcome

OUTCOME_NAMES: dict[kpi_events_pb2.ContactOutcome.ValueType, str] = {
    Outcome.CONTACT_OUTCOME_ANSWERED: "answered",
    Outcome.CONTACT_OUTCOME_ABANDONED: "abandoned",
    Outcome.CONTACT_OUTCOME_BLOCKED: "blocked",
    Outcome.CONTACT_OUTCOME_IVR_HANDLED: "ivr_handled",
    Outcome.CONTACT_OUTCOME_IVR_ABANDONED: "ivr_abandoned",
    Outcome.CONTACT_OUTCOME_OVERFLOWED: "overflowed",
    Outcome.CONTACT_OUTCOME_CALLBACK: "callback",
    Outcome.CONTACT_OUTCOME_TIMED_OUT: "timed_out",
}
OUTCOME_VALUES: dict[str, kpi_events_pb2.ContactOutcome.ValueType] = {
    name: value for value, name in OUTCOME_NAMES.items()
}


@dataclass(frozen=True)
class ContactRecord:
    """One contact segment; field for field the `kpi.v1.Contact` message (times as aware datetimes)."""

    call_id: str
    segment: int
    outcome: str
    offered_at: datetime
    queue_id: str = ""
    agent_id: str = ""
    team_id: str = ""
    call_type: str = ""
    caller_hash: str = ""
    priority: int = 0
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    ivr_s: float = 0.0
    queue_s: float = 0.0
    ring_s: float = 0.0
    talk_s: float = 0.0
    hold_s: float = 0.0
    acw_s: float = 0.0
    hold_count: int = 0
    queued: bool = False
    short_abandon: bool = False
    transfer_kind: str = ""
    disposition_code: str = ""
    resolved: bool = False
    hard_call: bool = False
    topic: str = ""
    version: int = 1
    timed_out: bool = False

    @property
    def answered(self) -> bool:
        return self.answered_at is not None

    @property
    def handle_s(self) -> float:
        return self.talk_s + self.hold_s + self.acw_s

    def same_content(self, other: ContactRecord) -> bool:
        return replace(self, version=0) == replace(other, version=0)

    def to_proto(self, source: str = "kpi-stream") -> kpi_events_pb2.Contact:
        occurred = self.ended_at or self.answered_at or self.offered_at
        env = new_envelope(
            source, occurred, deterministic_event_id("contact", self.call_id, str(self.segment), str(self.version))
        )
        msg = kpi_events_pb2.Contact(envelope=env)
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "outcome":
                msg.outcome = OUTCOME_VALUES[value]
            elif isinstance(value, datetime):
                getattr(msg, f.name).FromDatetime(value)
            elif value is not None:
                setattr(msg, f.name, value)
        return msg

    @classmethod
    def from_proto(cls, msg: kpi_events_pb2.Contact) -> ContactRecord:
        def opt(name: str) -> datetime | None:
            return getattr(msg, name).ToDatetime(tzinfo=UTC) if msg.HasField(name) else None

        kwargs: dict[str, object] = {}
        for f in fields(cls):
            if f.name == "outcome":
                kwargs[f.name] = OUTCOME_NAMES.get(msg.outcome, "timed_out")
            elif f.name == "offered_at":
                kwargs[f.name] = msg.offered_at.ToDatetime(tzinfo=UTC)
            elif f.name in ("answered_at", "ended_at"):
                kwargs[f.name] = opt(f.name)
            else:
                kwargs[f.name] = getattr(msg, f.name)
        return cls(**kwargs)  # type: ignore[arg-type]
