"""Routing core (ACD) throughput: decisions per second on a realistic center, growth with the number of agents,
and the ratio to a naive router that scans every agent (and every waiting call) per decision.

A virtual-time simulation drives the core through its public commands only: Poisson arrivals over 200 queues
(20 skills, minimum levels, mixed strategies, priorities, relaxation, sticky callers, wrap-up), agents answer
after a ring, talk an exponential time, callers abandon after an exponential patience. Every center is first
brought to a loaded steady state (about 95% of agents busy, two mean talk times of virtual time, untimed); all
of them are built in one process, then measured in turns: one chunk of arrivals per center per round, so each
size sees the same machine over the same minutes. Only the time inside `handle()` counts, as CPU time of this
thread (time other processes of a shared machine run is not counted), per chunk; the figure of a size is its
median chunk, and the growth is also given as the median of the ratios of chunks of one round. `next_deadline()`
is a heap peek in the core and is not timed (the naive router's scan for it is not charged to it either).
Run: `uv run python -m bench.routing_core`.
"""

from __future__ import annotations

import heapq
import random
import statistics
import time
from dataclasses import dataclass
from typing import Any, Protocol

from callstream_routing.domain import (
    AcceptReservation,
    AgentAction,
    Assigned,
    CancelCall,
    Command,
    ConfigureQueue,
    Decision,
    EndCall,
    OfferCall,
    OverflowDestination,
    Overflowed,
    OverflowTarget,
    QueueConfig,
    QueueMembership,
    Rejected,
    RelaxStep,
    RequiredSkill,
    Result,
    RouterConfig,
    RoutingCore,
    SetAgentState,
    Skill,
    Strategy,
    Tick,
)

N_QUEUES = 200
N_SKILLS = 20
QUEUES_PER_AGENT = 3
MEAN_TALK_S = 180.0
MEAN_PATIENCE_S = 240.0
RING_S = 2.0
LOAD = 0.95
CHUNK_CALLS = 250
SIZES = (500, 5_000, 50_000)
ROUNDS = 16  # chunks per size: 4,000 timed arrivals
# Arrivals handled untimed before each chunk: the center measured before it (50k agents, say) has evicted this
# one's state from the CPU caches, which a router serving one center does not see. Without them the chunks at
# 500 agents measured between 50k ones took 10-20% longer than the same chunks measured back to back.
LEAD_IN_CALLS = 25
NAIVE_CHUNKS = {500: 4, 5_000: 2}  # the naive router's chunks (a decision at 5k agents takes it milliseconds)
WARM_UP_S = 2 * MEAN_TALK_S  # virtual seconds: every warm-up call has ended, the center turned over


class Router(Protocol):
    def handle(self, cmd: Command) -> Result: ...

    def next_deadline(self) -> float | None: ...


# --------------------------------------------------------------------------------------------- naive baseline


