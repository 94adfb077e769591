"""FreeSWITCH: event-socket plain-text framing and mod_callcenter ``CUSTOM callcenter::info`` mapping.

Framing: an outer header block (``Key: Value`` lines ended by a blank line); when it has
``Content-Length`` a body of that many bytes follows. For ``text/event-plain`` the body is again a
header block with URL-encoded values (optionally followed by its own ``Content-Length`` body).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeAlias
from urllib.parse import unquote

from callstream.agent.v1 import agent_events_pb2 as ae
from callstream.call.v1 import call_events_pb2 as ce
from callstream_ingest.domain.events import agent_event, call_event

Headers: TypeAlias = dict[str, str]
Event: TypeAlias = ce.CallEvent | ae.AgentEvent
MAX_FRAME_BYTES = 1024 * 1024


class EslFramingError(ValueError):
    pass


def _headers(block: bytes, decode: bool) -> Headers:
    out: Headers = {}
    for raw in block.split(b"\n"):
        line = raw.rstrip(b"\r").decode("utf-8", "replace")
        if not line:
            continue
        k, colon, v = line.partition(":")
        if not colon:
            raise EslFramingError(f"header line without ':': {line[:80]!r}")
        out[k.strip()] = unquote(v.strip()) if decode else v.strip()
    return out


@dataclass(frozen=True, slots=True)
class EslFrame:
    headers: Headers
    body: bytes

    def event(self) -> Headers | None:
        """The event headers of a ``text/event-plain`` frame (values URL-decoded; inner body as ``_body``)."""
        if self.headers.get("Content-Type") != "text/event-plain":
            return None
        end = self.body.find(b"\n\n")
        block, rest = (self.body, b"") if end < 0 else (self.body[:end], self.body[end + 2 :])
        ev = _headers(block, decode=True)
        if "Content-Length" in ev:
            try:
                n = int(ev["Content-Length"])
            except ValueError:
                raise EslFramingError(f"bad inner Content-Length {ev['Content-Length']!r}") from None
            ev["_body"] = rest[:n].decode("utf-8", "replace")
        return ev


@dataclass(slots=True)
class EslParser:
    """Feed bytes, get complete frames."""

    max_frame_bytes: int = MAX_FRAME_BYTES
    _buf: bytearray = field(default_factory=bytearray)

    def unfinished(self) -> bytes:
        """The bytes of a frame begun and not ended (what a dropped connection cut off); clears them."""
        rest = bytes(self._buf)
        self._buf.clear()
        return rest

    def feed(self, data: bytes) -> list[EslFrame]:
        self._buf += data
        out: list[EslFrame] = []
        while True:
            end = self._buf.find(b"\n\n")
            if end < 0:
                if len(self._buf) > self.max_frame_bytes:
                    raise EslFramingError("header block too large")
                return out
            hdr = _headers(bytes(self._buf[:end]), decode=False)
            length = 0
            if "Content-Length" in hdr:
                try:
                    length = int(hdr["Content-Length"])
                except ValueError:
                    raise EslFramingError(f"bad Content-Length {hdr['Content-Length']!r}") from None
                if length < 0 or length > self.max_frame_bytes:
                    raise EslFramingError(f"Content-Length {length} out of range")
            if len(self._buf) < end + 2 + length:
                return out
            body = bytes(self._buf[end + 2 : end + 2 + length])
            del self._buf[: end + 2 + length]
            if hdr:
                out.append(EslFrame(hdr, body))


@dataclass(slots=True)
class CallcenterSummary:
    events_by_kind: Counter[str] = field(default_factory=Counter)
    ignored_by_action: Counter[str] = field(default_factory=Counter)
    defects_by_reason: Counter[str] = field(default_factory=Counter)


_STATUS = {
    "Available": "ready",
    "Available (On Demand)": "ready",
    "On Break": "not_ready",
    "Logged Out": "logged_out",
}


class CallcenterMapper:
    """mod_callcenter events (headers dict) -> Callstream events. Call id = ``CC-Member-Session-UUID``."""

    def __init__(self, source: str = "freeswitch-callcenter") -> None:
        self.source = source
        self.summary = CallcenterSummary()
        self.last_defect: str | None = None  # reason code when the last map() found the event defective

    def _bad(self, reason: str) -> list[Event]:
        self.summary.defects_by_reason[reason] += 1
        self.last_defect = reason
        return []

    def map(self, h: Headers) -> list[Event]:
        self.last_defect = None
        if h.get("Event-Subclass") != "callcenter::info":
            self.summary.ignored_by_action[f"<{h.get('Event-Name', '')}>"] += 1
            return []
        action = h.get("CC-Action", "")
        try:
            when = datetime.fromtimestamp(int(h["Event-Date-Timestamp"]) / 1_000_000, UTC)
        except (KeyError, ValueError, OverflowError, OSError):
            return self._bad("bad_timestamp")
        call_id = h.get("CC-Member-Session-UUID") or h.get("CC-Member-UUID", "")
        agent_id = h.get("CC-Agent", "")
        queue = h.get("CC-Queue", "")
        key = h.get("Event-UUID") or "|".join(f"{k}={v}" for k, v in sorted(h.items()))
        out: list[Event] = []

        def call(kind: str, payload: object) -> None:
            out.append(call_event(self.source, key, call_id, when, kind, payload))

        def agent(kind: str, payload: object) -> None:
            out.append(agent_event(self.source, key, agent_id, when, kind, payload))

        agent_actions = {
            "agent-status-change",
            "agent-state-change",
            "agent-offering",
            "bridge-agent-start",
            "bridge-agent-end",
            "bridge-agent-fail",
        }
        call_actions = {
            "agent-offering",
            "bridge-agent-start",
            "bridge-agent-end",
            "bridge-agent-fail",
            "member-queue-start",
            "member-queue-end",
            "member-queue-resume",
        }
        if action in agent_actions and not agent_id:
            return self._bad("missing_agent")
        if action in call_actions and not call_id:
            return self._bad("missing_call_id")
        if action == "agent-status-change":
            status = h.get("CC-Agent-Status", "")
            kind = _STATUS.get(status)
            if kind == "ready":
                agent("ready", ae.Ready())
            elif kind == "not_ready":
                agent("not_ready", ae.NotReady(reason=ae.NOT_READY_REASON_BREAK, detail=status))
            elif kind == "logged_out":
                agent("logged_out", ae.LoggedOut())
            else:
                return self._bad("unknown_agent_status")
        elif action == "agent-state-change":
            # Waiting = idle and routable; Receiving / In a queue call come with offering / bridge events.
            if h.get("CC-Agent-State") == "Waiting":
                agent("ready", ae.Ready())
            else:
                self.summary.ignored_by_action[f"agent-state-change({h.get('CC-Agent-State', '')})"] += 1
        elif action == "agent-offering":
            call("ringing", ce.AgentRinging(agent_id=agent_id, queue_id=queue))
            agent("reserved", ae.Reserved(call_id=call_id, queue_id=queue))
        elif action == "bridge-agent-start":
            call("answered", ce.CallAnswered(agent_id=agent_id, queue_id=queue))
            agent("talking", ae.Talking(call_id=call_id, queue_id=queue))
        elif action == "bridge-agent-end":
            call("ended", ce.CallEnded(agent_id=agent_id))
            agent("after_call_work", ae.AfterCallWork(call_id=call_id, queue_id=queue))
        elif action == "bridge-agent-fail":
            call("ring_no_answer", ce.RingNoAnswer(agent_id=agent_id, queue_id=queue))
        elif action == "member-queue-start":
            call("offered", ce.CallOffered(context=ce.CallContext(queue_id=queue)))
            call("queued", ce.CallQueued(queue_id=queue))
        elif action == "member-queue-resume":
            call("queued", ce.CallQueued(queue_id=queue))
        elif action == "member-queue-end":
            cause, why = h.get("CC-Cause", ""), h.get("CC-Cancel-Reason", "NONE")
            if cause == "Terminated":  # served; the bridge events carry the outcome
                self.summary.ignored_by_action["member-queue-end(Terminated)"] += 1
            elif cause == "Cancel" and why in ("NONE", "BREAK_OUT", ""):
                call("abandoned", ce.CallAbandoned(queue_id=queue, phase=ce.CallAbandoned.PHASE_IN_QUEUE))
                call("ended", ce.CallEnded(hung_up_by=ce.CallEnded.PARTY_CALLER))
            elif cause == "Cancel":
                call("overflowed", ce.CallOverflowed(from_queue_id=queue, reason=why.lower()))
            else:
                return self._bad("unknown_cc_cause")
        else:
            self.summary.ignored_by_action[action] += 1  # incl. members-count
        for e in out:
            self.summary.events_by_kind[e.WhichOneof("kind") or ""] += 1
        return out
