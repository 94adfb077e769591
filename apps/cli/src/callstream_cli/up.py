"""`callstream up` (= `make run`): Kafka, topics, every service under one supervisor, addresses printed."""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

import typer
from honcho.manager import Manager
from honcho.printer import Printer

from callstream_cli.asterisk_cmd import DEV_AMI_PORT, DEV_HTTP_PORT, DEV_SECRET
from callstream_cli.kafka_cmd import dev_broker, start_or_exit
from callstream_core.kafka import apply_topics
from callstream_core.topics import BY_NAME, ROUTING_COMMANDS
from callstream_devtools.local_asterisk import AMI_USER, center_dir, ensure_built
from callstream_devtools.local_kafka import find_repo_root

DEV_TOKEN = "dev-manager-token"
# The simulator and ingest talk to the router as a switch would: with a machine-role token.
DEV_SERVICE_TOKEN = "dev-service-token"
# HR's people records (hiring, skills) take the hr role: the planner's walk-through (services/hr/README.md)
# enters the example staff with it before publishing their roster.
DEV_HR_TOKEN = "dev-hr-token"
# How long the demo's simulator waits for the routing service to lead: its start-up applies topics, takes the
# log and replays it from the newest snapshot (up to 600 s or 50,000 commands of earlier runs), a few seconds
# on a warm machine; two minutes covers a cold JVM broker and a loaded laptop.
ROUTER_START_S = 120.0
# The demo's calls on the real Asterisk: a steady trickle the center's eight answering agents serve with some
# waiting (short talks: the wallboard moves within a minute), for hours (the generator plans every call up front).
ASTERISK_CALLS = 20_000
ASTERISK_RATE = 0.5
# The ARI bridge's Prometheus /metrics (its HTTP_PORT would default to ingest's 8000), beside the router's 9464.
BRIDGE_METRICS_PORT = 9465


class Switch(StrEnum):
    """What plays the demo's telephone switch."""

    simulator = "simulator"  # the virtual PBX (callstream simulate) on the demo center
    asterisk = "asterisk"  # the real Asterisk of deploy/local/asterisk, its calls routed through the ARI bridge


@dataclass(frozen=True)
class Service:
    name: str
    module: str
    address: str
    env: dict[str, str]


def demo_command_log(started: datetime) -> str:
    """The router's command log for one `callstream up`: the demo's switch (the simulator) starts from nothing
    every run, so its ACD must too. On the run's log of an earlier run, the router would still hold that run's
    agents talking on calls that never end (the simulator is stopped with them), and route nothing to them."""
    return f"cc.routing-commands.v1.demo-{started:%Y%m%dT%H%M%S}"


def services(run_dir: str, command_log: str, switch: Switch = Switch.simulator) -> list[Service]:
    """The services this checkout has (a service takes part once its package has a __main__)."""
    queues = (center_dir() / "routed-queues.yaml" if switch is Switch.asterisk
              else find_repo_root() / "deploy" / "local" / "demo-queues.yaml")
    # The demo's switch (the simulator, or the ARI bridge) sets agent states over gRPC, and the agent events it
    # also emits are for the KPI stream; the router reading them too would apply every state twice, out of step.
    routing_env = {"AGENT_EVENTS_TOPIC": "", "COMMAND_LOG_TOPIC": command_log,
                   **({"QUEUES_FILE": str(queues)} if queues.exists() else {})}
    known = [
        Service("routing", "callstream_routing", "grpc://127.0.0.1:50051", routing_env),
        Service("ingest", "callstream_ingest", "http://127.0.0.1:8000/docs (webhooks)", {}),
        Service("kpi", "callstream_kpi", "http://127.0.0.1:8001/wallboard (KPI API: /docs)",
                {"CLICKHOUSE_URL": f"chdb://{run_dir}/chdb"}),
        Service("qa", "callstream_qa", "http://127.0.0.1:8002/docs",
                {"DATABASE_URL": f"sqlite:///{run_dir}/qa.sqlite"}),
        # HR's forecast reads history from the KPI API (the dev token's manager role may read KPIs).
        Service("hr", "callstream_hr", "http://127.0.0.1:8003/docs",
                {"DATABASE_URL": f"sqlite:///{run_dir}/hr.sqlite", "KPI_API_URL": "http://127.0.0.1:8001",
                 "KPI_API_TOKEN": DEV_TOKEN}),
    ]
    return [s for s in known if importlib.util.find_spec(f"{s.module}.__main__") is not None]


def asterisk_switch(state_dir: Path, router: Service) -> list[tuple[str, str, dict[str, str]]]:
    """The real Asterisk as the demo's switch: (name, command, extra environment) of its processes. Asterisk
    runs the test center (deploy/local/asterisk: AMI 5038, ARI 8088); the ARI bridge hands its calls to the
    routing service; the call generator places calls into the `[routed]` context (Stasis) once the bridge has
    registered, so every call is routed by Callstream's ACD through the switch."""
    cli = f"{sys.executable} -m callstream_cli.main asterisk"
    bridge_env = {
        "ARI_URL": f"http://127.0.0.1:{DEV_HTTP_PORT}", "ARI_USERNAME": AMI_USER, "ARI_PASSWORD": DEV_SECRET,
        "ROUTER_TARGETS": router.address.removeprefix("grpc://"), "ROUTER_TOKEN": DEV_SERVICE_TOKEN,
        "AGENTS_FILE": str(center_dir() / "routed-agents.yaml"),
        # The agents' logins are the bridge's first commands: they wait for the router to lead as long as the
        # simulator would (start-up replays the command log), instead of the default 30 s.
        "ROUTER_RETRY_S": f"{ROUTER_START_S:g}", "HTTP_PORT": str(BRIDGE_METRICS_PORT)}
    return [
        ("asterisk", f"{cli} start --run-dir {state_dir / 'asterisk'}", {}),
        ("ari-bridge", f"{sys.executable} -m callstream_ingest.ari", bridge_env),
        # The bridge registers once Asterisk and the router are up: the generator waits for it as long.
        ("calls", f"{cli} calls --context routed --calls {ASTERISK_CALLS} --rate {ASTERISK_RATE:g} "
                  f"--wait-s {2 * ROUTER_START_S:g}", {}),
    ]