class NaiveRouter:
    """The baseline: longest-idle with skills, by scanning all agents per call and all waiting calls per agent.

    Same commands and decisions as the core for what the simulation uses (no strategies, relaxation, sticky or
    ring-no-answer); deadlines (reservation expiry, end of wrap-up) are found by scanning too.
    """

    def __init__(self) -> None:
        self.queues: dict[str, QueueConfig] = {}
        self.agents: dict[str, dict[str, Any]] = {}
        self.waiting: list[dict[str, Any]] = []
        self.calls: dict[str, dict[str, Any]] = {}
        self.now = 0.0
        self.seq = 0
        self.out: list[Decision] = []

    def next_deadline(self) -> float | None:
        ends = [a["wrap_until"] for a in self.agents.values() if a["wrap_until"] is not None]
        return min(ends) if ends else None

    def handle(self, cmd: Command) -> Result:
        self.out = []
        self.now = max(self.now, cmd.now)
        for a in self.agents.values():  # end of wrap-up
            if a["wrap_until"] is not None and a["wrap_until"] <= self.now:
                a["wrap_until"] = None
                a["idle_since"] = self.now
                self._serve(a)
        if isinstance(cmd, ConfigureQueue):
            self.queues[cmd.config.queue_id] = cmd.config
        elif isinstance(cmd, SetAgentState):
            self.agents[cmd.agent_id] = {
                "id": cmd.agent_id, "queues": {m.queue_id for m in cmd.queues},
                "skills": {s.skill_id: s.proficiency for s in cmd.skills}, "call": None, "wrap_until": None,
                "idle_since": self.now}
        elif isinstance(cmd, OfferCall):
            cfg = self.queues[cmd.queue_id]
            req = {r.skill_id: r.min_proficiency for r in (*cfg.skills, *cmd.required_skills)}
            self.seq += 1
            call: dict[str, Any] = {"id": cmd.call_id, "queue": cmd.queue_id, "req": req,
                                    "key": (-cmd.priority, self.now, self.seq)}
            self.calls[cmd.call_id] = call
            best = None
            for a in self.agents.values():
                if self._fits(a, call) and (best is None or a["idle_since"] < best["idle_since"]):
                    best = a
            if best is not None:
                self._assign(call, best)
            else:
                self.waiting.append(call)
                position = sum(1 for c in self.waiting if c["queue"] == cmd.queue_id)
                from callstream_routing.domain import Queued

                self._emit(call, Queued(position=position, expected_wait_s=-1.0))
        elif isinstance(cmd, AcceptReservation):
            pass
        elif isinstance(cmd, CancelCall):
            cancelled = self.calls.pop(cmd.call_id, None)
            if cancelled is not None and cancelled in self.waiting:
                self.waiting.remove(cancelled)
        elif isinstance(cmd, EndCall):
            ended = self.calls.pop(cmd.call_id, None)
            for a in self.agents.values():
                if ended is not None and a["call"] == cmd.call_id:
                    a["call"] = None
                    wrap = self.queues[ended["queue"]].wrap_up_s
                    if wrap > 0:
                        a["wrap_until"] = self.now + wrap
                    else:
                        a["idle_since"] = self.now
                        self._serve(a)
        return Result(accepted=True, decisions=tuple(self.out))

    def _fits(self, a: dict[str, Any], call: dict[str, Any]) -> bool:
        return (a["call"] is None and a["wrap_until"] is None and call["queue"] in a["queues"]
                and all(a["skills"].get(s, 0) >= lvl for s, lvl in call["req"].items()))

    def _serve(self, a: dict[str, Any]) -> None:
        best = None
        for c in self.waiting:
            if self._fits(a, c) and (best is None or c["key"] < best["key"]):
                best = c
        if best is not None:
            self.waiting.remove(best)
            self._assign(best, a)

    def _assign(self, call: dict[str, Any], a: dict[str, Any]) -> None:
        a["call"] = call["id"]
        self.seq += 1
        self._emit(call, Assigned(agent_id=a["id"], reservation_id=f"r{self.seq}", reservation_expires_at=1e18))

    def _emit(self, call: dict[str, Any], outcome: Any) -> None:
        self.out.append(Decision(call_id=call["id"], queue_id=call["queue"], outcome=outcome, at=self.now))


# --------------------------------------------------------------------------------------------- the center


@dataclass
class Figures:
    agents: int
    commands: int
    decisions: int
    seconds: float
    # µs per decision of each run of CHUNK_CALLS timed arrivals: their median is the figure, so a burst of
    # other work on a shared machine moves one chunk, not the result.
    chunk_us: list[float]
    chunk_command_us: list[float]  # the same per command

    @property
    def per_decision_us(self) -> float:
        return statistics.median(self.chunk_us)

    @property
    def per_command_us(self) -> float:
        return statistics.median(self.chunk_command_us)

    @property
    def decisions_per_s(self) -> float:
        return 1e6 / self.per_decision_us


