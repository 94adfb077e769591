"""The composition root of the KPI stream: settings -> the ClickHouse client, the producer and its dead letters,
the partition-state log, the pipeline (service layer), the broadcaster, the pipeline's thread and the Faust app
-> the worker (entrypoints/worker.py) with the KPI API and wallboard (entrypoints/api.py) -> serve until stopped.

`main()` is `python -m callstream_kpi`; `build_worker()` is what tests and benches run in their own event loop.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from fastapi import FastAPI

from callstream_core.clickhouse import get_client
from callstream_core.faust_support import make_app
from callstream_core.kafka import DeadLetters, EventProducer
from callstream_core.observability import ReadinessCheck, configure_logging
from callstream_core.settings import load_settings
from callstream_kpi.adapters.partition_states import PartitionStateLog
from callstream_kpi.config import KpiSettings
from callstream_kpi.entrypoints.api import create_app
from callstream_kpi.entrypoints.broadcast import Broadcaster
from callstream_kpi.entrypoints.worker import KpiWorker, StoreBehindOffsets, StreamParts
from callstream_kpi.service_layer.pipeline import KpiPipeline


def build_worker(settings: KpiSettings) -> KpiWorker:
    """The KPI stream worker with everything it runs, wired from `settings` (nothing started yet)."""
    client = get_client(settings.clickhouse_url, database=settings.clickhouse_database)
    producer = EventProducer(settings.kafka_bootstrap_servers, client_id=settings.service_name,
                             wire_format=settings.wire_format)
    # Every replica publishes the real-time state of its partitions here and merges everyone's: each one
    # serves the whole center's figures, whichever partitions it owns.
    states = PartitionStateLog(settings.kafka_bootstrap_servers, topic_prefix=settings.topic_prefix,
                               client_id=settings.service_name)
    pipeline = KpiPipeline(settings, client, producer, topic_prefix=settings.topic_prefix, states=states)
    broadcaster = Broadcaster()
    parts = StreamParts(
        client=client, producer=producer, dead_letters=DeadLetters(producer), states=states, pipeline=pipeline,
        broadcaster=broadcaster,
        # One thread runs every pipeline call: the domain state is never touched by two threads, and the
        # blocking ClickHouse calls stay off the event loop.
        executor=ThreadPoolExecutor(max_workers=1, thread_name_prefix="kpi-pipeline"),
        faust=make_app(settings.consumer_group, settings.kafka_bootstrap_servers,
                       consumer_auto_offset_reset=settings.consumer_auto_offset_reset,
                       consumer_group_instance_id=settings.group_instance_id or None,
                       broker_session_timeout=settings.broker_session_timeout_s))

    def create_api(stream_ready: ReadinessCheck) -> FastAPI:
        return create_app(settings, client, broadcaster, readiness={"clickhouse": stream_ready})

    return KpiWorker(settings, parts, create_api)


def main() -> None:
    settings = load_settings(KpiSettings)
    configure_logging(settings.service_name, settings.log_level)
    try:
        asyncio.run(build_worker(settings).serve())
    except StoreBehindOffsets as exc:
        raise SystemExit(f"kpi-stream: refusing to start: {exc}") from None
