"""The composition root: settings -> engine (migrated) -> sessions (and the units of work on them), auth,
outbox relay, contacts consumer."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from callstream_core.auth import TokenAuth, TokenTable
from callstream_core.db import make_engine, session_factory
from callstream_core.outbox import OutboxRelay, Producer
from callstream_core.topics import CONTACTS
from callstream_qa.adapters.contacts import ContactsConsumer
from callstream_qa.adapters.db import migrate
from callstream_qa.adapters.outbox import outbox
from callstream_qa.adapters.repositories import SqlUnitOfWork
from callstream_qa.config import Binding, QASettings
from callstream_qa.service_layer.unit_of_work import UnitOfWork


@dataclass
class Container:
    settings: QASettings
    engine: Engine
    sessions: sessionmaker[Session]
    auth: TokenAuth
    bindings: TokenTable[Binding]  # a token's person and team, looked up in constant time
    units_of_work: Callable[[Session], UnitOfWork]  # the use cases' storage on a request's session
    relay: OutboxRelay | None = None
    consumer: ContactsConsumer | None = None
    workers: list[OutboxRelay | ContactsConsumer] = field(default_factory=list)

    def start(self) -> None:
        for worker in self.workers:
            worker.start()

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()
        self.engine.dispose()


def bootstrap(settings: QASettings, *, producer: Producer | None = None) -> Container:
    engine = make_engine(settings.database_url)
    migrate(engine)
    sessions = session_factory(engine)
    container = Container(settings=settings, engine=engine, sessions=sessions, auth=TokenAuth(settings.tokens()),
                          bindings=TokenTable(settings.principals()), units_of_work=SqlUnitOfWork)
    if settings.outbox_relay_enabled:
        if producer is None:
            from callstream_core.kafka import EventProducer

            producer = EventProducer(settings.kafka_bootstrap_servers, client_id=settings.service_name,
                                     wire_format=settings.wire_format)
        container.relay = OutboxRelay(outbox, sessions, producer, interval_s=settings.outbox_interval_s,
                                      name="qa-outbox-relay")
        container.workers.append(container.relay)
    if settings.contacts_consumer_enabled:
        from callstream_core.kafka import DeadLetters, EventConsumer, EventProducer
        from callstream_core.topics import topic

        dlq = DeadLetters(EventProducer(settings.kafka_bootstrap_servers, client_id=settings.service_name + "-dlq"))
        consumer: EventConsumer[Any] = EventConsumer(
            settings.kafka_bootstrap_servers, group_id=settings.contacts_group_id, topic=topic(CONTACTS),
            dead_letters=dlq)
        container.consumer = ContactsConsumer(consumer, sessions)
        container.workers.append(container.consumer)
    return container
