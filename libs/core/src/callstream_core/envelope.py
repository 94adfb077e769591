"""Envelopes of events: ids, event time, source."""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime

from callstream.common.v1 import envelope_pb2

SCHEMA_VERSION = 1
# Namespace of deterministic event ids: a re-read of the same input yields the same ids, so a replay
# is idempotent end to end (sinks drop repeats by event_id).
EVENT_ID_NAMESPACE = uuid.UUID("6f1c2a0e-5b7d-4c1e-9a57-2f8d3c9e4b10")


_NAMESPACE_BYTES = EVENT_ID_NAMESPACE.bytes


def deterministic_event_id(*parts: str) -> str:
    """uuid5(EVENT_ID_NAMESPACE, parts joined by US), computed without uuid.UUID objects (~3x faster: routing
    names every decision with one, on the answer's path)."""
    digest = bytearray(hashlib.sha1(_NAMESPACE_BYTES + "\x1f".join(parts).encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    x = digest.hex()
    return f"{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:]}"


def new_envelope(source: str, occurred_at: datetime, event_id: str | None = None) -> envelope_pb2.Envelope:
    """The envelope of an event at `occurred_at` (aware; kept in UTC at millisecond precision, rounded)."""
    if occurred_at.tzinfo is None or occurred_at.utcoffset() is None:
        raise ValueError("occurred_at must be timezone-aware (event time is UTC)")
    return envelope_at_millis(source, to_millis(occurred_at), event_id)


def envelope_at_millis(source: str, millis: int, event_id: str | None = None) -> envelope_pb2.Envelope:
    """The envelope of an event at `millis` since the epoch (UTC): for producers that keep time in ms."""
    env = envelope_pb2.Envelope(
        event_id=event_id or str(uuid.uuid4()), source=source, schema_version=SCHEMA_VERSION
    )
    env.occurred_at.FromMilliseconds(millis)
    return env


def to_millis(moment: datetime) -> int:
    return round(moment.timestamp() * 1000)


def hash_caller(number: str, salt: str) -> str:
    """Caller numbers are stored hashed in analytics (architecture.md, "Observability and security")."""
    if not number:
        return ""
    return hashlib.sha256(f"{salt}:{number}".encode()).hexdigest()[:32]
