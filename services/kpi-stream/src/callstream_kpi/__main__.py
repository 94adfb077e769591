"""`python -m callstream_kpi`: the KPI stream worker with its API and wallboard (HTTPS when TLS_ENABLED)."""

from __future__ import annotations

import asyncio

import uvicorn

from callstream_core.observability import configure_logging
from callstream_core.settings import load_settings
from callstream_kpi.config import KpiSettings
from callstream_kpi.entrypoints.worker import KpiWorker


async def serve(worker: KpiWorker, settings: KpiSettings) -> None:
    """Serve the API (over TLS when configured) while the stream runs, as KpiWorker.serve does in plain HTTP.
    The API answers from the start (health, readiness "starting") while the stream starts."""
    server = uvicorn.Server(uvicorn.Config(worker.api, host=settings.http_host, port=settings.http_port,
                                           log_config=None, **settings.uvicorn_tls()))
    serving = asyncio.create_task(server.serve())
    try:
        await worker.start()
        await serving
    finally:
        server.should_exit = True
        await serving
        await worker.stop()


def main() -> None:
    settings = load_settings(KpiSettings)
    configure_logging(settings.service_name, settings.log_level)
    asyncio.run(serve(KpiWorker(settings), settings))


if __name__ == "__main__":
    main()
