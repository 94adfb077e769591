"""Transactional outbox of the SQL services (HR, QA): an event is written in the same database transaction as
the change it describes, and a relay publishes it to Kafka afterwards.

At-least-once: a row is marked sent only after Kafka confirmed it (`produce_sync`); a crash between the
confirmation and the mark sends the row again with the same envelope.event_id (fixed when the row was
written), so consumers drop the repeat.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime
from typing import Generic, Protocol, TypeVar

from google.protobuf.message import Message
from sqlalchemy import DateTime, Integer, LargeBinary, String, func, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from callstream_core.db import now
from callstream_core.envelope import new_envelope
from callstream_core.topics import topic as topic_info

log = logging.getLogger(__name__)

# Rows per relay run. One run is one transaction holding its rows' locks while Kafka confirms them, and one
# produce_sync per topic: 500 events (under 1 KB each) are a few hundred KB, confirmed in well under the
# producer's delivery timeout, while a backlog after a Kafka outage drains in a few runs.
DEFAULT_BATCH = 500


class OutboxColumns:
    """The columns of a service's outbox table (mixed into its declarative model, which names the table;
    the service's migrations create it)."""

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)  # the publishing order
    event_id: Mapped[str] = mapped_column(String(36))
    topic: Mapped[str] = mapped_column(String(128))
    key: Mapped[str] = mapped_column(String(128))
    payload: Mapped[bytes] = mapped_column(LargeBinary)  # binary protobuf, envelope included
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # Indexed: the relay looks for the unsent rows on every run.
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True, index=True)


Row = TypeVar("Row", bound=OutboxColumns)


class Producer(Protocol):
    """What the relay needs of a Kafka producer (callstream_core.kafka.EventProducer): a batch, confirmed."""

    def produce_sync(self, topic: str, messages: Iterable[tuple[str, Message]], timeout: float = ...) -> int: ...


class Outbox(Generic[Row]):
    """One service's outbox: `add` stages events in the caller's transaction, `relay_once` publishes them."""

    def __init__(self, model: type[Row], source: str) -> None:
        self.model = model
        self.source = source  # the envelope's source: the service that wrote the event

    def add(self, session: Session, topic: str, key: str, message: Message,
            occurred_at: datetime | None = None) -> str:
        """Fill the envelope of `message` (event time `occurred_at`, default now) and stage it in the outbox as
        part of `session`'s transaction; returns the event id."""
        # Checked when written, not when relayed: a wrong type would otherwise be a row no consumer can read,
        # found only by the relay, long after the request that wrote it succeeded.
        expected = topic_info(topic).message_type
        if not isinstance(message, expected):
            raise TypeError(f"{topic} carries {expected.__name__}, not {type(message).__name__}")
        env = new_envelope(self.source, occurred_at or now())
        message.envelope.CopyFrom(env)  # type: ignore[attr-defined]
        row = self.model()
        row.event_id, row.topic, row.key = env.event_id, topic, key
        row.payload, row.created_at = message.SerializeToString(), now()
        session.add(row)
        return env.event_id

    def relay_once(self, sessions: sessionmaker[Session], producer: Producer, batch: int = DEFAULT_BATCH) -> int:
        """Publish up to `batch` unsent rows in outbox order; returns how many were confirmed and marked sent.

        When Kafka does not confirm, `DeliveryError` propagates, the transaction rolls back and every row of
        the batch stays unsent (some may have reached Kafka: they go again, with the same event ids)."""
        model = self.model
        with sessions.begin() as session:
            # FOR UPDATE SKIP LOCKED (PostgreSQL; SQLite has no row locks and ignores it): several replicas of
            # a service run relays, and each row goes to one of them until it is marked.
            rows = session.scalars(select(model).where(model.sent_at.is_(None)).order_by(model.id)
                                   .limit(batch).with_for_update(skip_locked=True)).all()
            by_topic: dict[str, list[Row]] = defaultdict(list)
            for row in rows:
                by_topic[row.topic].append(row)
            for name, items in by_topic.items():
                # Decoded with the registry's type of the topic: one relay serves every topic of the service.
                kind = topic_info(name).message_type
                producer.produce_sync(name, [(row.key, kind.FromString(row.payload)) for row in items])
            if rows:
                session.execute(update(model).where(model.id.in_([r.id for r in rows])).values(sent_at=now()))
            return len(rows)

    def pending(self, sessions: sessionmaker[Session]) -> int:
        """How many rows are not sent yet (a health and test figure)."""
        with sessions() as session:
            return int(session.scalar(select(func.count()).select_from(self.model)
                                      .where(self.model.sent_at.is_(None))) or 0)


class OutboxRelay:
    """A background thread running `outbox.relay_once` until stopped."""

    def __init__(self, outbox: Outbox[Row], sessions: sessionmaker[Session], producer: Producer, *,
                 interval_s: float = 1.0, batch: int = DEFAULT_BATCH, name: str = "outbox-relay") -> None:
        self._outbox, self._sessions, self._producer = outbox, sessions, producer
        self._interval_s, self._batch = interval_s, batch
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def run_once(self) -> int:
        """One relay run (what the thread repeats): how many rows were confirmed and marked sent."""
        return self._outbox.relay_once(self._sessions, self._producer, self._batch)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                sent = self.run_once()
            except Exception:
                # Kafka or the database down: the rows stay unsent and the next run tries again.
                log.exception("outbox relay run failed; retrying")
                sent = 0
            # A full batch means a backlog: the next run starts at once; otherwise wait `interval_s`, the longest
            # an event waits in the outbox when Kafka is up.
            if sent < self._batch:
                self._stop.wait(self._interval_s)

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
