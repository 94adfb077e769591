"""Contacts from cc.contacts.v1 into the QA database (for sampling plans), idempotent per call_id+segment+version."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from datetime import UTC

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from callstream.kpi.v1 import kpi_events_pb2
from callstream_core.kafka import EventConsumer
from callstream_qa.adapters.orm import ContactRow

log = logging.getLogger(__name__)
Contact = kpi_events_pb2.Contact


def store_contacts(session: Session, contacts: Iterable[kpi_events_pb2.Contact]) -> int:
    """Insert new contacts, replace older versions, ignore repeats and older versions; returns rows written."""
    written = 0
    latest: dict[tuple[str, int], kpi_events_pb2.Contact] = {}
    for c in contacts:
        key = (c.call_id, c.segment)
        if not c.call_id:
            continue
        if key not in latest or c.version > latest[key].version:
            latest[key] = c
    for (call_id, segment), c in latest.items():
        row = session.scalars(select(ContactRow).where(ContactRow.call_id == call_id, ContactRow.segment == segment)
                              ).one_or_none()
        if row is not None and row.version >= c.version:
            continue
        if row is None:
            row = ContactRow(call_id=call_id, segment=segment)
            session.add(row)
        row.version = c.version
        row.agent_id = c.agent_id
        row.team_id = c.team_id
        row.queue_id = c.queue_id
        row.call_type = c.call_type
        row.outcome = int(c.outcome)
        row.talk_s = c.talk_s
        row.transfer_kind = c.transfer_kind
        row.answered = c.HasField("answered_at")
        row.offered_at = c.offered_at.ToDatetime(tzinfo=UTC)
        written += 1
    return written


class ContactsConsumer:
    """Adapter: EventConsumer batches -> store_contacts in one transaction -> offsets stored after commit."""

    def __init__(self, consumer: EventConsumer[kpi_events_pb2.Contact], sessions: sessionmaker[Session]) -> None:
        self._consumer = consumer
        self._sessions = sessions
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self, timeout: float = 0.5) -> int:
        batch = self._consumer.poll_batch(timeout=timeout)
        if not batch:
            return 0
        with self._sessions() as session, session.begin():
            written = store_contacts(session, (item.value for item in batch))
        self._consumer.commit(batch)
        return written

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception:
                log.exception("contacts consumer failed; retrying")
                self._stop.wait(1.0)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="qa-contacts", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._consumer.close()
