"""issue 17 item 10: a taken Kafka port gave a 34-line traceback saying "see server.log", and `doctor`
checked neither 9093 (the broker's controller) nor 9464 (routing's metrics). Real processes, real sockets."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from callstream_cli.doctor import problems
from callstream_devtools.local_kafka import free_port, port_free


@contextmanager
def listening(port: int | None = None) -> Iterator[int]:
    """A socket listening on `port` (default: a free one) for the duration: "another program"."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As a server binds (and as port_free checks): a port left in TIME_WAIT by an earlier test is usable.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port or 0))
        sock.listen()
        yield int(sock.getsockname()[1])


@pytest.mark.parametrize("taken", ["client", "controller"])
@pytest.mark.parametrize("command", [["-m", "callstream_devtools.local_kafka", "start", "--data-dir", "{data}"],
                                     ["-m", "callstream_cli.main", "kafka", "start"]])
def test_a_taken_port_is_one_clear_line(tmp_path: Path, taken: str, command: list[str]) -> None:
    with listening() as busy:
        other = free_port(avoid=[busy])
        port, controller = (busy, other) if taken == "client" else (other, busy)
        argv = [a.format(data=tmp_path / "kafka") for a in command]
        done = subprocess.run([sys.executable, *argv, "--port", str(port), "--controller-port", str(controller)],
                              capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    what = "Kafka clients" if taken == "client" else "the Kafka controller"
    assert f"port {busy} ({what}) is taken by another program: stop it" in lines[0]
    assert "callstream kafka stop" in lines[0]
    assert not (tmp_path / "kafka" / "log").exists(), "nothing is formatted before the ports are checked"


@pytest.mark.parametrize("port", [9093, 9464])
def test_doctor_checks_the_controller_and_routing_metrics_ports(port: int) -> None:
    if port_free(port):
        with listening(port):
            found = problems()
    else:  # taken already (a development broker or router runs here): doctor must say so all the same
        found = problems()
    assert any(line.startswith(f"Port {port} (") and "is taken" in line for line in found), found
