"""Settings of the KPI stream (worker, KPI API and wallboard), validated at start-up."""

from __future__ import annotations

import socket
from typing import Literal

from pydantic import Field

from callstream_core.kpi_definitions import FCR_WINDOW_S, SHORT_ABANDON_S, SL_GOAL_PCT, SL_THRESHOLD_S
from callstream_core.settings import CoreSettings


class KpiSettings(CoreSettings):
    service_name: str = "kpi-stream"
    clickhouse_database: str = Field(default="callstream", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8001, ge=1, le=65535)
    # Consumer group of the worker: one group = one copy of the facts.
    consumer_group: str = Field(default="callstream-kpi-stream", min_length=1)
    # Prepended to every topic name the worker reads and writes (an isolated environment on a shared
    # cluster, or a test of its own); empty in production.
    topic_prefix: str = Field(default="", pattern=r"^[A-Za-z0-9._-]*$")
    # Static group membership (Kafka's group.instance.id) of this worker: a restarted worker with the same
    # id takes its partitions back at once, without a rebalance. Without it a restart waited ~52 s to rejoin
    # (issue 17 item 8): the broker kept the old member until its session timed out. The default is the host
    # name: the same across restarts on one machine (or a StatefulSet pod), different between replicas (the
    # Helm chart's Deployment pods), which must never share an id: a second member with the same id fences
    # the first. Empty: dynamic membership.
    group_instance_id: str = Field(default_factory=lambda: f"kpi-stream-{socket.gethostname()}",
                                   pattern=r"^[A-Za-z0-9._-]*$")
    # How long the broker keeps a silent member's partitions before giving them to another: with static
    # membership this is how long a worker that died for good holds its partitions, and a restart within it
    # resumes at once. 10 s (Faust's default 60 s): a dead worker is noticed within the 10 s aim, and 3
    # heartbeats (heartbeat every 3 s) fit in it, so one lost heartbeat does not evict a live worker.
    broker_session_timeout_s: float = Field(default=10.0, ge=6, le=300)
    # Where a new consumer group starts: earliest (default: nothing published before is skipped) or
    # latest (a fresh group that only cares about what happens from now on, e.g. a freshness benchmark).
    consumer_auto_offset_reset: Literal["earliest", "latest"] = "earliest"
    # Events later than this behind the watermark's event time do not move real-time figures
    # (they still land in ClickHouse; the 30-minute facts are upserts).
    allowed_lateness_s: float = Field(default=10.0, ge=0)
    # A Kafka partition that gave no event for this long (processing time) and has no records left to take
    # stops holding the watermark back (which is the minimum over partitions): one quiet partition must not
    # stall live figures, and a busy one is never idle. Longer than the batch cadence (batch_within_s) and
    # than a broker round trip, so a partition is not dropped between two fetches of a steady stream.
    partition_idle_s: float = Field(default=5.0, gt=0)
    # Reading a backlog (a replay, a worker catching up after a stop), a partition whose newest event is more
    # than this ahead of the slowest partition with records left is paused until that one catches up. The
    # watermark is the slowest partition's, so whatever a partition read ahead holds (open calls, real-time
    # events, agent points) waits for it: read unevenly, a 16-day backlog ran partitions 100 h and more apart
    # and the cost per event grew with the backlog. Live, no partition has a backlog and none is paused. Six
    # hours of event time: far above any clock skew between partitions, and about the step in which a replay's
    # partition is read (its share of two batches in hand: 6-10 h of the demo center's); a lead of an hour,
    # below that step, only churned pauses and resumes (4,898-5,471 events/s against 6,600-7,062 at 6 h,
    # docs/benchmarks.md) for no less state held.
    max_partition_lead_s: float = Field(default=21600.0, gt=0)
    # Call and agent events further ahead of the clock than this go to the DLQ with the reason, before the
    # sessionizer, the watermark or ClickHouse see them: one event dated 9999 overflowed `event_time +
    # timeout` and crashed the agent, one dated 2300 held a call open forever and would pull the watermark
    # (and every open call's timeout) into the future. A day, not minutes: the simulator paced N× from "now"
    # runs ahead of the clock by design (the demo center's day is 12 h); the webhook, the edge where a wrong
    # PBX clock enters, keeps the tight bound. No age bound here: replays of old history are normal.
    event_time_max_future_s: float = Field(default=24 * 3600.0, ge=0, le=366 * 24 * 3600.0)
    # A call with no end event this long after its last event is closed and flagged timed_out.
    session_timeout_s: float = Field(default=4 * 3600.0, gt=0)
    # Seconds between real-time snapshots (the wallboard's freshness). A figure waits for the next tick, up
    # to this long, on top of the batch wait: at 2 s the tick alone could spend the whole 2 s freshness aim;
    # 1 s leaves room for the rest, and a tick (center and every queue) is cheap enough to run every second.
    realtime_interval_s: float = Field(default=1.0, gt=0, le=60)
    # Batch of the stream: up to this many events or this many seconds, whichever first. Under load the
    # count ends a batch (2,000 events amortise one ClickHouse insert over many events); at live rates the
    # time does, so it is the wait before an event is even processed: 0.2 s (was 0.5) keeps that small
    # against the 2 s aim while a batch still holds ~200 events at 1,000 events/s (5 inserts a second per
    # table: few enough parts for ClickHouse to merge).
    batch_max: int = Field(default=2000, ge=1)
    batch_within_s: float = Field(default=0.2, gt=0)
    # Contacts are stored (and published on cc.contacts.v1) as soon as an event completes the call, then
    # revised (a higher version) by events arriving within the allowed lateness: the KPI API is fresh within a
    # batch instead of the allowed lateness later (issue 19). False: only once the watermark passes the call.
    provisional_contacts: bool = True
    # The targets in force for a queue without settings of its own (queue_settings, written through
    # PUT /v1/queues/{id}/targets): SL threshold T and goal, short-abandon threshold.
    default_sl_threshold_s: float = Field(default=SL_THRESHOLD_S, gt=0)
    default_sl_goal_pct: float = Field(default=SL_GOAL_PCT, gt=0, le=100)
    default_short_abandon_s: float = Field(default=SHORT_ABANDON_S, ge=0)
    # Seconds between two reads of the queue settings by the worker: a target written through the API is in
    # force in the real-time figures, short abandons and alerts within this delay, without a restart. 10 s:
    # a target changes by hand and rarely, so a supervisor sees it on the wallboard about as soon as they
    # look, while one read of the small table every 10 s costs the pipeline thread nothing it would notice
    # (it runs every batch and a tick every second).
    targets_refresh_s: float = Field(default=10.0, gt=0, le=3600)
    ring_cycle_s: float = Field(default=6.0, gt=0)
    fcr_window_s: float = Field(default=FCR_WINDOW_S, gt=0)
