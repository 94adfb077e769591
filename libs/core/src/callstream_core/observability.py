"""JSON logs, Prometheus metrics and health endpoints, the same in every service."""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

# Bearer tokens that arrive in a URL (the wallboard's `?token=`, its EventSource's `?access_token=`: a
# browser cannot send a header there) are cut out of every log line, the access log's request line included.
_TOKEN_IN_URL = re.compile(r"(?i)([?&;][\w.-]*token=)[^&;\s\"']+")
REDACTED = "[redacted]"


def redact(text: str) -> str:
    """`text` with the value of every URL parameter named `...token` (`token=`, `access_token=`) replaced."""
    return _TOKEN_IN_URL.sub(r"\1" + REDACTED, text)


# Fields a log call may pass in `extra=` that are worth keeping as JSON keys.
CONTEXT_FIELDS = ("call_id", "event_id", "agent_id", "topic", "partition", "offset", "service")


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "msg": redact(record.getMessage()),
        }
        for field in CONTEXT_FIELDS:
            value = getattr(record, field, None)
            if value is not None:
                entry[field] = value
        if record.exc_info:
            entry["exc"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, default=str)


def configure_logging(service: str, level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


ReadinessCheck = Callable[[], Awaitable[str | None]]


def ops_router(readiness_checks: dict[str, ReadinessCheck] | None = None) -> APIRouter:
    """`/healthz` (the process serves), `/readyz` (its dependencies answer), `/metrics` (Prometheus)."""
    router = APIRouter(tags=["operations"])
    checks = readiness_checks or {}

    @router.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz")
    async def readyz(response: Response) -> dict[str, Any]:
        problems = {name: problem for name, check in checks.items() if (problem := await check()) is not None}
        if problems:
            response.status_code = 503
        return {"status": "not ready" if problems else "ready", "problems": problems}

    @router.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router
