"""The test center routed by Callstream: the routing service and the ARI bridge as processes beside a LocalAsterisk.

`RoutedCenter(pbx, bootstrap, run_dir)` starts the router (`python -m callstream_routing`, the center's
`routed-queues.yaml`, a command log of its own) and the bridge (`python -m callstream_ingest.ari`, the center's
`routed-agents.yaml`), and returns once the router serves, Asterisk lists the bridge's Stasis application and
the router counts the bridge's agents logged in (each polled with a deadline). Calls originated into the
center's `[routed]` context are then routed by Callstream. Used by the end-to-end tests and the benches (the skills
bench gives its own center's queues and agents files).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from types import TracebackType

import grpc
import httpx
import yaml
from confluent_kafka.admin import NewTopic
from grpc_health.v1 import health_pb2, health_pb2_grpc

from callstream.routing.v1 import routing_pb2, routing_pb2_grpc
from callstream_core.kafka import admin
from callstream_devtools.local_asterisk import LocalAsterisk, center_dir
from callstream_devtools.local_kafka import free_port

ROUTED_QUEUES = "routed-queues.yaml"
ROUTED_AGENTS = "routed-agents.yaml"


def stasis_app_registered(http_port: int, user: str, secret: str, app: str = "callstream") -> bool:
    """Whether Asterisk (ARI on loopback `http_port`) lists the Stasis application `app`: a bridge has its events
    WebSocket open, so calls entering `Stasis(app)` are routed. False while Asterisk's HTTP server is not up."""
    try:
        response = httpx.get(f"http://127.0.0.1:{http_port}/ari/applications/{app}", auth=(user, secret), timeout=5)
    except httpx.TransportError:
        return False
    return response.status_code == 200


