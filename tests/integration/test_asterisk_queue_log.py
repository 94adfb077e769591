"""A real Asterisk end to end: calls placed on the test center, its queue_log followed live by the ingest service
(a real process, SIGKILLed and restarted mid-load), the KPI worker's figures equal to what Asterisk recorded.

The expected figures are read from Asterisk's own queue_log by `asterisk_records` (no Callstream code); the
queues' wrap-up times are read from the center's queues.conf. Bad lines appended to the live file go to the
DLQ with their line number and reason, and the follower keeps going.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from asterisk_records import QueueLogFigures, center_wrap_up, read_queue_log
from confluent_kafka import Consumer
from scenarios import TOKEN, isolated_topics, poll_kpis, worker_settings

from callstream_devtools.local_asterisk import LocalAsterisk
from callstream_devtools.local_kafka import free_port
from callstream_ingest.domain.call_plan import LoadShape, plan_calls
from callstream_ingest.service_layer.call_generator import CallGenerator
from callstream_kpi.bootstrap import build_worker

pytestmark = pytest.mark.integration
SL_THRESHOLD_S = 4.0
SHORT_ABANDON_S = 3.0
CALLS = 300
SEED = 20261204


def start_ingest(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "callstream_ingest"], env=env, stdout=out,
                                stderr=subprocess.STDOUT)


def dead_letters(bootstrap: str, topic: str, want: int, timeout_s: float) -> list[dict[str, str]]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"dlq-{time.monotonic_ns()}",
                         "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    found: list[dict[str, str]] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(found) < want and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            headers = {k: (v or b"").decode() for k, v in (msg.headers() or [])}
            found.append({**headers, "value": (msg.value() or b"").decode()})
    finally:
        consumer.close()
    return found


@pytest.mark.timeout(900)
def test_queue_log_followed_live_equals_asterisks_own_record(kafka_bootstrap: str, clickhouse_url: str,
                                                             tmp_path: Path) -> None:
    wrap = center_wrap_up()
    assert wrap == {"sales": 2.0, "support": 1.0}, "the center's queues.conf changed: update the test"
    prefix = isolated_topics(kafka_bootstrap)
    settings = worker_settings(kafka_bootstrap, clickhouse_url, prefix).model_copy(
        update={"default_short_abandon_s": SHORT_ABANDON_S})
    worker = build_worker(settings)
    calls = plan_calls(SEED, LoadShape(calls=CALLS))

    with LocalAsterisk(tmp_path / "asterisk") as pbx:
        env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "TOPIC_PREFIX": prefix,
               "QUEUE_LOG_PATH": str(pbx.queue_log), "QUEUE_LOG_CHECKPOINT": str(tmp_path / "checkpoint.json"),
               "QUEUE_WRAPUP_S": ",".join(f"{q}={s:g}" for q, s in wrap.items()),
               "HTTP_PORT": str(free_port()), "CALLER_SALT": "e2e-salt-not-for-production"}
        ingest_log = tmp_path / "ingest.log"
        ingest = start_ingest(env, ingest_log)
        kills: list[float] = []
        generator = CallGenerator("127.0.0.1", pbx.ami_port, pbx.ami_user, pbx.secret)

        def progress(placed: int) -> None:
            nonlocal ingest
            if placed == CALLS * 2 // 5 and not kills:
                # Mid-load: the follower dies without a goodbye, between two checkpoints, and comes back.
                kills.append(time.time())
                ingest.send_signal(signal.SIGKILL)
                ingest.wait(30)
                with pbx.queue_log.open("a") as log:  # truncated and garbled lines while it is down
                    log.write("garbage without fields\n")
                    log.write("not-a-time|1.1|sales|NONE|ENTERQUEUE||+40720000000|1\n")
                ingest = start_ingest(env, ingest_log)

        got: dict[str, float] = {}
        expected_holder: dict[str, QueueLogFigures] = {}

        async def scenario() -> None:
            report = await generator.run(calls, on_progress=progress)
            assert report.originated == CALLS and not report.refused
            assert report.transfers_done >= 1, "the plan's blind transfers did not happen"
            figures = read_queue_log(pbx.queue_log, sl_threshold_s=SL_THRESHOLD_S, short_abandon_s=SHORT_ABANDON_S,
                                     wrap_up_s=wrap)
            expected_holder["figures"] = figures
            start = datetime.fromtimestamp(figures.first_epoch, UTC) - timedelta(minutes=1)
            params = {"from": start.isoformat(), "to": (start + timedelta(hours=2)).isoformat(), "grain": "hour",
                      "sl_threshold_s": str(SL_THRESHOLD_S)}

            async def counted(total: dict[str, Any]) -> bool:
                got.update(total["counters"])
                return (got.get("offered") == figures.offered and got.get("answered") == figures.answered
                        and worker.pipeline.sessionizer.open_calls == 0)

            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{settings.http_port}", timeout=60,
                                         headers={"Authorization": f"Bearer {TOKEN}"}) as http:
                await poll_kpis(http, params, counted, timeout_s=180)

        try:
            asyncio.run(worker.serve(scenario))
        finally:
            ingest.send_signal(signal.SIGTERM)
            ingest.wait(30)

    f = expected_holder["figures"]
    assert not f.duration_mismatches, f.duration_mismatches  # the reader agrees with Asterisk's own fields
    # The load the issue asks for: calls wait, some abandon, some are short abandons, some ring unanswered.
    assert f.abandoned > 10 and f.short_abandons > 0 and f.ring_no_answers > 0 and f.transferred_blind > 0
    assert f.verbs["PAUSE"] == f.verbs["UNPAUSE"] == 1 and f.verbs["ADDMEMBER"] == f.verbs["REMOVEMEMBER"] == 1
    assert kills, "the follower was never killed"
    counts = {"offered": f.offered, "answered": f.answered, "abandoned": f.abandoned,
              "short_abandons": f.short_abandons, "answered_within_t": f.answered_within_t,
              "overflowed": f.overflowed, "transferred_blind": f.transferred_blind,
              "ring_no_answers": f.ring_no_answers, "timed_out": 0}
    assert {k: got.get(k) for k in counts} == counts
    sums = {"sum_talk_s": f.sum_talk_s, "sum_queue_s_answered": f.sum_queue_s_answered,
            "sum_wait_abandoned_s": f.sum_wait_abandoned_s, "sum_acw_s": f.sum_acw_s}
    assert {k: got.get(k) for k in sums} == pytest.approx(sums, abs=1e-6)
    assert worker.pipeline.sessionizer.open_calls == 0

    dlq = dead_letters(kafka_bootstrap, prefix + "cc.call-events.v1.dlq", 2, 30)
    reasons = sorted((d.get("ingest.reason", ""), d["value"][:8]) for d in dlq)
    assert reasons == [("bad_timestamp", "not-a-ti"), ("field_count", "garbage ")]
    assert all(d.get("ingest.line", "").isdigit() and d.get("ingest.file") == str(pbx.queue_log) for d in dlq)
