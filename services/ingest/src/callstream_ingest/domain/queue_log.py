"""Asterisk queue_log lines -> CallEvent / AgentEvent.

Format: ``epoch|callid|queuename|agent|event|data1|data2|...`` (Asterisk documentation,
"Queue Logs"; the fields as app_queue writes them). Pure: lines in, events/defects out. ``QueueLogMapper``
keeps per-call context (queue, DID) to fill fields of later events. Every verb is mapped or ignored with
its reason in ``INFO_VERBS`` (docs/ingest.md has the table).

queue_log never says when an agent's wrap-up ends: app_queue simply offers the member no call for the
queue's ``wrapuptime``. So the ``ended`` of an answered call announces that wrap-up (``wrap_up_ms``, from
the adapter's ``queue_wrapup_s``), and the agent's ``after_call_work`` carries it too.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TypeAlias

from callstream.agent.v1 import agent_events_pb2 as ae
from callstream.call.v1 import call_events_pb2 as ce
from callstream_ingest.domain.events import agent_event, call_event
from callstream_ingest.domain.identity import AgentDirectory, caller_hash

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
# Known verbs that carry no event of their own, and why.
INFO_VERBS: Mapping[str, str] = {
    "CONFIGRELOAD": "a configuration reload of Asterisk, no call or agent changed",
    "QUEUESTART": "Asterisk started; members come with their own lines",
    "SYSCOMPAT": "a member's channel could not be bridged (incompatible formats); the call goes on ringing others",
    "DID": "the number the caller dialed: kept as the call's dialed_number, not an event",
    "INFO": "free text a dialplan wrote; no fixed meaning",
    "RINGCANCELED": "the ring of one member stopped because the caller hung up or another member answered: "
                    "the ABANDON or CONNECT line of the call says which",
}

PAUSE_REASONS = {
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
        self, file: str = "queue_log", source: str = "asterisk-queue-log", caller_salt: str = "callstream",
        *, wrap_up_s: Mapping[str, float] | None = None, agents: AgentDirectory | None = None,
    ) -> None:
        self.file = file
        self.source = source
        self.caller_salt = caller_salt
        # queue -> its wrapuptime in seconds (queues.conf), announced as the ACW of its answered calls
        self.wrap_up_s = dict(wrap_up_s or {})
        self.agents = agents if agents is not None else AgentDirectory()
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

    def map_line(self, line: str, lineno: int) -> list[Event | LineDefect]:  # noqa: C901 (one flat dispatch over queue_log's verbs)
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
        aid = self.agents.agent_id(_agent_id(agent))
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
            context = ce.CallContext(queue_id=qid, caller_hash=caller_hash(self.caller_salt, d[1]),
                                     dialed_number=c.dialed)
            call("offered", ce.CallOffered(context=context))
            call("queued", ce.CallQueued(queue_id=qid, position=_uint(d[2])))
        elif verb == "CONNECT":
            # data: holdtime|bridged channel|ringtime (whole seconds): the member's phone rang that long.
            ring_s = _uint(d[2])
            if ring_s:
                out.append(call_event(self.source, key, callid, when - timedelta(seconds=ring_s), "ringing",
                                      ce.AgentRinging(agent_id=aid, queue_id=qid)))
            call("answered", ce.CallAnswered(agent_id=aid, queue_id=qid))
            agent_ev("talking", ae.Talking(call_id=callid, queue_id=qid))
        elif verb in ("COMPLETECALLER", "COMPLETEAGENT"):
            party = ce.CallEnded.PARTY_CALLER if verb == "COMPLETECALLER" else ce.CallEnded.PARTY_AGENT
            call("ended", ce.CallEnded(agent_id=aid, hung_up_by=party, wrap_up_ms=self._wrap_up_ms(qid)))
            agent_ev("after_call_work", self._after_call_work(callid, qid))
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
        elif verb in ("TRANSFER", "BLINDTRANSFER", "ATTENDEDTRANSFER"):
            # The queue's part of the call is over: app_queue writes no COMPLETE line after a transfer, and a
            # dialplan extension is outside the ACD (a transfer into a queue shows as that queue's ENTERQUEUE).
            # TRANSFER/BLINDTRANSFER data: exten|context|...; ATTENDEDTRANSFER: BRIDGE|id, APP|app or LINK|a|b.
            if verb == "ATTENDEDTRANSFER":
                kind, target = ce.CallTransferred.KIND_WARM, ":".join(filter(None, d[:2]))
            else:
                kind, target = ce.CallTransferred.KIND_BLIND, d[0] + (f"@{d[1]}" if d[1] else "")
            call("transferred", ce.CallTransferred(from_agent_id=aid, kind=kind, to_external=target or "unknown"))
            call("ended", ce.CallEnded(agent_id=aid, hung_up_by=ce.CallEnded.PARTY_AGENT,
                                       wrap_up_ms=self._wrap_up_ms(qid)))
            if aid:
                agent_ev("after_call_work", self._after_call_work(callid, qid))
            self._calls.pop(callid, None)
        elif verb == "RINGNOANSWER":
            call("ring_no_answer", ce.RingNoAnswer(agent_id=aid, queue_id=qid, ring_ms=_uint(d[0])))
        elif verb == "AGENTDUMP":
            call("ended", ce.CallEnded(agent_id=aid, hung_up_by=ce.CallEnded.PARTY_AGENT))
            self._calls.pop(callid, None)
        elif verb in ("ADDMEMBER", "REMOVEMEMBER"):
            agent_ev("queue_membership_changed", ae.QueueMembershipChanged(queue_id=qid, member=verb == "ADDMEMBER"))
        elif verb in ("PAUSE", "PAUSEALL"):
            why = d[0] if verb == "PAUSE" else ""
            r = PAUSE_REASONS.get(why.strip().lower(), ae.NOT_READY_REASON_OTHER)
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

    def _wrap_up_ms(self, queue_id: str) -> int:
        return round(self.wrap_up_s.get(queue_id, 0.0) * 1000)

    def _after_call_work(self, call_id: str, queue_id: str) -> ae.AfterCallWork:
        return ae.AfterCallWork(call_id=call_id, queue_id=queue_id, wrap_up_ms=self._wrap_up_ms(queue_id))
