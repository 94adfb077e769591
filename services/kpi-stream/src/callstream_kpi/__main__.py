"""`python -m callstream_kpi`: the KPI stream worker with its API and wallboard."""

from __future__ import annotations

import asyncio

from callstream_core.observability import configure_logging
from callstream_kpi.config import KpiSettings
from callstream_kpi.entrypoints.worker import KpiWorker


def main() -> None:
    settings = KpiSettings()
    configure_logging(settings.service_name, settings.log_level)
    asyncio.run(KpiWorker(settings).serve())


if __name__ == "__main__":
    main()
