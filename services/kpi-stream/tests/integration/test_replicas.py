"""Two KPI workers in one consumer group (issue 18): each owns some partitions, yet each serves the same, complete
real-time figures and wallboard feed; the team of an agent comes from HR's events whichever worker read them;
and when one worker stops, the other takes every partition and its view stays complete.

Each worker is a real process on its own chDB engine (one ClickHouse server in production). The expected figures
are computed here from the events the test sends, by the definitions of kpis.md (service level = answered within
T / (offered - short abandons), ASA = queue time of answered calls / answered, abandon rate = (abandoned - short
abandons) / (offered - short abandons); a call counts in a rolling window when its fate was decided in it)."""

from __future__ import annotations

import json
import math
import signal
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka import Consumer, TopicPartition
from scenarios import TOKEN, agent_event, call_event, isolated_topics
from worker_process import api_get, kpi_worker, poll, process_settings, ready

from callstream.agent.v1 import agent_events_pb2
from callstream.call.v1 import call_events_pb2
from callstream.hr.v1 import hr_events_pb2
from callstream.kpi.v1 import kpi_events_pb2
from callstream_core.envelope import new_envelope
from callstream_core.kafka import EventProducer
from callstream_devtools.testing import ServiceProcess
from callstream_kpi.config import KpiSettings

pytestmark = pytest.mark.integration
T = datetime.fromisoformat("2026-03-02T10:00:00+00:00")
WINDOWS = (15, 30, 60)
T_S = 20.0  # the default service-level threshold and short-abandon bound (kpis.md)
TEAMS = {"a1": "t-red", "a2": "t-red", "a3": "t-red", "a4": "t-blue", "a5": "t-blue", "a6": "t-blue"}


@dataclass(frozen=True)
class Call:
    call_id: str
    queue: str
    start: datetime
    outcome: str  # answered | abandoned | waiting
    wait_s: float = 0.0
    agent: str = ""

    @property
    def decided_at(self) -> datetime:
        return self.start + timedelta(seconds=self.wait_s)

    def events(self) -> list[call_events_pb2.CallEvent]:
        q, at = self.queue, self.start
        out = [call_event(self.call_id, at, "offered", context__queue_id=q), call_event(self.call_id, at, "queued",
                                                                                       queue_id=q)]
        if self.outcome == "answered":
            out += [call_event(self.call_id, self.decided_at - timedelta(seconds=2), "ringing", agent_id=self.agent,
                               queue_id=q),
                    call_event(self.call_id, self.decided_at, "answered", agent_id=self.agent, queue_id=q),
                    call_event(self.call_id, self.decided_at + timedelta(seconds=60), "ended", agent_id=self.agent)]
        elif self.outcome == "abandoned":
            out.append(call_event(self.call_id, self.decided_at, "abandoned", queue_id=q))
        return out


def _calls(tag: str) -> list[Call]:
    """42 calls in two queues: most in the last 10 minutes, two answered 15 minutes before (in the 30- and
    60-minute windows only), four 40 minutes before (in the 60-minute window only), five still waiting."""
    answered_waits, abandoned_waits = [4, 12, 19, 26, 45, 8], [3, 15, 33, 70]
    agents = sorted(TEAMS)
    calls = []
    for i in range(36):
        queue, start, call_id = f"{tag}-q{i % 2 + 1}", T + timedelta(seconds=15 * i), f"{tag}-c{i}"
        if i % 7 == 3:
            calls.append(Call(call_id, queue, start, "waiting"))
        elif i % 3 == 1:
            calls.append(Call(call_id, queue, start, "abandoned", abandoned_waits[i % 4]))
        else:
            calls.append(Call(call_id, queue, start, "answered", answered_waits[i % 6], agents[i % 6]))
    for i, minutes in enumerate((15, 15, 40, 40, 40, 40)):
        calls.append(Call(f"{tag}-old{i}", f"{tag}-q{i % 2 + 1}", T - timedelta(minutes=minutes), "answered",
                          [5, 30][i % 2], agents[i]))
    return calls


