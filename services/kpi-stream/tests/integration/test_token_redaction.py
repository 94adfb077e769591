"""issue 17 item 9: the wallboard sends its bearer token in the URL (`?token=`, and `?access_token=` for the
EventSource, which cannot send headers); the access log wrote it in clear. The real KPI process is started,
asked with a token in the URL, stopped, and its log is read."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest
from scenarios import isolated_topics

from callstream_devtools.local_kafka import free_port
from callstream_devtools.testing import wait_until_serving

pytestmark = pytest.mark.integration


def test_a_token_in_the_url_never_reaches_the_log(kafka_bootstrap: str, tmp_path: Path) -> None:
    secret = f"wallboard-secret-{uuid.uuid4().hex}"
    port = free_port()
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "CLICKHOUSE_URL": f"chdb://{tmp_path / 'chdb'}",
           "HTTP_PORT": str(port), "API_TOKENS": f"{secret}:manager", "TOPIC_PREFIX": isolated_topics(kafka_bootstrap),
           "CONSUMER_GROUP": f"kpi-redact-{uuid.uuid4().hex[:8]}", "LOG_LEVEL": "INFO"}
    log_path = tmp_path / "kpi.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "callstream_kpi"], env=env, stdout=log, stderr=log)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(base, proc, timeout_s=120)
        assert httpx.get(f"{base}/wallboard", params={"token": secret}).status_code == 200
        with httpx.stream("GET", f"{base}/v1/realtime/stream", params={"access_token": secret}, timeout=30) as sse:
            assert sse.status_code == 200
            next(sse.iter_bytes())  # ": connected": the request was served and logged
        wrong = httpx.get(f"{base}/v1/realtime/stream", params={"access_token": secret + "-wrong"}, timeout=30)
        assert wrong.status_code == 401
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    text = log_path.read_text()
    assert "/v1/realtime/stream?access_token=[redacted]" in text, text[-3000:]
    assert "/wallboard?token=[redacted]" in text
    assert secret not in text
