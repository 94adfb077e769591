"""issue 17 item 10: the ClickHouse sink retried any exception forever, so one row it could not store stalled
the stream. With real chDB and a real broker: rows ClickHouse refuses reach the DLQ with the reason and the
rest of the batch is stored; an outage (a connection error) is still retried until it passes."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import OperationalError
from scenarios import isolated_topics, read_dead_letters

from callstream_core.kafka import DeadLetters, EventProducer
from callstream_kpi.adapters import clickhouse_facts as facts

pytestmark = pytest.mark.integration


def call_event_row(n: int, **over: Any) -> list[Any]:
    row = {"event_id": f"e{n}", "call_id": f"c{n}", "occurred_at": datetime(2026, 3, 2, 9, n, tzinfo=UTC),
           "kind": "offered", "queue_id": "q", "agent_id": "", "source": "test", "payload": b"x",
           "kafka_partition": 0, "kafka_offset": n, **over}
    return [row[c] for c in facts.CALL_EVENT_COLUMNS]


def test_rows_clickhouse_refuses_go_to_the_dlq_and_the_rest_is_stored(kafka_bootstrap: str,
                                                                      clickhouse: Client) -> None:
    facts.apply_migrations(clickhouse)
    prefix = isolated_topics(kafka_bootstrap)
    retries: list[Exception] = []
    writer = facts.FactWriter(facts.RetryingClient(clickhouse, on_retry=retries.append, sleep=lambda _s: None),
                              facts.RowDeadLetters(DeadLetters(EventProducer(kafka_bootstrap, client_id="t")), prefix))
    rows = [call_event_row(n) for n in range(8)]
    rows[2] = call_event_row(2, kafka_partition=-1)  # UInt32 cannot hold it
    rows[5] = call_event_row(5, occurred_at="not a time")  # DateTime64 cannot hold it
    offsets = [("cc.call-events.v1", 0, n) for n in range(8)]
    # On the old code this call never returned: a thread with a deadline turns that into a failure.
    done = threading.Thread(target=writer.insert, args=("call_events", rows, facts.CALL_EVENT_COLUMNS, offsets))
    done.start()
    done.join(60)
    assert not done.is_alive(), "the writer is still retrying rows ClickHouse cannot store"
    stored = clickhouse.query("SELECT event_id FROM call_events FINAL ORDER BY event_id").result_rows
    assert [r[0] for r in stored] == ["e0", "e1", "e3", "e4", "e6", "e7"]
    assert retries == []
    dead = sorted(((json.loads(value), headers) for _key, value, headers in
                  read_dead_letters(kafka_bootstrap, prefix + "cc.call-events.v1.dlq", 2)),
                  key=lambda dead_row: dead_row[0]["event_id"])
    assert [row["event_id"] for row, _headers in dead] == ["e2", "e5"]
    for _fact, headers in dead:
        assert headers["dlq.table"] == "call_events"
        assert headers["dlq.error"].startswith("ClickHouse refused the row: ")
    assert "Invalid isoformat string: 'not a time'" in dead[1][1]["dlq.error"]


def test_an_outage_is_retried_until_it_passes(clickhouse: Client) -> None:
    facts.apply_migrations(clickhouse)
    failures = iter([OperationalError("connection refused"), OperationalError("timed out")])

    def flaky(client: Client) -> Any:
        failure = next(failures, None)
        if failure is not None:
            raise failure
        return client.insert("call_events", [call_event_row(1)], column_names=facts.CALL_EVENT_COLUMNS)

    retries: list[Exception] = []
    facts.RetryingClient(clickhouse, on_retry=retries.append, sleep=lambda _s: None).run(flaky)
    assert [str(e) for e in retries] == ["connection refused", "timed out"]
    assert clickhouse.query("SELECT count() FROM call_events").result_rows == [(1,)]
    assert not facts.is_row_error(OperationalError("Code: 53. but the connection broke"))
