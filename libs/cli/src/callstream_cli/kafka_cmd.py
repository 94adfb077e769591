"""`callstream kafka fetch|start|stop`: the single-machine broker of deploy/local/kafka."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import typer

from callstream_core.local_kafka import LocalKafka, ensure_jars, find_repo_root, stop_from_pid_file

app = typer.Typer(help="The local Kafka broker (KRaft, single node, official jars).", no_args_is_help=True)
DEV_PORT = 9092
DEV_CONTROLLER_PORT = 9093


def dev_data_dir() -> Path:
    return find_repo_root() / ".local" / "kafka" / "dev"


def dev_broker() -> LocalKafka:
    return LocalKafka(dev_data_dir(), port=DEV_PORT, controller_port=DEV_CONTROLLER_PORT)


@app.command()
def fetch() -> None:
    """Fetch the broker jars with Maven (once; later runs reuse them)."""
    typer.echo(f"Kafka jars ready in {ensure_jars()}")


@app.command()
def start() -> None:
    """Run the development broker on 127.0.0.1:9092 in the foreground until Ctrl-C."""
    stopped = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopped.set())
    with dev_broker() as broker:
        typer.echo(f"Kafka ready at {broker.bootstrap_servers} (data in {broker.data_dir}); Ctrl-C stops it")
        stopped.wait()
    typer.echo("Kafka stopped")


@app.command()
def stop() -> None:
    """Stop a development broker left running by another process."""
    typer.echo("stopped" if stop_from_pid_file(dev_data_dir()) else "no broker was running")
