"""`python -m callstream_ingest.ari`: the ARI bridge (Asterisk's calls routed by Callstream's router)."""

from __future__ import annotations

import asyncio
import logging
import signal

from prometheus_client import start_http_server

from callstream_core.observability import configure_logging
from callstream_core.settings import load_settings
from callstream_ingest.adapters.switch_clients import Backoff
from callstream_ingest.ari.asterisk import AriRest
from callstream_ingest.ari.config import AgentsFileError, AriBridgeSettings
from callstream_ingest.ari.domain import Agent, CallRouting
from callstream_ingest.ari.presence import AgentPresence
from callstream_ingest.ari.service import AriBridge
from callstream_ingest.service import EventSink, make_producer
from callstream_routing.client import RetryPolicy, RouterClient
from callstream_routing.grpc_router import GrpcRouter


async def run(settings: AriBridgeSettings, agents: list[Agent]) -> None:
    """The composition root: domain, ARI, router client and Kafka sink, until SIGTERM/SIGINT."""
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


def main() -> None:
    settings = load_settings(AriBridgeSettings)
    try:
        agents = settings.agents()
    except AgentsFileError as exc:
        raise SystemExit(f"AGENTS_FILE: {exc}") from None
    configure_logging(settings.service_name, settings.log_level)
    try:
        start_http_server(settings.http_port, addr=settings.http_host)  # Prometheus /metrics
    except OSError as exc:
        raise SystemExit(f"ari-bridge: cannot serve metrics on {settings.http_host}:{settings.http_port}: "
                         f"{exc.strerror}; set HTTP_PORT to a free port") from None
    # httpx logs every request at INFO: several per call, which would drown the bridge's own lines.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    asyncio.run(run(settings, agents))


if __name__ == "__main__":
    main()
