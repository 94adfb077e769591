"""KPIs by scope, grain and period: counters from ClickHouse folded into `Rollup`s, then the formulas
of `domain.kpis` (the only place a KPI is defined)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
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
from callstream_kpi.domain.targets import DEFAULT_TARGETS, QueueSettings, ScopeRef, TargetBook, TeamSettings, judge

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


def with_targets(answer: dict[str, Any], book: TargetBook, scope: ScopeRef,
                 stored: QueueSettings | TeamSettings | None) -> dict[str, Any]:
    """A queue's or team's answer (`KpiReport.as_dict`) judged against its targets: `stored_targets` (those
    written for the scope, null when none), `targets` (per KPI of the answer with a target: the comparison,
    value and source, `override` where the scope's own targets set it) and, in every row and the total, `met`
    (KPI -> whether it meets its target; null without a figure). `book` holds the defaults; the stored
    targets are applied to it here."""
    if stored is not None:
        stored.apply(book)
    for row in [*answer["rows"], answer["total"]]:
        row["met"] = judge({k: v for k, v in row.items() if k in DEFAULT_TARGETS}, book, scope)
    targets = {kpi: book.get(kpi, scope) for kpi in answer["total"]["met"]}
    answer["targets"] = {kpi: {"comparison": t.comparison, "value": t.value, "source": t.source}
                         for kpi, t in targets.items() if t is not None}
    answer["stored_targets"] = None if stored is None else asdict(stored)
    return answer