def up(
    simulate: bool = typer.Option(True, help="drive the demo center with its switch (the simulator or Asterisk)"),
    switch: Switch = typer.Option(Switch.simulator, "--switch",
                                  help="simulator: the virtual PBX on the demo center; asterisk: the real Asterisk "
                                       "(`callstream asterisk build` once) with generated calls, routed by the ARI "
                                       "bridge"),
    state_dir: Path = typer.Option(None, "--state-dir",
                                   help="where the run's data goes (chDB, SQLite, Asterisk's logs); "
                                        "default .local of the checkout"),
) -> None:
    """Start Kafka, apply topics, start every service and print the addresses; Ctrl-C stops everything."""
    state_dir = (state_dir or find_repo_root() / ".local").resolve()
    run_dir = state_dir / "run"
    run_dir.mkdir(parents=True, exist_ok=True)
    if switch is Switch.asterisk and simulate:
        typer.echo("Asterisk (built once, ~3 min; cached) ...")
        ensure_built(quiet=False)
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    broker = None if external else dev_broker()
    if broker is not None:
        typer.echo("starting Kafka (KRaft, single node) ...")
        start_or_exit(broker)
    bootstrap = external or (broker.bootstrap_servers if broker else "")
    try:
        command_log = demo_command_log(datetime.now(UTC))
        created = apply_topics(bootstrap)
        # The run's own command log: the registry's, under the run's name (see demo_command_log).
        apply_topics(bootstrap, [dataclasses.replace(BY_NAME[ROUTING_COMMANDS], name=command_log)])
        typer.echo(f"topics ready ({len(created)} created; routing command log {command_log})")
        env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
               "API_TOKENS": f"{DEV_TOKEN}:manager,{DEV_SERVICE_TOKEN}:service,{DEV_HR_TOKEN}:hr",
               "CALLSTREAM_TOKEN": DEV_SERVICE_TOKEN, "PYTHONUNBUFFERED": "1",
               # A development run: public defaults (the caller-hash salt) are allowed.
               "CALLSTREAM_ENV": "development"}
        manager = Manager(Printer(sys.stdout))
        chosen = services(str(run_dir), command_log, switch)
        for service in chosen:
            manager.add_process(service.name, f"{sys.executable} -m {service.module}",
                                env={**env, **service.env})
        scenario = find_repo_root() / "deploy" / "local" / "demo-center.yaml"
        router = [s for s in chosen if s.name == "routing"]
        if simulate and switch is Switch.asterisk:
            if not router:
                typer.echo("--switch asterisk routes the calls with the routing service, which this checkout "
                           "lacks (callstream_routing)", err=True)
                raise typer.Exit(1)
            for name, command, extra in asterisk_switch(state_dir, router[0]):
                manager.add_process(name, command, env={**env, **extra})
        elif simulate and scenario.exists() and importlib.util.find_spec("callstream_simulator"):
            # The simulator is the demo's switch and the routing service its ACD, over gRPC as a real switch
            # would use it: the wallboard's expected wait is the router's, and the router's metrics move.
            # It waits for the router to lead (start-up replays the command log of earlier runs).
            routed = (f"--router {router[0].address} --router-wait {ROUTER_START_S:g}" if router
                      else "--router inproc")
            manager.add_process("simulator", f"{sys.executable} -m callstream_cli.main simulate {scenario} "
                                f"--speed 1 {routed}", env={**env, "ROUTER_TOKEN": DEV_SERVICE_TOKEN})
        typer.echo(f"\nKafka            {bootstrap}")
        for service in chosen:
            typer.echo(f"{service.name:16} {service.address}")
        if simulate and switch is Switch.asterisk:
            typer.echo(f"{'asterisk':16} AMI 127.0.0.1:{DEV_AMI_PORT}, ARI http://127.0.0.1:{DEV_HTTP_PORT} "
                       f"(user {AMI_USER}, secret {DEV_SECRET}); logs in {state_dir / 'asterisk' / 'log'}")
            typer.echo(f"{'ari-bridge':16} http://127.0.0.1:{BRIDGE_METRICS_PORT}/metrics")
        typer.echo(f"API token        {DEV_TOKEN} (role manager; send as 'Authorization: Bearer ...')")
        typer.echo(f"HR token         {DEV_HR_TOKEN} (role hr: hiring, skills)")
        typer.echo("Ctrl-C stops everything.\n")
        if chosen:
            manager.loop()  # returns when a process exits or on Ctrl-C, after stopping the others
        else:
            typer.echo("no service packages have an entry point yet; Kafka runs until Ctrl-C")
            import signal
            import threading

            stopped = threading.Event()
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, lambda *_: stopped.set())
            stopped.wait()
    finally:
        if broker is not None:
            broker.stop()
            typer.echo("Kafka stopped")
