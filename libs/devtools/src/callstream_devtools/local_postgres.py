"""A throwaway PostgreSQL server from Debian's packages, for tests and `make run` (no Docker).

    with LocalPostgres(tmp_path) as pg:
        engine = sqlalchemy.create_engine(pg.url)   # postgresql+psycopg://postgres@127.0.0.1:PORT/postgres

The binaries come from `/usr/lib/postgresql/<major>/bin` (package `postgresql`); `LocalPostgres.available()`
says whether they are there. `initdb` refuses to run as root: when the process is root the server runs as
the system user `postgres` (created by the Debian package) through `runuser -u postgres --`, and its data
directory is a fresh temporary directory owned by that user (root's own temp dirs, such as pytest's, are
often not traversable by another user). The server listens on 127.0.0.1 only, on a free port, with no
Unix socket; it is stopped with `pg_ctl stop -m fast` and its data directory removed on exit.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

PG_ROOT = Path("/usr/lib/postgresql")
SYSTEM_USER = "postgres"


def _bin_dir() -> Path | None:
    """The newest installed major version's bin directory, or None."""
    if not PG_ROOT.is_dir():
        return None
    candidates = []
    for child in PG_ROOT.iterdir():
        if (child / "bin" / "initdb").exists() and (child / "bin" / "pg_ctl").exists():
            try:
                candidates.append((float(child.name), child / "bin"))
            except ValueError:
                continue
    return max(candidates)[1] if candidates else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LocalPostgresError(RuntimeError):
    """The server could not be set up or did not become ready in time."""


class LocalPostgres:
    """Context manager: initdb + start on entry, `.url` is a SQLAlchemy URL, stop + remove on exit."""

    def __init__(self, base_dir: Path, *, startup_timeout: float = 30.0) -> None:
        self.base_dir = Path(base_dir)
        self.startup_timeout = startup_timeout
        self.port = 0
        self.url = ""
        self._bin = _bin_dir()
        self._data_root: Path | None = None
        self._started = False

    @staticmethod
    def available() -> bool:
        """True when Debian's PostgreSQL binaries are installed (and, as root, the `postgres` user exists)."""
        if _bin_dir() is None:
            return False
        if os.geteuid() == 0:
            try:
                pwd.getpwnam(SYSTEM_USER)
            except KeyError:
                return False
            return shutil.which("runuser") is not None
        return True

    # -- helpers ---------------------------------------------------------------------------------------------
    def _as_server_user(self, args: list[str]) -> list[str]:
        return ["runuser", "-u", SYSTEM_USER, "--", *args] if os.geteuid() == 0 else args

    def _run(self, args: list[str]) -> None:
        result = subprocess.run(self._as_server_user(args), capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise LocalPostgresError(f"{Path(args[0]).name} failed ({result.returncode}): "
                                     f"{result.stderr.strip() or result.stdout.strip()}")

    @property
    def data_dir(self) -> Path:
        if self._data_root is None:
            raise LocalPostgresError("the server is not started")
        return self._data_root / "data"

    # -- lifecycle -------------------------------------------------------------------------------------------
    def start(self) -> str:
        if self._bin is None or not self.available():
            raise LocalPostgresError(f"PostgreSQL binaries not found under {PG_ROOT}/*/bin "
                                     "(apt-get install postgresql)")
        self.base_dir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            entry = pwd.getpwnam(SYSTEM_USER)
            self._data_root = Path(tempfile.mkdtemp(prefix="callstream-pg-"))
            os.chown(self._data_root, entry.pw_uid, entry.pw_gid)
        else:
            self._data_root = Path(tempfile.mkdtemp(prefix="pg-", dir=self.base_dir))
        data = self.data_dir
        self._run([str(self._bin / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust",
                   "-E", "UTF8", "--no-sync", "--no-instructions"])
        self.port = _free_port()
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c fsync=off"
        log_file = self._data_root / "server.log"
        self._run([str(self._bin / "pg_ctl"), "start", "-D", str(data), "-o", options, "-l", str(log_file),
                   "-w", "-t", str(int(self.startup_timeout))])
        self._started = True
        self._wait_ready()
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"
        return self.url

    def _wait_ready(self) -> None:
        import psycopg

        deadline = time.monotonic() + self.startup_timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            try:
                with psycopg.connect(host="127.0.0.1", port=self.port, user="postgres", dbname="postgres",
                                     connect_timeout=2) as conn:
                    conn.execute("SELECT 1")
                return
            except psycopg.OperationalError as exc:
                last = exc
                time.sleep(0.1)
        raise LocalPostgresError(f"PostgreSQL on port {self.port} not ready after {self.startup_timeout} s: {last}")

    def stop(self) -> None:
        try:
            if self._started and self._bin is not None:
                self._run([str(self._bin / "pg_ctl"), "stop", "-D", str(self.data_dir), "-m", "fast", "-w"])
        finally:
            self._started = False
            if self._data_root is not None:
                shutil.rmtree(self._data_root, ignore_errors=True)
                self._data_root = None

    def __enter__(self) -> LocalPostgres:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
