"""A real Apache Kafka broker on one machine: KRaft, single node, from the official jars Maven fetches.

`LocalKafka(data_dir)` formats storage, starts the broker on loopback, waits until it answers metadata
requests (polling with a deadline, never a fixed sleep) and stops it cleanly (SIGTERM, then SIGKILL of
the whole process group after a deadline), so nothing is left behind.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path
from types import TracebackType

from confluent_kafka.admin import AdminClient

KAFKA_VERSION = "4.1.1"


def find_repo_root(start: Path | None = None) -> Path:
    """The workspace root: the folder whose pyproject.toml declares the uv workspace."""
    here = (start or Path(__file__)).resolve()
    for folder in [here, *here.parents]:
        pyproject = folder / "pyproject.toml"
        if pyproject.is_file() and "[tool.uv.workspace]" in pyproject.read_text():
            return folder
    raise FileNotFoundError("not inside the Callstream workspace (no pyproject.toml with [tool.uv.workspace])")


def lib_dir() -> Path:
    return find_repo_root() / ".local" / "kafka" / "lib"


def _stamp() -> Path:
    return lib_dir() / f".complete-{KAFKA_VERSION}"


def ensure_jars() -> Path:
    """Fetch the broker jars with Maven once; later calls (and later `make run`s) reuse them."""
    lib = lib_dir()
    if _stamp().exists():
        return lib
    missing = [tool for tool in ("java", "mvn") if shutil.which(tool) is None]
    if missing:
        raise RuntimeError(f"cannot fetch the Kafka broker: {' and '.join(missing)} not installed "
                           "(Java 17+ and Maven; see `callstream doctor`)")
    project = find_repo_root() / "deploy" / "local" / "kafka"
    result = subprocess.run(["mvn", "-q", "-B", f"-Dkafka.version={KAFKA_VERSION}", "package"], cwd=project,
                            capture_output=True, text=True, check=False)
    if result.returncode != 0 or not any(lib.glob(f"kafka_2.13-{KAFKA_VERSION}.jar")):
        raise RuntimeError(f"Maven could not fetch the Kafka jars:\n{result.stdout}{result.stderr}")
    _stamp().touch()
    return lib


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_properties(data_dir: Path, port: int, controller_port: int) -> str:
    return f"""# Written by callstream_core.local_kafka: a single-node KRaft broker on loopback.
# One process is both broker and controller: no ZooKeeper, no second process.
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:{controller_port}
# Loopback only: a development broker is never reachable from the network.
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}
advertised.listeners=PLAINTEXT://127.0.0.1:{port}
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs={data_dir / "log"}
# One broker: internal topics cannot have more replicas than that.
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
# Consumers join a group at once instead of waiting 3 s for others (tests and `make run` start fast).
group.initial.rebalance.delay.ms=0
# Topics come from the registry (`callstream topics apply`), never from a typo in a producer.
auto.create.topics.enable=false
num.partitions=1
# Small segments and few threads: a laptop-sized broker.
num.network.threads=2
num.io.threads=4
log.segment.bytes=67108864
"""


LOG4J2 = """Configuration:
  status: warn
  Appenders:
    File:
      name: file
      fileName: "${sys:kafka.logs.dir}/server.log"
      PatternLayout:
        pattern: "[%d] %p %m (%c)%n"
  Loggers:
    Root:
      level: info
      AppenderRef:
        - ref: file
"""


class LocalKafka:
    """A broker process for development and tests; use as a context manager or call start()/stop()."""

    def __init__(self, data_dir: Path, port: int | None = None, controller_port: int | None = None,
                 heap: str = "512m") -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self.controller_port = controller_port or free_port()
        self.heap = heap
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "broker.pid"

    def _java(self, main: str, *args: str) -> list[str]:
        return ["java", f"-Xmx{self.heap}", f"-Xms{self.heap}", "-XX:+UseG1GC",
                f"-Dkafka.logs.dir={self.data_dir / 'logs'}",
                f"-Dlog4j2.configurationFile={self.data_dir / 'log4j2.yaml'}",
                "-cp", str(lib_dir() / "*"), main, *args]

    def _format(self, config: Path) -> None:
        if (self.data_dir / "log" / "meta.properties").exists():
            return
        cluster_id = uuid.uuid4().hex[:22]
        result = subprocess.run(
            self._java("kafka.tools.StorageTool", "format", "--config", str(config), "--cluster-id",
                       cluster_id, "--standalone", "--ignore-formatted"),
            capture_output=True, text=True, check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"formatting Kafka storage failed:\n{result.stdout}{result.stderr}")

    def start(self, ready_timeout: float = 90.0) -> LocalKafka:
        ensure_jars()
        (self.data_dir / "logs").mkdir(parents=True, exist_ok=True)
        config = self.data_dir / "server.properties"
        config.write_text(server_properties(self.data_dir, self.port, self.controller_port))
        (self.data_dir / "log4j2.yaml").write_text(LOG4J2)
        self._format(config)
        console = (self.data_dir / "logs" / "console.log").open("ab")
        # Its own session: stop() can signal the whole group, and Ctrl-C in a terminal reaches us first.
        self.process = subprocess.Popen(self._java("kafka.Kafka", str(config)), stdout=console,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        console.close()
        self.pid_file.write_text(str(self.process.pid))
        try:
            self.wait_ready(ready_timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def wait_ready(self, timeout: float) -> None:
        """Poll until the port accepts connections, then until the broker answers metadata; with a deadline."""
        deadline = time.monotonic() + timeout
        last_error = "no answer"
        admin: AdminClient | None = None
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"the Kafka broker exited with {self.process.returncode}; see "
                                   f"{self.data_dir / 'logs'}")
            if admin is None:
                # A Kafka client retries refused connections noisily: create it once the port listens.
                try:
                    socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                except OSError as exc:
                    last_error = str(exc)
                    time.sleep(0.1)  # the broker process gives no other signal that it is listening
                    continue
                admin = AdminClient({"bootstrap.servers": self.bootstrap_servers, "socket.timeout.ms": 2000})
            try:
                if admin.list_topics(timeout=2).brokers:
                    return
            except Exception as exc:
                last_error = str(exc)
        raise TimeoutError(f"Kafka at {self.bootstrap_servers} not ready after {timeout} s: {last_error}")

    def stop(self, timeout: float = 30.0) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        self.pid_file.unlink(missing_ok=True)
        self.process = None

    def __enter__(self) -> LocalKafka:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def stop_from_pid_file(data_dir: Path, timeout: float = 30.0) -> bool:
    """Stop a broker started in the background by another process (`callstream kafka stop`)."""
    pid_file = data_dir / "broker.pid"
    if not pid_file.exists():
        return False
    pid = int(pid_file.read_text())
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        pid_file.unlink(missing_ok=True)
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.2)  # polling a foreign process for exit: there is nothing to wait on
    else:
        os.killpg(pid, signal.SIGKILL)
    pid_file.unlink(missing_ok=True)
    return True
