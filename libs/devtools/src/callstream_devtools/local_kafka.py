"""A real Apache Kafka broker on one machine: KRaft, single node, from the official jars Maven fetches.

`LocalKafka(data_dir)` formats storage, starts the broker on loopback, waits until it answers metadata
requests (polling with a deadline, never a fixed sleep) and stops it cleanly (SIGTERM, then SIGKILL of
the whole process group after a deadline), so nothing is left behind.

`main()` is the command line (`python -m callstream_devtools.local_kafka fetch|start|stop|status`); the
CLI's `callstream kafka ...` calls the same functions.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from confluent_kafka.admin import AdminClient

# 4.x is the line Kafka develops; aiokafka 0.14 and faust-streaming 0.15 were checked against it
# (tests/integration/test_local_kafka.py, test_faust_compat.py). deploy/local/kafka/pom.xml has the same default.
KAFKA_VERSION = "4.1.1"
DEFAULT_NAME = "dev"


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


def _pom() -> Path:
    return find_repo_root() / "deploy" / "local" / "kafka" / "pom.xml"


def _stamp() -> Path:
    return lib_dir() / f".complete-{KAFKA_VERSION}"


def _stamp_text() -> str:
    """What the lib folder was built from: a changed pom (another log4j, another dependency) fetches again."""
    return hashlib.sha256(_pom().read_bytes()).hexdigest() + "\n"


def _require(*tools: str) -> None:
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        raise RuntimeError(f"the local Kafka broker needs {' and '.join(missing)}: not found on PATH "
                           "(Java 17+ and Maven 3.8+; `deploy/local/install-system-packages.sh` installs both)")


def jars_ready() -> bool:
    stamp = _stamp()
    return stamp.is_file() and stamp.read_text() == _stamp_text()


def ensure_jars() -> Path:
    """Fetch the broker jars with Maven once; later calls skip Maven entirely (the stamp matches the pom)."""
    lib = lib_dir()
    if jars_ready():
        return lib
    _require("java", "mvn")
    lib.parent.mkdir(parents=True, exist_ok=True)
    # Two test sessions starting at once: one fetches, the other waits and then finds the stamp.
    with (lib.parent / ".fetch.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not jars_ready():
            _fetch(lib)
    return lib


def _fetch(lib: Path) -> None:
    # copy-dependencies never deletes: jars of another Kafka version would stay on the classpath beside
    # the new ones (two kafka-clients versions = NoSuchMethodError at start). Start from an empty folder.
    shutil.rmtree(lib, ignore_errors=True)
    result = subprocess.run(["mvn", "-q", "-B", f"-Dkafka.version={KAFKA_VERSION}", f"-Dlib.dir={lib}", "package"],
                            cwd=_pom().parent, capture_output=True, text=True, check=False)
    if result.returncode != 0 or not (lib / f"kafka_2.13-{KAFKA_VERSION}.jar").is_file():
        raise RuntimeError(f"Maven could not fetch the Kafka jars (exit {result.returncode}):\n"
                           f"{result.stdout}{result.stderr}")
    _stamp().write_text(_stamp_text())


class PortTaken(RuntimeError):
    """A port the broker needs is taken: the message is one line saying which and what to do."""


def port_free(port: int) -> bool:
    """Whether a loopback listener could bind `port` now (SO_REUSEADDR, as the broker binds: a port left in
    TIME_WAIT by an earlier broker counts as free)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port(avoid: Sequence[int] = ()) -> int:
    """A loopback port nobody listens on now (another process may still take it before the broker does)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port not in avoid:
            return port


def server_properties(data_dir: Path, port: int, controller_port: int) -> str:
    return f"""# Written by callstream_devtools.local_kafka at every start: a single-node KRaft broker on loopback.
