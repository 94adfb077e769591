"""Asterisk queue_log lines -> CallEvent / AgentEvent.

Format: ``epoch|callid|queuename|agent|event|data1|data2|...`` (Asterisk documentation,
"Queue Logs"). Pure: lines in, events/defects out. ``QueueLogMapper`` keeps per-call context
(queue, DID) to fill fields of later events.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeAlias

from callstream.agent.v1 import agent_events_pb2 as ae
from callstream.call.v1 import call_events_pb2 as ce
from callstream_ingest.domain.events import agent_event, call_event

CALL_VERBS = frozenset(
    {
        "ENTERQUEUE",
        "CONNECT",
        "COMPLETECALLER",
        "COMPLETEAGENT",
        "ABANDON",
        "EXITWITHTIMEOUT",
        "EXITEMPTY",
        "EXITWITHKEY",
        "TRANSFER",
        "BLINDTRANSFER",
        "ATTENDEDTRANSFER",
        "RINGNOANSWER",
        "AGENTDUMP",
    }
)
AGENT_VERBS = frozenset(
    {
        "ADDMEMBER",
        "REMOVEMEMBER",
        "PAUSE",
        "UNPAUSE",
        "PAUSEALL",
        "UNPAUSEALL",
        "AGENTLOGIN",
        "AGENTLOGOFF",
        "AGENTCALLBACKLOGIN",
        "AGENTCALLBACKLOGOFF",
    }
)
# Known verbs that carry no event of their own (DID is kept as call context).
INFO_VERBS = frozenset({"CONFIGRELOAD", "QUEUESTART", "SYSCOMPAT", "DID", "INFO", "RINGCANCELED"})

_PAUSE_REASONS = {
    "break": ae.NOT_READY_REASON_BREAK,
    "lunch": ae.NOT_READY_REASON_LUNCH,
    "training": ae.NOT_READY_REASON_TRAINING,
    "meeting": ae.NOT_READY_REASON_MEETING,
    "coaching": ae.NOT_READY_REASON_COACHING,
}
_OVERFLOW_REASON = {"EXITWITHTIMEOUT": "timeout", "EXITEMPTY": "empty", "EXITWITHKEY": "key"}

Event: TypeAlias = ce.CallEvent | ae.AgentEvent


@dataclass(frozen=True, slots=True)
class LineDefect:
    file: str
    line: int
    reason_code: str
    message: str


@dataclass(slots=True)
class QueueLogSummary:
    lines: int = 0
    events_by_kind: Counter[str] = field(default_factory=Counter)
    ignored_by_verb: Counter[str] = field(default_factory=Counter)
    unknown_by_verb: Counter[str] = field(default_factory=Counter)
    defects_by_reason: Counter[str] = field(default_factory=Counter)


@dataclass(slots=True)
class _CallCtx:
    queue: str
    dialed: str = ""


def _agent_id(agent: str) -> str:
    return "" if agent in ("", "NONE") else agent


def _uint(s: str) -> int:
    try:
        v = int(s)
    except ValueError:
        return 0
    return max(v, 0)


class QueueLogMapper:
    def __init__(
        self, file: str = "queue_log", source: str = "asterisk-queue-log", caller_salt: str = "callstream"
    ) -> None:
        self.file = file
        self.source = source
        self.caller_salt = caller_salt
        self.summary = QueueLogSummary()
        self.defects: list[LineDefect] = []
        self._calls: dict[str, _CallCtx] = {}

    def _defect(self, line: int, reason: str, message: str) -> LineDefect:
        d = LineDefect(self.file, line, reason, message)
        self.defects.append(d)
        self.summary.defects_by_reason[reason] += 1
        return d

    def map_lines(self, lines: Iterable[str], first_line: int = 1) -> Iterator[Event | LineDefect]:
        for n, raw in enumerate(lines, start=first_line):
            line = raw.rstrip("\r\n")
            if not line.strip():
                continue
            self.summary.lines += 1
            yield from self.map_line(line, n)

    def map_line(self, line: str, lineno: int) -> list[Event | LineDefect]:
        parts = line.split("|")
        if len(parts) < 5:
            return [self._defect(lineno, "field_count", f"expected at least 5 '|' fields, got {len(parts)}")]
        epoch_s, callid, queue, agent, verb, *data = parts
        try:
            epoch = float(epoch_s)
            when = datetime.fromtimestamp(epoch, UTC)
        except (ValueError, OverflowError, OSError):
            return [self._defect(lineno, "bad_timestamp", f"epoch {epoch_s[:40]!r} is not a unix time")]
        if epoch <= 0:
            return [self._defect(lineno, "bad_timestamp", f"epoch {epoch_s!r} is not positive")]
        if verb in INFO_VERBS:
            if verb == "DID" and callid not in ("", "NONE"):
                self._calls.setdefault(callid, _CallCtx(queue="")).dialed = data[0] if data else ""
            self.summary.ignored_by_verb[verb] += 1
            return []
        if verb not in CALL_VERBS and verb not in AGENT_VERBS:
            self.summary.unknown_by_verb[verb] += 1
            return []
        d = [*data, "", "", "", "", ""]
        aid = _agent_id(agent)
        out: list[Event | LineDefect] = []
        key = line

        def call(kind: str, payload: object) -> None:
            out.append(call_event(self.source, key, callid, when, kind, payload))

        def agent_ev(kind: str, payload: object) -> None:
            out.append(agent_event(self.source, key, aid, when, kind, payload))

        if verb in CALL_VERBS and callid in ("", "NONE"):
            return [self._defect(lineno, "missing_call_id", f"{verb} without a call id")]
        if verb in AGENT_VERBS and not aid:
            return [self._defect(lineno, "missing_agent", f"{verb} without an agent")]
        if verb in ("CONNECT", "COMPLETECALLER", "COMPLETEAGENT", "RINGNOANSWER") and not aid:
            return [self._defect(lineno, "missing_agent", f"{verb} without an agent")]
        ctx = self._calls.get(callid)
        qid = queue if queue not in ("", "NONE") else (ctx.queue if ctx else "")

        if verb == "ENTERQUEUE":
            c = self._calls.setdefault(callid, _CallCtx(queue=qid))
            c.queue = qid
            callerid = d[1]
            h = hashlib.sha256(f"{self.caller_salt}:{callerid}".encode()).hexdigest() if callerid else ""
            context = ce.CallContext(queue_id=qid, caller_hash=h, dialed_number=c.dialed)
            call("offered", ce.CallOffered(context=context))
            call("queued", ce.CallQueued(queue_id=qid))
        elif verb == "CONNECT":
            call("answered", ce.CallAnswered(agent_id=aid, queue_id=qid))
            agent_ev("talking", ae.Talking(call_id=callid, queue_id=qid))
        elif verb in ("COMPLETECALLER", "COMPLETEAGENT"):
            party = ce.CallEnded.PARTY_CALLER if verb == "COMPLETECALLER" else ce.CallEnded.PARTY_AGENT
            call("ended", ce.CallEnded(agent_id=aid, hung_up_by=party))
            agent_ev("after_call_work", ae.AfterCallWork(call_id=callid, queue_id=qid))
            self._calls.pop(callid, None)
        elif verb == "ABANDON":
            call(
                "abandoned", ce.CallAbandoned(queue_id=qid, phase=ce.CallAbandoned.PHASE_IN_QUEUE, position=_uint(d[0]))
            )
            call("ended", ce.CallEnded(hung_up_by=ce.CallEnded.PARTY_CALLER))
            self._calls.pop(callid, None)
        elif verb in _OVERFLOW_REASON:
            reason = _OVERFLOW_REASON[verb] + (f":{d[0]}" if verb == "EXITWITHKEY" and d[0] else "")
            call("overflowed", ce.CallOverflowed(from_queue_id=qid, reason=reason))
        elif verb in ("TRANSFER", "BLINDTRANSFER"):
            target = d[0] + (f"@{d[1]}" if d[1] else "")
            call(
                "transferred",
                ce.CallTransferred(from_agent_id=aid, kind=ce.CallTransferred.KIND_BLIND, to_agent_id=target),
            )
            if aid:
                agent_ev("after_call_work", ae.AfterCallWork(call_id=callid, queue_id=qid))
        elif verb == "ATTENDEDTRANSFER":
            call("transferred", ce.CallTransferred(from_agent_id=aid, kind=ce.CallTransferred.KIND_WARM))
            if aid:
                agent_ev("after_call_work", ae.AfterCallWork(call_id=callid, queue_id=qid))
        elif verb == "RINGNOANSWER":
            call("ring_no_answer", ce.RingNoAnswer(agent_id=aid, queue_id=qid, ring_ms=_uint(d[0])))
        elif verb == "AGENTDUMP":
            call("ended", ce.CallEnded(agent_id=aid, hung_up_by=ce.CallEnded.PARTY_AGENT))
            self._calls.pop(callid, None)
        elif verb in ("ADDMEMBER", "REMOVEMEMBER"):
            agent_ev("queue_membership_changed", ae.QueueMembershipChanged(queue_id=qid, member=verb == "ADDMEMBER"))
        elif verb in ("PAUSE", "PAUSEALL"):
            why = d[0] if verb == "PAUSE" else ""
            r = _PAUSE_REASONS.get(why.strip().lower(), ae.NOT_READY_REASON_OTHER)
            agent_ev("not_ready", ae.NotReady(reason=r, detail=why[:200]))
        elif verb in ("UNPAUSE", "UNPAUSEALL"):
            agent_ev("ready", ae.Ready())
        elif verb in ("AGENTLOGIN", "AGENTCALLBACKLOGIN"):
            agent_ev("logged_in", ae.LoggedIn(extension=d[0]))
        elif verb in ("AGENTLOGOFF", "AGENTCALLBACKLOGOFF"):
            agent_ev("logged_out", ae.LoggedOut())
        for e in out:
            if not isinstance(e, LineDefect):
                self.summary.events_by_kind[e.WhichOneof("kind") or ""] += 1
        return out
