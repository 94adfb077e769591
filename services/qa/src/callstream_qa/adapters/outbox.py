"""Transactional outbox: `enqueue` in the caller's transaction; `OutboxRelay` publishes and marks rows sent.

At-least-once: a row is marked sent only after Kafka confirmed it (EventProducer.produce_sync); a crash between
the confirmation and the mark re-sends the row with the same envelope.event_id, so consumers drop the repeat.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime
from typing import Protocol

from google.protobuf.message import Message
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from callstream.qa.v1 import qa_events_pb2
from callstream_qa.adapters.orm import OutboxRow

log = logging.getLogger(__name__)
QA_TOPIC = "cc.qa-evaluations.v1"


class Producer(Protocol):
    def produce_sync(self, topic: str, messages: list[tuple[str, Message]], timeout: float = ...) -> int: ...


def enqueue(session: Session, event: qa_events_pb2.EvaluationChanged, now: datetime) -> OutboxRow:
    row = OutboxRow(event_id=event.envelope.event_id, topic=QA_TOPIC, key=event.agent_id,
                    payload=event.SerializeToString(), created_at=now)
    session.add(row)
    return row


class OutboxRelay:
    def __init__(self, sessions: sessionmaker[Session], producer: Producer, *, batch_size: int = 200,
                 interval_s: float = 0.5) -> None:
        self._sessions = sessions
        self._producer = producer
        self.batch_size = batch_size
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> int:
        """Publish one batch of unsent rows in id order; returns how many were confirmed and marked sent."""
        with self._sessions() as session, session.begin():
            query = select(OutboxRow).where(OutboxRow.sent_at.is_(None)).order_by(OutboxRow.id).limit(self.batch_size)
            if session.get_bind().dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)  # several replicas: each row to one relay
            rows = list(session.scalars(query))
            if not rows:
                return 0
            by_topic: dict[str, list[OutboxRow]] = {}
            for row in rows:
                by_topic.setdefault(row.topic, []).append(row)
            for topic, topic_rows in by_topic.items():
                messages: list[tuple[str, Message]] = [
                    (r.key, qa_events_pb2.EvaluationChanged.FromString(r.payload)) for r in topic_rows]
                self._producer.produce_sync(topic, messages)  # raises unless every one was confirmed
            now = datetime.now(UTC)
            for row in rows:
                row.sent_at = now
            return len(rows)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                sent = self.run_once()
            except Exception:
                log.exception("outbox relay failed; retrying")
                sent = 0
            if not sent:
                self._stop.wait(self.interval_s)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="qa-outbox-relay", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
