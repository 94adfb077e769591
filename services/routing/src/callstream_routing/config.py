"""Settings of the routing service, validated at start-up."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from callstream_core.settings import CoreSettings


class RoutingSettings(CoreSettings):
    service_name: str = "routing"
    grpc_host: str = "127.0.0.1"
    grpc_port: int = Field(default=50051, ge=0, le=65535)
    metrics_port: int = Field(default=9464, ge=0, le=65535)
    # YAML list of queues (`queues:`); without it, queues are created on first use with defaults.
    queues_file: Path | None = None
    # durable: a command is answered only after the command log has it (a restart loses nothing);
    # async: answered at once and logged in the background (lower latency, a crash may lose the last ms).
    log_ack: Literal["durable", "async"] = "durable"
    # The log the state is rebuilt from; one per router (per partition of queues).
    command_log_topic: str = "cc.routing-commands.v1"
    # Every RPC must finish within this; a client deadline shorter than it wins.
    rpc_timeout_s: float = Field(default=5.0, gt=0)
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
