"""Faust (faust-streaming) set up around its known traps (architecture.md, "Checked facts").

- Windows expire on wall-clock time: never use Faust windows; bucket by event time in our own code.
- An agent that raises still has its messages acknowledged: agent bodies catch every error, send
  undecodable input to the DLQ, and retry sinks until they succeed (an outage pauses, never skips).
- `concurrency` > 1 can commit past an in-flight message: every agent runs with concurrency 1.
- `stream.take_events` acknowledges a batch only after the agent body has handled it, so a batch
  is committed only after its sink succeeded.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import faust
from faust.types import EventT
from google.protobuf.message import Message as ProtoMessage

from callstream_core import wire
from callstream_core.kafka import DeadLetters, Received
from callstream_core.topics import Topic

M = TypeVar("M", bound=ProtoMessage)
TEMP_DATA_ROOT = Path(tempfile.gettempdir()) / "callstream-faust"


def make_app(app_id: str, bootstrap_servers: str, **overrides: Any) -> faust.App:
    settings: dict[str, Any] = {
        "broker": f"kafka://{bootstrap_servers}",
        # No Faust tables are used (state lives in ClickHouse and in memory rebuilt from it).
        "store": "memory://",
        # Our own FastAPI serves health, metrics and the API; Faust's web server would be a second one.
        "web_enabled": False,
        # Topics come from the registry (`callstream topics apply`), with their partitions and retention.
        "topic_allow_declare": False,
        "topic_disable_leader": True,
        # A new consumer group reads from the beginning: nothing published before it started is skipped.
        "consumer_auto_offset_reset": "earliest",
        # Commit acknowledged offsets often: after a crash at most a few seconds are re-read (and
        # deduplicated by the sinks).
        "broker_commit_every": 1000,
        "broker_commit_interval": 1.0,
        # Every write confirmed by all in-sync replicas.
        "producer_acks": -1,
        # Faust creates its data directory at start even with the memory store; by default that is
        # `<app id>-data` in the working directory, which litters a checkout and is read-only in a pod.
        # APP_DATADIR (the chart sets an emptyDir) wins; else the system's temporary directory.
        "datadir": os.environ.get("APP_DATADIR") or str(TEMP_DATA_ROOT / f"{app_id}-data"),
    }
    settings.update(overrides)
    # Faust makes the data directory but not its parents.
    Path(settings["datadir"]).parent.mkdir(parents=True, exist_ok=True)
    return faust.App(app_id, **settings)


def faust_topic(app: faust.App, topic: Topic) -> faust.TopicT:
    """The registry topic as raw bytes: decoding is ours, so a bad message goes to the DLQ, not a crash."""
    return app.topic(topic.name, key_serializer="raw", value_serializer="raw", partitions=topic.partitions)


def decode_events(events: Sequence[EventT[Any]], topic: Topic, dead_letters: DeadLetters,
                  check: Callable[[Any], str | None] | None = None) -> list[Received[Any]]:
    """Decode a batch; what cannot be decoded, or what `check` refuses (it returns the reason), is
    dead-lettered with its reason and left out."""
    decoded: list[Received[Any]] = []
    for event in events:
        msg = event.message
        raw_headers = msg.headers or []
        pairs = list(raw_headers.items()) if isinstance(raw_headers, dict) else list(raw_headers)
        headers: list[tuple[str, str | bytes | None]] = [(str(k), v) for k, v in pairs]
        value = msg.value if isinstance(msg.value, bytes | None) else bytes(msg.value)
        try:
            body = wire.decode(value, topic.message_type, wire.header_value(headers, wire.CONTENT_TYPE))
            problem = check(body) if check is not None else None
        except wire.WireError as exc:
            problem = str(exc)
        if problem is not None:
            key = msg.key if isinstance(msg.key, bytes | str | None) else bytes(msg.key)
            dead_letters.send_record(msg.topic, msg.partition, msg.offset, key, value, headers, problem)
            continue
        key_bytes = msg.key
        decoded.append(Received(topic=msg.topic, partition=msg.partition, offset=msg.offset,
                                key=key_bytes.decode() if isinstance(key_bytes, bytes) else key_bytes,
                                value=body, timestamp_ms=int((msg.timestamp or 0) * 1000)))
    return decoded
