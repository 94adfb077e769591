"""`callstream doctor`: what is missing to run Callstream here, in plain words."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess

import typer

DEFAULT_PORTS = {9092: "Kafka", 8000: "ingest webhooks", 8001: "KPI API and wallboard", 8002: "QA API",
                 8003: "HR API", 50051: "routing gRPC"}


def _java_major() -> int | None:
    if shutil.which("java") is None:
        return None
    out = subprocess.run(["java", "-version"], capture_output=True, text=True, check=False).stderr
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    if not match:
        return None
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def problems() -> list[str]:
    found = []
    java = _java_major()
    if java is None:
        found.append("Java is not installed: the Kafka broker needs Java 17 or newer "
                     "(apt-get install openjdk-17-jre-headless).")
    elif java < 17:
        found.append(f"Java {java} is too old: the Kafka broker needs Java 17 or newer.")
    if shutil.which("mvn") is None:
        found.append("Maven is not installed: it fetches the Kafka jars (apt-get install maven).")
    for port, what in DEFAULT_PORTS.items():
        if not port_free(port):
            found.append(f"Port {port} ({what}) is taken by another program; `make run` needs it free.")
    return found


def doctor() -> None:
    """Check Java, Maven and the ports `make run` uses; say whether the test switch (Asterisk) is built."""
    from callstream_cli.asterisk_cmd import status

    typer.echo(status())
    found = problems()
    for line in found:
        typer.echo(f"- {line}")
    if found:
        raise typer.Exit(1)
    typer.echo("All set: Java, Maven and the default ports are available.")
