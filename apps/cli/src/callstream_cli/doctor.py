"""`callstream doctor`: what is missing to run Callstream here, in plain words."""

from __future__ import annotations

import re
import shutil
import subprocess

import typer

from callstream_cli.kafka_cmd import DEV_CONTROLLER_PORT, DEV_PORT
from callstream_devtools.local_kafka import port_free
from callstream_hr.config import HrSettings
from callstream_ingest.config import IngestSettings
from callstream_kpi.config import KpiSettings
from callstream_qa.config import QASettings
from callstream_routing.config import RoutingSettings

# Every port `make run` binds: the development broker's two (clients, KRaft controller), each service's
# HTTP port and routing's gRPC and metrics ports. Taken from the settings themselves, so a changed default is
# checked without editing this list.
DEFAULT_PORTS = {
    DEV_PORT: "Kafka", DEV_CONTROLLER_PORT: "Kafka controller",
    IngestSettings.model_fields["http_port"].default: "ingest webhooks",
    KpiSettings.model_fields["http_port"].default: "KPI API and wallboard",
    QASettings.model_fields["http_port"].default: "QA API",
    HrSettings.model_fields["http_port"].default: "HR API",
    RoutingSettings.model_fields["grpc_port"].default: "routing gRPC",
    RoutingSettings.model_fields["metrics_port"].default: "routing metrics",
}


def _java_major() -> int | None:
    if shutil.which("java") is None:
        return None
    out = subprocess.run(["java", "-version"], capture_output=True, text=True, check=False).stderr
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    if not match:
        return None
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


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
