"""The month's KPI queries of a 500-agent center: latency of the KPI API's own queries over a month of facts.

How the data is made (a month through the full simulator and sessionizer would take far too long here):

* The scenario is the simulator's demo center scaled to 500 agents (`bench.simulator.scaled`: agents x10,
  arrivals x17, about 41,500 calls a day), parsed by the simulator's own `parse_scenario`, and every
  random draw uses the simulator's `sample` over the scenario's distributions (Poisson arrivals per
  30-minute interval, IVR share and duration, patience, talk, hold, ACW, resolved and hard-call shares).
* `DISTINCT_DAYS` days are generated, each with its own seed, by a small first-come-first-served ACD in
  this file: the agents of the scaled groups on their shifts (start, end, breaks), each call going to the
  agent of its queue that is free first; it is answered when that agent is free within the caller's
  patience, else abandoned at the patience (short abandon at <= 20 s, the service default). Self-served
  IVR calls are contacts that were not offered. No transfers, overflows or callbacks (they do not change
  what the queries scan). Each answered call makes the agent talking, on hold (for the hold share),
  then in ACW; the gaps are ready, breaks not ready.
* Contact segments are built as the service's `ContactRecord`, written as the service writes them
  (`to_proto` then the adapter's `contact_row`); agent state intervals are the service's
  `StateInterval`, cut at 30-minute boundaries with `split_interval` and written with `interval_row`.
  Those rows go into chDB (temp dir) through the service's migrations and `FactWriter` (dedup tokens and
  all).
* The month is `MONTH_DAYS` days: day n re-uses generated day n % DISTINCT_DAYS, copied inside ClickHouse
  (`INSERT ... SELECT`) with its times moved to day n and its call ids suffixed, so every row is a
  distinct contact. (Sending 4 million rows through clickhouse-connect's Python serialisation took
  over 8 minutes on the shared 2-core machine; the copy takes seconds.)

Measured: `read_model.kpi_report` (what `GET /v1/kpis` and the scorecard run) for the month by day for the
center, and for one agent (the scorecard query; a different agent each run), p50/p95 over `RUNS` runs
after `WARMUP` warm-up runs. Baseline: `SELECT count() FROM contacts FINAL` over the same month (the cost of
reading the deduplicated facts at all), timed the same way; the ratio is query / baseline.
"""

from __future__ import annotations

import heapq
import logging
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.common import percentile, print_figures
from bench.simulator import scaled
from callstream_core.clickhouse import get_client
from callstream_kpi.adapters import clickhouse_facts as facts
from callstream_kpi.adapters.kpi_queries import KpiQuery
from callstream_kpi.domain.agent_states import StateInterval, split_interval
from callstream_kpi.domain.contact import ContactRecord
from callstream_kpi.service_layer.reports import kpi_report
from callstream_simulator import parse_scenario
from callstream_simulator.engine import Rand, sample
from callstream_simulator.scenario import Scenario

MONTH_START = datetime(2026, 4, 1, tzinfo=UTC)
MONTH_DAYS = 30
DISTINCT_DAYS = 2
SHORT_ABANDON_S = 20.0
WARMUP = 2
RUNS = 10
INSERT_CHUNK = 100_000


@dataclass
class _Agent:
    agent_id: str
    team_id: str
    queues: list[str]
    shift_start: float  # seconds from the day's scenario start
    shift_end: float
    breaks: Sequence[tuple[float, float, str]]  # (start, end, reason)
    free_at: float = 0.0
    busy: list[tuple[float, float, float, float]] = field(default_factory=list)  # answer, talk, hold, acw

    def available_from(self, t: float) -> float:
        """First moment from `t` the agent is not on a break."""
        for start, end, _ in self.breaks:
            if start <= t < end:
                t = end
        return t


