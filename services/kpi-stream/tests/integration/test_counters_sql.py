"""The stored path (ClickHouse SQL counters) and the in-memory path (`rollup_contacts`) count the same:
random contacts go through both, per 30-minute bucket, and every counter must agree."""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import fields
from datetime import UTC, datetime, timedelta

import pytest
from clickhouse_connect.driver.client import Client

from callstream_kpi.adapters.clickhouse_facts import (
    CONTACT_COLUMNS,
    FactWriter,
    RetryingClient,
    apply_migrations,
    contact_row,
)
from callstream_kpi.adapters.kpi_queries import KpiQuery, contact_counters_sql, run
from callstream_kpi.domain.contact import ContactRecord
from callstream_kpi.domain.fcr import FcrTracker
from callstream_kpi.domain.kpis import Rollup, rollup_contacts
from callstream_kpi.domain.watermark import interval_start

pytestmark = pytest.mark.integration
DAY = datetime(2026, 3, 2, tzinfo=UTC)
OUTCOMES = ["answered"] * 6 + ["abandoned", "abandoned", "blocked", "ivr_handled", "ivr_abandoned", "overflowed",
                              "callback"]


def random_contacts(rng: random.Random, calls: int) -> list[ContactRecord]:
    out = []
    for n in range(calls):
        offered = DAY + timedelta(seconds=rng.randrange(0, 6 * 3600))
        outcome = rng.choice(OUTCOMES)
        queued = outcome not in ("blocked", "ivr_handled", "ivr_abandoned") and rng.random() < 0.8
        queue_s = rng.uniform(0, 90) if queued else 0.0
        answered = outcome == "answered"
        legs = 1 + (answered and rng.random() < 0.2)
        for segment in range(legs):
            leg_answered = answered
            out.append(ContactRecord(
                call_id=f"call-{n}", segment=segment, outcome=outcome if segment == 0 else "answered",
                offered_at=offered + timedelta(seconds=segment * 200), queue_id=rng.choice(["sales", "billing"]),
                agent_id=f"agent-{rng.randrange(8)}" if leg_answered else "",
                caller_hash=rng.choice(["", "c1", "c2", "c3", f"u{n}"]), topic=rng.choice(["t1", "t2"]),
                answered_at=offered + timedelta(seconds=queue_s + segment * 200) if leg_answered else None,
                queue_s=queue_s if segment == 0 else 0.0, queued=queued and segment == 0,
                ring_s=rng.uniform(0, 20) if leg_answered else 0.0, talk_s=rng.uniform(20, 400) if leg_answered else 0,
                hold_s=rng.choice([0.0, 30.0]) if leg_answered else 0.0, hold_count=0,
                acw_s=rng.uniform(0, 90) if leg_answered else 0.0,
                short_abandon=outcome == "abandoned" and queue_s <= 20,
                transfer_kind=("blind" if rng.random() < 0.5 else "warm") if legs == 2 and segment == 0 else "",
                resolved=leg_answered and rng.random() < 0.7, hard_call=rng.random() < 0.05,
            ))
    return [c if c.hold_s == 0 else ContactRecord(**{**{f.name: getattr(c, f.name) for f in fields(c)},
                                                     "hold_count": 1}) for c in out]


def test_sql_counters_equal_the_domain_rollup(clickhouse: Client) -> None:
    apply_migrations(clickhouse)
    contacts = random_contacts(random.Random(7), 600)
    FactWriter(RetryingClient(clickhouse)).insert(
        "contacts", [contact_row(c.to_proto()) for c in contacts], CONTACT_COLUMNS, [("t", 0, 0)])

    fcr = FcrTracker(window_s=72 * 3600)
    fcr.observe(contacts)
    by_bucket: dict[datetime, list[ContactRecord]] = defaultdict(list)
    for c in contacts:
        by_bucket[interval_start(c.offered_at)].append(c)
    query = KpiQuery("center", "", "30m", DAY, DAY + timedelta(days=1))
    rows = {row.pop("bucket").replace(tzinfo=UTC): Rollup.from_mapping(row)
            for row in run(clickhouse, contact_counters_sql(query), query)}

    assert set(rows) == set(by_bucket)
    for bucket, members in by_bucket.items():
        expected = rollup_contacts(members, first_call_resolved=fcr.is_first_call_resolved)
        got = rows[bucket]
        for f in fields(Rollup):
            assert getattr(got, f.name) == pytest.approx(getattr(expected, f.name)), (bucket, f.name)
