"""HTTP webhook payload: strict pydantic models over the protobuf JSON mapping of
CallEvent / AgentEvent, then conversion with ``json_format.ParseDict``.

Bodies: one JSON object, a JSON array of objects, or NDJSON (one object per line).
Errors carry the field path, e.g. ``events[3].envelope.occurredAt: ...``. Event times outside the
caller's window (``EventTimeWindow``: how far ahead of and behind the clock) are refused here, at the
edge, so a year-9999 event never reaches a stream that does arithmetic on it.
"""

from __future__ import annotations

import json
import math
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from google.protobuf import json_format
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, JsonValue, StringConstraints, ValidationError

from callstream.agent.v1 import agent_events_pb2 as ae
from callstream.call.v1 import call_events_pb2 as ce
from callstream_core.event_checks import EventTimeWindow

MAX_EVENT_BYTES = 16 * 1024
MAX_BATCH_BYTES = 4 * 1024 * 1024
MAX_BATCH_EVENTS = 5000
# Deepest JSON nesting accepted: an event in the protobuf JSON mapping is at most ~6 levels deep; the
# limit sits far below the interpreter's recursion limit, which a 1,000-deep body used to hit (a 500).
MAX_JSON_DEPTH = 32

Key = Annotated[str, StringConstraints(min_length=1, max_length=128, strip_whitespace=False)]
Text = Annotated[str, StringConstraints(max_length=200)]

CALL_KINDS = frozenset(f.json_name for f in ce.CallEvent.DESCRIPTOR.oneofs_by_name["kind"].fields)
AGENT_KINDS = frozenset(f.json_name for f in ae.AgentEvent.DESCRIPTOR.oneofs_by_name["kind"].fields)
_KIND_FIELDS = {f.json_name: f.name for m in (ce.CallEvent, ae.AgentEvent)
                for f in m.DESCRIPTOR.oneofs_by_name["kind"].fields}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_STRICT = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, str_max_length=1000)


class EnvelopeIn(BaseModel):
    model_config = _STRICT
    eventId: Annotated[str, StringConstraints(min_length=36, max_length=36)]
    occurredAt: AwareDatetime
    source: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    schemaVersion: Annotated[int, Field(ge=1, le=1000)]


class EventIn(BaseModel):
    """Union shape of CallEvent and AgentEvent in the protobuf JSON mapping."""

    model_config = _STRICT
    envelope: EnvelopeIn
    callId: Key | None = None
    agentId: Key | None = None
    # Kind payloads: validated by ParseDict against the proto message.
    kinds: dict[str, JsonValue] = Field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class WebhookError:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


