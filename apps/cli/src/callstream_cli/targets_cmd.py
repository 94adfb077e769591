"""`callstream targets`: per-queue and per-team service targets in the KPI API (SL threshold and goal, KPI
targets; a queue's also its short-abandon threshold and callers' patience), which the KPI queries, dashboards
and the planner read."""

from __future__ import annotations

import json
from typing import Any

import httpx
import typer

from callstream_cli.staffing_cmd import service_target

app = typer.Typer(help="Per-queue and per-team service targets (KPI API).", no_args_is_help=True)

API = typer.Option("http://127.0.0.1:8001", "--api", envvar="KPI_API_URL", help="the KPI API")
TOKEN = typer.Option(..., "--token", envvar="CALLSTREAM_TOKEN", help="bearer token (manager to write)")
TEAM = typer.Option(False, "--team", help="a team's targets instead of a queue's")


def _kind(team: bool) -> str:
    return "team" if team else "queue"


def _client(api: str, token: str) -> httpx.Client:
    # A bounded timeout: an unreachable API fails the command instead of hanging it.
    return httpx.Client(base_url=api.rstrip("/"), headers={"Authorization": f"Bearer {token}"}, timeout=30)


def _answer(response: httpx.Response) -> Any:
    if response.status_code >= 400:
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        if isinstance(detail, list):  # pydantic: name each bad field
            detail = "; ".join(f"{'.'.join(str(p) for p in d.get('loc', [])[1:])}: {d.get('msg')}" for d in detail)
        typer.echo(f"the KPI API answered {response.status_code}: {detail}", err=True)
        raise typer.Exit(1)
    return response.json()


def _call(api: str, token: str, method: str, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
    try:
        with _client(api, token) as c:
            return c.request(method, path, json=body)
    except httpx.HTTPError as exc:
        typer.echo(f"the KPI API at {api} did not answer: {exc}", err=True)
        raise typer.Exit(2) from exc


@app.command("set")
def set_targets(
    scope_id: str = typer.Argument(..., metavar="ID", help="queue id (team id with --team)"),
    sl: str | None = typer.Option(None, "--sl", help="service level goal PERCENT/SECONDS, e.g. 80/20"),
    short_abandon: float | None = typer.Option(None, "--short-abandon", help="seconds; faster abandons are "
                                                                            "not counted"),
    patience: float | None = typer.Option(None, "--patience", help="callers' mean patience, seconds"),
    kpi: list[str] = typer.Option([], "--kpi", help="KPI=VALUE target (repeat), e.g. asa=15"),
    team: bool = TEAM,
    api: str = API,
    token: str = TOKEN,
) -> None:
    """Change a queue's (or with --team a team's) targets; what is not given keeps its current (or default)
    value. A team has no --short-abandon or --patience (the API refuses them naming the field)."""
    kind = _kind(team)
    current = _call(api, token, "GET", f"/v1/{kind}s/{scope_id}/targets")
    body: dict[str, Any] = {} if current.status_code == 404 else _answer(current)
    body.pop(f"{kind}_id", None)
    if sl is not None:
        goal, t_s = service_target(sl)
        body.update(sl_goal_pct=goal * 100, sl_threshold_s=t_s)
    if short_abandon is not None:
        body["short_abandon_s"] = short_abandon
    if patience is not None:
        body["patience_s"] = patience
    for text in kpi:
        name, sep, value = text.partition("=")
        try:
            number = float(value) if sep and name else None
        except ValueError:
            number = None
        if number is None:
            raise typer.BadParameter(f"{text!r}: give KPI=NUMBER", param_hint="--kpi")
        body.setdefault("kpi_targets", {})[name] = number
    typer.echo(json.dumps(_answer(_call(api, token, "PUT", f"/v1/{kind}s/{scope_id}/targets", body)), indent=2))


@app.command("list")
def list_targets(team: bool = TEAM, api: str = API, token: str = TOKEN) -> None:
    """Every queue's (with --team every team's) stored targets."""
    typer.echo(json.dumps(_answer(_call(api, token, "GET", f"/v1/{_kind(team)}s/targets")), indent=2))