# One process is both broker and controller: no ZooKeeper, no second process.
process.roles=broker,controller
# The only node of the cluster; the id is also written into the storage by `format`.
node.id=1
# How this node finds the controller quorum (itself). Dynamic quorum (KIP-853), as `format --standalone` set up.
controller.quorum.bootstrap.servers=127.0.0.1:{controller_port}
# Loopback only: a development broker is never reachable from the network.
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}
# What clients are told to connect to: the same loopback address (never the host name).
advertised.listeners=PLAINTEXT://127.0.0.1:{port}
# Which listener carries the controller (Raft) traffic; it is not advertised to clients.
controller.listener.names=CONTROLLER
# No TLS or SASL on a loopback development broker.
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
# Broker-to-broker traffic (none with one node, but the setting must name a listener).
inter.broker.listener.name=PLAINTEXT
# The data, under the broker's own folder (.local/kafka/<name>/ or a test's temp dir).
log.dirs={data_dir / "log"}
# One broker: internal topics cannot have more replicas than that.
offsets.topic.replication.factor=1
# Same for the transaction state log (idempotent and transactional producers).
transaction.state.log.replication.factor=1
# ... and its min in-sync replicas: one is all there is.
transaction.state.log.min.isr=1
# Same for share groups' state topic (KIP-932), created on first use.
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
# Consumers join a group at once instead of waiting 3 s for others (tests and `make run` start fast).
group.initial.rebalance.delay.ms=0
# Topics come from the registry (`callstream topics apply`), never from a typo in a producer.
auto.create.topics.enable=false
# Kafka's default, stated: topics created without a count (only by hand) get one partition.
num.partitions=1
# Few threads: a laptop-sized broker on a 2-core machine.
num.network.threads=2
num.io.threads=4
# 64 MiB segments instead of 1 GiB: a development broker's disk use stays small.
log.segment.bytes=67108864
"""


LOG4J2 = """# Written by callstream_devtools.local_kafka: the broker logs to a file in its data dir, not the console.
Configuration:
  status: warn
  Appenders:
    RollingFile:
      name: file
      fileName: "${sys:kafka.logs.dir}/server.log"
      filePattern: "${sys:kafka.logs.dir}/server.log.%i"
      PatternLayout:
        pattern: "[%d] %p %m (%c)%n"
      SizeBasedTriggeringPolicy:
        size: 20MB
      DefaultRolloverStrategy:
        max: 3
  Loggers:
    Logger:
      # The state-change and request loggers are chatty at INFO.
      - name: state.change.logger
        level: warn
      - name: kafka.request.logger
        level: warn
    Root:
      level: info
      AppenderRef:
        - ref: file
