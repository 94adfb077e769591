"""`callstream replay anonymous-bank FILE` and `callstream replay queue-log FILE [--follow]`: files into Kafka.

Events go to cc.call-events.v1 (key call_id) and cc.agent-events.v1 (key agent_id); malformed lines are
counted, listed (first few as file:line: reason) and dead-lettered to cc.call-events.v1.dlq. Exit code 0
when Kafka confirmed every event produced, 1 when nothing could be produced or Kafka did not confirm.
"""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import typer

from callstream_core.kafka import apply_topics
from callstream_core.topics import AGENT_EVENTS, CALL_EVENTS, topic
from callstream_ingest.adapters.queue_log_follow import QueueLogFollower, default_checkpoint
from callstream_ingest.adapters.replay import ReplayReport, replay_anonymous_bank, replay_queue_log
from callstream_ingest.domain.anonymous_bank import BankConfig
from callstream_ingest.service_layer.event_sink import EventSink, make_producer

app = typer.Typer(help="Replay recorded switch data (files) into the event topics.", no_args_is_help=True)

BOOTSTRAP = typer.Option("127.0.0.1:9092", "--bootstrap", envvar="KAFKA_BOOTSTRAP_SERVERS",
                         help="Kafka bootstrap servers.")
WIRE = typer.Option("json", "--wire-format", envvar="WIRE_FORMAT", help="json (default) or protobuf.")
DLQ = typer.Option(True, "--dlq/--no-dlq", help="Dead-letter malformed lines to cc.call-events.v1.dlq.")
CREATE = typer.Option(True, "--create-topics/--no-create-topics", help="Create the event topics if missing.")
EVERY = typer.Option(10_000, "--progress-every", min=1, help="Print progress every N rows.")
TIMEOUT = typer.Option(120.0, "--confirm-timeout", min=1.0, help="Seconds to wait for Kafka's confirmation.")


def _sink(bootstrap: str, wire_format: str, create_topics: bool) -> EventSink:
    if wire_format not in ("json", "protobuf"):
        raise typer.BadParameter("--wire-format must be json or protobuf")
    if create_topics:
        apply_topics(bootstrap, [topic(CALL_EVENTS), topic(AGENT_EVENTS)])
    return EventSink(make_producer(bootstrap, client_id="callstream-replay", wire_format=wire_format))


def _progress(report: ReplayReport) -> None:
    rate = report.produced / report.wall_s if report.wall_s else 0.0
    typer.echo(f"… {report.rows:,} rows, {report.produced:,} events, {report.defects:,} defects, "
               f"{report.wall_s:.1f} s ({rate:,.0f} events/s)", err=True)


def _finish(report: ReplayReport) -> None:
    for line in report.lines():
        typer.echo(line)
    if report.produced == 0 or not report.confirmed:
        raise typer.Exit(1)


@app.command("anonymous-bank")
def anonymous_bank(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True, help="e.g. january.txt"),
    timezone: str = typer.Option("Asia/Jerusalem", "--timezone", help="Time zone of the file's local times."),
    source: str = typer.Option("anonymous-bank", "--source", help="envelope.source of the events."),
    caller_salt: str = typer.Option("callstream", "--caller-salt", envvar="CALLER_SALT"),
    bootstrap: str = BOOTSTRAP, wire_format: str = WIRE, dlq: bool = DLQ, create_topics: bool = CREATE,
    progress_every: int = EVERY, confirm_timeout: float = TIMEOUT,
) -> None:
    """Replay the Anonymous Bank call records (docs/anonymous-bank-mapping.md) into cc.call-events.v1."""
    try:
        config = BankConfig(source=source, timezone=timezone, caller_salt=caller_salt)
        from zoneinfo import ZoneInfo

        ZoneInfo(timezone)
    except Exception as exc:
        raise typer.BadParameter(f"--timezone {timezone!r}: {exc}") from None
    sink = _sink(bootstrap, wire_format, create_topics)
    report = replay_anonymous_bank(file, sink, config=config, dlq=dlq, progress=_progress,
                                   progress_every=progress_every, confirm_timeout=confirm_timeout)
    _finish(report)


@app.command("queue-log")
def queue_log(
    file: Path = typer.Argument(..., dir_okay=False, help="Asterisk queue_log file."),
    follow: bool = typer.Option(False, "--follow", help="Keep tailing the file (rotation-safe) until Ctrl-C."),
    checkpoint: Path | None = typer.Option(None, "--checkpoint",
                                           help="With --follow: checkpoint file (default .FILE.callstream-"
                                                "checkpoint.json next to FILE)."),
    source: str = typer.Option("asterisk-queue-log", "--source", help="envelope.source of the events."),
    caller_salt: str = typer.Option("callstream", "--caller-salt", envvar="CALLER_SALT"),
    bootstrap: str = BOOTSTRAP, wire_format: str = WIRE, dlq: bool = DLQ, create_topics: bool = CREATE,
    progress_every: int = EVERY, confirm_timeout: float = TIMEOUT,
) -> None:
    """Replay an Asterisk queue_log, or follow it live with --follow (resumes from its checkpoint)."""
    if not follow and not file.is_file():
        raise typer.BadParameter(f"{file} is not a file")
    sink = _sink(bootstrap, wire_format, create_topics)
    if not follow:
        report = replay_queue_log(file, sink, source=source, caller_salt=caller_salt, dlq=dlq, progress=_progress,
                                  progress_every=progress_every, confirm_timeout=confirm_timeout)
        _finish(report)
        return
    ckpt = checkpoint or default_checkpoint(file)
    follower = QueueLogFollower(file, sink, ckpt, source=source, caller_salt=caller_salt, dlq=dlq,
                                confirm_timeout_s=confirm_timeout)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    typer.echo(f"following {file} (checkpoint {ckpt}); Ctrl-C stops", err=True)
    started = time.perf_counter()
    try:
        follower.run(stop, retry_s=0)
    except Exception as exc:  # DeliveryError: the checkpoint stays where Kafka last confirmed
        typer.echo(f"stopped: {exc}; checkpoint {follower.saved} (a restart resumes there)", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"stopped: {follower.produced:,} events produced and confirmed, {follower.defects:,} defects, "
               f"{follower.rotations} rotations, {time.perf_counter() - started:.1f} s; checkpoint {follower.saved}")
