"""issue 17 item 9: the caller-hash salt defaulted to the public word "callstream". The real ingest process
now refuses to start in production on a public salt, in one clear message, and starts on a secret one or in
development."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from callstream_devtools.local_kafka import free_port
from callstream_devtools.testing import wait_until_serving

TOKEN = "pbx-startup-token-0123456789"


def _env(kafka_bootstrap: str, port: int, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("CALLER_SALT", "CALLSTREAM_ENV")}
    return {**env, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "HTTP_PORT": str(port),
            "INGEST_SOURCES": f"{TOKEN}=pbx", **extra}


@pytest.mark.parametrize("extra", [{}, {"CALLER_SALT": "callstream"}, {"CALLSTREAM_ENV": "production"},
                                   {"CALLER_SALT": "development-only-caller-salt"}])
def test_production_refuses_a_public_salt(kafka_bootstrap: str, extra: dict[str, str]) -> None:
    done = subprocess.run([sys.executable, "-m", "callstream_ingest"], env=_env(kafka_bootstrap, free_port(), **extra),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "CALLER_SALT must be set to a secret of your own in production" in done.stderr
    assert "CALLSTREAM_ENV=development" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("extra", [{"CALLER_SALT": "a-secret-salt-of-our-own"}, {"CALLSTREAM_ENV": "development"}])
def test_a_secret_salt_or_a_development_run_starts(kafka_bootstrap: str, extra: dict[str, str]) -> None:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "callstream_ingest"], env=_env(kafka_bootstrap, port, **extra),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_until_serving(f"http://127.0.0.1:{port}", proc, timeout_s=60)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
