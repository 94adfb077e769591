"""`python -m callstream_ingest`: the webhook API on HTTP_HOST:HTTP_PORT, plus the adapters switched on by
settings: the queue_log follower (QUEUE_LOG_PATH), the AMI client (AMI_HOST), the FreeSWITCH event-socket
client (ESL_HOST). All produce through one EventSink."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from callstream_core.kafka import admin
from callstream_core.observability import configure_logging
from callstream_core.settings import load_settings
from callstream_ingest.adapters.queue_log_follow import QueueLogFollower, default_checkpoint
from callstream_ingest.config import IngestSettings
from callstream_ingest.entrypoints.api import create_app
from callstream_ingest.service import EventSink, make_producer

log = logging.getLogger("callstream_ingest")


def build(settings: IngestSettings) -> tuple[FastAPI, EventSink]:
    sink = EventSink(make_producer(settings.kafka_bootstrap_servers, wire_format=settings.wire_format),
                     topic_prefix=settings.topic_prefix)

    async def kafka_ready() -> str | None:
        try:
            await asyncio.to_thread(admin(settings.kafka_bootstrap_servers).list_topics, timeout=3)
        except Exception as exc:
            return f"Kafka does not answer: {exc}"
        return None

    app = create_app(settings, sink, {"kafka": kafka_ready})
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(a: FastAPI) -> AsyncIterator[None]:
        stop = threading.Event()
        threads: list[threading.Thread] = []
        tasks: list[asyncio.Task[None]] = []
        if settings.queue_log_path:
            path = Path(settings.queue_log_path)
            ckpt = Path(settings.queue_log_checkpoint) if settings.queue_log_checkpoint else default_checkpoint(path)
            follower = QueueLogFollower(path, sink, ckpt, source=settings.queue_log_source,
                                        caller_salt=settings.caller_salt, wrap_up_s=settings.wrap_up(),
                                        agents=settings.agent_directory())
            threads.append(threading.Thread(target=follower.run, args=(stop,), name="queue-log", daemon=True))
        tasks += _clients(settings, sink)
        for t in threads:
            t.start()
        async with inner(a):
            try:
                yield
            finally:
                stop.set()
                for task in tasks:
                    task.cancel()
                for t in threads:
                    await asyncio.to_thread(t.join, 30)
                sink.close()

    app.router.lifespan_context = lifespan
    return app, sink


def _clients(settings: IngestSettings, sink: EventSink) -> list[asyncio.Task[None]]:
    tasks: list[asyncio.Task[None]] = []
    try:
        from callstream_ingest.adapters import switch_clients
    except ImportError:  # pragma: no cover
        return tasks
    if settings.ami_host:
        ami = switch_clients.AmiClient(settings.ami_host, settings.ami_port, settings.ami_username,
                                       settings.ami_secret, sink, source=settings.ami_source,
                                       caller_salt=settings.caller_salt, wrap_up_s=settings.wrap_up(),
                                       agents=settings.agent_directory(),
                                       backoff=switch_clients.Backoff(settings.reconnect_min_s,
                                                                      settings.reconnect_max_s))
        tasks.append(asyncio.create_task(ami.run()))
    if settings.esl_host:
        esl = switch_clients.EslClient(settings.esl_host, settings.esl_port, settings.esl_password, sink,
                                       source=settings.esl_source, caller_salt=settings.caller_salt,
                                       agents=settings.agent_directory(),
                                       backoff=switch_clients.Backoff(settings.reconnect_min_s,
                                                                      settings.reconnect_max_s))
        tasks.append(asyncio.create_task(esl.run()))
    return tasks


def main() -> None:
    settings = load_settings(IngestSettings)
    configure_logging(settings.service_name, settings.log_level)
    app, _sink = build(settings)
    uvicorn.run(app, host=settings.http_host, port=settings.http_port, log_config=None,
                **settings.uvicorn_tls())


if __name__ == "__main__":
    main()