class RoutedCenter:
    def __init__(self, pbx: LocalAsterisk, kafka_bootstrap: str, run_dir: Path, *, topic_prefix: str = "",
                 standby: bool = False, queues_file: Path | None = None, agents_file: Path | None = None) -> None:
        self.pbx, self.kafka_bootstrap, self.run_dir = pbx, kafka_bootstrap, run_dir
        # Another center's router queues and bridge agents (the skills bench's) in place of the test center's.
        self.queues_file = queues_file or center_dir() / ROUTED_QUEUES
        self.agents_file = agents_file or center_dir() / ROUTED_AGENTS
        self.topic_prefix = topic_prefix
        self.token = uuid.uuid4().hex  # the bridge's service token for this router only
        self.grpc_port = free_port()
        # A hot standby on the same command log (docs/routing.md), given to the bridge as a second address.
        self.standby_port = free_port(avoid=[self.grpc_port]) if standby else None
        self.standby: subprocess.Popen[bytes] | None = None
        self.standby_log = run_dir / "standby.log"
        self.command_log_topic = f"routing-commands-{uuid.uuid4().hex[:8]}"  # a router of its own, from empty
        self.router: subprocess.Popen[bytes] | None = None
        self.bridge: subprocess.Popen[bytes] | None = None
        self.router_log, self.bridge_log = run_dir / "router.log", run_dir / "bridge.log"
        self.bridge_metrics_port = free_port(avoid=[p for p in (self.grpc_port, self.standby_port) if p])

    def _start(self, module: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
        with log.open("ab") as out:
            return subprocess.Popen([sys.executable, "-m", module], env=env, stdout=out, stderr=subprocess.STDOUT)

    def start(self, timeout_s: float = 90.0) -> RoutedCenter:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        client = admin(self.kafka_bootstrap)
        for future in client.create_topics([NewTopic(self.command_log_topic, num_partitions=1,
                                                     replication_factor=1)]).values():
            future.result(30)
        base = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": self.kafka_bootstrap, "CALLSTREAM_ENV": "development"}
        router_env = {
            **base, "QUEUES_FILE": str(self.queues_file), "API_TOKENS": f"{self.token}:service",
            "COMMAND_LOG_TOPIC": self.command_log_topic, "SNAPSHOTS_ENABLED": "false",
            # the bridge sets agent states over gRPC; the agent events it publishes are for the KPIs
            "AGENT_EVENTS_TOPIC": "",
            # a dead leader is replaced within ~3 s (the take-over tests' values) rather than the default ~6 s
            "HEARTBEAT_INTERVAL_S": "0.3", "LEASE_TIMEOUT_S": "2"}
        self.router = self._start("callstream_routing", {
            **router_env, "GRPC_PORT": str(self.grpc_port),
            "METRICS_PORT": str(free_port(avoid=[self.grpc_port]))}, self.router_log)
        try:
            deadline = time.monotonic() + timeout_s
            self._wait_serving(self.grpc_port, deadline)
            if self.standby_port is not None:
                self.standby = self._start("callstream_routing", {
                    **router_env, "ROUTING_ROLE": "standby", "GRPC_PORT": str(self.standby_port),
                    "METRICS_PORT": str(free_port(avoid=[self.grpc_port, self.standby_port]))}, self.standby_log)
            self.bridge = self._start("callstream_ingest.ari", {
                **base, "TOPIC_PREFIX": self.topic_prefix, "ARI_URL": f"http://127.0.0.1:{self.pbx.http_port}",
                "ARI_USERNAME": self.pbx.ami_user, "ARI_PASSWORD": self.pbx.secret,
                "ROUTER_TARGETS": ",".join(f"127.0.0.1:{p}" for p in (self.grpc_port, self.standby_port) if p),
                "ROUTER_TOKEN": self.token,
                "AGENTS_FILE": str(self.agents_file),
                # the center's callers answer callbacks in its [callbacks] context
                "CALLBACK_ENDPOINT": "Local/{number}@callbacks/n", "HTTP_PORT": str(self.bridge_metrics_port),
            }, self.bridge_log)
            self._wait_app_registered(deadline)
            self._wait_agents_logged_in(deadline)
        except BaseException:
            self.stop()
            raise
        return self

    def _check_alive(self) -> None:
        for name, process, log in (("router", self.router, self.router_log), ("bridge", self.bridge, self.bridge_log),
                                   ("standby", self.standby, self.standby_log)):
            if process is not None and process.poll() is not None:
                raise RuntimeError(f"the {name} exited with {process.returncode}: {log.read_text()[-3000:]}")

    def kill_leader(self) -> None:
        """SIGKILL the leading router (no goodbye: its standby takes over when the lease runs out)."""
        killed, self.router = self.router, None
        assert killed is not None
        killed.kill()
        killed.wait(30)

    def wait_standby_leads(self, timeout_s: float) -> None:
        assert self.standby_port is not None
        self._wait_serving(self.standby_port, time.monotonic() + timeout_s)

    def _wait_serving(self, port: int, deadline: float) -> None:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)
            while time.monotonic() < deadline:
                self._check_alive()
                try:
                    reply = health.Check(health_pb2.HealthCheckRequest(service="callstream.routing.v1.Router"),
                                         timeout=2)
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.RpcError:
                    pass
                time.sleep(0.2)  # polling a starting process's port with a deadline
        raise TimeoutError(f"no router serving on {port}: {self.router_log.read_text()[-3000:]}")

    def _wait_app_registered(self, deadline: float) -> None:
        """Until Asterisk lists the bridge's Stasis application (its events WebSocket is open)."""
        while time.monotonic() < deadline:
            self._check_alive()
            if stasis_app_registered(self.pbx.http_port, self.pbx.ami_user, self.pbx.secret):
                return
            time.sleep(0.2)  # polling Asterisk with a deadline
        raise TimeoutError(f"the bridge never registered its Stasis app: {self.bridge_log.read_text()[-3000:]}")

    def _wait_agents_logged_in(self, deadline: float) -> None:
        """Until the router counts the agents of the agents file logged in, per queue."""
        entries = yaml.safe_load(self.agents_file.read_text())["agents"]
        want = Counter(q for entry in entries for q in entry["queues"])
        got: dict[str, int] = {}
        while time.monotonic() < deadline:
            self._check_alive()
            got = {q: state.agents_logged_in for q, state in self.queue_states(list(want)).items()}
            if got == dict(want):
                return
            time.sleep(0.2)  # polling the router's state with a deadline
        raise TimeoutError(f"agents logged in {got}, expected {dict(want)}: {self.bridge_log.read_text()[-3000:]}")

    def queue_states(self, queues: list[str]) -> dict[str, routing_pb2.QueueState]:
        """What the leading router says of these queues now (calls waiting, agents logged in, ...)."""
        port = self.grpc_port if self.router is not None else self.standby_port
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = routing_pb2_grpc.RouterStub(channel)
            return {q: stub.GetQueueState(routing_pb2.GetQueueStateRequest(queue_id=q), timeout=5,
                                          metadata=(("authorization", f"Bearer {self.token}"),)) for q in queues}

    def stop(self) -> None:
        """SIGTERM the bridge, then the routers (each waited for; SIGKILL after 30 s)."""
        for process in (self.bridge, self.router, self.standby):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(10)

    def __enter__(self) -> RoutedCenter:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
