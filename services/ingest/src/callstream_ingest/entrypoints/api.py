"""The webhook API: any PBX posts call and agent events (protobuf JSON mapping) to ``POST /v1/events``.

- One event (JSON object), a batch (JSON array) or NDJSON (``application/x-ndjson``), bearer token per source
  (``INGEST_SOURCES=TOKEN=source-name,...``); every event's ``envelope.source`` must be that source name
  or ``source-name/<instance>``.
- Event time within WEBHOOK_MAX_FUTURE_S ahead of and WEBHOOK_MAX_AGE_S behind the clock (else 422 naming
  `envelope.occurredAt`): a wrong PBX clock must not move the KPI stream's event time.
- Strict validation: any invalid event rejects the whole batch with 422 and the field paths; nothing of it is
  produced. 413 when the body, one event or the event count is above the caps.
- 202 only after Kafka confirmed every event of the batch; Kafka down or slow -> 503 after
  ``PRODUCE_TIMEOUT_S`` with nothing acknowledged (retry: event ids make the retry idempotent).
- Repeats by event_id (an LRU of recently confirmed ids) are acknowledged but not produced again.

No `from __future__ import annotations` here: FastAPI must evaluate `Annotated[..., Depends(...)]` parameters
that name objects local to `create_app`.
"""

import asyncio
import threading
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel

from callstream_core.auth import TokenTable
from callstream_core.http_errors import install_error_handlers
from callstream_core.kafka import DeliveryError
from callstream_core.observability import ReadinessCheck, ops_router
from callstream_ingest.config import IngestSettings
from callstream_ingest.domain import webhook
from callstream_ingest.service_layer.event_sink import EventSink

ADAPTER = "webhook"
NDJSON = ("application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonlines")
_bearer = HTTPBearer(auto_error=False)


class Accepted(BaseModel):
    accepted: int  # events in the request
    produced: int  # confirmed by Kafka now
    duplicates: int  # repeats of a recent event id (acknowledged, not produced again)