def _agents(sc: Scenario, rng: Rand) -> list[_Agent]:
    out = []
    for group in sc.agents:
        for n in range(group.count):
            stagger = group.stagger_minutes * 60 * rng.random()
            start = group.shift_start_h * 3600 + stagger
            end = (group.shift_end_h or 12) * 3600 + stagger
            breaks = [(start + b.at_h * 3600 - group.shift_start_h * 3600,
                       start + b.at_h * 3600 - group.shift_start_h * 3600 + b.minutes * 60, b.reason)
                      for b in group.breaks]
            out.append(_Agent(f"{group.id_prefix}-{n + 1:03d}", group.team_id, [m.queue_id for m in group.queues],
                              start, end, breaks, free_at=start))
    return out


def simulate_day(sc: Scenario, day: datetime, seed: int) -> tuple[list[ContactRecord], list[StateInterval]]:
    """One day of the scaled demo center through the first-come-first-served ACD described above."""
    rng = Rand(seed)
    origin = day.replace(hour=sc.start.hour, minute=sc.start.minute)
    at: Callable[[float], datetime] = lambda s: origin + timedelta(seconds=s)  # noqa: E731
    agents = _agents(sc, rng)
    heaps: dict[str, list[tuple[float, int]]] = {q.queue_id: [] for q in sc.queues}
    for i, agent in enumerate(agents):
        for q in agent.queues:
            heaps[q].append((agent.free_at, i))
    for h in heaps.values():
        heapq.heapify(h)
    arrivals = [(start + length * rng.random(), ct) for ct in sc.call_types
                for start, length, mean in ct.arrivals.intervals() for _ in range(int(rng.gen.poisson(mean)))]
    arrivals.sort(key=lambda a: a[0])
    contacts: list[ContactRecord] = []
    for n, (t, ct) in enumerate(arrivals):
        call_id = f"{day:%Y%m%d}-{n:06d}"
        caller = f"caller-{int(rng.random() * 200_000)}"
        common: dict[str, Any] = {"call_id": call_id, "segment": 0, "offered_at": at(t), "queue_id": ct.queue_id,
                  "call_type": ct.call_type, "caller_hash": caller, "priority": ct.priority, "topic": ct.call_type}
        ivr_s = 0.0
        if ct.ivr is not None and rng.random() < ct.ivr.share:
            ivr_s = sample(rng, ct.ivr.duration)
            if rng.random() < ct.ivr.self_service_share:
                contacts.append(ContactRecord(outcome="ivr_handled", ended_at=at(t + ivr_s), ivr_s=ivr_s, **common))
                continue
        queued = t + ivr_s
        patience = sample(rng, ct.patience) if ct.patience is not None else float("inf")
        chosen = _first_free(agents, heaps, ct.queue_id, queued)
        wait = max(agents[chosen].free_at, queued) - queued if chosen is not None else float("inf")
        if wait > patience:
            contacts.append(ContactRecord(outcome="abandoned", ended_at=at(queued + patience), ivr_s=ivr_s,
                                          queue_s=patience, queued=True,
                                          short_abandon=patience <= SHORT_ABANDON_S, **common))
            continue
        assert chosen is not None
        agent = agents[chosen]
        answer = queued + wait
        talk = sample(rng, ct.talk)
        hold = sample(rng, ct.hold.duration) if ct.hold is not None and rng.random() < ct.hold.share else 0.0
        acw = sample(rng, ct.acw)
        agent.busy.append((answer, talk, hold, acw))
        _release(agents, heaps, chosen, answer + talk + hold + acw)
        contacts.append(ContactRecord(
            outcome="answered", answered_at=at(answer), ended_at=at(answer + talk + hold), agent_id=agent.agent_id,
            team_id=agent.team_id, ivr_s=ivr_s, queue_s=wait, ring_s=0.0, talk_s=talk, hold_s=hold, acw_s=acw,
            hold_count=int(hold > 0), queued=True, resolved=rng.random() < ct.resolved_share,
            hard_call=rng.random() < ct.hard_call_share, disposition_code=ct.disposition, **common))
    return contacts, [piece for agent in agents for iv in _intervals(agent, at) for piece in split_interval(iv)]


def _release(agents: list[_Agent], heaps: dict[str, list[tuple[float, int]]], i: int, free_at: float) -> None:
    """Agent `i` is free from `free_at`: in every queue it serves (older heap entries become stale)."""
    agents[i].free_at = free_at
    for q in agents[i].queues:
        heapq.heappush(heaps[q], (free_at, i))


