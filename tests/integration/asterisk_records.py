"""What Asterisk itself recorded, read from its queue_log and CDRs without any Callstream code: the figures the
end-to-end tests hold Callstream to.

The queue_log format is Asterisk's ("Queue Logs" in its documentation; app_queue.c writes it):
``epoch|callid|queue|agent|verb|data...``. A call's figures come from the times of its own lines: queue time
from ENTERQUEUE to CONNECT (or to ABANDON), talk time from CONNECT to the line that ends the conversation
(COMPLETEAGENT, COMPLETECALLER, BLINDTRANSFER, ATTENDEDTRANSFER). Asterisk's own duration fields (CONNECT's
holdtime, COMPLETE's calltime) are checked against those times within a second, which app_queue's two clock
readings allow.
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

CENTER = Path(__file__).resolve().parents[2] / "deploy" / "local" / "asterisk"  # the test center's configuration

END_OF_TALK = {"COMPLETEAGENT", "COMPLETECALLER", "BLINDTRANSFER", "ATTENDEDTRANSFER", "TRANSFER"}


@dataclass
class QueueLogFigures:
    offered: int = 0
    answered: int = 0
    abandoned: int = 0
    short_abandons: int = 0
    answered_within_t: int = 0
    overflowed: int = 0
    transferred_blind: int = 0
    ring_no_answers: int = 0
    sum_talk_s: float = 0.0
    sum_queue_s_answered: float = 0.0
    sum_wait_abandoned_s: float = 0.0
    sum_acw_s: float = 0.0
    verbs: Counter[str] = field(default_factory=Counter)
    first_epoch: int = 0
    last_epoch: int = 0
    duration_mismatches: list[str] = field(default_factory=list)


def read_queue_log(path: Path, *, sl_threshold_s: float, short_abandon_s: float,
                   wrap_up_s: dict[str, float]) -> QueueLogFigures:
    figures = QueueLogFigures()
    entered: dict[str, int] = {}
    connected: dict[str, tuple[int, str]] = {}
    for line in path.read_text().splitlines():
        parts = line.split("|")
        if len(parts) < 5 or not parts[0].isdigit():
            continue
        epoch, callid, queue, _agent, verb, *data = parts
        at = int(epoch)
        figures.verbs[verb] += 1
        if callid in ("NONE", "MANAGER", "REALTIME", ""):
            continue
        figures.first_epoch = figures.first_epoch or at
        figures.last_epoch = at
        if verb == "ENTERQUEUE":
            figures.offered += 1
            entered[callid] = at
        elif verb == "CONNECT":
            figures.answered += 1
            wait = at - entered[callid]
            figures.sum_queue_s_answered += wait
            figures.answered_within_t += wait <= sl_threshold_s
            connected[callid] = (at, queue)
            if abs(int(data[0]) - wait) > 1:
                figures.duration_mismatches.append(f"{line}: holdtime {data[0]} vs {wait}")
        elif verb == "ABANDON":
            figures.abandoned += 1
            wait = at - entered[callid]
            figures.sum_wait_abandoned_s += wait
            figures.short_abandons += wait <= short_abandon_s
        elif verb in ("EXITWITHTIMEOUT", "EXITWITHKEY", "EXITEMPTY"):
            figures.overflowed += 1
        elif verb == "RINGNOANSWER":
            figures.ring_no_answers += 1
        elif verb in END_OF_TALK:
            start, answered_queue = connected.pop(callid)
            talk = at - start
            figures.sum_talk_s += talk
            figures.sum_acw_s += wrap_up_s.get(answered_queue, 0.0)
            figures.transferred_blind += verb in ("BLINDTRANSFER", "TRANSFER")
            calltime = data[1] if verb.startswith("COMPLETE") else data[3]
            if abs(int(calltime) - talk) > 1:
                figures.duration_mismatches.append(f"{line}: calltime {calltime} vs {talk}")
    return figures


# -- CDRs (cdr_csv's Master.csv) ----------------------------------------------------------------------------------
# cdr_csv writes these columns in this order (cdr/cdr_csv.c), uniqueid and userfield with loguniqueid/loguserfield
# (the center's cdr.conf sets both).
CDR_COLUMNS = ("accountcode", "src", "dst", "dcontext", "clid", "channel", "dstchannel", "lastapp", "lastdata",
               "start", "answer", "end", "duration", "billsec", "disposition", "amaflags", "uniqueid", "userfield")
LOCAL_CHANNEL = re.compile(r"^Local/(?P<exten>[^@]+)@(?P<context>[^-]+)-[0-9a-f]+;(?P<half>[12])$")


@dataclass(frozen=True)
class AgentLeg:
    """An agent channel the bridge originated for a caller (the ;1 half of Local/<exten>@<agents context>)."""

    channel: str
    exten: str
    disposition: str
    end: int  # epoch second the channel ended


@dataclass
class RoutedCall:
    """One caller of the routed context, as Asterisk's CDRs tell it."""

    uniqueid: str  # the caller's channel (the ;2 half of Local/<queue>@<routed context>/n)
    queue: str
    caller: str = ""  # the caller's number (src)
    end: int = 0  # epoch second the caller's channel ended
    bridged_with: str = ""  # the agent extension (Local/<exten>@<agents context>) the caller was bridged with
    bridged_channel: str = ""  # that agent's Local channel, without its half
    bridged_twice: list[str] = field(default_factory=list)
    talk_s: int = 0  # billsec of the agent's side of the conversation (the ;2 half of the bridged agent channel)
    dialled: list[AgentLeg] = field(default_factory=list)  # the agent channels rung for this caller, not bridged
    # A callback: the number a channel of the callbacks context dialled for this caller, bridged with an agent
    # channel rung for them, and that agent's extension.
    called_back_number: str = ""
    called_back_by: str = ""