class RecentIds:
    """A bounded LRU of event ids Kafka confirmed."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    def __contains__(self, event_id: object) -> bool:
        with self._lock:
            if event_id in self._ids:
                self._ids.move_to_end(event_id)  # type: ignore[arg-type]
                return True
            return False

    def add_all(self, ids: list[str]) -> None:
        if self.size <= 0:
            return
        with self._lock:
            for i in ids:
                self._ids[i] = None
                self._ids.move_to_end(i)
            while len(self._ids) > self.size:
                self._ids.popitem(last=False)


def _error_body(errors: list[webhook.WebhookError]) -> dict[str, Any]:
    return {"detail": [{"loc": e.path, "msg": e.message} for e in errors[:100]], "errors": len(errors)}


def _too_large(errors: list[webhook.WebhookError]) -> bool:
    return any(
        (e.path == "body" and ("exceeds" in e.message or e.message.startswith("more than")))
        or (e.path != "body" and e.message.startswith("event exceeds"))
        for e in errors
    )


_REQUEST_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "One CallEvent/AgentEvent in the protobuf JSON mapping, a JSON array of them, or NDJSON.",
        "content": {
            "application/json": {"schema": {"oneOf": [{"type": "object"},
                                                      {"type": "array", "items": {"type": "object"}}]},
                                 "example": {
                                     "envelope": {"eventId": "0b6f6a9e-3c55-4a3e-9f5e-1f0c2a7d9e11",
                                                  "occurredAt": "2026-11-02T09:30:12.250Z", "source": "pbx-1",
                                                  "schemaVersion": 1},
                                     "callId": "pbx1-1762075812.42",
                                     "answered": {"agentId": "agent-0042", "queueId": "billing"}}},
            "application/x-ndjson": {"schema": {"type": "string"}},
        },
    },
}


def create_app(settings: IngestSettings, sink: EventSink,
               readiness: dict[str, ReadinessCheck] | None = None) -> FastAPI:
    sources = settings.sources()
    recent = RecentIds(settings.webhook_dedup_ids)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        sink.start_polling()  # serve delivery callbacks so confirmations resolve promptly
        yield

    app = FastAPI(title="Callstream ingest", version="1", lifespan=lifespan,
                  description="Webhook intake of call and agent events for any PBX; see docs/ingest.md.")
    install_error_handlers(app)
    app.include_router(ops_router(readiness))
    api = APIRouter(prefix="/v1", tags=["events"])

    source_by_token = TokenTable(sources)  # constant time, as every bearer check

    def source_of(credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> str:
        if credentials is None or credentials.scheme.lower() != "bearer":
            raise HTTPException(401, "a bearer token is required", headers={"WWW-Authenticate": "Bearer"})
        found = source_by_token.get(credentials.credentials)
        if not found:
            raise HTTPException(401, "unknown bearer token", headers={"WWW-Authenticate": "Bearer"})
        return found

    async def read_body(request: Request) -> bytes:
        cap = settings.webhook_max_batch_bytes
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > cap:
            raise HTTPException(413, f"body exceeds {cap} bytes")
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > cap:
                raise HTTPException(413, f"body exceeds {cap} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    @api.post("/events", status_code=202, response_model=Accepted, openapi_extra=_REQUEST_DOC,
              responses={401: {"description": "no or unknown bearer token"},
                         413: {"description": "body, one event or the event count above the caps"},
                         422: {"description": "invalid events; `detail[].loc` is the field path"},
                         503: {"description": "Kafka did not confirm in time; nothing acknowledged, retry"}})
    async def post_events(request: Request, source: Annotated[str, Depends(source_of)]) -> Any:
        """Accept call/agent events; 202 only once Kafka confirmed them all."""
        body = await read_body(request)
        ctype = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
        if ctype not in ("application/json", *NDJSON):
            raise HTTPException(415, "content-type must be application/json or application/x-ndjson")
        result = webhook.parse_body(
            body, "application/x-ndjson" if ctype in NDJSON else ctype,
            max_event_bytes=settings.webhook_max_event_bytes, max_batch_bytes=settings.webhook_max_batch_bytes,
            max_events=settings.webhook_max_batch_events, window=settings.webhook_window())
        n = len(result.events) + len(result.errors)
        sink.received(ADAPTER, n)
        errors = list(result.errors)
        if not result.events and not errors:
            errors.append(webhook.WebhookError("body", "no events"))
        for i, ev in enumerate(result.events):
            src = ev.envelope.source
            if src != source and not src.startswith(source + "/"):
                errors.append(webhook.WebhookError(
                    f"events[{i}].envelope.source" if n > 1 else "event.envelope.source",
                    f"{src!r} is not this token's source {source!r} (or {source!r}/<instance>)"))
        if errors:
            too_large = _too_large(errors)
            sink.rejected(ADAPTER, "too_large" if too_large else "invalid", max(n, 1))
            return JSONResponse(_error_body(errors), status_code=413 if too_large else 422)
        fresh, duplicates, seen = [], 0, set()
        for ev in result.events:
            eid = ev.envelope.event_id
            if eid in seen or eid in recent:
                duplicates += 1
                continue
            seen.add(eid)
            fresh.append(ev)
        if duplicates:
            sink.rejected(ADAPTER, "duplicate", duplicates)
        if fresh:
            try:
                future = await asyncio.to_thread(sink.submit, fresh, ADAPTER)
                await asyncio.wait_for(asyncio.wrap_future(future), settings.produce_timeout_s)
            except (TimeoutError, DeliveryError) as exc:
                sink.rejected(ADAPTER, "kafka_unavailable", len(fresh))
                reason = str(exc) or f"no confirmation within {settings.produce_timeout_s} s"
                raise HTTPException(503, f"Kafka did not confirm the batch ({reason}); nothing acknowledged, retry",
                                    headers={"Retry-After": "5"}) from None
            recent.add_all([ev.envelope.event_id for ev in fresh])
        return Accepted(accepted=len(result.events), produced=len(fresh), duplicates=duplicates)

    app.include_router(api)
    return app
