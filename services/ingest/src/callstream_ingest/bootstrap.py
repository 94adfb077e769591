"""The composition root of ingest's two processes: settings -> Kafka sink, adapters and use cases.

- `build(IngestSettings)`: the webhook API (`entrypoints.api`) plus the adapters switched on by settings: the
  queue_log follower (QUEUE_LOG_PATH), the AMI client (AMI_HOST), the FreeSWITCH event-socket client (ESL_HOST).
  All produce through one EventSink.
- `run_ari_bridge(AriBridgeSettings, agents)`: the ARI bridge (Asterisk's calls routed by Callstream's router):
  the call-routing domain, the ARI client, the router client and the Kafka sink, until SIGTERM/SIGINT.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from callstream_core.kafka import admin
from callstream_ingest.adapters.ari_rest import AriRest
from callstream_ingest.adapters.queue_log_follow import QueueLogFollower, default_checkpoint
from callstream_ingest.adapters.switch_clients import Backoff
from callstream_ingest.config import AriBridgeSettings, IngestSettings
from callstream_ingest.domain.ari_presence import AgentPresence
from callstream_ingest.domain.ari_routing import Agent, CallRouting
from callstream_ingest.entrypoints.api import create_app
from callstream_ingest.service_layer.ari_bridge import AriBridge
from callstream_ingest.service_layer.event_sink import EventSink, make_producer
from callstream_routing.client import RetryPolicy, RouterClient
from callstream_routing.grpc_router import GrpcRouter


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


async def run_ari_bridge(settings: AriBridgeSettings, agents: list[Agent]) -> None:
    routing = CallRouting(agents, caller_salt=settings.caller_salt, source=settings.ari_source,
                          callback_endpoint=settings.callback_endpoint, callback_ring_s=settings.callback_ring_s)
    sink = EventSink(make_producer(settings.kafka_bootstrap_servers, client_id="callstream-ari-bridge",
                                   wire_format=settings.wire_format), settings.topic_prefix)
    ari = AriRest(settings.ari_url, settings.ari_username, settings.ari_password, settings.ari_app)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    bridge: AriBridge | None = None
    client = RouterClient(settings.router_target_list(), settings.router_token, policy=RetryPolicy(
        attempt_timeout_s=settings.router_timeout_s, deadline_s=settings.router_retry_s))
    router = GrpcRouter(client, on_stream=lambda: bridge.streamed() if bridge is not None else None)
    presence = (AgentPresence(agents, settings.agent_directory(), device_prefix=settings.agent_device_prefix,
                              source=settings.ari_source) if settings.agent_device_prefix else None)
    bridge = AriBridge(routing, ari, router, sink, moh_class=settings.moh_class,
                       backoff=Backoff(settings.reconnect_min_s, settings.reconnect_max_s), presence=presence)
    try:
        await bridge.run(stop)
    finally:
        router.close()
        await ari.close()
        sink.close()
