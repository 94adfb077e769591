"""`python -m callstream_kpi`: the KPI stream worker with its API and wallboard (HTTPS when TLS_ENABLED)."""

from __future__ import annotations

import asyncio

from callstream_core.observability import configure_logging
from callstream_core.settings import load_settings
from callstream_kpi.config import KpiSettings
from callstream_kpi.entrypoints.worker import KpiWorker, StoreBehindOffsets


def main() -> None:
    settings = load_settings(KpiSettings)
    configure_logging(settings.service_name, settings.log_level)
    try:
        asyncio.run(KpiWorker(settings).serve())
    except StoreBehindOffsets as exc:
        raise SystemExit(f"kpi-stream: refusing to start: {exc}") from None


if __name__ == "__main__":
    main()
