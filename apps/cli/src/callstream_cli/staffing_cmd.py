"""`callstream staffing`: agents needed for one interval (Erlang C, or Erlang A with --patience)."""

from __future__ import annotations

import dataclasses
import json
import re
from enum import StrEnum

import typer


class Format(StrEnum):
    table = "table"
    json = "json"


_INTERVAL = re.compile(r"^(\d+(?:\.\d+)?)(s|m|h)$")
_TARGET = re.compile(r"^(\d+(?:\.\d+)?)/(\d+(?:\.\d+)?)$")


def interval_seconds(text: str) -> float:
    match = _INTERVAL.match(text)
    if not match or float(match.group(1)) <= 0:
        raise typer.BadParameter(f"{text!r}: give a length such as 30m, 1h or 900s")
    return float(match.group(1)) * {"s": 1, "m": 60, "h": 3600}[match.group(2)]


def service_target(text: str) -> tuple[float, float]:
    """`80/20` = 80 % of calls answered within 20 s."""
    match = _TARGET.match(text)
    if not match or not 0 < float(match.group(1)) <= 100:
        raise typer.BadParameter(f"{text!r}: give PERCENT/SECONDS such as 80/20")
    return float(match.group(1)) / 100, float(match.group(2))


def staffing(
    calls: float = typer.Option(..., min=0, help="calls offered in the interval"),
    interval: str = typer.Option("30m", help="interval length: 30m, 1h, 900s"),
    aht: float = typer.Option(..., min=1, help="average handle time, seconds"),
    target: str = typer.Option("80/20", help="service level goal PERCENT/SECONDS"),
    patience: float | None = typer.Option(None, min=1, help="mean caller patience, seconds (Erlang A)"),
    shrinkage: float = typer.Option(0.0, min=0, max=0.99, help="share of paid time off the phones"),
    max_occupancy: float = typer.Option(1.0, min=0.01, max=1.0, help="occupancy ceiling"),
    asa: float | None = typer.Option(None, min=0, help="ASA goal, seconds"),
    abandon: float | None = typer.Option(None, min=0, max=1, help="abandon-rate goal (0-1), with --patience"),
    fmt: Format = typer.Option(Format.table, "--format"),
) -> None:
    """Agents needed to meet the goals for one interval, and the figures they achieve."""
    from callstream_hr.domain.erlang import required_agents

    sl, t_s = service_target(target)
    result = required_agents(calls, interval_seconds(interval), aht, sl, t_s, max_occupancy=max_occupancy,
                             asa_goal=asa, abandon_goal=abandon, patience_s=patience, shrinkage=shrinkage)
    figures = dataclasses.asdict(result)
    if fmt is Format.json:
        typer.echo(json.dumps(figures, indent=2))
        return
    typer.echo(f"agents needed          {result.agents}  ({result.raw_agents} on the phones, "
               f"shrinkage {shrinkage:.0%}; {result.model})")
    typer.echo(f"traffic                {result.traffic:.2f} Erlangs")
    typer.echo(f"service level          {result.service_level:.1%} within {t_s:g} s (goal {sl:.0%})")
    typer.echo(f"ASA                    {result.asa_s:.1f} s")
    typer.echo(f"occupancy              {result.occupancy:.1%}")
    typer.echo(f"abandon rate           {result.abandon_rate:.1%}")
