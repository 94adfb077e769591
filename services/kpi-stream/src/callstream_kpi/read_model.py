"""KPIs by scope, grain and period: counters from ClickHouse folded into `Rollup`s, then the formulas
of `domain.kpis` (the only place a KPI is defined)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from clickhouse_connect.driver.client import Client

from callstream_kpi.adapters.kpi_queries import (
    KpiQuery,
    agent_state_counters_sql,
    call_event_counters_sql,
    contact_counters_sql,
    period_counters_sql,
    qa_counters_sql,
    run,
    schedule_counters_sql,
)
from callstream_kpi.domain.kpis import Rollup, compute_all

BUCKETED: tuple[Callable[[KpiQuery], str], ...] = (
    contact_counters_sql, call_event_counters_sql, agent_state_counters_sql, schedule_counters_sql, qa_counters_sql,
)


@dataclass(frozen=True)
class BucketFigures:
    bucket: datetime
    counters: Rollup
    kpis: dict[str, float | int | None]


@dataclass(frozen=True)
class KpiReport:
    query: KpiQuery
    buckets: list[BucketFigures]
    total: BucketFigures

    def as_dict(self, kpi_names: list[str] | None = None) -> dict[str, Any]:
        def one(figures: BucketFigures) -> dict[str, Any]:
            kpis = {k: v for k, v in figures.kpis.items() if not kpi_names or k in kpi_names}
            return {"bucket": figures.bucket.isoformat(), **kpis, "counters": figures.counters.as_dict()}

        return {
            "scope": self.query.scope, "id": self.query.scope_id, "grain": self.query.grain,
            "from": self.query.start.isoformat(), "to": self.query.end.isoformat(),
            "rows": [one(b) for b in self.buckets], "total": one(self.total),
        }


def kpi_report(client: Client, query: KpiQuery, *, variants: bool = False) -> KpiReport:
    merged: dict[datetime, dict[str, Any]] = {}
    for build in BUCKETED:
        for row in run(client, build(query), query):
            bucket = row.pop("bucket")
            merged.setdefault(bucket, {}).update(row)
    buckets = []
    for bucket in sorted(merged):
        counters = Rollup.from_mapping(merged[bucket])
        buckets.append(BucketFigures(bucket, counters, compute_all(counters, variants=variants)))
    period = run(client, period_counters_sql(query), query)[0]
    total_counters = Rollup.sum(b.counters for b in buckets)
    total_counters = Rollup.from_mapping({**total_counters.as_dict(), **period})
    total = BucketFigures(query.start, total_counters, compute_all(total_counters, variants=variants))
    return KpiReport(query, buckets, total)
