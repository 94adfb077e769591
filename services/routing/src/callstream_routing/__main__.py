"""`python -m callstream_routing`: the Router gRPC service (metrics on a separate HTTP port)."""

from __future__ import annotations

import asyncio
import sys

from prometheus_client import start_http_server

from callstream_core.observability import configure_logging
from callstream_routing.config import RoutingSettings
from callstream_routing.entrypoints.grpc_server import PortTaken, serve, stop_on_signals


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


if __name__ == "__main__":
    main()
