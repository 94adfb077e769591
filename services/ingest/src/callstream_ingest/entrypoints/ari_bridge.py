"""The ARI bridge's process (`python -m callstream_ingest.ari`): Asterisk's calls routed by Callstream's router.

Settings and the agents file checked, Prometheus /metrics served, then `bootstrap.run_ari_bridge` until a signal.
"""

from __future__ import annotations

import asyncio
import logging

from prometheus_client import start_http_server

from callstream_core.observability import configure_logging
from callstream_core.settings import load_settings
from callstream_ingest.bootstrap import run_ari_bridge
from callstream_ingest.config import AgentsFileError, AriBridgeSettings


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
    asyncio.run(run_ari_bridge(settings, agents))