def _loc(prefix: str, loc: tuple[int | str, ...]) -> str:
    out = prefix
    for p in loc:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def _finite(v: Any) -> bool:
    if isinstance(v, float):
        return math.isfinite(v)
    if isinstance(v, dict):
        return all(_finite(x) for x in v.values())
    if isinstance(v, list):
        return all(_finite(x) for x in v)
    return True


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def _too_deep(value: Any, limit: int) -> bool:
    """Whether JSON `value` nests deeper than `limit` (iterative: no recursion on hostile input)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        for child in children:
            if isinstance(child, dict | list):
                if depth + 1 > limit:
                    return True
                stack.append((child, depth + 1))
    return False


def _load(text: str) -> Any:
    """json.loads refusing NaN/Infinity and nesting deeper than MAX_JSON_DEPTH (ValueError with the reason)."""
    try:
        doc = json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise ValueError(f"nested deeper than {MAX_JSON_DEPTH} levels") from None
    if isinstance(doc, dict | list) and _too_deep(doc, MAX_JSON_DEPTH):
        raise ValueError(f"nested deeper than {MAX_JSON_DEPTH} levels")
    return doc


def convert_event(obj: Any, path: str = "event", *, window: EventTimeWindow | None = None,
                  now: datetime | None = None) -> tuple[ce.CallEvent | ae.AgentEvent | None, list[WebhookError]]:
    """Validate one decoded JSON object and convert it to a protobuf event; with `window`, its event time
    must lie in the window around `now` (default: the clock)."""
    if not isinstance(obj, dict):
        return None, [WebhookError(path, "event must be a JSON object")]
    if not _finite(obj):
        return None, [WebhookError(path, "NaN/Infinity are not allowed")]
    if "kinds" in obj:
        return None, [WebhookError(f"{path}.kinds", "Extra inputs are not permitted")]
    kind_keys = [k for k in obj if k in CALL_KINDS or k in AGENT_KINDS]
    base = {k: v for k, v in obj.items() if k not in kind_keys}
    base["kinds"] = {k: obj[k] for k in kind_keys}
    try:
        model = EventIn.model_validate_json(json.dumps(base))
    except ValidationError as e:
        errs = []
        for err in e.errors():
            loc = tuple(x for x in err["loc"] if x != "kinds")
            text = err["msg"]
            if err["type"] == "timezone_aware":
                text = "timestamp must carry a UTC offset"
            errs.append(WebhookError(_loc(path, loc), text))
        return None, errs
    errors: list[WebhookError] = []
    try:
        uuid.UUID(model.envelope.eventId)
    except ValueError:
        errors.append(WebhookError(f"{path}.envelope.eventId", "must be a UUID"))
    if (model.callId is None) == (model.agentId is None):
        errors.append(WebhookError(path, "exactly one of callId / agentId must be set"))
    if len(kind_keys) != 1:
        errors.append(WebhookError(path, f"exactly one event kind must be set, got {len(kind_keys)}"))
    if errors:
        return None, errors
    kind = kind_keys[0]
    is_call = model.callId is not None
    if kind not in (CALL_KINDS if is_call else AGENT_KINDS):
        return None, [WebhookError(f"{path}.{kind}", f"not a {'call' if is_call else 'agent'} event kind")]
    payload = model.kinds[kind]
    if not isinstance(payload, dict):
        return None, [WebhookError(f"{path}.{kind}", "an event kind must be a JSON object")]
    # The envelope was validated above: set it directly (json_format's generic parse of it, with the
    # timestamp printed and parsed again, was most of a webhook event's cost). Event time at ms precision.
    micros = (model.envelope.occurredAt - _EPOCH) // _MICROSECOND
    ms = micros // 1000
    if window is not None:
        problem = window.problem(ms // 1000, now or datetime.now(UTC))
        if problem is not None:
            return None, [WebhookError(f"{path}.envelope.occurredAt", problem)]
    msg: ce.CallEvent | ae.AgentEvent = (ce.CallEvent(call_id=model.callId) if is_call
                                         else ae.AgentEvent(agent_id=model.agentId))
    msg.envelope.event_id = model.envelope.eventId
    msg.envelope.source = model.envelope.source
    msg.envelope.schema_version = model.envelope.schemaVersion
    msg.envelope.occurred_at.seconds, msg.envelope.occurred_at.nanos = ms // 1000, ms % 1000 * 1_000_000
    target = getattr(msg, _KIND_FIELDS[kind])
    target.SetInParent()  # an empty payload ({} for "ready") still sets the kind
    try:
        json_format.ParseDict(payload, target, ignore_unknown_fields=False)
    except json_format.ParseError as e:
        return None, [WebhookError(f"{path}.{kind}", str(e)[:300])]
    return msg, []


@dataclass(slots=True)
class WebhookResult:
    events: list[ce.CallEvent | ae.AgentEvent]
    errors: list[WebhookError]


def parse_body(
    body: bytes,
    content_type: str = "application/json",
    *,
    max_event_bytes: int = MAX_EVENT_BYTES,
    max_batch_bytes: int = MAX_BATCH_BYTES,
    max_events: int = MAX_BATCH_EVENTS,
    window: EventTimeWindow | None = None,
    now: datetime | None = None,
) -> WebhookResult:
    """Parse a JSON object, JSON array or NDJSON body (``application/x-ndjson``).

    A body over ``max_batch_bytes`` or with more than ``max_events`` is rejected whole; an event over
    ``max_event_bytes`` is rejected alone. Valid events are returned alongside per-event errors. With
    `window`, an event time outside it (around `now`, default the clock) is an error of that event.
    """
    now = now or datetime.now(UTC)
    if len(body) > max_batch_bytes:
        return WebhookResult([], [WebhookError("body", f"body exceeds {max_batch_bytes} bytes")])
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return WebhookResult([], [WebhookError("body", "not UTF-8")])
    items: list[tuple[str, str]] = []  # (path, raw json)
    if "ndjson" in content_type or "jsonl" in content_type:
        idx = 0
        for line in text.split("\n"):
            if line.strip():
                items.append((f"events[{idx}]", line))
                idx += 1
    else:
        try:
            doc = _load(text)
        except ValueError as e:
            return WebhookResult([], [WebhookError("body", f"invalid JSON: {e}")])
        if isinstance(doc, list):
            items = [(f"events[{i}]", json.dumps(x)) for i, x in enumerate(doc)]
        else:
            items = [("event", text)]
    if len(items) > max_events:
        return WebhookResult([], [WebhookError("body", f"more than {max_events} events")])
    result = WebhookResult([], [])
    for path, raw in items:
        if len(raw.encode()) > max_event_bytes:
            result.errors.append(WebhookError(path, f"event exceeds {max_event_bytes} bytes"))
            continue
        try:
            obj = _load(raw)
        except ValueError as e:
            result.errors.append(WebhookError(path, f"invalid JSON: {e}"))
            continue
        ev, errs = convert_event(obj, path, window=window, now=now)
        if ev is not None:
            result.events.append(ev)
        result.errors.extend(errs)
    return result