@dataclass
class RoutedRecord:
    calls: list[RoutedCall]
    agent_legs: Counter[tuple[str, str]]  # (agent extension, disposition) of the agents' channels (;1 halves)


def _epoch(value: str) -> int:
    return int(datetime.strptime(value, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC).timestamp())  # usegmtime


def read_routed_calls(path: Path, *, routed_context: str, agents_context: str,
                      callbacks_context: str = "callbacks") -> RoutedRecord:
    """The routed callers, the agent channels dialled for each (the bridge originates them with the caller's
    uniqueid and `-agent-<n>` as their own, so Asterisk records which caller each rang for), for a bridged
    caller the agent side's billsec (from the agent's answer to the end of the conversation), and the callbacks:
    an agent channel of a caller bridged with a channel of `callbacks_context` (the number it dialled)."""
    calls: dict[str, RoutedCall] = {}
    legs: Counter[tuple[str, str]] = Counter()
    agent_billsec: dict[str, int] = {}  # agent Local channel (without its half) -> billsec of the ;2 half
    dialled: list[tuple[str, AgentLeg]] = []
    callbacks: list[tuple[str, str, str]] = []  # (caller's uniqueid, number dialled back, agent extension)
    with path.open(newline="") as f:
        for row in csv.reader(f):
            record = dict(zip(CDR_COLUMNS, row, strict=True))
            channel = LOCAL_CHANNEL.match(record["channel"])
            if channel is None:
                continue
            if channel["context"] == agents_context:
                if channel["half"] == "2":
                    agent_billsec[record["channel"][:-2]] = int(record["billsec"])
                else:
                    legs[(channel["exten"], record["disposition"])] += 1
                    peer = LOCAL_CHANNEL.match(record["dstchannel"])
                    if peer is not None and peer["context"] == callbacks_context:
                        callbacks.append((record["uniqueid"].rsplit("-agent-", 1)[0], peer["exten"],
                                          channel["exten"]))
                    dialled.append((record["uniqueid"].rsplit("-agent-", 1)[0], AgentLeg(
                        record["channel"][:-2], channel["exten"], record["disposition"], _epoch(record["end"]))))
            if channel["context"] != routed_context or channel["half"] != "2":
                continue
            call = calls.setdefault(record["uniqueid"], RoutedCall(record["uniqueid"], channel["exten"],
                                                                   caller=record["src"]))
            call.end = max(call.end, _epoch(record["end"]))
            peer = LOCAL_CHANNEL.match(record["dstchannel"])
            if peer is not None and peer["context"] == agents_context:
                if call.bridged_with:
                    call.bridged_twice.append(peer["exten"])
                call.bridged_with, call.bridged_channel = peer["exten"], record["dstchannel"][:-2]
    for caller, leg in dialled:
        if caller in calls and leg.channel != calls[caller].bridged_channel:
            calls[caller].dialled.append(leg)
    for call in calls.values():
        call.talk_s = agent_billsec.get(call.bridged_channel, 0)
    for caller, number, agent in callbacks:
        if caller in calls:
            calls[caller].called_back_number, calls[caller].called_back_by = number, agent
    return RoutedRecord(list(calls.values()), legs)


