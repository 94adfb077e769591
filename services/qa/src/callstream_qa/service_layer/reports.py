"""Monthly reports: KPI 12 (monitoring score per agent or team) and the QA controller's figures."""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from callstream_qa.adapters.orm import EvaluationRow
from callstream_qa.domain.forms import FormError
from callstream_qa.service_layer.calibration import calibration_report
from callstream_qa.service_layer.common import utc
from callstream_qa.service_layer.sampling import coverage
from callstream_qa.service_layer.unit_of_work import UnitOfWork


def month_bounds(month: str) -> tuple[datetime, datetime]:
    try:
        start = datetime.strptime(month, "%Y-%m").replace(tzinfo=UTC)
    except ValueError:
        raise FormError(f"month must be YYYY-MM, not {month!r}") from None
    end = (start + timedelta(days=32)).replace(day=1)
    return start, end


def month_evaluations(uow: UnitOfWork, month: str) -> list[EvaluationRow]:
    start, end = month_bounds(month)
    return list(uow.evaluations.scored_submitted(start, end))


def monitoring_report(uow: UnitOfWork, month: str, group_by: str, top: int = 3,
                      rows: Sequence[EvaluationRow] | None = None) -> list[dict[str, Any]]:
    """KPI 12: mean score per agent or team for a month, with the criteria most often missed."""
    groups: dict[str, list[EvaluationRow]] = defaultdict(list)
    for ev in rows if rows is not None else month_evaluations(uow, month):
        groups[ev.agent_id if group_by == "agent" else ev.team_id].append(ev)
    out = []
    for key in sorted(groups):
        evs = groups[key]
        missed = Counter(c["criterion_id"] for ev in evs for c in ev.criteria if c["missed"])
        out.append({
            f"{group_by}_id": key, "month": month, "evaluations": len(evs),
            "monitoring_score": round(statistics.fmean(ev.score for ev in evs), 2),
            "critical_failures": sum(ev.critical_failed for ev in evs),
            "most_missed": [{"criterion_id": c, "misses": n} for c, n in
                            sorted(missed.items(), key=lambda kv: (-kv[1], kv[0]))[:top]],
        })
    return out


def controller_report(uow: UnitOfWork, month: str) -> dict[str, Any]:
    """QA controller KPIs: evaluations done vs plan, calibration deviation, turnaround call -> evaluation."""
    start, end = month_bounds(month)
    evaluations = month_evaluations(uow, month)
    planned = done = 0
    for plan in uow.plans.starting(start.date(), end.date()):
        for row in coverage(uow, plan.plan_id):
            planned += row["planned"]
            done += row["done"]
    deviations = []
    for cal in uow.calibrations.created(start, end):
        _, stats = calibration_report(uow, cal.session_id)
        if stats is not None and len(stats.deviations) > 1:
            deviations.append(stats.mean_abs_deviation)
    turnaround = [((utc(ev.submitted_at) or end) - contact_at).total_seconds() / 3600
                  for ev in evaluations if (contact_at := utc(ev.contact_at)) is not None]
    return {
        "month": month, "evaluations_done": len(evaluations), "planned": planned, "planned_done": done,
        "plan_coverage": round(done / planned, 4) if planned else None,
        "calibration_sessions": len(deviations),
        "calibration_mean_abs_deviation": round(statistics.fmean(deviations), 2) if deviations else None,
        "turnaround_hours_mean": round(statistics.fmean(turnaround), 2) if turnaround else None,
        "turnaround_hours_median": round(statistics.median(turnaround), 2) if turnaround else None,
    }