"""

def die_with_parent() -> list[str]:
    """A command prefix (Linux, util-linux) that gives the broker SIGTERM when the process that started it
    dies, even by SIGKILL. setpriv rather than a preexec_fn: nothing runs between fork and exec in a
    process whose other threads (librdkafka's) may hold locks."""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "TERM", "--"] if setpriv and sys.platform == "linux" else []


def _saved_ports(config: Path) -> tuple[int, int] | None:
    """The ports a formatted data dir was started with: its controller endpoint is stored in the quorum."""
    if not config.is_file():
        return None
    match = re.search(r"^listeners=PLAINTEXT://127\.0\.0\.1:(\d+),CONTROLLER://127\.0\.0\.1:(\d+)$",
                      config.read_text(), re.MULTILINE)
    return (int(match[1]), int(match[2])) if match else None


class LocalKafka:
    """A broker process for development and tests; use as a context manager or call start()/stop().

    Without ports it takes free ones, or for a data dir used before the ports of last time (the
    controller's address is part of the formatted quorum state).
    """

    def __init__(self, data_dir: Path, port: int | None = None, controller_port: int | None = None,
                 heap: str = "512m") -> None:
        self.data_dir = data_dir.resolve()
        saved = _saved_ports(self.data_dir / "server.properties")
        if saved and (self.data_dir / "log" / "meta.properties").exists():
            port = port or saved[0]
            controller_port = controller_port or saved[1]
        self.port = port or free_port()
        self.controller_port = controller_port or free_port(avoid=[self.port])
        self.heap = heap
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "broker.pid"

    @property
    def logs_dir(self) -> Path:
        return self.data_dir / "logs"

    def _java(self, main: str, *args: str, tool: bool = False) -> list[str]:
        if tool:
            # A one-shot tool (storage format): C1 only and serial GC start it in ~2 s instead of ~4 s.
            vm = ["-Xmx256m", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC"]
        else:
            # A small, fixed heap: the broker keeps little on the heap (the page cache holds the data).
            # ZGC, not G1 (Kafka's launch script): on two shared cores G1's young pauses were 20-41 ms every
            # ~2.5 s under the routing bench's load (73 in 3 minutes, 1.5 s in all; one GC worker thread, which
            # waits for a CPU like every other), and every produce waiting for its acks waited for them: in a
            # 15 s window that is ~1 % of a router's durable commands, its p99. ZGC marks and moves concurrently
            # (pauses well under 1 ms), at the cost of some CPU. Full JIT: benchmarks run on this broker.
            vm = [f"-Xmx{self.heap}", f"-Xms{self.heap}", "-XX:+UseZGC"]
        return ["java", *vm,
                # Out of memory is a crash to see, not a half-alive broker.
                "-XX:+ExitOnOutOfMemoryError", "-Djava.awt.headless=true",
                f"-Dkafka.logs.dir={self.logs_dir}",
                f"-Dlog4j2.configurationFile={self.data_dir / 'log4j2.yaml'}",
                "-cp", str(lib_dir() / "*"), main, *args]

    def _format(self, config: Path) -> None:
        if (self.data_dir / "log" / "meta.properties").exists():
            return
        # A cluster id is 16 random bytes in URL-safe base64 without padding (22 characters).
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        result = subprocess.run(
            # `--cluster-id=ID` in one argument: an id may start with "-", which argparse would read as a flag.
            self._java("kafka.tools.StorageTool", "format", "--config", str(config), f"--cluster-id={cluster_id}",
                       "--standalone", "--ignore-formatted", tool=True),
            capture_output=True, text=True, check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"formatting Kafka storage failed:\n{result.stdout}{result.stderr}")

    def start(self, ready_timeout: float = 90.0, *, attached: bool = True) -> LocalKafka:
        """Start and wait until ready. attached: the broker dies with this process (Linux), even on SIGKILL.

        A taken port raises PortTaken before anything is written or launched (the broker itself would only
        exit, leaving a 34-line traceback that said "see server.log")."""
        for port, what in ((self.port, "Kafka clients"), (self.controller_port, "the Kafka controller")):
            if not port_free(port):
                raise PortTaken(f"port {port} ({what}) is taken by another program: stop it (`ss -ltnp 'sport = "
                                f":{port}'` names it; `callstream kafka stop` ends a broker left running) or give "
                                f"the broker other ports")
        _require("java")
        ensure_jars()
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        config = self.data_dir / "server.properties"
        config.write_text(server_properties(self.data_dir, self.port, self.controller_port))
        (self.data_dir / "log4j2.yaml").write_text(LOG4J2)
        self._format(config)
        prefix = die_with_parent() if attached else []
        with (self.logs_dir / "console.log").open("ab") as console:
            # Its own session: stop() signals the whole group, and Ctrl-C in a terminal reaches us first.
            # setpriv execs java: the pid stays the broker's.
            self.process = subprocess.Popen([*prefix, *self._java("kafka.Kafka", str(config))], stdout=console,
                                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            start_new_session=True)
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
                                   f"{self.logs_dir / 'server.log'} and {self.logs_dir / 'console.log'}")
            if admin is None:
                # A Kafka client retries refused connections noisily: create it once the port listens.
                try:
                    socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                except OSError as exc:
                    last_error = str(exc)
                    time.sleep(0.1)  # poll interval: the JVM gives no other signal that it is listening
                    continue
                admin = AdminClient({"bootstrap.servers": self.bootstrap_servers, "socket.timeout.ms": 2000})
            try:
                # A fenced (not yet registered) broker is left out of metadata: listed = ready.
                if admin.list_topics(timeout=2).brokers:
                    return
            except Exception as exc:
                last_error = str(exc)
        raise TimeoutError(f"Kafka at {self.bootstrap_servers} not ready after {timeout} s: {last_error}")

    def stop(self, timeout: float = 30.0) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            _signal_group(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                _signal_group(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        self.pid_file.unlink(missing_ok=True)
        self.process = None

    def __enter__(self) -> LocalKafka:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, sig)


def _running_broker(data_dir: Path) -> int | None:
    """The pid in data_dir's pid file if that process is still our broker (pids get reused)."""
    pid_file = data_dir.resolve() / "broker.pid"
    if not pid_file.is_file():
        return None
    pid = int(pid_file.read_text())
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return None
    except OSError:  # no /proc (macOS): trust the pid file if the process exists
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        return pid
    return pid if str(data_dir.resolve() / "server.properties").encode() in cmdline else None


def stop_from_pid_file(data_dir: Path, timeout: float = 30.0) -> bool:
    """Stop a broker started in the background by another process (`callstream kafka stop`)."""
    pid = _running_broker(data_dir)
    (data_dir / "broker.pid").unlink(missing_ok=True)
    if pid is None:
        return False
    _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _exited(pid):
            return True
        time.sleep(0.1)  # polling a foreign process for exit: there is nothing to wait on
    _signal_group(pid, signal.SIGKILL)
    return True


def _exited(pid: int) -> bool:
    """Gone, or a zombie: exited but not reaped (our own child when `start` ran in this process)."""
    with contextlib.suppress(ChildProcessError):
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    with contextlib.suppress(OSError, IndexError):
        return Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].startswith("Z")
    return False


def main(argv: Sequence[str] | None = None) -> int:
    """`fetch`, `start [--foreground]`, `stop`, `status` for the broker in .local/kafka/<name>/."""
    parser = argparse.ArgumentParser(prog="callstream kafka", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("fetch", help="fetch the broker jars with Maven (once)")
    for name in ("start", "stop", "status"):
        cmd = sub.add_parser(name)
        cmd.add_argument("--name", default=DEFAULT_NAME, help="the broker's folder under .local/kafka/")
        cmd.add_argument("--data-dir", type=Path, help="a data dir of its own instead of .local/kafka/<name>")
        if name == "start":
            cmd.add_argument("--port", type=int, help="client port (default: last time's, else a free one)")
            cmd.add_argument("--controller-port", type=int)
            cmd.add_argument("--foreground", action="store_true", help="run until Ctrl-C, then stop")
    args = parser.parse_args(argv)
    if args.command == "fetch":
        print(f"Kafka {KAFKA_VERSION} jars ready in {ensure_jars()}")
        return 0
    data_dir: Path = args.data_dir or find_repo_root() / ".local" / "kafka" / args.name
    running = _running_broker(data_dir)
    if args.command == "status":
        print(f"running (pid {running}) in {data_dir}" if running else f"not running ({data_dir})")
        return 0 if running else 1
    if args.command == "stop":
        print("stopped" if stop_from_pid_file(data_dir) else "no broker was running")
        return 0
    if running:
        print(f"a broker already runs in {data_dir} (pid {running})", file=sys.stderr)
        return 1
    data_dir.mkdir(parents=True, exist_ok=True)
    broker = LocalKafka(data_dir, port=args.port, controller_port=args.controller_port)
    started = time.monotonic()
    try:
        broker.start(attached=args.foreground)
    except PortTaken as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"Kafka {KAFKA_VERSION} ready at {broker.bootstrap_servers} in {time.monotonic() - started:.1f} s "
          f"(data and logs in {data_dir})", flush=True)
    if not args.foreground:
        return 0  # the broker runs on in its own session; `stop` ends it
    stopped = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopped.set())
    try:
        # Wake once a second to notice a broker that died on its own.
        while not stopped.wait(1.0) and broker.process is not None and broker.process.poll() is None:
            pass
    finally:
        broker.stop()
    print("Kafka stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
