"""Shared helpers to build enveloped protobuf events with deterministic ids."""

from __future__ import annotations

from datetime import datetime

from google.protobuf import timestamp_pb2

from callstream.agent.v1 import agent_events_pb2
from callstream.call.v1 import call_events_pb2
from callstream.common.v1 import envelope_pb2
from callstream_core.envelope import SCHEMA_VERSION, deterministic_event_id


def event_id(source: str, natural_key: str, kind: str) -> str:
    """uuid5 over source + natural key of the line/event + event kind: identical across re-reads."""
    return deterministic_event_id(source, natural_key, kind)


def envelope(source: str, natural_key: str, kind: str, occurred_at: datetime) -> envelope_pb2.Envelope:
    """A full envelope; ``occurred_at`` must be timezone-aware, stored in UTC at ms precision."""
    if occurred_at.tzinfo is None or occurred_at.utcoffset() is None:
        raise ValueError("occurred_at must be timezone-aware")
    ms = int(occurred_at.timestamp() * 1000)  # an aware datetime's timestamp() is UTC whatever its zone
    return envelope_pb2.Envelope(
        event_id=event_id(source, natural_key, kind), source=source, schema_version=SCHEMA_VERSION,
        occurred_at=timestamp_pb2.Timestamp(seconds=ms // 1000, nanos=ms % 1000 * 1_000_000),
    )


def call_event(
    source: str, natural_key: str, call_id: str, occurred_at: datetime, kind: str, payload: object
) -> call_events_pb2.CallEvent:
    """Build a CallEvent with ``kind`` (oneof field name, e.g. "answered") set to ``payload``."""
    ev = call_events_pb2.CallEvent(envelope=envelope(source, natural_key, kind, occurred_at), call_id=call_id)
    getattr(ev, kind).CopyFrom(payload)
    return ev


def agent_event(
    source: str, natural_key: str, agent_id: str, occurred_at: datetime, kind: str, payload: object
) -> agent_events_pb2.AgentEvent:
    """Build an AgentEvent with ``kind`` (oneof field name) set to ``payload``."""
    ev = agent_events_pb2.AgentEvent(envelope=envelope(source, natural_key, kind, occurred_at), agent_id=agent_id)
    getattr(ev, kind).CopyFrom(payload)
    return ev