def _agent_events() -> tuple[list[agent_events_pb2.AgentEvent], dict[str, tuple[str, datetime]]]:
    """Six agents logged in 50 minutes before; what each does after; their wallboard state and since when."""
    start = T - timedelta(minutes=50)
    events = [e for agent in sorted(TEAMS) for e in (agent_event(agent, start, "logged_in"),
                                                    agent_event(agent, start + timedelta(seconds=1), "ready"))]
    events = [e for e in events if not (e.agent_id == "a4" and e.WhichOneof("kind") == "ready")]
    brk = agent_event("a3", T + timedelta(minutes=6), "not_ready")
    brk.not_ready.reason = agent_events_pb2.NOT_READY_REASON_BREAK
    events += [agent_event("a2", T + timedelta(minutes=5), "talking"), brk,
               agent_event("a5", T + timedelta(minutes=7), "logged_out")]
    states = {"a1": ("ready", start + timedelta(seconds=1)), "a2": ("talking", T + timedelta(minutes=5)),
              "a3": ("not_ready:break", T + timedelta(minutes=6)), "a4": ("not_ready:login", start),
              "a5": ("logged_out", T + timedelta(minutes=7)), "a6": ("ready", start + timedelta(seconds=1))}
    return events, states


def _hires() -> list[hr_events_pb2.EmploymentChanged]:
    return [hr_events_pb2.EmploymentChanged(envelope=new_envelope("test", T - timedelta(days=30)), employee_id=agent,
                                            kind=hr_events_pb2.EmploymentChanged.KIND_HIRED, role="agent",
                                            team_id=team, fte=1.0)
            for agent, team in TEAMS.items()]


def _ratio(num: float, den: float) -> float | None:
    return None if den == 0 else num / den


def expected_view(calls: list[Call], agents: dict[str, tuple[str, datetime]], as_of: datetime) -> dict[str, Any]:
    """What the wallboard must show, per scope, from the calls and agent states (independent of Callstream)."""
    queues = sorted({c.queue for c in calls})
    out: dict[str, Any] = {}
    for scope in ["center", *queues]:
        mine = [c for c in calls if scope == "center" or c.queue == scope]
        waiting = [c for c in mine if c.outcome == "waiting"]
        windows = []
        for minutes in WINDOWS:
            decided = [c for c in mine if c.outcome != "waiting"
                       and as_of - timedelta(minutes=minutes) < c.decided_at <= as_of]
            answered = [c for c in decided if c.outcome == "answered"]
            abandoned = [c for c in decided if c.outcome == "abandoned"]
            within = sum(1 for c in answered if c.wait_s <= T_S)
            short = sum(1 for c in abandoned if c.wait_s <= T_S)
            sl = _ratio(100.0 * within, len(decided) - short)
            asa = _ratio(sum(c.wait_s for c in answered), len(answered))
            rate = _ratio(100.0 * (len(abandoned) - short), len(decided) - short)
            windows.append((minutes, len(decided), len(answered), within, len(abandoned), short,
                            *(None if v is None else round(v, 6) for v in (sl, asa, rate))))
        view: dict[str, Any] = {
            "as_of": as_of, "calls_waiting": len(waiting),
            "longest_wait_s": max(((as_of - c.start).total_seconds() for c in waiting), default=0.0),
            "windows": windows}
        if scope == "center":
            by_state: dict[str, int] = {}
            for state, _ in agents.values():
                by_state[state] = by_state.get(state, 0) + 1
            view["agents_by_state"] = by_state
            view["agents"] = {a: (state, (as_of - since).total_seconds()) for a, (state, since) in agents.items()}
        out[scope] = view
    return out


def _number(value: Any) -> float | None:
    if value is None or value == "NaN":
        return None
    return round(float(value), 6)


