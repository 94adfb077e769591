"""The ingest process (`python -m callstream_ingest`): the webhook API on HTTP_HOST:HTTP_PORT, with the queue_log
follower and the AMI / FreeSWITCH clients its settings switch on (`bootstrap.build`)."""

from __future__ import annotations

import uvicorn

from callstream_core.observability import configure_logging
from callstream_core.settings import load_settings
from callstream_ingest.bootstrap import build
from callstream_ingest.config import IngestSettings


def main() -> None:
    settings = load_settings(IngestSettings)
    configure_logging(settings.service_name, settings.log_level)
    app, _sink = build(settings)
    uvicorn.run(app, host=settings.http_host, port=settings.http_port, log_config=None,
                **settings.uvicorn_tls())
