"""`callstream simulate SCENARIO`: the virtual PBX (services/ingest simulator) driving routing and Kafka."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import typer


def _start(text: str | None, paced: bool) -> datetime | None:
    if text is None:
        return datetime.now(UTC).replace(microsecond=0) if paced else None
    if text == "now":
        return datetime.now(UTC).replace(microsecond=0)
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise typer.BadParameter("--start needs a timezone, e.g. 2026-01-05T08:00:00Z")
    return moment.astimezone(UTC)


def simulate(
    scenario: Path = typer.Argument(..., exists=True, dir_okay=False, help="scenario YAML (docs/simulator.md)"),
    speed: str = typer.Option("max", help="virtual seconds per wall second (1 = real time, 10 = 10×) or 'max'"),
    router: str = typer.Option("inproc", help="'inproc' (routing core in this process, any speed) or "
                                              "grpc://host:port[,host:port...] (the Router service: the leader's "
                                              "and the standbys' addresses; needs a paced speed)"),
    bootstrap: str | None = typer.Option(None, envvar="KAFKA_BOOTSTRAP_SERVERS",
                                         help="Kafka bootstrap servers; without it events are counted only"),
    start: str | None = typer.Option(None, help="virtual start, ISO with timezone or 'now' "
                                                "(default: now when paced, the scenario's start with max)"),
    router_token: str = typer.Option("", envvar="ROUTER_TOKEN", help="bearer token of role service (gRPC)"),
    router_wait: float = typer.Option(0.0, help="seconds to wait for a router to lead before the first call "
                                                "(gRPC; for a run started together with its routers)"),
    wire_format: str = typer.Option("json", help="json or protobuf"),
) -> None:
    """Run a scenario: calls and agents in virtual time, every routing decision asked of the router, every
    switch event produced to Kafka; prints progress on long runs and a summary."""
    from callstream_simulator import CountingSink, Engine, InProcessRouter, KafkaSink, ScenarioError
    from callstream_simulator.clock import Pacer, parse_speed, run
    from callstream_simulator.router import Router
    from callstream_simulator.scenario import load_scenario
    from callstream_simulator.sinks import EventSink

    try:
        sc = load_scenario(scenario)
    except ScenarioError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    try:
        pace = parse_speed(speed)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--speed") from None
    the_router: Router
    if router == "inproc":
        the_router = InProcessRouter(sc)
    else:
        from callstream_routing.client import RouterClient, RouterUnavailable
        from callstream_routing.grpc_router import GrpcRouter, parse_targets

        if pace is None:
            raise typer.BadParameter("the gRPC router runs on wall time: use a paced --speed (1, 10, ...) "
                                     "or --router inproc for 'max'", param_hint="--speed")
        if not router_token:
            raise typer.BadParameter("the Router API needs a bearer token of role service (ROUTER_TOKEN)",
                                     param_hint="--router-token")
        try:
            client = RouterClient(parse_targets(router), router_token)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--router") from None
        if router_wait > 0:
            typer.echo(f"waiting up to {router_wait:g} s for a router of {router} to lead ...")
            try:
                typer.echo(f"router {client.wait_for_leader(router_wait)} leads")
            except RouterUnavailable as exc:
                client.close()
                typer.echo(str(exc), err=True)
                raise typer.Exit(1) from None
        the_router = GrpcRouter(client)
    sink: EventSink
    if bootstrap:
        sink = KafkaSink.connect(bootstrap, wire_format=wire_format)
    else:
        typer.echo("no Kafka bootstrap servers (--bootstrap / KAFKA_BOOTSTRAP_SERVERS): events are counted only")
        sink = CountingSink()
    engine = Engine(sc, the_router, sink, start=_start(start, pace is not None))
    typer.echo(f"simulating {sc.name!r} from {engine.start.isoformat()} at "
               f"{'max speed' if pace is None else f'{pace:g}×'}, router {router}")
    began = time.monotonic()

    def progress(e: Engine) -> None:
        s = e.summary
        typer.echo(f"  virtual {e.now / 3600:6.2f} h  received {s.received}  answered {s.answered}  "
                   f"abandoned {s.abandoned}  blocked {s.blocked}  events {s.call_events + s.agent_events}")

    try:
        summary = run(engine, Pacer(pace), progress=progress)
    except KeyboardInterrupt:
        summary = engine.finish()
        typer.echo("interrupted")
    finally:
        the_router.close()
    wall = time.monotonic() - began
    for line in summary.lines():
        typer.echo(line)
    events = summary.call_events + summary.agent_events
    typer.echo(f"wall time        {wall:.1f} s ({events / wall if wall > 0 else 0:,.0f} events/s)")

