"""`callstream kafka fetch|start|stop`: the single-machine broker of deploy/local/kafka."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import typer

from callstream_devtools.local_kafka import LocalKafka, PortTaken, ensure_jars, find_repo_root, stop_from_pid_file

app = typer.Typer(help="The local Kafka broker (KRaft, single node, official jars).", no_args_is_help=True)
DEV_PORT = 9092
DEV_CONTROLLER_PORT = 9093


def dev_data_dir() -> Path:
    return find_repo_root() / ".local" / "kafka" / "dev"


def dev_broker(port: int = DEV_PORT, controller_port: int = DEV_CONTROLLER_PORT) -> LocalKafka:
    return LocalKafka(dev_data_dir(), port=port, controller_port=controller_port)


def start_or_exit(broker: LocalKafka) -> None:
    """Start `broker`; a taken port is one clear line on stderr and exit status 1, not a traceback."""
    try:
        broker.start()
    except PortTaken as exc:
        typer.echo(f"cannot start Kafka: {exc}", err=True)
        raise typer.Exit(1) from None


@app.command()
def fetch() -> None:
    """Fetch the broker jars with Maven (once; later runs reuse them)."""
    typer.echo(f"Kafka jars ready in {ensure_jars()}")


@app.command()
def start(port: int = typer.Option(DEV_PORT, help="client port"),
          controller_port: int = typer.Option(DEV_CONTROLLER_PORT, help="controller (KRaft) port")) -> None:
    """Run the development broker on 127.0.0.1:9092 in the foreground until Ctrl-C."""
    stopped = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopped.set())
    broker = dev_broker(port, controller_port)
    start_or_exit(broker)
    try:
        typer.echo(f"Kafka ready at {broker.bootstrap_servers} (data in {broker.data_dir}); Ctrl-C stops it")
        stopped.wait()
    finally:
        broker.stop()
    typer.echo("Kafka stopped")


@app.command()
def stop() -> None:
    """Stop a development broker left running by another process."""
    typer.echo("stopped" if stop_from_pid_file(dev_data_dir()) else "no broker was running")
