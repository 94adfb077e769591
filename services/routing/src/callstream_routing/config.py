"""Settings of the routing service, validated at start-up."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from callstream_core.settings import CoreSettings
from callstream_core.topics import AGENT_EVENTS, ROUTING_COMMANDS, ROUTING_SNAPSHOTS


class RoutingSettings(CoreSettings):
    service_name: str = "routing"
    grpc_host: str = "127.0.0.1"
    grpc_port: int = Field(default=50051, ge=0, le=65535)
    metrics_port: int = Field(default=9464, ge=0, le=65535)
    # Plain-text gRPC health service on a port of its own (unset: health only on grpc_port). The kubelet's gRPC
    # probes speak no TLS, so with TLS on they probe this port; it serves nothing but health.
    health_port: int | None = Field(default=None, ge=1, le=65535)
    # YAML list of queues (`queues:`); without it, queues are created on first use with defaults.
    queues_file: Path | None = None
    # durable: a command is answered only after the command log has it (a restart loses nothing);
    # async: answered at once and logged in the background (lower latency, a crash may lose the last ms).
    log_ack: Literal["durable", "async"] = "durable"
    # The log the state is rebuilt from; one per router (per partition of queues).
    command_log_topic: str = ROUTING_COMMANDS
    # Every RPC must finish within this; a client deadline shorter than it wins.
    rpc_timeout_s: float = Field(default=5.0, gt=0)

    # -- leadership (docs/routing.md) -------------------------------------------------------------------------
    # leader: take the command log at once (fencing any router that had it) and serve;
    # standby: replay it, keep applying it (hot standby, health NOT_SERVING) and take over when the leader's
    # heartbeats stop for lease_timeout_s or it resigns. Several standbys may run; one wins, the others follow.
    routing_role: Literal["leader", "standby"] = "leader"
    # The leader writes a heartbeat into its log when it had nothing else to write for this long (at most 5: a
    # standby's lease must cover three of them). Its transaction is committed every 4 s (command_log.py).
    heartbeat_interval_s: float = Field(default=1.0, gt=0, le=5)
    # A standby takes over after this long without a record (heartbeat or command) from the leader.
    lease_timeout_s: float = Field(default=5.0, gt=0)
    # Who this router is, in heartbeats and logs (pod name + pid by default).
    instance_id: str = Field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}", min_length=1)

    # -- agent events (docs/routing.md) ----------------------------------------------------------------------
    # The leader applies the agent states and profiles on this topic (switches through ingest, HR's skills) as
    # agent state commands, logged like any command; empty: only the SetAgentState RPC changes agents.
    agent_events_topic: str = AGENT_EVENTS

    # -- snapshots ----------------------------------------------------------------------------------------------
    # The core's state with the log offset it covers, on a compacted topic keyed by the command log topic.
    snapshot_topic: str = ROUTING_SNAPSHOTS
    # Off: every start replays the whole log (which must then be kept as long as the state matters).
    snapshots_enabled: bool = True
    # A snapshot is taken when this many commands were logged since the last one ...
    snapshot_every_commands: int = Field(default=50_000, ge=1)
    # ... or this long passed since the last one and something changed.
    snapshot_every_s: float = Field(default=600.0, gt=0)

    @model_validator(mode="after")
    def _lease_outlives_heartbeats(self) -> RoutingSettings:
        # Two missed heartbeats are not yet a dead leader: a shorter lease would fence a healthy leader that
        # merely waited for one slow commit.
        if self.lease_timeout_s < 3 * self.heartbeat_interval_s:
            raise ValueError(f"LEASE_TIMEOUT_S ({self.lease_timeout_s}) must be at least 3 × HEARTBEAT_INTERVAL_S "
                             f"({self.heartbeat_interval_s})")
        return self

    @property
    def agent_events_group(self) -> str:
        """Every router of one command log (leader and standbys) shares the group: a new leader goes on from the
        offsets the old one stored, and each command log (each partition of queues) reads every agent event."""
        return f"routing-agents-{self.command_log_topic}"

    @property
    def transactional_id(self) -> str:
        """One writer per command log: every router of the same log shares it, so a new leader fences the old."""
        return f"routing-leader-{self.command_log_topic}"