def center_setup(n_agents: int, rng: random.Random, full_mix: bool) -> tuple[list[Command], list[QueueConfig]]:
    strategies = [Strategy.LONGEST_IDLE] * 5 + [Strategy.SKILLS] * 2 + [
        Strategy.LEAST_OCCUPIED, Strategy.FEWEST_CALLS, Strategy.ROUND_ROBIN]
    configs = []
    for i in range(N_QUEUES):
        skill = f"s{i % N_SKILLS}"
        configs.append(QueueConfig(
            queue_id=f"q{i}", strategy=rng.choice(strategies) if full_mix else Strategy.LONGEST_IDLE,
            skills=(RequiredSkill(skill_id=skill, min_proficiency=rng.choice([1, 1, 2])),),
            wrap_up_s=float(rng.choice([0, 5, 10, 15])), reservation_timeout_s=15.0,
            relaxation=(RelaxStep(after_s=60.0, lower_min_by=1),) if full_mix and i % 3 == 0 else (),
            max_wait_s=900.0 if full_mix else None,
            overflow=OverflowTarget(destination=OverflowDestination.VOICEMAIL) if full_mix else None,
            sticky_window_s=3600.0 if full_mix and i % 5 == 0 else 0.0,
        ))
    cmds: list[Command] = [ConfigureQueue(config=c) for c in configs]
    for a in range(n_agents):
        queues = rng.sample(range(N_QUEUES), QUEUES_PER_AGENT)
        skills = {f"s{q % N_SKILLS}": rng.randint(2, 5) for q in queues}
        for extra in rng.sample(range(N_SKILLS), 2):
            skills.setdefault(f"s{extra}", rng.randint(1, 5))
        cmds.append(SetAgentState(
            command_id=f"login-{a}", agent_id=f"a{a}", action=AgentAction.LOGIN,
            queues=tuple(QueueMembership(queue_id=f"q{q}", priority=rng.choice([0, 0, 1])) for q in queues),
            skills=tuple(Skill(skill_id=s, proficiency=p) for s, p in skills.items())))
    return cmds, configs