def served_view(snapshots: list[dict[str, Any]]) -> dict[str, Any]:
    """The same figures read from the snapshots a worker serves (protobuf JSON: zero fields left out)."""
    out: dict[str, Any] = {}
    for snap in snapshots:
        scope = snap["scope"]
        name = "center" if scope["kind"] == "KIND_CENTER" else scope.get("id", "")
        view: dict[str, Any] = {
            "as_of": datetime.fromisoformat(snap["asOf"].replace("Z", "+00:00")),
            "calls_waiting": snap.get("callsWaiting", 0), "longest_wait_s": float(snap.get("longestWaitS", 0.0)),
            "windows": [(w["windowMinutes"], w.get("offered", 0), w.get("answered", 0), w.get("answeredWithinT", 0),
                         w.get("abandoned", 0), w.get("shortAbandons", 0), _number(w.get("serviceLevel", 0.0)),
                         _number(w.get("asaS", 0.0)), _number(w.get("abandonRate", 0.0)))
                        for w in snap.get("windows", [])]}
        if name == "center":
            view["agents_by_state"] = snap.get("agentsByState", {})
            view["agents"] = {a["agentId"]: (f"{a['state']}:{a['reason']}" if a.get("reason") else a["state"],
                                             float(a.get("timeInStateS", 0.0))) for a in snap.get("agents", [])}
        out[name] = view
    return out


def realtime_api(settings: KpiSettings) -> dict[str, Any] | None:
    response = api_get(settings, "/v1/realtime")
    return served_view(response.json()["snapshots"]) if response is not None and response.status_code == 200 else None


def wallboard_feed(settings: KpiSettings, expected: dict[str, Any], timeout: float) -> dict[str, Any]:
    """The wallboard's live feed (server-sent events): the latest snapshot per scope, read until the view
    equals `expected` or the deadline; returns the last view read."""
    latest: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout
    seen: dict[str, Any] = {}
    with httpx.stream("GET", f"http://127.0.0.1:{settings.http_port}/v1/realtime/stream",
                      headers={"Authorization": f"Bearer {TOKEN}"}, timeout=httpx.Timeout(10, read=timeout)) as feed:
        event = ""
        for line in feed.iter_lines():
            if line.startswith("event: "):
                event = line.removeprefix("event: ")
            elif line.startswith("data: ") and event == "snapshot":
                snap = json.loads(line.removeprefix("data: "))
                latest[json.dumps(snap["scope"], sort_keys=True)] = snap
                seen = served_view(list(latest.values()))
                if _same(seen, expected):
                    return seen
            if time.monotonic() > deadline:
                break
    return seen


def _same(served: dict[str, Any] | None, expected: dict[str, Any]) -> bool:
    if served is None or set(expected) - set(served):
        return False
    for scope, want in expected.items():
        got = served[scope]
        for key, value in want.items():
            if key in ("longest_wait_s",):
                if not math.isclose(got[key], value, abs_tol=1e-3):
                    return False
            elif key == "agents":
                if {a: s for a, (s, _) in got[key].items()} != {a: s for a, (s, _) in value.items()} or any(
                        not math.isclose(got[key][a][1], t, abs_tol=1e-3) for a, (_, t) in value.items()):
                    return False
            elif got[key] != value:
                return False
    return True


def until_same(what: str, read: Callable[[], dict[str, Any] | None], expected: dict[str, Any], timeout: float,
               worker: ServiceProcess) -> None:
    last: list[dict[str, Any] | None] = [None]

    def probe() -> bool | None:
        last[0] = read()
        return True if _same(last[0], expected) else None

    try:
        poll(what, probe, timeout=timeout, worker=worker)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\nexpected {expected}\nserved {last[0]}") from None


