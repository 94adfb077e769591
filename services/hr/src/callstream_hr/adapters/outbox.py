"""Transactional outbox: events are written in the same DB transaction as the change; the relay
publishes them with `EventProducer.produce_sync` and marks them sent only after Kafka confirmed
(at-least-once; the event_id inside each payload is fixed when the row is written)."""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from datetime import datetime

from google.protobuf.message import Message
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from callstream_core.envelope import new_envelope
from callstream_core.kafka import EventProducer
from callstream_core.topics import topic as topic_info
from callstream_hr.adapters.db import now
from callstream_hr.adapters.models import Outbox

log = logging.getLogger(__name__)
SOURCE = "callstream-hr"


def add_event(session: Session, topic: str, key: str, message: Message, occurred_at: datetime | None = None) -> str:
    """Fill the envelope of `message` and stage it in the outbox (part of the caller's transaction)."""
    expected = topic_info(topic).message_type
    if not isinstance(message, expected):
        raise TypeError(f"{topic} carries {expected.__name__}, not {type(message).__name__}")
    env = new_envelope(SOURCE, occurred_at or now())
    message.envelope.CopyFrom(env)  # type: ignore[attr-defined]
    session.add(Outbox(event_id=env.event_id, topic=topic, key=key, payload=message.SerializeToString(),
                       created_at=now()))
    return env.event_id


def relay_once(sessions: sessionmaker[Session], producer: EventProducer, batch: int = 500) -> int:
    """Publish up to `batch` unsent rows in outbox order; returns how many were confirmed and marked.

    The rows stay locked (PostgreSQL `FOR UPDATE SKIP LOCKED`) until they are marked, so several
    replicas of the service can run relays without sending the same rows at once. When Kafka does
    not confirm, `DeliveryError` propagates, the transaction rolls back and every row stays unsent.
    """
    with sessions.begin() as session:
        rows = session.scalars(select(Outbox).where(Outbox.sent_at.is_(None)).order_by(Outbox.id)
                               .limit(batch).with_for_update(skip_locked=True)).all()
        by_topic: dict[str, list[Outbox]] = defaultdict(list)
        for row in rows:
            by_topic[row.topic].append(row)
        for name, items in by_topic.items():
            kind = topic_info(name).message_type
            messages = []
            for row in items:
                msg = kind()
                msg.ParseFromString(row.payload)
                messages.append((row.key, msg))
            producer.produce_sync(name, messages)
        if rows:
            session.execute(update(Outbox).where(Outbox.id.in_([r.id for r in rows])).values(sent_at=now()))
        return len(rows)


def pending(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        return int(session.scalar(select(func.count()).select_from(Outbox).where(Outbox.sent_at.is_(None))) or 0)


class OutboxRelay:
    """Background thread running `relay_once` every `interval_s` seconds."""

    def __init__(self, sessions: sessionmaker[Session], producer: EventProducer, interval_s: float,
                 batch: int = 500) -> None:
        self._sessions, self._producer, self._interval, self._batch = sessions, producer, interval_s, batch
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hr-outbox-relay", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                relay_once(self._sessions, self._producer, self._batch)
            except Exception:
                log.exception("outbox relay run failed; retrying")
            self._stop.wait(self._interval)

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout)