class Simulation:
    """One center driven through a router, in steps: the constructor logs the agents in and offers the warm-up
    calls, `warm_up()` brings it to the loaded steady state (untimed), then every `measure(calls)` times the
    next `calls` arrivals as one chunk. Several centers can so be measured in turns, in one process.

    Warm-up: about LOAD x agents calls at once, with talk times spread over [0, 2 x mean] so the center reaches
    steady state; then WARM_UP_S of virtual time at the arrival rate. Timing starts at the first event after
    that and stops at the last measured arrival: the drain (every call ending, no new ones) is not steady state
    and would cost the same per agent at every size.
    """

    def __init__(self, router: Router, n_agents: int, *, seed: int = 7, full_mix: bool = True) -> None:
        self.router = router
        self.full_mix = full_mix
        self.n_agents = n_agents
        self.figures = Figures(agents=n_agents, commands=0, decisions=0, seconds=0.0, chunk_us=[],
                               chunk_command_us=[])
        self._rng = random.Random(seed)
        setup, _ = center_setup(n_agents, self._rng, full_mix)
        for cmd in setup:
            router.handle(cmd)
        self._events: list[tuple[float, int, str, str]] = []  # (time, seq, kind, call_id)
        self._seq = 0
        self._waiting: set[str] = set()
        self._timing = False
        self._chunk = _Chunk()
        self._now = 0.0  # the time of the last command sent
        n_warm = int(n_agents * LOAD)
        for i in range(n_warm):
            self._offer(0.0, i)
        self._arrival_rate = LOAD * n_agents / (MEAN_TALK_S + 10.0)
        self._next_arrival = self._rng.expovariate(self._arrival_rate)
        self._i = n_warm

    def warm_up(self) -> None:
        while self._step(until=WARM_UP_S) is not _LATER:
            pass

    def remember_ids(self, count: int) -> None:
        """Send `count` Ticks with command ids at the center's current time, untimed: they change nothing but the
        router's memory of command ids (for idempotency), which a router in service that gets an id with every
        command keeps full (`processed_ids_kept`) whatever its size. The warm-up alone filled it only at 50,000
        agents (about 19,000 ids at 5,000): the smaller centers were measured with a smaller memory, kinder to the
        CPU caches, and without the eviction of the oldest id that every command with an id costs at the cap."""
        for k in range(count):
            self._send(Tick(now=self._now, command_id=f"remembered-{k}"))

    def measure(self, calls: int, lead_in: int = 0) -> None:
        """Time the next `calls` arrivals (and every command between them): one more chunk in `figures`; the
        `lead_in` arrivals before them are handled untimed."""
        for _ in range(lead_in):
            while self._step() is not _ARRIVAL:
                pass
        self._timing = True
        self._chunk = chunk = _Chunk()
        arrivals = 0
        while arrivals < calls:
            arrivals += self._step() is _ARRIVAL
        self._timing = False
        f = self.figures
        f.commands += chunk.commands
        f.decisions += chunk.decisions
        f.seconds += chunk.seconds
        f.chunk_us.append(chunk.seconds / chunk.decisions * 1e6)
        f.chunk_command_us.append(chunk.seconds / chunk.commands * 1e6)

    def _step(self, until: float = float("inf")) -> object:
        """Handle the next event of the center, unless it is at or after `until` (_LATER)."""
        deadline = self.router.next_deadline()
        events = self._events
        t_event = events[0][0] if events else float("inf")
        now = min(t_event, self._next_arrival, deadline if deadline is not None else float("inf"))
        if now >= until:
            return _LATER
        if deadline is not None and deadline <= t_event and deadline <= self._next_arrival:
            self._send(Tick(now=now))
            return _OTHER
        if self._next_arrival <= t_event:
            self._offer(now, self._i)
            self._i += 1
            self._next_arrival = now + self._rng.expovariate(self._arrival_rate)
            return _ARRIVAL
        _, _, kind, ref = heapq.heappop(events)
        if kind == "accept":
            rid, cid = ref.split("|")
            self._send(AcceptReservation(now=now, reservation_id=rid, call_id=cid))
            rng = self._rng
            talk = rng.uniform(0, 2 * MEAN_TALK_S) if now == RING_S else rng.expovariate(1 / MEAN_TALK_S)
            self._push(now + talk, "end", cid)
        elif kind == "end":
            self._send(EndCall(now=now, call_id=ref, hard_call=self.full_mix and self._rng.random() < 0.01))
        elif kind == "abandon" and ref in self._waiting:
            self._waiting.discard(ref)
            self._send(CancelCall(now=now, call_id=ref))
        return _OTHER

    def _push(self, t: float, kind: str, call_id: str) -> None:
        self._seq += 1
        heapq.heappush(self._events, (t, self._seq, kind, call_id))

    def _send(self, cmd: Command) -> None:
        self._now = cmd.now
        if self._timing:
            t0 = time.thread_time()
            r = self.router.handle(cmd)
            took = time.thread_time() - t0
            chunk = self._chunk
            chunk.commands += 1
            chunk.decisions += len(r.decisions)
            chunk.seconds += took
        else:
            r = self.router.handle(cmd)
        for d in r.decisions:
            if isinstance(d.outcome, Assigned):
                self._waiting.discard(d.call_id)
                self._push(d.at + RING_S, "accept", d.outcome.reservation_id + "|" + d.call_id)
            elif isinstance(d.outcome, Overflowed | Rejected):
                self._waiting.discard(d.call_id)

    def _offer(self, now: float, i: int) -> None:
        rng, full_mix = self._rng, self.full_mix
        q = rng.randrange(N_QUEUES)
        cid = f"x{i}"
        req: tuple[RequiredSkill, ...] = ()
        if full_mix and rng.random() < 0.2:
            req = (RequiredSkill(skill_id=f"s{q % N_SKILLS}", min_proficiency=3),)
        caller = f"h{rng.randrange(self.n_agents * 20)}" if full_mix else ""
        prio = rng.choice([0, 0, 0, 0, 1, 2]) if full_mix else 0
        self._waiting.add(cid)
        self._send(OfferCall(command_id=f"o{i}", now=now, call_id=cid, queue_id=f"q{q}", priority=prio,
                             required_skills=req, caller_hash=caller))
        self._push(now + rng.expovariate(1 / MEAN_PATIENCE_S), "abandon", cid)


@dataclass
class _Chunk:
    commands: int = 0
    decisions: int = 0
    seconds: float = 0.0


_ARRIVAL, _OTHER, _LATER = object(), object(), object()  # what Simulation._step did


