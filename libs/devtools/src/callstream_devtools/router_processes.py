"""Routers as real OS processes for the fault tests and benches: a leader and its standbys, each
`python -m callstream_routing` on free ports, so a test can SIGKILL one as a crash would."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import grpc
from confluent_kafka.admin import NewTopic
from grpc_health.v1 import health_pb2, health_pb2_grpc

from callstream.routing.v1 import routing_pb2
from callstream_core.kafka import admin, apply_topics
from callstream_devtools.local_kafka import free_port

SERVING = health_pb2.HealthCheckResponse.SERVING
# The router's health-checked service: its gRPC name, from the contract (this package sits below the services).
SERVICE = routing_pb2.DESCRIPTOR.services_by_name["Router"].full_name


def new_log_topic(kafka_bootstrap: str, prefix: str) -> str:
    """A fresh single-partition command log `prefix-<random>` (and the registry topics), for one test or round."""
    apply_topics(kafka_bootstrap)
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    client = admin(kafka_bootstrap)  # kept referenced until the futures resolve
    for future in client.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)]).values():
        future.result(30)
    return name


def health(address: str, service: str = SERVICE) -> int | None:
    """The health status `address` reports for `service`, or None when it does not answer."""
    with grpc.insecure_channel(address) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service),
                                                              timeout=1.0)
        except grpc.RpcError:
            return None
    return int(reply.status)


@dataclass
class RouterProcess:
    process: subprocess.Popen[bytes]
    address: str
    log_path: Path

    def wait_for(self, status: int, service: str = SERVICE, timeout: float = 90.0) -> float:
        """Poll health until `service` reports `status`; returns when (monotonic). Fails after `timeout`."""
        deadline = time.monotonic() + timeout
        while (got := health(self.address, service)) != status:
            if self.process.poll() is not None:
                raise RuntimeError(f"router {self.address} exited ({self.process.returncode}): "
                                   f"{self.log_path.read_text()[-2000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"router {self.address}: {service or 'process'} is {got}, not {status}, "
                                   f"after {timeout} s")
            time.sleep(0.02)  # polling interval of a deadline-bound wait
        return time.monotonic()

    def kill(self) -> float:
        """SIGKILL, as a crash or an OOM kill would: no resignation, no last commit. Returns when (monotonic)."""
        self.process.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        self.process.wait(30)
        return killed

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def start_router(kafka_bootstrap: str, log_topic: str, queues_file: Path, token: str, log_dir: Path, *,
                 role: str, instance_id: str, heartbeat_s: float = 1.0, lease_s: float = 5.0,
                 port: int | None = None) -> RouterProcess:
    """`python -m callstream_routing` in its own process (agent states over gRPC only: AGENT_EVENTS_TOPIC="")."""
    port = port or free_port()
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "GRPC_PORT": str(port),
           "METRICS_PORT": str(free_port([port])), "QUEUES_FILE": str(queues_file), "API_TOKENS": f"{token}:service",
           "COMMAND_LOG_TOPIC": log_topic, "ROUTING_ROLE": role, "INSTANCE_ID": instance_id,
           "HEARTBEAT_INTERVAL_S": str(heartbeat_s), "LEASE_TIMEOUT_S": str(lease_s), "AGENT_EVENTS_TOPIC": ""}
    log_path = log_dir / f"{instance_id}.log"
    with open(log_path, "wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "callstream_routing"], env=env, stdout=out, stderr=out)
    return RouterProcess(process, f"127.0.0.1:{port}", log_path)