def read_topic(bootstrap: str, name: str, timeout: float = 30.0) -> list[tuple[int, bytes, bytes]]:
    """(partition, key, value) of every record on `name`, read to its end."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"t-{uuid.uuid4()}", "enable.auto.commit": False})
    partitions = list(consumer.list_topics(name, timeout=10).topics[name].partitions)
    ends = {p: consumer.get_watermark_offsets(TopicPartition(name, p), timeout=10)[1] for p in partitions}
    consumer.assign([TopicPartition(name, p, 0) for p in partitions])
    found: list[tuple[int, bytes, bytes]] = []
    deadline = time.monotonic() + timeout
    taken = {p: 0 for p in partitions}
    try:
        while any(taken[p] < ends[p] for p in partitions) and time.monotonic() < deadline:
            for msg in consumer.consume(500, 0.5):
                if msg.error() is None:
                    found.append((msg.partition() or 0, msg.key() or b"", msg.value() or b""))
                    taken[msg.partition() or 0] = (msg.offset() or 0) + 1
    finally:
        consumer.close()
    return found


def newest_states(bootstrap: str, prefix: str) -> dict[str, kpi_events_pb2.PartitionState]:
    """The last state published per key (the workers write this internal topic in binary protobuf)."""
    states: dict[str, kpi_events_pb2.PartitionState] = {}
    for _, key, value in read_topic(bootstrap, prefix + "cc.kpi-partition-state.v1"):
        states[key.decode()] = kpi_events_pb2.PartitionState.FromString(value)
    return states


def answered_by_team(settings: KpiSettings, team: str, start: datetime, end: datetime) -> int | None:
    response = api_get(settings, "/v1/kpis", {"scope": "team", "id": team, "from": start.isoformat(),
                                           "to": end.isoformat(), "grain": "day"})
    return response.json()["total"]["counters"]["answered"] if response is not None and response.status_code == 200 \
        else None


@pytest.mark.timeout(900)
def test_two_workers_serve_the_same_complete_view_and_one_takes_over(kafka_bootstrap: str, tmp_path: Path) -> None:
    prefix = isolated_topics(kafka_bootstrap)
    group = f"kpi-replicas-{uuid.uuid4().hex[:8]}"
    settings = [process_settings(kafka_bootstrap, tmp_path / f"chdb-{name}", prefix, consumer_group=group,
                                 group_instance_id=f"kpi-{name}", allowed_lateness_s=2.0)
                for name in ("a", "b")]
    producer = EventProducer(kafka_bootstrap, client_id="test")
    tag = uuid.uuid4().hex[:6]
    calls = _calls(tag)
    agent_events, agents = _agent_events()
    workers = [kpi_worker(s, tmp_path / f"worker-{i}.log") for i, s in enumerate(settings)]
    with workers[0] as a, workers[1] as b:
        a.start()
        b.start()
        for worker, s in zip(workers, settings, strict=True):
            poll("the worker is ready", lambda s=s: ready(s), timeout=180, worker=worker)

        # Both workers own some call-events partitions (the group split them).
        def split() -> dict[str, set[int]] | None:
            owners: dict[str, set[int]] = {}
            for state in newest_states(kafka_bootstrap, prefix).values():
                if state.topic == "cc.call-events.v1":
                    owners.setdefault(state.owner, set()).add(state.partition)
            return owners if set(owners) == {"kpi-a", "kpi-b"} and sum(map(len, owners.values())) == 6 else None

        # HR's teams first, then the agents: a worker that shows every agent has read the teams before them.
        producer.produce_sync(prefix + "cc.hr-employment.v1", [(e.employee_id, e) for e in _hires()])
        producer.produce_sync(prefix + "cc.agent-events.v1", [(e.agent_id, e) for e in agent_events])
        for worker, s in zip(workers, settings, strict=True):
            poll("every agent on the wallboard", lambda s=s: True if len(
                (realtime_api(s) or {}).get("center", {}).get("agents", {})) == len(TEAMS) else None,
                timeout=180, worker=worker)
        owners = poll("both workers own call-events partitions", split, timeout=120, worker=a)
        producer.produce_sync(prefix + "cc.call-events.v1", [(e.call_id, e) for c in calls for e in c.events()])
        event_times = [e.envelope.occurred_at.ToDatetime().replace(tzinfo=T.tzinfo)
                       for c in calls for e in c.events()] + [e.envelope.occurred_at.ToDatetime().replace(
                           tzinfo=T.tzinfo) for e in agent_events]
        expected = expected_view(calls, agents, max(event_times))
        assert expected["center"]["calls_waiting"] == 5 and expected["center"]["windows"][0][1] < \
            expected["center"]["windows"][2][1]  # the scenario exercises the waiting count and the windows

        # The same, complete figures from either worker: the real-time API and the wallboard's live feed.
        for worker, s in zip(workers, settings, strict=True):
            until_same(f"worker {s.group_instance_id}'s real-time API", lambda s=s: realtime_api(s), expected,
                       timeout=180, worker=worker)
            assert _same(wallboard_feed(s, expected, timeout=60), expected), s.group_instance_id

        # The same alerts from either worker, evaluated on the contacts of every partition: the center's service
        # level of the interval is far below its 80 % target here.
        assert expected["center"]["windows"][0][6] < 80

        def firing(s: KpiSettings) -> set[tuple[str, str]] | None:
            """(KPI, scope) of the alerts firing now (a worker that saw part of the data first may also hold
            one that fired and resolved since: it is not firing)."""
            response = api_get(s, "/v1/realtime")
            if response is None or response.status_code != 200:
                return None
            return {(a["kpi"], "center" if a["scope"]["kind"] == "KIND_CENTER" else a["scope"]["id"])
                    for a in response.json()["alerts"] if a["state"] == "STATE_FIRING"}

        def same_firing() -> set[tuple[str, str]] | None:
            served = [firing(s) for s in settings]
            return served[0] if served[0] == served[1] and ("service_level", "center") in (served[0] or ()) else None

        poll("the same firing alerts from either worker", same_firing, timeout=120, worker=a)

        # The team of each answered contact is HR's, whichever worker read the HR event: the contacts of the
        # old calls (closed by now) by team, summed over the two workers' stores.
        old = [c for c in calls if c.call_id.startswith(f"{tag}-old")]
        for team in sorted(set(TEAMS.values())):
            want = sum(1 for c in old if TEAMS[c.agent] == team)

            def both(team: str = team, want: int = want) -> int | None:
                counts = [answered_by_team(s, team, T - timedelta(hours=1), T - timedelta(minutes=10))
                          for s in settings]
                total = sum(c for c in counts if c is not None)
                return total if None not in counts and total == want else None

            assert poll(f"answered contacts of {team}", both, timeout=120, worker=a) == want

        # Worker b stops: a's view stays complete while the partitions move, then a owns them all.
        assert b.stop(signal.SIGTERM, timeout=120) == 0, b.log_tail()
        assert _same(realtime_api(settings[0]), expected), realtime_api(settings[0])
        later = max(event_times) + timedelta(seconds=30)
        answers = []
        finished = []
        for c in calls:
            if c.outcome == "waiting":
                done = Call(c.call_id, c.queue, c.start, "answered", (later - c.start).total_seconds(), "a1")
                answers.append(done.events()[3])  # the answer, at `later`
                finished.append(done)
            else:
                finished.append(c)
        ready_again = agent_event("a4", later, "ready")
        producer.produce_sync(prefix + "cc.call-events.v1", [(e.call_id, e) for e in answers])
        producer.produce_sync(prefix + "cc.agent-events.v1", [(ready_again.agent_id, ready_again)])
        agents_after = {**agents, "a4": ("ready", later)}
        after = expected_view(finished, agents_after, later)
        assert owners["kpi-b"], owners  # some of the answered calls were b's
        until_same("worker a's view after the takeover", lambda: realtime_api(settings[0]), after, timeout=240,
                   worker=a)
        assert _same(wallboard_feed(settings[0], after, timeout=60), after)

        def all_a() -> bool | None:
            states = newest_states(kafka_bootstrap, prefix)
            calls_owned = {s.owner for s in states.values() if s.topic == "cc.call-events.v1"}
            return True if calls_owned == {"kpi-a"} else None

        poll("worker a publishes every call-events partition", all_a, timeout=120, worker=a)