def main() -> None:
    from bench.common import print_figures
    from callstream_routing.service_layer import heap

    t0 = time.perf_counter()
    # The realistic mix (strategies, per-call skills, priorities, relaxation, sticky callers, max wait) at every
    # size: the same per agent (3 queues, 2-5 skills, 20 callers per agent), so only the size changes. Against
    # the naive scan, on what it implements (longest idle with skills): the same plain center for both.
    scaling = {n: Simulation(RoutingCore(), n) for n in SIZES}
    plain = {n: Simulation(RoutingCore(), n, full_mix=False) for n in NAIVE_CHUNKS}
    naive = {n: Simulation(NaiveRouter(), n, full_mix=False) for n in NAIVE_CHUNKS}
    for sim in (*scaling.values(), *plain.values(), *naive.values()):
        sim.warm_up()
    for sim in (*scaling.values(), *plain.values()):  # the naive router remembers no ids
        sim.remember_ids(RouterConfig().processed_ids_kept)
    # What the router does once it has rebuilt its state and starts to lead (and again after every snapshot):
    # collect, then freeze what is alive out of the cyclic collector's way (service_layer/heap.py). Without it a
    # full collection traverses the whole 50k-agent state from time to time, inside some command, a pause the
    # router in production does not take.
    heap.settle()
    # Measured in turns, one chunk of arrivals per center per round, so every size sees the same machine over
    # the same minutes (one after another, minutes apart, the figure at 500 agents moved 53-103 us on a shared
    # 2-core machine with the same code). The naive router's few chunks are spread over the rounds.
    for r in range(ROUNDS):
        for sim in (*scaling.values(), *plain.values()):
            sim.measure(CHUNK_CALLS, LEAD_IN_CALLS)
        for n, sim in naive.items():
            if r % (ROUNDS // NAIVE_CHUNKS[n]) == 0 and len(sim.figures.chunk_us) < NAIVE_CHUNKS[n]:
                sim.measure(CHUNK_CALLS, LEAD_IN_CALLS)
    fig = {n: sim.figures for n, sim in scaling.items()}
    mix = fig[5_000]
    figures: dict[str, float] = {
        "core_decisions_per_s_5k": mix.decisions_per_s,
        "core_commands_per_s_5k": mix.commands / mix.seconds,
    }
    for n, f in fig.items():
        figures[f"core_us_per_decision_{n}"] = f.per_decision_us
    # Per command too: at 500 agents (7.5 per queue) more callers wait, so more of the decisions are cheap
    # "queued" answers than at 5k/50k, where nearly every call is assigned at once (accept, end, wrap-up follow).
    for n, f in fig.items():
        figures[f"core_us_per_command_{n}"] = f.per_command_us
    figures["growth_5k_over_500"] = fig[5_000].per_decision_us / fig[500].per_decision_us
    figures["growth_50k_over_5k"] = fig[50_000].per_decision_us / fig[5_000].per_decision_us
    figures["growth_50k_over_500"] = fig[50_000].per_decision_us / fig[500].per_decision_us
    figures["growth_50k_over_500_command"] = fig[50_000].per_command_us / fig[500].per_command_us
    # The same growth from the chunks of one round (measured within seconds of each other): the median of
    # those ratios, less moved by the machine changing between rounds.
    figures["paired_50k_over_500"] = paired_median(fig[50_000].chunk_us, fig[500].chunk_us)
    figures["paired_50k_over_500_command"] = paired_median(
        fig[50_000].chunk_command_us, fig[500].chunk_command_us)
    for n in NAIVE_CHUNKS:
        figures[f"core_plain_us_per_decision_{n}"] = plain[n].figures.per_decision_us
        figures[f"naive_us_per_decision_{n}"] = naive[n].figures.per_decision_us
        figures[f"speedup_vs_naive_{n}"] = naive[n].figures.per_decision_us / plain[n].figures.per_decision_us
    figures["wall_s"] = time.perf_counter() - t0
    print_figures("routing core: 200 queues, 20 skills, 95% load (virtual time)", figures)
    print(f"  timed: mix {mix.commands:,} commands / {mix.decisions:,} decisions; "
          + "; ".join(f"{n:,} agents {f.decisions:,} decisions" for n, f in fig.items())
          + f"; {ROUNDS} rounds of {CHUNK_CALLS} arrivals per size, interleaved")


def paired_median(numerators: list[float], denominators: list[float]) -> float:
    return statistics.median(a / b for a, b in zip(numerators, denominators, strict=True))


if __name__ == "__main__":
    main()
