"""Which router writes a command log, and how a standby becomes that router (docs/routing.md, "Leadership").

Every router of a log starts the same way: the newest snapshot, the queues file, then the log after
the snapshot's offset. A leader takes the log at once (`init_transactions()` fences any other writer) and serves.
A standby keeps applying the log to its own core (a hot standby) and takes the log when the leader's records
(commands or heartbeats) stop for the lease time, or the leader resigns on a clean stop;
it then reads the log to its end (nothing can be added to it any more) and serves.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from callstream.routing.v1.routing_pb2 import RouterSnapshot
from callstream_routing import domain as d
from callstream_routing.adapters import proto_mapping as pm
from callstream_routing.adapters import snapshot_store
from callstream_routing.adapters.command_log import (
    CommandLogReader,
    LeadershipLost,
    LogEntry,
    TransactionalLogWriter,
)
from callstream_routing.config import RoutingSettings
from callstream_routing.domain.leadership import Lease, SnapshotSchedule
from callstream_routing.service_layer import heap

log = logging.getLogger(__name__)
# How often the leader looks whether a snapshot is due (a schedule check, not a synchronisation).
SNAPSHOT_CHECK_S = 1.0


def apply_entries(core: d.RoutingCore, entries: Iterable[LogEntry]) -> int:
    """Apply logged commands to a core (heartbeats are not commands); returns how many."""
    count = 0
    for entry in entries:
        if entry.heartbeat is None:
            core.handle(pm.from_log(entry.command))
            count += 1
    return count


def rebuild(settings: RoutingSettings, configure: Callable[[d.RoutingCore], int]) -> tuple[d.RoutingCore,
                                                                                            CommandLogReader]:
    """The state as the log has it now: newest snapshot + queues file + the log after the snapshot.
    Blocking. The reader is left at the end of the log, to follow it or to take it over."""
    began = time.monotonic()
    snapshot = (snapshot_store.load_newest(settings.kafka_bootstrap_servers, settings.command_log_topic,
                                           settings.snapshot_topic) if settings.snapshots_enabled else None)
    core = d.RoutingCore() if snapshot is None else d.RoutingCore.restore(snapshot.state)
    # The queues file is applied on top of the snapshot, so a changed file takes effect at the next start.
    queues = configure(core)
    reader = CommandLogReader(settings.kafka_bootstrap_servers, settings.command_log_topic,
                              start=None if snapshot is None else snapshot.next_offset,
                              commands=0 if snapshot is None else snapshot.commands)
    replayed = apply_entries(core, reader.read_to_end())
    log.info("routing: %d queues configured, snapshot %s, %d logged commands replayed in %.2f s",
             queues, "none" if snapshot is None else f"at offset {snapshot.next_offset}", replayed,
             time.monotonic() - began)
    return core, reader


def new_writer(settings: RoutingSettings, on_lost: Callable[[LeadershipLost], None]) -> TransactionalLogWriter:
    return TransactionalLogWriter(
        settings.kafka_bootstrap_servers, transactional_id=settings.transactional_id,
        log_topic=settings.command_log_topic, instance_id=settings.instance_id,
        heartbeat_s=settings.heartbeat_interval_s, wire_format=settings.wire_format,
        client_id=settings.service_name, on_lost=on_lost)


async def follow(core: d.RoutingCore, reader: CommandLogReader, settings: RoutingSettings,
                 stop: asyncio.Event) -> bool:
    """Keep `core` up to date from the log until the leader is gone (True) or `stop` is set (False)."""
    lease = Lease(settings.lease_timeout_s, time.monotonic())
    while not stop.is_set():
        wait = min(0.2, max(0.01, lease.remaining(time.monotonic())))
        entries = await asyncio.to_thread(reader.poll, wait)
        now = time.monotonic()
        for entry in entries:
            heartbeat = entry.heartbeat
            lease.seen(now, resigning=heartbeat is not None and heartbeat.resigning)
        apply_entries(core, entries)
        if lease.expired(now):
            why = "resigned" if lease.resigned else f"silent for {now - lease.last_seen:.1f} s"
            log.warning("routing standby %s: the leader %s, taking over %s", settings.instance_id, why,
                        settings.command_log_topic)
            return True
    return False


async def take_over(core: d.RoutingCore, reader: CommandLogReader, writer: TransactionalLogWriter) -> int:
    """Fence every other writer, then apply the rest of the log (complete now: nobody else can add to it).
    Returns how many commands that was; the writer starts at the log's end."""
    await asyncio.to_thread(writer.open)
    caught_up = await asyncio.to_thread(lambda: apply_entries(core, reader.read_to_end()))
    writer.start(reader.position)
    return caught_up


async def snapshot_periodically(get_core: Callable[[], d.RoutingCore], lock: asyncio.Lock,
                                writer: TransactionalLogWriter, settings: RoutingSettings, commands_before: int,
                                ) -> None:
    """Queue a snapshot into the leader's transactions when one is due (every N commands or T seconds).

    The core is copied under the router's lock, so the snapshot is exactly the state after the commands queued
    before it; it commits in their transaction or a later one, never without them."""
    schedule = SnapshotSchedule(settings.snapshot_every_commands, settings.snapshot_every_s,
                                commands=commands_before, now=time.monotonic())
    while writer.lost is None:
        await asyncio.sleep(SNAPSHOT_CHECK_S)
        commands = commands_before + writer.submitted
        if not schedule.due(commands, time.monotonic()):
            continue
        began = time.perf_counter()
        async with lock:
            # Only captured under the lock (the commands wait meanwhile); converted and compressed outside it.
            captured = get_core().capture()
            mark = writer.mark()
            commands = commands_before + writer.submitted
        held = time.perf_counter() - began
        data = await asyncio.to_thread(_compress, captured)
        log.info("routing: snapshot of %d commands: the lock held %.0f ms, %.1f MB compressed in %.0f ms", commands,
                 1000 * held, len(data) / 1e6, 1000 * (time.perf_counter() - began - held))

        def build(next_offset: int, data: bytes = data, state_format: int = captured["format"],
                  commands: int = commands) -> RouterSnapshot:
            return snapshot_store.record(data, state_format, command_log_topic=settings.command_log_topic,
                                         next_offset=next_offset, commands=commands, source=settings.service_name)

        writer.snapshot(settings.snapshot_topic, settings.command_log_topic, mark, build)
        schedule.taken(commands, time.monotonic())
        heap.settle()  # what accumulated since the last settle (heap.py): a few ms, then never traversed again


def _compress(captured: dict[str, Any]) -> bytes:
    return snapshot_store.compress(d.plain_snapshot(captured))
