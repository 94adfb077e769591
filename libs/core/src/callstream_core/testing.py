"""Helpers for the services' tests that use real servers: an ASGI app served by uvicorn on a free port."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

from callstream_core.local_kafka import free_port


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
