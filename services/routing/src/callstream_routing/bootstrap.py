"""The composition root of the routing service: settings -> the Router (service layer) with its command log and
leadership -> the gRPC server (servicer, interceptors, health, reflection) -> serve until stopped.

`main()` is `python -m callstream_routing` (metrics on a separate HTTP port); `serve()` is what tests and benches
run in their own event loop.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import start_http_server

from callstream.routing.v1 import routing_pb2, routing_pb2_grpc
from callstream_core.kafka import apply_topics
from callstream_core.observability import configure_logging
from callstream_core.topics import BY_NAME, ROUTING_DECISIONS
from callstream_routing.adapters.command_log import LeadershipLost
from callstream_routing.config import RoutingSettings
from callstream_routing.entrypoints.grpc_server import SERVICE, BearerAuth, LeaderOnly, RouterServicer
from callstream_routing.service_layer import heap, leadership
from callstream_routing.service_layer.router import Router

log = logging.getLogger(__name__)


def _registry_topics(settings: RoutingSettings) -> list[Any]:
    # A transactional producer cannot commit while one of its topics is missing, so the router makes sure the
    # registry topics it writes exist (from the registry, as `callstream topics apply` would) before it leads.
    names = [ROUTING_DECISIONS, settings.snapshot_topic] if settings.snapshots_enabled else [ROUTING_DECISIONS]
    return [BY_NAME[name] for name in names if name in BY_NAME]


async def serve(settings: RoutingSettings, *, ready: Callable[[int], None] | None = None,
                stop: asyncio.Event | None = None) -> None:
    """Run the router until `stop` is set (or forever). `ready(port)` is called once it listens: a leader
    serves from then on; a standby reports NOT_SERVING until it took over (poll its health)."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    router = Router(settings)
    health_servicer = health.aio.HealthServicer()
    # No SO_REUSEPORT (gRPC sets it by default on Linux): with it a second router on the same port binds too
    # and the kernel splits the connections between the two, so a standby started on the leader's port would
    # answer half the calls UNAVAILABLE instead of failing at start-up.
    server = grpc.aio.server(interceptors=[LeaderOnly(router), BearerAuth(settings.tokens())],
                             options=[("grpc.so_reuseport", 0)])
    routing_pb2_grpc.add_RouterServicer_to_server(RouterServicer(router), server)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (routing_pb2.DESCRIPTOR.services_by_name["Router"].full_name, reflection.SERVICE_NAME, health.SERVICE_NAME),
        server)
    # Bound first, before the log is touched: a router that cannot listen must not fence the leader it would
    # then be unable to replace.
    port = _bind(server, settings)
    await asyncio.to_thread(apply_topics, settings.kafka_bootstrap_servers, _registry_topics(settings))

    async def fenced() -> None:
        # Process health too: a probe restarts the process, which comes back as a standby.
        for name in (SERVICE, ""):
            await health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)

    def on_lost(_exc: LeadershipLost) -> None:  # called in the writer's thread
        asyncio.run_coroutine_threadsafe(fenced(), loop)

    writer = leadership.new_writer(settings, on_lost=on_lost)
    if settings.routing_role == "leader":
        await asyncio.to_thread(writer.open)  # fence any other writer before reading: the log is ours to end
    router.core, reader = await asyncio.to_thread(leadership.rebuild, settings, router.configure)
    await server.start()
    health_server = grpc.aio.server()
    if settings.health_port is not None:
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, health_server)
        health_server.add_insecure_port(f"{settings.grpc_host}:{settings.health_port}")
        await health_server.start()
    # The process is up ("" SERVING, for liveness); the Router service only once it leads (for readiness).
    await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    await health_servicer.set(SERVICE, health_pb2.HealthCheckResponse.NOT_SERVING)
    try:
        if settings.routing_role == "standby":
            if ready is not None:
                ready(port)
            if not await leadership.follow(router.core, reader, settings, stop):
                return
            began = time.monotonic()
            caught_up = await leadership.take_over(router.core, reader, writer)
            log.warning("routing: %s leads %s (fenced the old leader, %d more commands applied, %.2f s)",
                        settings.instance_id, settings.command_log_topic, caught_up, time.monotonic() - began)
        else:
            writer.start(reader.position)
        router.lead(writer, reader.commands)
        heap.settle()  # the rebuilt state and the imported modules: out of the collector's way (heap.py)
        await health_servicer.set(SERVICE, health_pb2.HealthCheckResponse.SERVING)
        if settings.routing_role == "leader" and ready is not None:
            ready(port)
        await stop.wait()
    finally:
        reader.close()
        await health_servicer.enter_graceful_shutdown()
        await server.stop(grace=2)
        await health_server.stop(grace=None)
        await router.stop()


class PortTaken(RuntimeError):
    """The gRPC address cannot be bound: the message is one line saying which and what to do."""


def _bind(server: grpc.aio.Server, settings: RoutingSettings) -> int:
    address = f"{settings.grpc_host}:{settings.grpc_port}"
    try:
        if settings.tls_enabled and settings.tls_cert_file and settings.tls_key_file:
            credentials = grpc.ssl_server_credentials(
                [(settings.tls_key_file.read_bytes(), settings.tls_cert_file.read_bytes())])
            port = server.add_secure_port(address, credentials)
        else:
            port = server.add_insecure_port(address)
    except RuntimeError as exc:  # grpcio raises "Failed to bind to address ..." (older versions returned 0)
        raise PortTaken(_taken(address)) from exc
    if port == 0:
        raise PortTaken(_taken(address))
    return port


def _taken(address: str) -> str:
    return (f"routing: cannot listen on {address}: the port is taken (another router? `ss -ltnp 'sport = "
            f":{address.rsplit(':', 1)[1]}'`); stop that program or set GRPC_PORT to a free port")


def stop_on_signals() -> asyncio.Event:
    """An event set by SIGTERM/SIGINT: the orchestrator's stop is a clean stop (the leader resigns)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


def main() -> None:
    settings = RoutingSettings()
    configure_logging(settings.service_name, settings.log_level)
    try:
        start_http_server(settings.metrics_port, addr=settings.grpc_host)
    except OSError as exc:
        sys.exit(f"routing: cannot serve metrics on {settings.grpc_host}:{settings.metrics_port}: {exc.strerror} "
                 "(another router?); stop that program or set METRICS_PORT to a free port")

    async def run() -> None:
        await serve(settings, stop=stop_on_signals())

    try:
        asyncio.run(run())
    except PortTaken as exc:
        sys.exit(str(exc))  # one line and status 1, not a traceback
