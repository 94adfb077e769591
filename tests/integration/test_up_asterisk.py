"""`callstream up --switch asterisk` as a user runs it: one command starts the services, the real Asterisk of the
test center, the ARI bridge and the call generator; the generator's calls enter the `[routed]` context, the
bridge offers them to the routing service, and the KPI API counts them answered. Ctrl-C (SIGINT) stops it all.

The KPI API is polled (with a deadline) for the calls answered since the test started; after the stop, Asterisk's
own CDRs (read by `asterisk_records.read_routed_calls`, no Callstream code) must show at least as many callers of
the routed context bridged with an agent: each answer the KPIs counted is a conversation the switch connected.
The run uses the test session's broker (KAFKA_BOOTSTRAP_SERVERS) and a state folder of its own; the services
listen on the demo's fixed ports, which must be free.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from asterisk_records import read_routed_calls

from callstream_cli.asterisk_cmd import DEV_AMI_PORT, DEV_HTTP_PORT
from callstream_cli.up import BRIDGE_METRICS_PORT, DEV_TOKEN

pytestmark = pytest.mark.integration
KPI_API = "http://127.0.0.1:8001"
ANSWERED = 3  # a handful of routed calls answered is the demo working
DEMO_PORTS = (DEV_AMI_PORT, DEV_HTTP_PORT, BRIDGE_METRICS_PORT, 50051, 9464, 8000, 8001, 8002, 8003)


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _answered_since(started: datetime) -> int:
    """Calls answered since `started` by the KPI API (center scope): offered x answered rate."""
    response = httpx.get(f"{KPI_API}/v1/kpis", params=[
        ("from", started.isoformat()), ("to", (started + timedelta(hours=1)).isoformat()), ("grain", "hour"),
        ("kpi", "total_calls"), ("kpi", "answered_rate")], headers={"Authorization": f"Bearer {DEV_TOKEN}"},
        timeout=30)
    response.raise_for_status()
    total = response.json()["total"]
    if not total.get("total_calls") or total.get("answered_rate") is None:
        return 0
    return round(total["total_calls"] * total["answered_rate"] / 100)


@pytest.mark.timeout(900)
def test_up_with_asterisk_routes_the_demo_calls(kafka_bootstrap: str, tmp_path: Path) -> None:
    taken = [p for p in DEMO_PORTS if _listening(p)]
    assert not taken, f"the demo's ports {taken} are in use (a `make run` or `callstream asterisk start`?)"
    started = datetime.now(UTC)
    log = tmp_path / "up.log"
    with log.open("wb") as out:
        up = subprocess.Popen(
            [sys.executable, "-m", "callstream_cli.main", "up", "--switch", "asterisk", "--state-dir", str(tmp_path)],
            env={**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap}, stdout=out, stderr=subprocess.STDOUT)
    answered = 0
    try:
        deadline = time.monotonic() + 600  # router, KPI worker and Asterisk start on a loaded machine
        while time.monotonic() < deadline and answered < ANSWERED:
            assert up.poll() is None, f"callstream up exited with {up.returncode}: {log.read_text()[-4000:]}"
            try:
                answered = _answered_since(started)
            except httpx.HTTPError:
                answered = 0  # the KPI API is not up yet
            time.sleep(2)  # polling the KPI API with a deadline
        assert answered >= ANSWERED, f"the KPI API counted {answered} answered calls: {log.read_text()[-4000:]}"
    finally:
        up.send_signal(signal.SIGINT)  # Ctrl-C
        try:
            up.wait(120)
        except subprocess.TimeoutExpired:
            up.kill()
            up.wait(30)
    text = log.read_text()
    assert up.returncode == 0, text[-4000:]
    for name in ("routing", "kpi", "asterisk", "ari-bridge", "calls"):
        assert f"| {name} started (pid=" in text, text[-4000:]
    assert "Asterisk stopped" in text, text[-4000:]
    assert not [p for p in DEMO_PORTS if _listening(p)], "a process of the demo outlived Ctrl-C"
    record = read_routed_calls(tmp_path / "asterisk" / "log" / "cdr-csv" / "Master.csv", routed_context="routed",
                               agents_context="agents")
    bridged = [c for c in record.calls if c.bridged_with]
    assert len(bridged) >= answered, f"Asterisk bridged {len(bridged)} routed callers, the KPIs count {answered}"
