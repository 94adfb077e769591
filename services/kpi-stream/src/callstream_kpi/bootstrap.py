"""The composition root of the KPI stream: settings -> the ClickHouse client, the producer and its dead letters,
the partition-state log, the pipeline (service layer), the broadcaster, the pipeline's thread and the Faust app
-> the worker (entrypoints/worker.py) with the KPI API and wallboard (entrypoints/api.py) -> serve until stopped.

`main()` is `python -m callstream_kpi`; `build_worker()` is what tests and benches run in their own event loop.
"""

from __future__ import annotations

import asyncio
import gc
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


# Python's cyclic garbage collector took 14-16 % of the worker's CPU over a 16-day replay (8-10 s in 8,500
# collections, docs/benchmarks.md): the youngest generation was collected every 700 allocations of container
# objects, and each full collection scanned everything the process had imported. The worker's events are
# freed by reference counting; cycles are rare, so the youngest generation is collected less often.
GC_YOUNG_THRESHOLD = 20_000


def tune_garbage_collector() -> None:
    """For a process that runs one worker (`main`, and the benches as it): what exists once the worker is
    built (modules, protobuf descriptors, the Faust app) lives as long as the process, so the collector stops
    scanning it (`gc.freeze`), and the youngest generation is collected every GC_YOUNG_THRESHOLD allocations."""
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])


def main() -> None:
    settings = load_settings(KpiSettings)
    configure_logging(settings.service_name, settings.log_level)
    try:
        worker = build_worker(settings)
        tune_garbage_collector()
        asyncio.run(worker.serve())
    except StoreBehindOffsets as exc:
        raise SystemExit(f"kpi-stream: refusing to start: {exc}") from None