def _first_free(agents: list[_Agent], heaps: dict[str, list[tuple[float, int]]], queue: str,
                t: float) -> int | None:
    """The agent of `queue` free first for a call queued at `t` (None: nobody left on shift)."""
    heap = heaps[queue]
    while heap:
        free_at, i = heap[0]
        agent = agents[i]
        if free_at != agent.free_at or free_at >= agent.shift_end:
            heapq.heappop(heap)  # stale (taken through another queue since) or off shift
            continue
        ready = max(free_at, t)
        start = agent.available_from(ready)
        if start > ready:  # on a break then: free when it ends
            _release(agents, heaps, i, start)
            continue
        return i
    return None


def _intervals(agent: _Agent, at: Callable[[float], datetime]) -> list[StateInterval]:
    out: list[StateInterval] = []

    def add(state: str, start: float, end: float, reason: str = "") -> None:
        if end > start:
            out.append(StateInterval(agent.agent_id, state, at(start), at(end), reason, agent.team_id))

    def idle(start: float, end: float) -> None:
        cursor = start
        for b_start, b_end, reason in agent.breaks:
            if b_end <= cursor or b_start >= end:
                continue
            add("ready", cursor, b_start)
            add("not_ready", max(cursor, b_start), min(end, b_end), reason)
            cursor = min(end, b_end)
        add("ready", cursor, end)

    cursor = agent.shift_start
    for answer, talk, hold, acw in agent.busy:
        idle(cursor, answer)
        add("talking", answer, answer + talk)
        add("hold", answer + talk, answer + talk + hold)
        add("acw", answer + talk + hold, answer + talk + hold + acw)
        cursor = answer + talk + hold + acw
    idle(cursor, max(cursor, agent.shift_end))
    return out


def build_days(sc: Scenario) -> tuple[list[list[Any]], list[list[Any]], int]:
    """Rows of contacts and agent state intervals of the generated days (see the module docstring), and
    the number of offered calls in the month they make (the check that the queries read it all)."""
    contact_rows: list[list[Any]] = []
    interval_rows: list[list[Any]] = []
    offered = 0
    for d in range(DISTINCT_DAYS):
        contacts, intervals = simulate_day(sc, MONTH_START + timedelta(days=d), seed=1000 + d)
        contact_rows += [facts.contact_row(c.to_proto()) for c in contacts]
        interval_rows += [facts.interval_row(iv, 1) for iv in intervals]
        copies = len(range(d, MONTH_DAYS, DISTINCT_DAYS))
        offered += copies * sum(c.outcome != "ivr_handled" for c in contacts)
    return contact_rows, interval_rows, offered


def _copy_sql(table: str, columns: list[str], moved: dict[str, str]) -> str:
    """Copies the generated days of `table` to the rest of the month: day n = generated day
    n % DISTINCT_DAYS moved by (n - n % DISTINCT_DAYS) days (`moved`: column -> expression of `k.shift`)."""
    select = ", ".join(moved.get(c, c) for c in columns)
    first_time = next(c for c in columns if c in ("offered_at", "started_at"))
    return f"""
INSERT INTO {table} ({", ".join(columns)})
SELECT {select}
FROM {table} FINAL
CROSS JOIN (SELECT number * {{distinct:UInt32}} AS shift FROM numbers(1, {{copies:UInt32}})) AS k
WHERE toDate({first_time}) + k.shift < {{month_end:Date}}
"""


def _moved(*names: str) -> dict[str, str]:
    return {n: f"{n} + toIntervalDay(k.shift)" for n in names}


_COPY_CONTACTS = _copy_sql("contacts", facts.CONTACT_COLUMNS, {
    "call_id": "concat(call_id, '-m', toString(k.shift))",
    **_moved("interval_start", "offered_at", "answered_at", "ended_at")})
_COPY_INTERVALS = _copy_sql("agent_state_intervals", facts.INTERVAL_COLUMNS, _moved("started_at", "ended_at"))


def _timed(action: Callable[[int], object]) -> list[float]:
    for n in range(WARMUP):
        action(n)
    samples = []
    for n in range(RUNS):
        began = time.perf_counter()
        action(WARMUP + n)
        samples.append(time.perf_counter() - began)
    return samples


