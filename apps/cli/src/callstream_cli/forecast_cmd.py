"""`callstream forecast`: offered calls, AHT and agents per 30-minute interval of the coming week for some
queues, from N weeks of history read from the KPI API, with the accuracy on held-out weeks."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

import typer

from callstream_cli.staffing_cmd import service_target


class Format(StrEnum):
    table = "table"
    json = "json"


def forecast(
    queues: list[str] = typer.Option(..., "--queue", help="queue to forecast (repeat)"),
    week: datetime = typer.Option(..., "--week", help="start of the week, UTC (e.g. Monday 00:00)"),
    weeks: int = typer.Option(6, min=2, max=52, help="weeks of history before --week"),
    holdout: int = typer.Option(1, min=1, max=51, help="last history weeks held out to state the accuracy"),
    target: str = typer.Option("80/20", help="service level goal PERCENT/SECONDS"),
    patience: float | None = typer.Option(None, min=1, help="mean caller patience, seconds (Erlang A)"),
    shrinkage: float = typer.Option(0.0, min=0, max=0.99, help="share of paid time off the phones"),
    max_occupancy: float = typer.Option(1.0, min=0.01, max=1.0, help="occupancy ceiling"),
    fmt: Format = typer.Option(Format.table, "--format"),
    api: str = typer.Option("http://127.0.0.1:8001", envvar="KPI_API_URL", help="the KPI API"),
    token: str = typer.Option(..., envvar="CALLSTREAM_TOKEN", help="bearer token of a KPI reader (hr, manager)"),
    timeout: float = typer.Option(30.0, min=0.1, help="seconds per KPI API request"),
    ca_file: Path | None = typer.Option(None, envvar="KPI_API_CA_FILE", exists=True, dir_okay=False,
                                        help="PEM CA bundle that signed the KPI API's certificate"),
) -> None:
    """Forecast of the coming week per queue and interval, its hold-out accuracy and the agents it needs."""
    from callstream_hr.adapters.kpi_history import KpiApiHistory
    from callstream_hr.service_layer.planning import HistoryUnavailable, StaffingGoals, forecast_week

    sl, t_s = service_target(target)
    week_start = week if week.tzinfo else week.replace(tzinfo=UTC)
    source = KpiApiHistory(api, token, timeout, str(ca_file) if ca_file else "")
    try:
        plan = forecast_week(source, queues, week_start, history_weeks=weeks, holdout_weeks=holdout,
                             goals=StaffingGoals(sl, t_s, max_occupancy, patience_s=patience, shrinkage=shrinkage))
    except HistoryUnavailable as exc:
        typer.echo(f"cannot read the history: {exc}", err=True)
        raise typer.Exit(2) from exc
    except ValueError as exc:  # BadHistory included: the request cannot be forecast
        typer.echo(f"cannot forecast: {exc}", err=True)
        raise typer.Exit(1) from exc
    finally:
        source.close()
    if fmt is Format.json:
        typer.echo(json.dumps(plan.as_dict(), indent=2))
        return
    typer.echo(f"week from {plan.week_start:%Y-%m-%d} (UTC), fitted on {plan.history_weeks} weeks from "
               f"{plan.history_start:%Y-%m-%d}; accuracy on the last {holdout} held-out week(s)")
    typer.echo(f"{'queue':16} {'calls':>9} {'calls WAPE':>10} {'AHT WAPE':>9} {'peak agents':>11}")
    for q in plan.queues:
        peak = max(r.agents for r in q.staffing or [])
        typer.echo(f"{q.queue_id:16} {sum(q.calls):9.0f} {q.accuracy.calls_wape:10.1%} {q.accuracy.aht_wape:9.1%} "
                   f"{peak:11d}")
    if plan.requirement:
        typer.echo(f"all queues: peak {max(plan.requirement)} agents, {sum(plan.requirement) / 2:.0f} agent-hours "
                   f"(shrinkage {shrinkage:.0%} included)")
