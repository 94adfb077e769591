"""Asterisk Manager Interface: incremental framing over bytes, event mapping, login action.

Framing: ``Key: Value\\r\\n`` lines, a blank line ends a message. The first line after
connecting is the banner (``Asterisk Call Manager/x.y``) without a blank line.

Mapping (docs/ingest.md, "Asterisk AMI", has the table): app_queue's Queue* and Agent* events, the
channels' Hangup, Hold/Unhold and transfers. AMI never says when a member's wrap-up ends: the ``ended`` of
an answered call announces the queue's ``wrapuptime`` (``wrap_up_s``, from the adapter's configuration), as
the queue_log mapper does. A caller who leaves the queue by its timeout gets a QueueCallerAbandon like one
who hung up; the channel's ``QUEUESTATUS`` (a VarSet right after) tells them apart, so an abandon is settled
by that VarSet (overflowed) or by the channel's Hangup (abandoned).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TypeAlias

from callstream.agent.v1 import agent_events_pb2 as ae
from callstream.call.v1 import call_events_pb2 as ce
from callstream_ingest.domain.events import agent_event, call_event
from callstream_ingest.domain.identity import AgentDirectory, caller_hash
from callstream_ingest.domain.queue_log import PAUSE_REASONS

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


def filter_actions(action_id: str, filters: tuple[str, ...]) -> bytes:
    """``Action: Filter`` messages adding whitelist filters (only events matching one of them are sent)."""
    return b"".join(f"Action: Filter\r\nActionID: {_escape(action_id)}\r\nOperation: Add\r\n"
                    f"Filter: {_escape(f)}\r\n\r\n".encode() for f in filters)


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

    def unfinished(self) -> bytes:
        """The bytes of a message begun and not ended (what a dropped connection cut off); clears them."""
        rest = bytes(self._buf)
        self._buf.clear()
        return rest

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
    # Waiting calls a QueueStatus after a (re)connect told of that no event had: offered at Wait seconds ago.
    recovered_calls: int = 0


# AMI events that carry no Callstream event of their own, and why (docs/ingest.md has the table). Events not
# named here or handled in `AmiEventMapper.map` are counted as ignored under their own name.
IGNORED_EVENTS: Mapping[str, str] = {
    "QueueCallerLeave": "the caller left the queue; why comes with another event: AgentConnect (answered), "
                        "QueueCallerAbandon then the channel's Hangup (abandoned) or its QUEUESTATUS (timeout)",
    "DialBegin": "a queue call's ring is AgentCalled (with the member); a Dial outside a queue is no ACD ring",
    "DialEnd": "the ring's end of a queue call is AgentConnect or AgentRingNoAnswer",
    "VarSet": "channel variables; only QUEUESTATUS after a QueueCallerAbandon is read (a timeout, not a hang-up)",
    "QueueMemberStatus": "device state: NOT_INUSE right after a call is still the queue's wrapuptime, so it "
                         "is not 'ready'; pauses come as QueueMemberPause, calls as Agent* events",
    "MusicOnHoldStart": "music to a waiting caller, or to one on hold: the hold itself is the Hold event",
    "MusicOnHoldStop": "the end of that music: the end of a hold is the Unhold event",
    "QueueParams": "a queue's totals since Asterisk started (QueueStatus): Callstream counts its own",
    "QueueStatusComplete": "the end of a QueueStatus answer",
    "Agents": "the answer to an Agents action (app_agent_pool's agents); logins come as AgentLogin",
    "AgentsComplete": "the end of an Agents answer",
}

# QUEUESTATUS values app_queue sets when a caller leaves the queue without an agent while still on the line
# (app_queue.c); queue_log writes EXITWITHTIMEOUT / EXITEMPTY for them.
_LEFT_QUEUE = {"TIMEOUT": "timeout", "LEAVEEMPTY": "empty", "LEAVEUNAVAIL": "empty"}
_PARTY = {"caller": ce.CallEnded.PARTY_CALLER, "agent": ce.CallEnded.PARTY_AGENT,
          "transfer": ce.CallEnded.PARTY_AGENT}
_HOLD = {"Hold": "hold_started", "Unhold": "hold_ended"}


def _uint(s: str) -> int:
    try:
        return max(int(s), 0)
    except ValueError:
        return 0


@dataclass(slots=True)
class _QueueCall:
    """What the mapper knows of one queue call (the caller's channel in the queue) in this session."""

    queue: str
    linkedid: str = ""
    joined: bool = False
    answered: bool = False
    agent_id: str = ""
    member_channel: str = ""
    ended: bool = False
    # QueueCallerAbandon came: the caller hung up, or app_queue ended the wait (timeout), which its
    # QUEUESTATUS says next; (time, key) of the abandon, settled by that VarSet or the channel's Hangup.
    abandon: tuple[datetime, str] | None = None
    holds: set[str] = field(default_factory=set)


class AmiEventMapper:
    """Map AMI events to Callstream events; keeps what it learnt of the calls in progress.

    Call id = the ``Uniqueid`` of the caller's channel in the queue, what queue_log names the call: one id per
    queue call, on every queue event of it. ``Linkedid`` is shared by every channel of a conversation (the
    caller's other half, the members' channels, a transfer target): events of those channels (Hold, Hangup,
    transfers) are put to the queue call whose Linkedid they carry. Event time = ``Timestamp``
    (``timestampevents=yes``), else ``received_at``.

    The events that open a call (offered, queued, answered, the ring of the answering member) have ids from
    the call, not from the message: the same call learnt again after a reconnect (QueueStatus, an
    AgentComplete's HoldTime/TalkTime) gives the same event ids, which the sessionizer's dedup absorbs."""

    def __init__(self, source: str = "asterisk-ami", caller_salt: str = "callstream", *,
                 wrap_up_s: Mapping[str, float] | None = None, agents: AgentDirectory | None = None) -> None:
        self.source = source
        self.caller_salt = caller_salt
        # queue -> its wrapuptime in seconds (queues.conf): AMI never says when a member's wrap-up ends
        self.wrap_up_s = dict(wrap_up_s or {})
        self.agents = agents if agents is not None else AgentDirectory()
        self.summary = AmiSummary()
        self.last_defect: str | None = None  # reason code when the last map() found the event defective
        self._calls: dict[str, _QueueCall] = {}
        self._call_of_link: dict[str, str] = {}
        # (queue, member interface) -> the call the member was last rung for or answered: app_queue publishes
        # AgentRingNoAnswer / AgentComplete without channel fields when the caller's channel is gone already
        self._member_call: dict[tuple[str, str], str] = {}

    @property
    def open_calls(self) -> int:
        return len(self._calls)

    def _bad(self, reason: str) -> list[Event]:
        self.summary.defects_by_reason[reason] += 1
        self.last_defect = reason
        return []

    def _ignore(self, reason_key: str) -> list[Event]:
        self.summary.ignored_by_event[reason_key] += 1
        return []

    def _agent(self, msg: Message) -> str:
        return self.agents.agent_id(msg.get("MemberName", ""), msg.get("Interface", ""))

    def _wrap_up_ms(self, queue: str) -> int:
        return round(self.wrap_up_s.get(queue, 0.0) * 1000)

    def _track(self, call_id: str, queue: str, linkedid: str) -> _QueueCall:
        call = self._calls.get(call_id)
        if call is None:
            call = self._calls[call_id] = _QueueCall(queue=queue)
        call.queue = queue or call.queue
        if linkedid:
            call.linkedid = linkedid
            self._call_of_link[linkedid] = call_id
        return call

    def _forget(self, call_id: str) -> None:
        call = self._calls.pop(call_id, None)
        if call is not None and self._call_of_link.get(call.linkedid) == call_id:
            del self._call_of_link[call.linkedid]

    def _call_of(self, uniqueid: str, linkedid: str) -> str:
        if uniqueid in self._calls:
            return uniqueid
        return self._call_of_link.get(linkedid, "")

    def map(self, msg: Message, received_at: datetime) -> list[Event]:
        self.last_defect = None
        name = msg.get("Event", "")
        if not name:
            return self._ignore("<response>")
        when = received_at
        if "Timestamp" in msg:
            try:
                when = datetime.fromtimestamp(float(msg["Timestamp"]), UTC)
            except (ValueError, OverflowError, OSError):
                return self._bad("bad_timestamp")
        out = self._map(name, msg, when)
        for e in out:
            self.summary.events_by_kind[e.WhichOneof("kind") or ""] += 1
        return out

    def _map(self, name: str, msg: Message, when: datetime) -> list[Event]:  # noqa: C901 (one flat dispatch over AMI's event names)
        uniqueid, linkedid, queue = msg.get("Uniqueid", ""), msg.get("Linkedid", ""), msg.get("Queue", "")
        message_key = "|".join(f"{k}={v}" for k, v in sorted(msg.items()))
        out: list[Event] = []

        def call(call_id: str, kind: str, payload: object, at: datetime = when, key: str = message_key) -> None:
            out.append(call_event(self.source, key, call_id, at, kind, payload))

        def agent(agent_id: str, kind: str, payload: object, key: str = message_key) -> None:
            out.append(agent_event(self.source, key, agent_id, when, kind, payload))

        def opened(call_id: str, q: str, at: datetime, caller: str, position: int) -> None:
            out.extend(self._opened(call_id, q, linkedid, at, caller, position))

        queue_call_events = {"QueueCallerJoin", "QueueCallerAbandon", "AgentCalled", "AgentConnect",
                             "AgentRingNoAnswer", "AgentDump"}
        member_key = (queue, msg.get("Interface", ""))
        if name == "AgentRingNoAnswer" and not uniqueid:
            uniqueid = self._member_call.get(member_key, "")  # published after the caller's channel was gone
        if name in queue_call_events and not uniqueid:
            return self._bad("missing_call_id")
        member_events = {"AgentCalled", "AgentConnect", "AgentComplete", "AgentRingNoAnswer", "AgentDump",
                         "QueueMemberPause", "QueueMemberAdded", "QueueMemberRemoved"}
        if name in member_events and not (msg.get("Interface") or msg.get("MemberName")):
            return self._bad("missing_agent")
        if (name in queue_call_events or name == "AgentComplete") and not queue:
            return self._bad("missing_queue")

        if name == "QueueCallerJoin":
            opened(uniqueid, queue, when, msg.get("CallerIDNum", ""), _uint(msg.get("Position", "0")))
        elif name == "QueueCallerAbandon":
            c = self._track(uniqueid, queue, linkedid)
            wait = _uint(msg.get("HoldTime", "0"))
            opened(uniqueid, queue, when - timedelta(seconds=wait), msg.get("CallerIDNum", ""),
                   _uint(msg.get("OriginalPosition", "0")))
            c.abandon = (when, message_key)  # settled by the channel's QUEUESTATUS or its Hangup
            self.summary.ignored_by_event["QueueCallerAbandon(until QUEUESTATUS or Hangup)"] += 1
        elif name == "AgentCalled":
            aid = self._agent(msg)
            call(uniqueid, "ringing", ce.AgentRinging(agent_id=aid, queue_id=queue),
                 key=f"{uniqueid}|ring|{msg.get('DestUniqueid') or aid}")
            agent(aid, "reserved", ae.Reserved(call_id=uniqueid, queue_id=queue))
            self._track(uniqueid, queue, linkedid)
            self._member_call[member_key] = uniqueid
        elif name == "AgentConnect":
            c = self._track(uniqueid, queue, linkedid)
            aid = self._agent(msg)
            hold_s, ring_s = _uint(msg.get("HoldTime", "0")), _uint(msg.get("RingTime", "0"))
            # Learnt here when the join was before this session (a restart): the ids are the call's own.
            opened(uniqueid, queue, when - timedelta(seconds=hold_s), msg.get("CallerIDNum", ""), 0)
            if ring_s and not c.answered:  # RingTime: whole seconds; the same id as AgentCalled's ringing
                call(uniqueid, "ringing", ce.AgentRinging(agent_id=aid, queue_id=queue),
                     when - timedelta(seconds=ring_s), f"{uniqueid}|ring|{msg.get('DestUniqueid') or aid}")
            call(uniqueid, "answered", ce.CallAnswered(agent_id=aid, queue_id=queue), key=f"{uniqueid}|answer")
            agent(aid, "talking", ae.Talking(call_id=uniqueid, queue_id=queue))
            c.answered, c.agent_id, c.member_channel = True, aid, msg.get("DestChannel", "")
            self._member_call[member_key] = uniqueid
        elif name == "AgentComplete":
            aid = self._agent(msg)
            answered_here = self._member_call.pop(member_key, "")
            if not uniqueid:
                # Published after the caller's channel was gone (it hung up first): no channel fields. That
                # channel's Hangup ended the call already, unless it is still open under this member.
                uniqueid = answered_here
                if uniqueid not in self._calls:
                    return self._ignore("AgentComplete(no channel: the caller's Hangup ended the call)")
            c = self._track(uniqueid, queue, linkedid)
            if c.ended:
                return self._ignore("AgentComplete(after a transfer ended the call)")
            talk_s, hold_s = _uint(msg.get("TalkTime", "0")), _uint(msg.get("HoldTime", "0"))
            if not c.answered:  # answered before this session: learnt from the durations (whole seconds)
                answered_at = when - timedelta(seconds=talk_s)
                opened(uniqueid, queue, answered_at - timedelta(seconds=hold_s), msg.get("CallerIDNum", ""), 0)
                call(uniqueid, "answered", ce.CallAnswered(agent_id=aid, queue_id=queue), answered_at,
                     f"{uniqueid}|answer")
            party = _PARTY.get(msg.get("Reason", ""), ce.CallEnded.PARTY_UNSPECIFIED)
            call(uniqueid, "ended", ce.CallEnded(agent_id=aid, hung_up_by=party,
                                                 wrap_up_ms=self._wrap_up_ms(queue)))
            agent(aid, "after_call_work", ae.AfterCallWork(call_id=uniqueid, queue_id=queue))
            c.ended = True
        elif name == "AgentRingNoAnswer":
            # RingTime of this event is in milliseconds (AgentConnect's is in seconds).
            call(uniqueid, "ring_no_answer", ce.RingNoAnswer(agent_id=self._agent(msg), queue_id=queue,
                                                             ring_ms=_uint(msg.get("RingTime", "0"))))
        elif name == "AgentDump":
            c = self._track(uniqueid, queue, linkedid)
            if not c.ended:
                call(uniqueid, "ended", ce.CallEnded(agent_id=self._agent(msg), hung_up_by=ce.CallEnded.PARTY_AGENT))
                c.ended = True
        elif name == "VarSet" and msg.get("Variable") == "QUEUESTATUS" and uniqueid in self._calls:
            c = self._calls[uniqueid]
            reason = _LEFT_QUEUE.get(msg.get("Value", ""))
            if reason is None or c.answered or c.ended:
                return self._ignore(f"VarSet(QUEUESTATUS={msg.get('Value', '')})")
            at, key = c.abandon or (when, message_key)
            call(uniqueid, "overflowed", ce.CallOverflowed(from_queue_id=c.queue, reason=reason), at, key)
            c.ended, c.abandon = True, None
        elif name == "Hangup":
            return self._hangup(msg, when, message_key)
        elif name in ("BlindTransfer", "AttendedTransfer"):
            return self._transfer(name, msg, when, message_key)
        elif name in _HOLD:
            # The member's channel (an agent's phone puts the caller on hold) or the caller's channel itself.
            call_id = self._call_of(uniqueid, linkedid)
            held = self._calls.get(call_id) if call_id else None
            channel = msg.get("Channel", "")
            if held is None or not held.answered or held.ended or not (
                    channel == held.member_channel or uniqueid == call_id):
                return self._ignore(f"{name}(no answered queue call)")
            if _HOLD[name] == "hold_started":
                if channel in held.holds:
                    return self._ignore(f"{name}(already on hold)")
                held.holds.add(channel)
                call(call_id, "hold_started", ce.HoldStarted(agent_id=held.agent_id))
            else:
                if channel not in held.holds:  # Asterisk sends an Unhold before a transfer without a Hold
                    return self._ignore(f"{name}(not on hold)")
                held.holds.discard(channel)
                call(call_id, "hold_ended", ce.HoldEnded(agent_id=held.agent_id))
        elif name == "QueueMemberPause":
            if msg.get("Paused") == "1":
                why = msg.get("PausedReason", msg.get("Reason", ""))
                reason = PAUSE_REASONS.get(why.strip().lower(), ae.NOT_READY_REASON_OTHER)
                agent(self._agent(msg), "not_ready", ae.NotReady(reason=reason, detail=why[:200]))
            else:
                agent(self._agent(msg), "ready", ae.Ready())
        elif name in ("QueueMemberAdded", "QueueMemberRemoved"):
            agent(self._agent(msg), "queue_membership_changed", ae.QueueMembershipChanged(
                queue_id=queue, member=name == "QueueMemberAdded", queue_priority=_uint(msg.get("Penalty", "0"))))
        elif name in ("AgentLogin", "AgentLogoff"):  # app_agent_pool's agents
            aid = self.agents.agent_id(msg.get("Agent", ""))
            if not aid:
                return self._bad("missing_agent")
            if name == "AgentLogin":
                agent(aid, "logged_in", ae.LoggedIn(extension=msg.get("Channel", "")[:200]))
            else:
                agent(aid, "logged_out", ae.LoggedOut())
        elif name == "QueueEntry":
            return self._recovered_entry(msg, when)
        elif name == "QueueMember":
            return self._recovered_member(msg, when)
        elif name == "VarSet":
            return self._ignore("VarSet")
        else:
            return self._ignore(name)
        return out

    def _opened(self, call_id: str, queue: str, linkedid: str, at: datetime, caller: str,
                position: int) -> list[Event]:
        """offered + queued of a queue call, with ids from the call: the same when learnt again."""
        c = self._track(call_id, queue, linkedid)
        if c.joined:
            return []
        c.joined = True
        key = f"{call_id}|join|{queue}"
        context = ce.CallContext(queue_id=queue, caller_hash=caller_hash(self.caller_salt, caller))
        return [call_event(self.source, key, call_id, at, "offered", ce.CallOffered(context=context)),
                call_event(self.source, key, call_id, at, "queued", ce.CallQueued(queue_id=queue, position=position))]

    def _recovered_entry(self, msg: Message, received_at: datetime) -> list[Event]:
        """A waiting call in a QueueStatus answer (no Timestamp: it is the state now). Unknown to this
        session (it joined while the adapter was away): offered and queued `Wait` whole seconds ago."""
        uniqueid, queue = msg.get("Uniqueid", ""), msg.get("Queue", "")
        if not uniqueid or not queue:
            return self._bad("missing_call_id")
        known = self._calls.get(uniqueid)
        if known is not None and known.joined:
            return self._ignore("QueueEntry(known call)")
        out = self._opened(uniqueid, queue, "", received_at - timedelta(seconds=_uint(msg.get("Wait", "0"))),
                           msg.get("CallerIDNum", ""), _uint(msg.get("Position", "0")))
        self.summary.recovered_calls += 1
        return out

    def _recovered_member(self, msg: Message, received_at: datetime) -> list[Event]:
        """A member in a QueueStatus answer (`Name`, `Location`): paused now, or idle and unpaused now (a pause
        or unpause during the gap). The key is the member's last pause time, so the same state read again has
        the same event id. A member in a call is left to the call's events."""
        aid = self.agents.agent_id(msg.get("Name", ""), msg.get("Location", ""))
        if not aid:
            return self._bad("missing_agent")
        key = f"member|{msg.get('Queue', '')}|{msg.get('Location', '')}|{msg.get('Paused', '')}|" \
              f"{msg.get('LastPause', '')}"
        if msg.get("Paused") == "1":
            why = msg.get("PausedReason", "")
            reason = PAUSE_REASONS.get(why.strip().lower(), ae.NOT_READY_REASON_OTHER)
            return [agent_event(self.source, key, aid, received_at, "not_ready",
                                ae.NotReady(reason=reason, detail=why[:200]))]
        if msg.get("InCall") == "0" and msg.get("Status") == "1":  # NOT_INUSE
            return [agent_event(self.source, key, aid, received_at, "ready", ae.Ready())]
        return self._ignore("QueueMember(in a call)")

    def _hangup(self, msg: Message, when: datetime, message_key: str) -> list[Event]:
        """The caller's channel in the queue hung up: the end of a call nothing else ended (a pending
        abandon becomes one). Any other channel's hang-up is not the end of a queue call."""
        uniqueid = msg.get("Uniqueid", "")
        c = self._calls.get(uniqueid)
        if c is None:
            call_id = self._call_of_link.get(msg.get("Linkedid", ""))
            other = self._calls.get(call_id) if call_id else None
            if other is not None:
                other.holds.discard(msg.get("Channel", ""))
            return self._ignore("Hangup(not the caller's channel in a queue)")
        out: list[Event] = []
        if not c.ended:
            at, key = c.abandon or (when, message_key)
            if c.abandon is not None and not c.answered:
                out.append(call_event(self.source, key, uniqueid, at, "abandoned", ce.CallAbandoned(
                    queue_id=c.queue, phase=ce.CallAbandoned.PHASE_IN_QUEUE)))
            party = ce.CallEnded.PARTY_CALLER if c.abandon is not None else ce.CallEnded.PARTY_UNSPECIFIED
            out.append(call_event(self.source, key, uniqueid, at, "ended", ce.CallEnded(
                agent_id=c.agent_id, hung_up_by=party,
                wrap_up_ms=self._wrap_up_ms(c.queue) if c.answered else 0)))
        self._forget(uniqueid)
        return out if out else self._ignore("Hangup(call already ended)")

    def _transfer(self, name: str, msg: Message, when: datetime, message_key: str) -> list[Event]:
        """A transfer by the member: the queue's part of the call is over, as queue_log's BLINDTRANSFER /
        ATTENDEDTRANSFER say (a transfer into a queue is that queue's QueueCallerJoin)."""
        if msg.get("Result", "Success") != "Success":
            return self._ignore(f"{name}(Result {msg.get('Result', '')})")
        prefix = "Transferer" if name == "BlindTransfer" else "OrigTransferer"
        call_id = (self._call_of(msg.get("TransfereeUniqueid", ""), msg.get("TransfereeLinkedid", ""))
                   or self._call_of(msg.get(f"{prefix}Uniqueid", ""), msg.get(f"{prefix}Linkedid", "")))
        c = self._calls.get(call_id) if call_id else None
        if c is None or not c.answered or c.ended:
            return self._ignore(f"{name}(no answered queue call)")
        if name == "BlindTransfer":
            kind = ce.CallTransferred.KIND_BLIND
            target = msg.get("Extension", "") + (f"@{msg['Context']}" if msg.get("Context") else "")
        else:
            kind = ce.CallTransferred.KIND_WARM
            target = ":".join(filter(None, (msg.get("DestType", "").upper(),
                                            msg.get("DestBridgeUniqueid") or msg.get("DestApp", ""))))
        out = [call_event(self.source, message_key, call_id, when, "transferred", ce.CallTransferred(
                   from_agent_id=c.agent_id, kind=kind, to_external=target or "unknown")),
               call_event(self.source, message_key, call_id, when, "ended", ce.CallEnded(
                   agent_id=c.agent_id, hung_up_by=ce.CallEnded.PARTY_AGENT, wrap_up_ms=self._wrap_up_ms(c.queue)))]
        c.ended = True
        return out