def measure(chdb: Path) -> dict[str, float]:
    sc = parse_scenario(scaled(), "bench scenario")
    began = time.perf_counter()
    contact_rows, interval_rows, offered = build_days(sc)
    generated = time.perf_counter() - began
    client = get_client(f"chdb://{chdb}", database=f"bench_{uuid.uuid4().hex[:8]}")
    facts.apply_migrations(client)
    writer = facts.FactWriter(facts.RetryingClient(client))
    began = time.perf_counter()
    for i in range(0, len(contact_rows), INSERT_CHUNK):
        writer.insert("contacts", contact_rows[i:i + INSERT_CHUNK], facts.CONTACT_COLUMNS, None)
    for i in range(0, len(interval_rows), INSERT_CHUNK):
        writer.insert("agent_state_intervals", interval_rows[i:i + INSERT_CHUNK], facts.INTERVAL_COLUMNS, None)
    inserted = time.perf_counter() - began
    began = time.perf_counter()
    copy = {"distinct": DISTINCT_DAYS, "copies": -(-MONTH_DAYS // DISTINCT_DAYS) - 1,
            "month_end": (MONTH_START + timedelta(days=MONTH_DAYS)).date()}
    client.command(_COPY_CONTACTS, parameters=copy)
    client.command(_COPY_INTERVALS, parameters=copy)
    copied = time.perf_counter() - began
    contacts_in_month = client.command("SELECT count() FROM contacts FINAL")
    intervals_in_month = client.command("SELECT count() FROM agent_state_intervals FINAL")

    end = MONTH_START + timedelta(days=MONTH_DAYS)
    center = KpiQuery("center", "", "day", MONTH_START, end)
    report = kpi_report(client, center)
    if report.total.counters.offered != offered or len(report.buckets) != MONTH_DAYS:
        raise RuntimeError(f"the month's report read {report.total.counters.offered} offered calls in "
                           f"{len(report.buckets)} days; {offered} in {MONTH_DAYS} were written")
    agent_ids = sorted({r[facts.CONTACT_COLUMNS.index("agent_id")] for r in contact_rows[:20_000]} - {""})
    baseline = _timed(lambda n: client.query(
        "SELECT count() FROM contacts FINAL WHERE offered_at >= {start:DateTime64(3)} "
        "AND offered_at < {end:DateTime64(3)}", parameters={"start": MONTH_START, "end": end}))
    by_day = _timed(lambda n: kpi_report(client, center))
    by_agent = _timed(lambda n: kpi_report(client, KpiQuery("agent", agent_ids[n % len(agent_ids)], "day",
                                                             MONTH_START, end)))
    base_p50 = statistics.median(baseline)
    return {
        "agents": float(sum(g.count for g in sc.agents)),
        "contacts (month)": float(contacts_in_month),  # type: ignore[arg-type]
        "offered calls / day": offered / MONTH_DAYS,
        "state intervals (month)": float(intervals_in_month),  # type: ignore[arg-type]
        "days generated in s": generated,
        "days inserted (adapter) in s": inserted,
        "month copied (SQL) in s": copied,
        "baseline count FINAL p50 ms": 1000 * base_p50,
        "by day (center) p50 ms": 1000 * statistics.median(by_day),
        "by day (center) p95 ms": 1000 * percentile(by_day, 95),
        "by day / baseline p50": statistics.median(by_day) / base_p50,
        "by agent (scorecard) p50 ms": 1000 * statistics.median(by_agent),
        "by agent (scorecard) p95 ms": 1000 * percentile(by_agent, 95),
        "by agent / baseline p50": statistics.median(by_agent) / base_p50,
    }


def main() -> None:
    logging.getLogger("clickhouse_connect").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="callstream-bench-month-") as chdb:
        print_figures(f"KPI queries over a month ({MONTH_DAYS} days) of a 500-agent center, chDB, "
                      f"{WARMUP} warm-up + {RUNS} runs", measure(Path(chdb)))


if __name__ == "__main__":
    main()
