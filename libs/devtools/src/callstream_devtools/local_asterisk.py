"""A real Asterisk on one machine, for tests and the demo: built once from the vendored source, run in a folder.

No machine of this project can download Asterisk, so its source comes with the project's shared folder
(`shared/vendor/asterisk-<commit>.tar.gz`). `ensure_built()` compiles it once with
`deploy/local/asterisk/build.sh` into a cache outside the repo keyed by the tarball's name
(`~/.cache/callstream/asterisk/<name>`, or under `CALLSTREAM_CACHE`), so a second run, a fresh clone or CI on
the same machine reuses it. `LocalAsterisk(run_dir)` writes the test center's configuration
(`deploy/local/asterisk/*.conf`, placeholders filled in) into `run_dir`, starts Asterisk in the foreground
on loopback ports, waits until its manager interface (AMI) answers a login (polling with a deadline) and
stops it (SIGTERM, then SIGKILL of its process group after a deadline).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

from callstream_devtools.local_kafka import die_with_parent, find_repo_root, free_port

TARBALL_ENV = "CALLSTREAM_ASTERISK_TARBALL"
CACHE_ENV = "CALLSTREAM_CACHE"
AMI_USER = "callstream"


def cache_root() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "callstream")


def center_dir() -> Path:
    """The test center's configuration templates and build script."""
    return find_repo_root() / "deploy" / "local" / "asterisk"


def vendor_tarball() -> Path:
    """The Asterisk source: `CALLSTREAM_ASTERISK_TARBALL`, else the newest in the shared folder's vendor/."""
    configured = os.environ.get(TARBALL_ENV)
    if configured:
        path = Path(configured)
        if not path.is_file():
            raise FileNotFoundError(f"{TARBALL_ENV}={configured}: no such file")
        return path
    vendor = find_repo_root().parent / "shared" / "vendor"
    found = sorted(vendor.glob("asterisk-*.tar.gz"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise FileNotFoundError(f"no Asterisk source: {vendor}/asterisk-*.tar.gz is missing "
                                f"(set {TARBALL_ENV} to a source tarball)")
    return found[-1]


def install_prefix(tarball: Path | None = None) -> Path:
    name = (tarball or vendor_tarball()).name.removesuffix(".tar.gz")
    return cache_root() / "asterisk" / name


def built(tarball: Path | None = None) -> bool:
    return (install_prefix(tarball) / ".complete").is_file()


def ensure_built(tarball: Path | None = None, *, quiet: bool = True) -> Path:
    """Build Asterisk once (about 3 minutes on 2 cores); later calls return the cached install at once.

    A file lock makes concurrent callers (two test sessions) wait for one build instead of racing."""
    tarball = tarball or vendor_tarball()
    prefix = install_prefix(tarball)
    if built(tarball):
        return prefix
    prefix.parent.mkdir(parents=True, exist_ok=True)
    with (prefix.parent / f".{prefix.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not built(tarball):
            result = subprocess.run(["bash", str(center_dir() / "build.sh"), str(tarball), str(prefix)],
                                    capture_output=quiet, text=True, check=False)
            if result.returncode != 0:
                raise RuntimeError(f"building Asterisk from {tarball} failed (exit {result.returncode}):\n"
                                   f"{(result.stdout or '')[-3000:]}{(result.stderr or '')[-3000:]}")
    return prefix


class LocalAsterisk:
    """An Asterisk process with the test center's dialplan and queues; a context manager.

    Everything it writes stays in `run_dir`: `log/queue_log` (app_queue's record), `log/cdr-csv/Master.csv`
    (CDRs), `log/messages.log`, `console.log` (its standard output)."""

    def __init__(self, run_dir: Path, *, ami_port: int | None = None, http_port: int | None = None,
                 secret: str | None = None, queues_conf: Path | None = None) -> None:
        self.run_dir = run_dir.resolve()
        # Another center's app_queue queues in place of the test center's queues.conf (the skills bench's).
        self.queues_conf = queues_conf
        self.ami_port = ami_port or free_port()
        self.http_port = http_port or free_port(avoid=[self.ami_port])
        self.ami_user = AMI_USER
        self.secret = secret or secrets.token_hex(12)
        self.process: subprocess.Popen[bytes] | None = None
        self.prefix: Path | None = None

    @property
    def queue_log(self) -> Path:
        return self.run_dir / "log" / "queue_log"

    @property
    def cdr_csv(self) -> Path:
        return self.run_dir / "log" / "cdr-csv" / "Master.csv"

    @property
    def config(self) -> Path:
        return self.run_dir / "etc" / "asterisk.conf"

    def _render(self, prefix: Path) -> None:
        etc = self.run_dir / "etc"
        for sub in ("etc", "lib", "agi", "spool", "run", "log", "log/cdr-csv"):
            (self.run_dir / sub).mkdir(parents=True, exist_ok=True)
        values = {"@RUN@": str(self.run_dir), "@PREFIX@": str(prefix), "@AMI_PORT@": str(self.ami_port),
                  "@HTTP_PORT@": str(self.http_port), "@AMI_USER@": self.ami_user, "@AMI_SECRET@": self.secret}
        for config in sorted(center_dir().glob("*.conf")):
            template = self.queues_conf if config.name == "queues.conf" and self.queues_conf else config
            text = template.read_text()
            for key, value in values.items():
                text = text.replace(key, value)
            (etc / config.name).write_text(text)

    def start(self, ready_timeout: float = 60.0) -> LocalAsterisk:
        prefix = self.prefix = ensure_built()
        self._render(prefix)
        console = (self.run_dir / "console.log").open("ab")
        try:
            # -f: stay in the foreground (we own the process); -n: no colors; -C: our configuration only.
            self.process = subprocess.Popen(
                [*die_with_parent(), str(prefix / "sbin" / "asterisk"), "-f", "-n", "-C", str(self.config)],
                stdout=console, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        finally:
            console.close()
        try:
            self.wait_ready(ready_timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def wait_ready(self, timeout: float) -> None:
        """Until the AMI accepts our login and Asterisk says it is fully booted (FullyBooted event)."""
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"Asterisk exited with {self.process.returncode} while starting; see "
                                   f"{self.run_dir / 'console.log'}")
            try:
                if self._fully_booted(min(5.0, max(0.1, deadline - time.monotonic()))):
                    return
                last = "logged in, not fully booted"
            except OSError as exc:
                last = repr(exc)
            time.sleep(0.2)  # polling a starting process's port: there is nothing to wait on
        raise TimeoutError(f"Asterisk not ready on AMI 127.0.0.1:{self.ami_port} after {timeout:.0f} s ({last}); "
                           f"see {self.run_dir / 'console.log'}")

    def _fully_booted(self, timeout: float) -> bool:
        with socket.create_connection(("127.0.0.1", self.ami_port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            sock.sendall(f"Action: Login\r\nUsername: {self.ami_user}\r\nSecret: {self.secret}\r\n"
                         f"Events: system\r\n\r\n".encode())
            seen = b""
            end = time.monotonic() + timeout
            while time.monotonic() < end and b"FullyBooted" not in seen:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                seen += chunk
                if b"Response: Error" in seen:
                    raise OSError("AMI login refused")
            return b"FullyBooted" in seen

    def stop(self, timeout: float = 20.0) -> None:
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout)

    def __enter__(self) -> LocalAsterisk:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
