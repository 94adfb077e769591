"""The routing core's state as data: `RoutingCore.capture()` takes each record (`capture_queue` ...), `plain_snapshot`
makes that plain (JSON-ready) data, `RoutingCore.restore()` reads it back (`restore_queue` ...). The indexes
(pools, timers, positions) are not in it: they are derived, and rebuilt on restore."""

from __future__ import annotations

from typing import Any

from callstream_routing.domain.codec import from_plain, to_plain
from callstream_routing.domain.model import CallState, Channel, NotReadyReason
from callstream_routing.domain.records import AgentRecord, CallRecord, QueueRecord


def plain_snapshot(captured: dict[str, Any]) -> dict[str, Any]:
    """`RoutingCore.capture()` as plain data: what `snapshot()` returns and `restore()` reads. Builds new
    containers where it converts, so the capture itself is left as it was."""
    return {
        **captured,
            "config": to_plain(captured["config"]),
            "queues": [{**q, "config": to_plain(q["config"])} for q in captured["queues"]],
            "agents": [{**a, "reason": a["reason"].value, "capacity": {k.value: v for k, v in a["capacity"].items()},
                    "load": {k.value: v for k, v in a["load"].items()}} for a in captured["agents"]],
            "calls": [{**c, "channel": c["channel"].value, "state": c["state"].value} for c in captured["calls"]],
            "outcomes": {k: v.value for k, v in captured["outcomes"].items()},
            "processed": [[k, to_plain(v)] for k, v in captured["processed"]],
    }


def capture_queue(q: QueueRecord) -> dict[str, Any]:
    return {"config": q.cfg, "handle_s": q.handle_s, "last_delay_s": q.last_delay_s,
            "abandons": q.abandons, "exposure_s": q.exposure_s}


def capture_agent(a: AgentRecord) -> dict[str, Any]:
    return {"agent_id": a.agent_id, "seq": a.seq, "status": a.status, "reason": a.reason,
            "version": a.version, "since": a.since, "queues": dict(a.queues), "skills": dict(a.skills),
            "capacity": dict(a.capacity), "load": dict(a.load), "reservations": dict(a.reservations),
            "calls": list(a.calls), "wrap_until": a.wrap_until, "cool_until": a.cool_until,
            "delay_until": a.delay_until, "misses": a.misses, "idle_since": a.idle_since, "busy_s": a.busy_s,
            "handled": a.handled, "rr": dict(a.rr), "wrap_up_s": a.wrap_up_s}


def capture_call(c: CallRecord) -> dict[str, Any]:
    return {"call_id": c.call_id, "seq": c.seq, "queue_id": c.queue_id, "priority": c.priority,
            "required": [list(r) for r in c.required], "caller_hash": c.caller_hash, "channel": c.channel,
            "venq": c.venq, "entered_at": c.entered_at, "wait_mark": c.wait_mark,
            "callback_allowed": c.callback_allowed, "callback": c.callback, "state": c.state,
            "agent_id": c.agent_id, "reservation_id": c.reservation_id, "res_expires": c.res_expires,
            "accepted_at": c.accepted_at, "relax_stage": c.relax_stage, "aged": c.aged,
            "sticky_agent": c.sticky_agent, "sticky_until": c.sticky_until, "visited": list(c.visited)}


def restore_queue(qd: dict[str, Any]) -> QueueRecord:
    q = QueueRecord(from_plain(qd["config"]))
    q.handle_s, q.last_delay_s = qd["handle_s"], qd["last_delay_s"]
    q.abandons, q.exposure_s = int(qd["abandons"]), float(qd["exposure_s"])
    return q


def restore_agent(ad: dict[str, Any]) -> AgentRecord:
    a = AgentRecord(ad["agent_id"], int(ad["seq"]))
    a.status, a.reason = ad["status"], NotReadyReason(ad["reason"])
    a.version, a.since = ad["version"], ad["since"]
    a.queues, a.skills = dict(ad["queues"]), dict(ad["skills"])
    a.capacity = {Channel(k): v for k, v in ad["capacity"].items()}
    a.load = {Channel(k): v for k, v in ad["load"].items()}
    a.reservations, a.calls = dict(ad["reservations"]), dict.fromkeys(ad["calls"])
    a.wrap_until, a.cool_until, a.delay_until = ad["wrap_until"], ad["cool_until"], ad["delay_until"]
    a.misses, a.idle_since, a.busy_s, a.handled = ad["misses"], ad["idle_since"], ad["busy_s"], ad["handled"]
    a.rr, a.wrap_up_s = dict(ad["rr"]), ad["wrap_up_s"]
    return a


def restore_call(cd: dict[str, Any]) -> CallRecord:
    c = CallRecord(cd["call_id"], int(cd["seq"]))
    c.queue_id, c.priority = cd["queue_id"], cd["priority"]
    c.required = tuple((s, int(lvl)) for s, lvl in cd["required"])
    c.caller_hash, c.channel, c.venq = cd["caller_hash"], Channel(cd["channel"]), cd["venq"]
    c.entered_at, c.wait_mark = cd["entered_at"], cd["wait_mark"]
    c.callback_allowed, c.callback, c.state = cd["callback_allowed"], cd["callback"], CallState(cd["state"])
    c.agent_id, c.reservation_id, c.res_expires = cd["agent_id"], cd["reservation_id"], cd["res_expires"]
    c.accepted_at, c.relax_stage = cd["accepted_at"], cd["relax_stage"]
    c.aged = int(cd.get("aged", 0))  # snapshots from before priority aging have none
    c.sticky_agent, c.sticky_until, c.visited = cd["sticky_agent"], cd["sticky_until"], list(cd["visited"])
    return c
