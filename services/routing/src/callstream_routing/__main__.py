"""`python -m callstream_routing`: the Router gRPC service (metrics on a separate HTTP port)."""

from __future__ import annotations

import asyncio

from prometheus_client import start_http_server

from callstream_core.observability import configure_logging
from callstream_routing.config import RoutingSettings
from callstream_routing.entrypoints.grpc_server import serve, stop_on_signals


def main() -> None:
    settings = RoutingSettings()
    configure_logging(settings.service_name, settings.log_level)
    start_http_server(settings.metrics_port, addr=settings.grpc_host)

    async def run() -> None:
        await serve(settings, stop=stop_on_signals())

    asyncio.run(run())


if __name__ == "__main__":
    main()