def center_queues() -> dict[str, dict[str, list[str]]]:
    """The test center's queues.conf as Asterisk reads it: each queue's settings, a name to its values in order
    (`member` has one per static member)."""
    queues: dict[str, dict[str, list[str]]] = {}
    settings: dict[str, list[str]] = {}
    for line in (CENTER / "queues.conf").read_text().splitlines():
        line = line.split(";")[0].strip()
        if m := re.fullmatch(r"\[(\w+)\]", line):
            settings = queues.setdefault(m[1], {})
        elif m := re.fullmatch(r"(\w+)\s*=>?\s*(.+)", line):
            settings.setdefault(m[1], []).append(m[2].strip())
    queues.pop("general", None)
    return queues


def center_wrap_up() -> dict[str, float]:
    """Each queue's wrapuptime."""
    return {queue: float(settings["wrapuptime"][-1]) for queue, settings in center_queues().items()
            if "wrapuptime" in settings}


def center_members(queue: str) -> list[str]:
    """The interfaces of a queue's static members (`member => interface,penalty,name`)."""
    return [member.split(",")[0] for member in center_queues()[queue].get("member", [])]


@dataclass
class CenterCall:
    """One caller of a context, as Asterisk's CDRs tell it (times at cdr_csv's one-second resolution, UTC)."""

    uniqueid: str
    queue: str
    entered: datetime  # the caller's channel started (the dialplan answers it at once, then Queue() or Stasis())
    answered: datetime | None = None  # the agent's phone answered, the caller being bridged with it
    agent: str = ""  # the agent extension (Local/<exten>@<agents context>)
    talk_s: int = 0  # the agent's leg from its answer to its end (billsec)


def read_center_calls(path: Path, *, caller_context: str, agents_context: str) -> list[CenterCall]:
    """Every caller of `caller_context` (the ;2 half of Local/<queue>@<caller_context>/n) with the agent leg it
    was bridged with: the agent's ;2 half answered (disposition ANSWERED) is the answer, its billsec the talk. A
    caller bridged with no answered agent leg gave up (abandoned)."""
    with path.open(newline="") as f:
        rows = [dict(zip(CDR_COLUMNS, row, strict=True)) for row in csv.reader(f)]
    agent_legs: dict[str, dict[str, str]] = {}  # Local/<exten>@<agents context>-<id> -> its ;2 half's record
    for record in rows:
        channel = LOCAL_CHANNEL.match(record["channel"])
        if channel is not None and channel["context"] == agents_context and channel["half"] == "2":
            agent_legs[record["channel"].removesuffix(";2")] = record
    calls: dict[str, CenterCall] = {}
    for record in rows:
        channel = LOCAL_CHANNEL.match(record["channel"])
        if channel is None or channel["context"] != caller_context or channel["half"] != "2":
            continue
        call = calls.setdefault(record["uniqueid"], CenterCall(record["uniqueid"], channel["exten"],
                                                               _cdr_time(record["start"])))
        call.entered = min(call.entered, _cdr_time(record["start"]))
        leg = agent_legs.get(record["dstchannel"].removesuffix(";1"))
        if leg is not None and leg["disposition"] == "ANSWERED" and leg["answer"] and call.answered is None:
            peer = LOCAL_CHANNEL.match(leg["channel"])
            assert peer is not None  # agent_legs holds matching channels only
            call.answered, call.agent, call.talk_s = _cdr_time(leg["answer"]), peer["exten"], int(leg["billsec"])
    return list(calls.values())


def _cdr_time(value: str) -> datetime:
    return datetime.strptime(value, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
