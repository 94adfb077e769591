"""Asterisk Manager Interface: incremental framing over bytes, event mapping, login action.

Framing: ``Key: Value\\r\\n`` lines, a blank line ends a message. The first line after
connecting is the banner (``Asterisk Call Manager/x.y``) without a blank line.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeAlias

from callstream.agent.v1 import agent_events_pb2 as ae
from callstream.call.v1 import call_events_pb2 as ce
from callstream_ingest.domain.events import agent_event, call_event

Message: TypeAlias = dict[str, str]
Event: TypeAlias = ce.CallEvent | ae.AgentEvent
MAX_MESSAGE_BYTES = 64 * 1024


class AmiFramingError(ValueError):
    pass


def _escape(v: str) -> str:
    if "\r" in v or "\n" in v:
        raise ValueError("AMI values cannot contain line breaks")
    return v


def login_action(username: str, secret: str, action_id: str = "login-1", events: str = "on") -> bytes:
    """The ``Action: Login`` message text."""
    lines = [
        "Action: Login",
        f"ActionID: {_escape(action_id)}",
        f"Username: {_escape(username)}",
        f"Secret: {_escape(secret)}",
        f"Events: {_escape(events)}",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@dataclass(slots=True)
class AmiParser:
    """Feed bytes, get complete messages (dict of headers; repeated keys: last wins).

    A message block that is not ``Key: Value`` lines is set aside in ``malformed`` (raw block, reason) and
    parsing goes on: the blank line still marks where the next message starts. Only a message larger than
    ``max_message_bytes`` raises (the stream can no longer be trusted; the client reconnects)."""

    max_message_bytes: int = MAX_MESSAGE_BYTES
    banner: str | None = None
    malformed: list[tuple[bytes, str]] = field(default_factory=list)
    _buf: bytearray = field(default_factory=bytearray)

    def feed(self, data: bytes) -> list[Message]:
        self._buf += data
        out: list[Message] = []
        if self.banner is None:
            nl = self._buf.find(b"\n")
            if nl < 0:
                self._check()
                return out
            self.banner = self._buf[:nl].decode("utf-8", "replace").rstrip("\r")
            del self._buf[: nl + 1]
        while True:
            end, sep = self._find_end()
            if end < 0:
                self._check()
                return out
            block = bytes(self._buf[:end])
            del self._buf[: end + sep]
            msg: Message = {}
            for raw in block.split(b"\n"):
                line = raw.rstrip(b"\r").decode("utf-8", "replace")
                if not line:
                    continue
                k, colon, v = line.partition(":")
                if not colon:
                    self.malformed.append((block, f"header line without ':': {line[:80]!r}"))
                    msg = {}
                    break
                msg[k.strip()] = v.strip()
            if msg:
                out.append(msg)

    def _find_end(self) -> tuple[int, int]:
        a = self._buf.find(b"\r\n\r\n")
        b = self._buf.find(b"\n\n")
        if a >= 0 and (b < 0 or a <= b):
            return a, 4
        return (b, 2) if b >= 0 else (-1, 0)

    def _check(self) -> None:
        if len(self._buf) > self.max_message_bytes:
            raise AmiFramingError(f"message exceeds {self.max_message_bytes} bytes")


@dataclass(slots=True)
class AmiSummary:
    events_by_kind: Counter[str] = field(default_factory=Counter)
    ignored_by_event: Counter[str] = field(default_factory=Counter)
    defects_by_reason: Counter[str] = field(default_factory=Counter)


def _uint(s: str) -> int:
    try:
        return max(int(s), 0)
    except ValueError:
        return 0


class AmiEventMapper:
    """Map AMI events to Callstream events. Event time = ``Timestamp`` header (``timestampevents=yes``)
    when present, else the ``received_at`` given by the caller. Call id = ``Linkedid`` (else ``Uniqueid``)."""

    def __init__(self, source: str = "asterisk-ami") -> None:
        self.source = source
        self.summary = AmiSummary()
        self.last_defect: str | None = None  # reason code when the last map() found the event defective

    def _bad(self, reason: str) -> list[Event]:
        self.summary.defects_by_reason[reason] += 1
        self.last_defect = reason
        return []

    def map(self, msg: Message, received_at: datetime) -> list[Event]:
        self.last_defect = None
        name = msg.get("Event", "")
        if not name:
            self.summary.ignored_by_event["<response>"] += 1
            return []
        when = received_at
        if "Timestamp" in msg:
            try:
                when = datetime.fromtimestamp(float(msg["Timestamp"]), UTC)
            except (ValueError, OverflowError, OSError):
                return self._bad("bad_timestamp")
        call_id = msg.get("Linkedid") or msg.get("Uniqueid", "")
        queue = msg.get("Queue", "")
        member = msg.get("Interface") or msg.get("MemberName", "")
        key = "|".join(f"{k}={v}" for k, v in sorted(msg.items()))
        out: list[Event] = []

        def call(kind: str, payload: object) -> None:
            out.append(call_event(self.source, key, call_id, when, kind, payload))

        def agent(kind: str, payload: object) -> None:
            out.append(agent_event(self.source, key, member, when, kind, payload))

        needs_call = name in {
            "QueueCallerJoin",
            "QueueCallerLeave",
            "QueueCallerAbandon",
            "AgentCalled",
            "AgentConnect",
            "AgentComplete",
            "AgentRingNoAnswer",
            "AgentDump",
            "Hangup",
        }
        if needs_call and not call_id:
            return self._bad("missing_call_id")
        needs_agent = name in {
            "AgentCalled",
            "AgentConnect",
            "AgentComplete",
            "AgentRingNoAnswer",
            "QueueMemberPause",
            "QueueMemberAdded",
            "QueueMemberRemoved",
            "QueueMemberStatus",
        }
        if needs_agent and not member:
            return self._bad("missing_agent")
        if name == "QueueCallerJoin":
            ctx = ce.CallContext(queue_id=queue)
            call("offered", ce.CallOffered(context=ctx))
            call("queued", ce.CallQueued(queue_id=queue, position=_uint(msg.get("Position", "0"))))
        elif name == "QueueCallerAbandon":
            call(
                "abandoned",
                ce.CallAbandoned(
                    queue_id=queue, phase=ce.CallAbandoned.PHASE_IN_QUEUE, position=_uint(msg.get("Position", "0"))
                ),
            )
        elif name == "AgentCalled":
            call("ringing", ce.AgentRinging(agent_id=member, queue_id=queue))
            agent("reserved", ae.Reserved(call_id=call_id, queue_id=queue))
        elif name == "AgentConnect":
            call("answered", ce.CallAnswered(agent_id=member, queue_id=queue))
            agent("talking", ae.Talking(call_id=call_id, queue_id=queue))
        elif name == "AgentComplete":
            party = ce.CallEnded.PARTY_CALLER if msg.get("Reason") == "caller" else ce.CallEnded.PARTY_AGENT
            call("ended", ce.CallEnded(agent_id=member, hung_up_by=party))
            agent("after_call_work", ae.AfterCallWork(call_id=call_id, queue_id=queue))
        elif name == "AgentRingNoAnswer":
            call(
                "ring_no_answer",
                ce.RingNoAnswer(agent_id=member, queue_id=queue, ring_ms=_uint(msg.get("RingTime", "0")) * 1000),
            )
        elif name == "AgentDump":
            call("ended", ce.CallEnded(agent_id=member, hung_up_by=ce.CallEnded.PARTY_AGENT))
        elif name == "Hangup":
            # Only the leg that owns the call (Uniqueid == Linkedid) ends it.
            if msg.get("Uniqueid", call_id) != call_id:
                self.summary.ignored_by_event["Hangup(other leg)"] += 1
                return []
            call("ended", ce.CallEnded(hung_up_by=ce.CallEnded.PARTY_UNSPECIFIED))
        elif name == "QueueMemberPause":
            if msg.get("Paused") == "1":
                agent(
                    "not_ready",
                    ae.NotReady(
                        reason=ae.NOT_READY_REASON_OTHER, detail=msg.get("PausedReason", msg.get("Reason", ""))[:200]
                    ),
                )
            else:
                agent("ready", ae.Ready())
        elif name in ("QueueMemberAdded", "QueueMemberRemoved"):
            agent(
                "queue_membership_changed",
                ae.QueueMembershipChanged(
                    queue_id=queue, member=name == "QueueMemberAdded", queue_priority=_uint(msg.get("Penalty", "0"))
                ),
            )
        elif name == "QueueMemberStatus":
            # Status 1 = not in use (idle); paused members are reported by QueueMemberPause.
            if msg.get("Status") == "1" and msg.get("Paused", "0") == "0":
                agent("ready", ae.Ready())
            else:
                self.summary.ignored_by_event[f"QueueMemberStatus({msg.get('Status', '')})"] += 1
                return []
        else:
            self.summary.ignored_by_event[name] += 1  # incl. QueueCallerLeave: outcome comes from other events
            return []
        for e in out:
            self.summary.events_by_kind[e.WhichOneof("kind") or ""] += 1
        return out
