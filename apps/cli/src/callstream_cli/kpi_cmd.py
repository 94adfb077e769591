"""`callstream kpi`: KPIs from the KPI API (which owns the ClickHouse engine; chDB allows one process)."""

from __future__ import annotations

import json
from datetime import datetime
from enum import StrEnum
from typing import Any

import httpx
import typer


class Grain(StrEnum):
    m30 = "30m"
    hour = "hour"
    day = "day"
    week = "week"
    month = "month"


class Format(StrEnum):
    table = "table"
    json = "json"


DEFAULT_KPIS = ["total_calls", "service_level", "asa", "abandon_rate", "answered_rate", "average_handle_time",
                "occupancy", "first_call_resolution"]


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def render_table(report: dict[str, Any], kpis: list[str]) -> str:
    header = ["bucket", *kpis]
    rows = [[r["bucket"][:16].replace("T", " "), *(_fmt(r.get(k)) for k in kpis)] for r in report["rows"]]
    rows.append(["total", *(_fmt(report["total"].get(k)) for k in kpis)])
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines += ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))
              for row in rows]
    return "\n".join(lines)


def kpi(
    start: datetime = typer.Option(..., "--from", help="start (ISO 8601; naive = UTC)"),
    end: datetime = typer.Option(..., "--to", help="end, exclusive"),
    queue: str = typer.Option("", help="one queue"),
    agent: str = typer.Option("", help="one agent"),
    team: str = typer.Option("", help="one team"),
    grain: Grain = typer.Option(Grain.m30, help="30m, hour, day, week or month"),
    fmt: Format = typer.Option(Format.table, "--format"),
    kpis: list[str] = typer.Option(DEFAULT_KPIS, "--kpi", help="KPIs to show (repeat)"),
    api: str = typer.Option("http://127.0.0.1:8001", envvar="KPI_API_URL", help="the KPI API"),
    token: str = typer.Option(..., envvar="CALLSTREAM_TOKEN", help="bearer token"),
) -> None:
    """KPIs by scope and grain for a period, as a table or JSON."""
    chosen = [(kind, value) for kind, value in (("queue", queue), ("agent", agent), ("team", team)) if value]
    if len(chosen) > 1:
        raise typer.BadParameter("give at most one of --queue, --agent, --team")
    scope, scope_id = chosen[0] if chosen else ("center", "")
    params: list[tuple[str, str | int | float | bool | None]] = [
        ("from", start.isoformat()), ("to", end.isoformat()), ("scope", scope), ("id", scope_id),
        ("grain", grain.value), *(("kpi", k) for k in kpis)]
    try:
        response = httpx.get(f"{api}/v1/kpis", params=params, headers={"Authorization": f"Bearer {token}"},
                             timeout=60)
    except httpx.HTTPError as exc:
        typer.echo(f"cannot reach the KPI API at {api}: {exc}", err=True)
        raise typer.Exit(2) from exc
    if response.status_code != 200:
        typer.echo(f"KPI API answered {response.status_code}: {response.text}", err=True)
        raise typer.Exit(1)
    report = response.json()
    typer.echo(json.dumps(report, indent=2) if fmt is Format.json else render_table(report, kpis))
