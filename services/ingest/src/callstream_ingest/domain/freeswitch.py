"""FreeSWITCH: event-socket plain-text framing and mod_callcenter ``CUSTOM callcenter::info`` mapping.

Framing: an outer header block (``Key: Value`` lines ended by a blank line); when it has
``Content-Length`` a body of that many bytes follows. For ``text/event-plain`` the body is again a
header block with URL-encoded values (optionally followed by its own ``Content-Length`` body).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeAlias
from urllib.parse import unquote

from callstream.agent.v1 import agent_events_pb2 as ae
from callstream.call.v1 import call_events_pb2 as ce
from callstream_ingest.domain.events import agent_event, call_event
from callstream_ingest.domain.identity import AgentDirectory, caller_hash

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
# CC-Cancel-Reason of a member-queue-end with CC-Cause Cancel (mod_callcenter.c): NONE is set when the
# member's channel went down (the caller hung up); the others leave the caller on the line, out of the queue.
_LEFT_QUEUE = {"TIMEOUT": "timeout", "NO_AGENT_TIMEOUT": "no_agent", "BREAK_OUT": "break_out",
               "EXIT_WITH_KEY": "key"}
# CC-Hangup-Cause of a bridge-agent-fail that is no unanswered ring: another agent won a ring-all race, or
# the caller left while the agent's phone rang (the member-queue-end says so).
_NOT_A_RING_NO_ANSWER = {"LOSE_RACE", "ORIGINATOR_CANCEL"}
# mod_callcenter events that carry no Callstream event of their own, and why (docs/ingest.md has the table).
IGNORED_ACTIONS: Mapping[str, str] = {
    "members-count": "the number of callers in a queue: Callstream counts its own from the calls",
    "agent-add": "an agent created in mod_callcenter's tables (status Logged Out): its status changes follow",
    "agent-contact-change": "the agent's dial string changed: no state of the agent or of a call",
    "agent-max-no-answer": "the agent missed max-no-answer calls; the status change mod_callcenter makes next "
                           "(agent-status-change, usually On Break) is mapped",
    "member-queue-end(Terminated)": "the end of a bridged member: bridge-agent-end already ended the call",
}


@dataclass(slots=True)
class _AfterCall:
    """An agent whose bridge ended: in wrap-up until its state says it takes calls again."""

    call_id: str
    queue: str
    on_demand_idle: bool = False  # an Available (On Demand) agent goes Idle after a call: wrap-up until Waiting


class CallcenterMapper:
    """mod_callcenter events (headers dict) -> Callstream events.

    Call id = ``CC-Member-Session-UUID`` (the caller's channel: on every event of the member). Agent =
    the directory's id for ``CC-Agent``. Event time = ``Event-Date-Timestamp`` (microseconds).

    Wrap-up: mod_callcenter says when it ends for an agent whose status is Available (On Demand): the agent
    state goes Idle when the bridge ends and Waiting when the agent takes calls again; that Waiting is the
    leg's ``wrap_up_ended``. An Available agent's state is Waiting again as soon as the bridge ends (its
    ``wrap-up-time`` runs unseen in mod_callcenter's tables), so its wrap_up_ended comes with that state:
    the ACW is what the events show, 0 there, and the agent's configured wrap-up time is not invented."""

    def __init__(self, source: str = "freeswitch-callcenter", caller_salt: str = "callstream", *,
                 agents: AgentDirectory | None = None) -> None:
        self.source = source
        self.caller_salt = caller_salt
        self.agents = agents if agents is not None else AgentDirectory()
        self.summary = CallcenterSummary()
        self.last_defect: str | None = None  # reason code when the last map() found the event defective
        self._after_call: dict[str, _AfterCall] = {}  # agent -> the call it wraps up

    def _bad(self, reason: str) -> list[Event]:
        self.summary.defects_by_reason[reason] += 1
        self.last_defect = reason
        return []

    def _ignore(self, reason_key: str) -> list[Event]:
        self.summary.ignored_by_action[reason_key] += 1
        return []

    def map(self, h: Headers) -> list[Event]:
        self.last_defect = None
        if h.get("Event-Subclass") != "callcenter::info":
            return self._ignore(f"<{h.get('Event-Name', '')}>")
        try:
            when = datetime.fromtimestamp(int(h["Event-Date-Timestamp"]) / 1_000_000, UTC)
        except (KeyError, ValueError, OverflowError, OSError):
            return self._bad("bad_timestamp")
        out = self._map(h.get("CC-Action", ""), h, when)
        for e in out:
            self.summary.events_by_kind[e.WhichOneof("kind") or ""] += 1
        return out

    def _map(self, action: str, h: Headers, when: datetime) -> list[Event]:  # noqa: C901 (one flat dispatch over mod_callcenter's actions)
        call_id = h.get("CC-Member-Session-UUID", "")
        agent_id = self.agents.agent_id(h.get("CC-Agent", ""))
        queue = h.get("CC-Queue", "")
        key = h.get("Event-UUID") or "|".join(f"{k}={v}" for k, v in sorted(h.items()))
        out: list[Event] = []

        def call(kind: str, payload: object) -> None:
            out.append(call_event(self.source, key, call_id, when, kind, payload))

        def agent(kind: str, payload: object, about: str = key) -> None:
            out.append(agent_event(self.source, about, agent_id, when, kind, payload))

        agent_actions = {"agent-status-change", "agent-state-change", "agent-offering", "bridge-agent-start",
                         "bridge-agent-end", "bridge-agent-fail"}
        call_actions = {"agent-offering", "bridge-agent-start", "bridge-agent-end", "bridge-agent-fail",
                        "member-queue-start", "member-queue-end", "member-queue-resume"}
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
            return self._state_change(h.get("CC-Agent-State", ""), agent_id, when, key)
        elif action == "agent-offering":
            call("ringing", ce.AgentRinging(agent_id=agent_id, queue_id=queue))
            agent("reserved", ae.Reserved(call_id=call_id, queue_id=queue))
        elif action == "bridge-agent-start":
            call("answered", ce.CallAnswered(agent_id=agent_id, queue_id=queue))
            agent("talking", ae.Talking(call_id=call_id, queue_id=queue))
        elif action == "bridge-agent-end":
            call("ended", ce.CallEnded(agent_id=agent_id))
            agent("after_call_work", ae.AfterCallWork(call_id=call_id, queue_id=queue))
            self._after_call[agent_id] = _AfterCall(call_id, queue)
        elif action == "bridge-agent-fail":
            cause = h.get("CC-Hangup-Cause", "")
            if cause in _NOT_A_RING_NO_ANSWER:
                return self._ignore(f"bridge-agent-fail({cause})")
            try:
                ring_ms = max(0, int(h["CC-Agent-Aborted-Time"]) - int(h["CC-Agent-Called-Time"])) * 1000
            except (KeyError, ValueError):
                ring_ms = 0
            call("ring_no_answer", ce.RingNoAnswer(agent_id=agent_id, queue_id=queue, ring_ms=ring_ms))
        elif action == "member-queue-start":
            context = ce.CallContext(queue_id=queue, caller_hash=caller_hash(self.caller_salt,
                                                                          h.get("CC-Member-CID-Number", "")))
            call("offered", ce.CallOffered(context=context))
            call("queued", ce.CallQueued(queue_id=queue))
        elif action == "member-queue-resume":
            call("queued", ce.CallQueued(queue_id=queue))
        elif action == "member-queue-end":
            cause, why = h.get("CC-Cause", ""), h.get("CC-Cancel-Reason", "")
            if cause == "Terminated":
                return self._ignore("member-queue-end(Terminated)")
            if cause != "Cancel":
                return self._bad("unknown_cc_cause")
            if why == "NONE":
                call("abandoned", ce.CallAbandoned(queue_id=queue, phase=ce.CallAbandoned.PHASE_IN_QUEUE))
                call("ended", ce.CallEnded(hung_up_by=ce.CallEnded.PARTY_CALLER))
            elif why in _LEFT_QUEUE:
                exit_key = h.get("variable_cc_exit_key", "") if why == "EXIT_WITH_KEY" else ""
                call("overflowed", ce.CallOverflowed(from_queue_id=queue,
                                                     reason=_LEFT_QUEUE[why] + (f":{exit_key}" if exit_key else "")))
            else:
                return self._bad("unknown_cancel_reason")
        else:
            return self._ignore(action)
        return out

    def _state_change(self, state: str, agent_id: str, when: datetime, key: str) -> list[Event]:
        """Waiting: the agent takes calls (the end of a wrap-up it was in); Idle after a call: an on-demand
        agent's wrap-up, until Waiting; Receiving, In a queue call, Reserved: the offering and bridge events
        say it with the call."""
        after = self._after_call.get(agent_id)
        if state == "Idle" and after is not None:
            after.on_demand_idle = True
            return self._ignore("agent-state-change(Idle after a call: wrap-up)")
        if state != "Waiting":
            return self._ignore(f"agent-state-change({state})")
        out: list[Event] = []
        if after is not None:
            del self._after_call[agent_id]
            out.append(call_event(self.source, key, after.call_id, when, "wrap_up_ended",
                                  ce.WrapUpEnded(agent_id=agent_id)))
        out.append(agent_event(self.source, key, agent_id, when, "ready", ae.Ready()))
        return out
