"""Shared helpers to build enveloped protobuf events with deterministic ids."""

from __future__ import annotations

from datetime import datetime

from callstream.agent.v1 import agent_events_pb2
from callstream.call.v1 import call_events_pb2
from callstream.common.v1 import envelope_pb2
from callstream_core.envelope import deterministic_event_id, new_envelope


def event_id(source: str, natural_key: str, kind: str) -> str:
    """uuid5 over source + natural key of the line/event + event kind: identical across re-reads."""
    return deterministic_event_id(source, natural_key, kind)


def envelope(source: str, natural_key: str, kind: str, occurred_at: datetime) -> envelope_pb2.Envelope:
    """A full envelope with the deterministic id; ``occurred_at`` must be timezone-aware (core's `new_envelope`)."""
    return new_envelope(source, occurred_at, event_id(source, natural_key, kind))


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
