"""Helpers for the services' tests that use real servers: an ASGI app served by uvicorn on a free port, and a
service run as a real process."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import uvicorn
from pydantic_settings import BaseSettings

from callstream_core.kafka import apply_topics
from callstream_core.topics import TOPICS
from callstream_devtools.local_kafka import free_port


def isolated_topics(kafka_bootstrap: str, tag: str = "t") -> str:
    """Every registry topic (and DLQ) under a fresh prefix: a worker (or a bench) that reads only its own events."""
    prefix = f"{tag}{uuid.uuid4().hex[:8]}."
    apply_topics(kafka_bootstrap, [dataclasses.replace(t, name=prefix + t.name) for t in TOPICS])
    return prefix


@contextmanager
def serve_in_thread(app: Any, *, start_timeout: float = 30.0, ssl_certfile: str | None = None,
                    ssl_keyfile: str | None = None) -> Iterator[str]:
    """Serve `app` on 127.0.0.1 in a thread (over TLS when given a certificate and its key); yields its base URL
    and stops it (lifespan included) after."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on",
                                           ssl_certfile=ssl_certfile, ssl_keyfile=ssl_keyfile))
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + start_timeout
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError(f"uvicorn did not start on port {port}")
        time.sleep(0.02)  # uvicorn offers no start event to wait on; polled with a deadline
    try:
        yield f"{'https' if ssl_certfile else 'http'}://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)


@contextmanager
def compared_tokens() -> Iterator[list[bytes]]:
    """The known tokens the bearer check (`callstream_core.auth`) passes to hmac.compare_digest inside the
    block, in order: a test of the constant-time check counts comparisons instead of timing them."""
    import hmac
    from unittest import mock

    calls: list[bytes] = []
    original = hmac.compare_digest

    def counting(known: bytes, given: bytes) -> bool:
        calls.append(known)
        return original(known, given)

    with mock.patch.object(hmac, "compare_digest", counting):
        yield calls


def wait_until_serving(base_url: str, process: subprocess.Popen[Any], timeout_s: float = 60.0) -> None:
    """Poll `base_url`/healthz until it answers 200 (polled with a deadline); RuntimeError when `process`
    exits first or the deadline passes."""
    import httpx

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if httpx.get(base_url + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if process.poll() is not None:
            raise RuntimeError(f"the process exited with {process.returncode} before {base_url} served")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{base_url} did not serve within {timeout_s} s")
        time.sleep(0.2)


class ServiceProcess:
    """A service run as its own process (`python -m module`), its settings in the environment (field names
    in capitals, as pydantic-settings reads them), its output in a log file: stopped or killed by signal as
    an operator or the machine would, for the fault tests and the restart bench."""

    def __init__(self, module: str, settings: BaseSettings, log_path: Path) -> None:
        self.module = module
        self.env = {**os.environ, **{name.upper(): str(value) for name, value in settings.model_dump().items()
                                     if value is not None}}
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen([sys.executable, "-m", self.module], env=self.env, stdout=log,
                                            stderr=subprocess.STDOUT)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 60.0) -> int:
        """Send `sig` and wait for the exit; returns the exit code (negative: killed by that signal)."""
        assert self.process is not None, "not started"
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout)

    def wait(self, timeout: float) -> int:
        assert self.process is not None, "not started"
        return self.process.wait(timeout)

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""

    def __enter__(self) -> ServiceProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.alive():
            self.stop(signal.SIGKILL)
