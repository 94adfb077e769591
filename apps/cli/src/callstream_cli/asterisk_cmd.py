"""`callstream asterisk build|start|stop|calls|agent`: the real Asterisk of deploy/local/asterisk, for the demo and
tests."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from enum import StrEnum
from pathlib import Path

import typer

from callstream_devtools.local_asterisk import (
    AMI_USER,
    LocalAsterisk,
    built,
    ensure_built,
    install_prefix,
    vendor_tarball,
)
from callstream_devtools.local_kafka import find_repo_root
from callstream_devtools.routed_center import stasis_app_registered
from callstream_ingest.adapters.ami_session import AmiSession
from callstream_ingest.domain.call_plan import LoadShape, plan_calls
from callstream_ingest.service_layer.call_generator import AgentStatus, CallGenerator, dial_agent_status

app = typer.Typer(help="A real Asterisk (built from the vendored source) with the test center's queues.",
                  no_args_is_help=True)
DEV_AMI_PORT = 5038
DEV_HTTP_PORT = 8088
# Loopback only (manager.conf permits 127.0.0.1 alone): a development secret, like the development API tokens.
DEV_SECRET = "callstream-dev-ami"


def dev_run_dir() -> Path:
    return find_repo_root() / ".local" / "asterisk"


def status() -> str:
    """One line for `callstream doctor`."""
    try:
        tarball = vendor_tarball()
    except FileNotFoundError as exc:
        return f"Asterisk: {exc}; the switch tests cannot run."
    if built(tarball):
        return f"Asterisk: built in {install_prefix(tarball)}."
    return (f"Asterisk: not built yet; `callstream asterisk build` compiles {tarball.name} (about 3 minutes; "
            "`make test` does it too).")


@app.command()
def build() -> None:
    """Compile Asterisk once into the cache (~/.cache/callstream/asterisk); later runs reuse it."""
    typer.echo(f"Asterisk ready in {ensure_built(quiet=False)}")


class Context(StrEnum):
    """Where generated calls enter the center's dialplan (deploy/local/asterisk/extensions.conf)."""

    incoming = "incoming"  # Asterisk's own Queue() (app_queue) routes them
    routed = "routed"  # Stasis(): the ARI bridge and Callstream's router route them


@app.command()
def start(
    run_dir: Path = typer.Option(None, "--run-dir", help="Where Asterisk's configuration, logs (queue_log, CDRs) "
                                 "and state go; default .local/asterisk of the checkout."),
) -> None:
    """Run the test center on 127.0.0.1 (AMI 5038, ARI/HTTP 8088) in the foreground until Ctrl-C."""
    stopped = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopped.set())
    pbx = LocalAsterisk(run_dir or dev_run_dir(), ami_port=DEV_AMI_PORT, http_port=DEV_HTTP_PORT,
                        secret=DEV_SECRET)
    with pbx:
        typer.echo(f"Asterisk ready: AMI 127.0.0.1:{pbx.ami_port} (user {pbx.ami_user}, secret {DEV_SECRET}), "
                   f"queue_log {pbx.queue_log}; Ctrl-C stops it")
        stopped.wait()
    typer.echo("Asterisk stopped")


@app.command()
def stop() -> None:
    """Stop a development Asterisk left running by another process (its own pid file)."""
    pid_file = dev_run_dir() / "run" / "asterisk.pid"
    try:
        pid = int(pid_file.read_text().strip())
        os.kill(pid, signal.SIGTERM)
    except (FileNotFoundError, ValueError, ProcessLookupError):
        typer.echo("no Asterisk was running")
        return
    typer.echo(f"stopped Asterisk (pid {pid})")


@app.command()
def calls(
    count: int = typer.Option(300, "--calls", min=1, help="How many calls to place."),
    rate: float = typer.Option(3.0, "--rate", min=0.01, help="Mean arrivals per second (Poisson)."),
    seed: int = typer.Option(7, "--seed", help="The plan's random seed: the same seed, the same plan."),
    context: Context = typer.Option(Context.incoming, "--context",
                                    help="incoming: Asterisk's Queue() routes; routed: Callstream's router "
                                         "through the ARI bridge."),
    ami_port: int = typer.Option(DEV_AMI_PORT, "--ami-port"),
    http_port: int = typer.Option(DEV_HTTP_PORT, "--http-port", help="Asterisk's ARI (HTTP) port."),
    secret: str = typer.Option(DEV_SECRET, "--secret", envvar="AMI_SECRET"),
    wait_s: float = typer.Option(0.0, "--wait-s", min=0,
                                 help="With --context routed: wait up to this long for a bridge to register its "
                                      "Stasis app before the first call (a switch started with it)."),
) -> None:
    """Place calls on a running test center (`callstream asterisk start`) and wait until all are over."""
    if context is Context.routed:
        deadline = time.monotonic() + wait_s
        while not stasis_app_registered(http_port, AMI_USER, secret):
            if time.monotonic() >= deadline:
                typer.echo(f"no ARI bridge registered with Asterisk (ARI 127.0.0.1:{http_port}): calls into "
                           "[routed] would be hung up; start `python -m callstream_ingest.ari`", err=True)
                raise typer.Exit(1)
            time.sleep(0.5)  # polling Asterisk for the bridge, with a deadline
    plan = plan_calls(seed, LoadShape(calls=count, calls_per_s=rate))
    generator = CallGenerator("127.0.0.1", ami_port, AMI_USER, secret, context=context.value)
    report = asyncio.run(generator.run(plan))
    typer.echo(f"{report.originated} calls placed, {len(report.refused)} refused, "
               f"{report.transfers_done} blind transfers")
    if report.refused:
        raise typer.Exit(1)


@app.command()
def agent(
    status: AgentStatus = typer.Argument(..., help="ready, pause or logout"),
    agent_id: str = typer.Argument(..., metavar="AGENT", help="The agent's name at the switch (a1, b2, ...)."),
    ami_port: int = typer.Option(DEV_AMI_PORT, "--ami-port"),
    secret: str = typer.Option(DEV_SECRET, "--secret", envvar="AMI_SECRET"),
) -> None:
    """Set an agent's status at the running test center as their phone would (a feature code that sets the device
    state Custom:agent-AGENT); the ARI bridge tells the router (`callstream up --switch asterisk`)."""

    async def dial() -> None:
        session = AmiSession("127.0.0.1", ami_port)
        await session.open(AMI_USER, secret)
        try:
            await dial_agent_status(session, agent_id, status)
        finally:
            await session.close()

    try:
        asyncio.run(dial())
    except OSError as exc:  # refused, unreachable, or Asterisk refused the code (ConnectionError)
        typer.echo(f"cannot set {agent_id} {status.value} on Asterisk (AMI 127.0.0.1:{ami_port}): {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"{agent_id}: {status.value} dialled")
