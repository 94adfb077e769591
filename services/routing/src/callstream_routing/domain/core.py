"""The routing core (ACD): a deterministic, event-driven state machine. Commands in, decisions out.

No I/O and no clock of its own: every command carries `now`. A wrapper calls `handle(Tick(now=t))` at
`next_deadline()` (reservation expiry, end of wrap-up / cool-down / delays, relaxation, priority aging,
sticky and max-wait deadlines); every command also fires the deadlines due before it.

Indexes (a decision costs O(log n) in the pools involved, never a scan of all agents or calls):
  * a *pool* is (queue, capacity channel, effective skill requirement) -- or (`@agent`, channel) for
    calls waiting for their sticky agent. It holds a heap of the idle eligible agents keyed by the
    queue's strategy and a heap of waiting calls keyed by (-priority, virtual enqueue time, seq); the priority
    includes what the call gained by waiting (a queue's PriorityAging: +1 every `every_s`, re-keyed by a timer).
    Heaps use lazy deletion (entries carry a token; stale ones are dropped when they surface).
  * an agent knows the pools it qualifies for; an arriving call peeks its pools' agent heaps; an agent
    becoming free peeks the call heaps of its pools (a few per queue).
  * per queue, a sorted list of waiting calls gives positions for expected-wait estimates.
State is snapshot to a plain dict; the indexes are derived and rebuilt on `restore`.

Modules: the records of queues, agents and calls (`records`), the pools (`pools`), the timer heap and a waiting
call's next deadline (`timers`), the records as plain data (`snapshot`); this one is the decisions.
"""

from __future__ import annotations

import heapq
from bisect import bisect_left, insort
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

from callstream_routing.domain.codec import from_plain
from callstream_routing.domain.ewt import expected_wait
from callstream_routing.domain.model import (
    AcceptCallback,
    AcceptReservation,
    AgentAction,
    AgentStatus,
    AgentView,
    Assigned,
    CallbackOffered,
    CallOutcome,
    CallState,
    CallView,
    CancelCall,
    Channel,
    ChannelCapacity,
    Command,
    ConfigureQueue,
    Decision,
    EndCall,
    NotReadyReason,
    OfferCall,
    Outcome,
    OverflowDestination,
    Overflowed,
    Queued,
    QueueMembership,
    QueueView,
    Rejected,
    RejectReservation,
    RequiredSkill,
    Result,
    RouterConfig,
    SetAgentState,
    Skill,
    Strategy,
    Tick,
    TimeoutReservation,
    TransferCall,
    UpdatePriority,
    capacity_channel,
)
from callstream_routing.domain.pools import Pool, Req
from callstream_routing.domain.records import LOGGED_OUT, NOT_READY, READY, AgentRecord, CallRecord, QueueRecord
from callstream_routing.domain.snapshot import (
    capture_agent,
    capture_call,
    capture_queue,
    plain_snapshot,
    restore_agent,
    restore_call,
    restore_queue,
)
from callstream_routing.domain.timers import TIMER_AGENT, TIMER_CALL, TIMER_RES, Timer, Timers, call_next_time


class RoutingCore:
    """The ACD. `handle(command) -> Result`; queries; `next_deadline()`; `snapshot()` / `restore()`."""

    def __init__(self, config: RouterConfig | None = None) -> None:
        self._cfg = config or RouterConfig()
        self._now = 0.0
        self._queues: dict[str, QueueRecord] = {}
        self._agents: dict[str, AgentRecord] = {}
        self._calls: dict[str, CallRecord] = {}
        # Both bounded, so a router that runs for months holds no more than its traffic needs: outcomes up to
        # `outcomes_kept` finished calls; a caller's last agent only while some queue's sticky window covers it.
        self._outcomes: OrderedDict[str, CallOutcome] = OrderedDict()
        self._last_agent: OrderedDict[str, tuple[str, float]] = OrderedDict()
        self._sticky_horizon = 0.0  # the longest sticky window of any queue
        # Insertion-ordered with O(1) eviction of the oldest id: deleting the first key of a plain dict makes the
        # next `next(iter(d))` skip every slot deleted before it (about 60 us per command at 200k ids kept).
        self._processed: OrderedDict[str, Result] = OrderedDict()
        self._res_index: dict[str, str] = {}
        self._pools: dict[tuple[str, Channel, Req], Pool] = {}
        # A call's requirement and pools, worked out once per (queue, channel, requirement, relaxation stage), not
        # at every offer (_effective, _call_pools): a fixed saving per offer, A/B 2.7-4.5% less time per command
        # at 5,000 agents, about 1% at 50,000 (within that machine's noise). Keyed by what they depend on besides
        # the queues' configuration, so forgotten when a queue is configured and when the pools are rebuilt; as
        # many entries as pools (_pools grows with the distinct requirements too).
        self._effective_memo: dict[tuple[str, Req, int], tuple[Req, tuple[str, ...]]] = {}
        self._pools_memo: dict[tuple[str, Channel, Req, int], list[Pool]] = {}
        self._sticky_pools: dict[str, list[Pool]] = {}
        self._timers = Timers()
        self._agent_seq = 0
        self._call_seq = 0
        self._res_seq = 0
        self._rr_seq = 0
        self._token_seq = 0  # index tokens: unique across agents, calls and re-entries of a call id
        self._out: list[Decision] = []
        self._handlers: dict[type, Callable[[Any], tuple[bool, str]]] = {
            ConfigureQueue: self._configure,
            OfferCall: self._offer,
            AcceptReservation: self._accept,
            RejectReservation: self._reject,
            TimeoutReservation: self._timeout,
            CancelCall: self._cancel,
            AcceptCallback: self._accept_callback,
            TransferCall: self._transfer,
            EndCall: self._end_call,
            SetAgentState: self._agent_state,
            UpdatePriority: self._update_priority,
            Tick: lambda cmd: (True, ""),
        }

    # ------------------------------------------------------------------------------------ commands

    @property
    def now(self) -> float:
        return self._now

    @property
    def config(self) -> RouterConfig:
        return self._cfg

    def handle(self, cmd: Command) -> Result:
        """Apply one command; a repeated command_id returns the first result and changes nothing."""
        if cmd.command_id and cmd.command_id in self._processed:
            return self._processed[cmd.command_id]
        handler = self._handlers.get(type(cmd))
        if handler is None:
            raise TypeError(f"unknown command {type(cmd).__name__}")
        self._out = []
        now = max(self._now, cmd.now)
        self._advance(now)
        accepted, reason = handler(cmd)
        self._advance(now)
        if self._timers.compaction_due():
            self._timers.compact(self._timer_valid)
        result = Result(accepted=accepted, reason=reason, decisions=tuple(self._out))
        self._out = []
        if cmd.command_id:
            self._processed[cmd.command_id] = result
            if len(self._processed) > self._cfg.processed_ids_kept:
                self._processed.popitem(last=False)
        return result

    def handle_all(self, commands: Iterable[Command]) -> list[Result]:
        return [self.handle(c) for c in commands]

    def next_deadline(self) -> float | None:
        """The earliest time at which a Tick changes something, or None."""
        return self._timers.next_due(self._timer_valid)

    # ------------------------------------------------------------------------------------ queries

    def queue_ids(self) -> tuple[str, ...]:
        return tuple(self._queues)

    def agent_ids(self) -> tuple[str, ...]:
        return tuple(self._agents)

    def active_call_ids(self) -> tuple[str, ...]:
        return tuple(self._calls)

    def call_outcome(self, call_id: str) -> CallOutcome | None:
        return self._outcomes.get(call_id)

    def waiting_calls(self, queue_id: str) -> tuple[str, ...]:
        """Waiting calls of a queue, in service order (before agent penalties and skills)."""
        q = self._queues.get(queue_id)
        return tuple(k[3] for k in q.order) if q else ()

    def expected_wait_new(self, queue_id: str, priority: int = 0) -> float:
        """Expected wait of a caller who would join the queue now."""
        q = self._queues[queue_id]
        ahead = bisect_left(q.order, (-priority, self._now, 1 << 62, ""))
        return self._ewt(q, ahead)

    def queue_state(self, queue_id: str) -> QueueView | None:
        q = self._queues.get(queue_id)
        if q is None:
            return None
        longest = max((self._now - self._calls[k[3]].entered_at for k in q.order), default=0.0)
        idle = sum(1 for aid in q.members if self._available(self._agents[aid], Channel.VOICE))
        return QueueView(
            queue_id=queue_id, calls_waiting=len(q.order), longest_wait_s=longest, agents_logged_in=len(q.members),
            agents_idle=idle, expected_wait_s=self._ewt(q, len(q.order)),
        )

    def agent_state(self, agent_id: str) -> AgentView | None:
        a = self._agents.get(agent_id)
        if a is None:
            return None
        state, reason = self._display(a)
        return AgentView(
            agent_id=agent_id, state=state, reason=reason, since=a.since,
            call_ids=tuple(a.calls) + tuple(a.reservations.values()), reservation_ids=tuple(a.reservations),
            version=a.version,
            queues=tuple(QueueMembership(queue_id=k, priority=v) for k, v in a.queues.items()),
            skills=tuple(Skill(skill_id=k, proficiency=v) for k, v in a.skills.items()),
            capacity=tuple(ChannelCapacity(channel=k, capacity=v) for k, v in a.capacity.items()),
            load=tuple(ChannelCapacity(channel=k, capacity=v) for k, v in a.load.items() if v),
            available_channels=tuple(ch for ch in a.capacity if self._available(a, ch)),
            misses=a.misses,
        )

    def call_state(self, call_id: str) -> CallView | None:
        c = self._calls.get(call_id)
        if c is None:
            return None
        position = ewt = None
        req: Req = ()
        queues: tuple[str, ...] = ()
        if c.state is CallState.WAITING:
            q = self._queues[c.queue_id]
            position = self._position(c)
            ewt = self._ewt(q, position - 1)
            if c.sticky_agent is None:
                req, queues = self._effective(c)
                queues = tuple(x for x in queues if x in self._queues)
        return CallView(
            call_id=call_id, state=c.state, queue_id=c.queue_id, priority=c.rank, virtual_enqueue_time=c.venq,
            entered_at=c.entered_at, channel=c.channel, callback=c.callback, agent_id=c.agent_id,
            reservation_id=c.reservation_id, position=position, expected_wait_s=ewt, eligible_queues=tuple(queues),
            requirement=tuple(RequiredSkill(skill_id=s, min_proficiency=lvl) for s, lvl in req),
            preferred_agent_id=c.sticky_agent, relax_stage=c.relax_stage, aging_boost=c.aged,
        )

    # ------------------------------------------------------------------------------------ time

    def _advance(self, now: float) -> None:
        h = self._timers.heap
        while h and h[0][0] <= now:
            entry = heapq.heappop(h)
            if not self._timer_valid(entry):
                continue
            self._now = max(self._now, entry[0])
            kind, ident = entry[1], entry[3]
            if kind == TIMER_RES:
                call = self._calls[ident]
                self._ring_no_answer(call)
            elif kind == TIMER_AGENT:
                self._hold_over(self._agents[ident])
            else:
                self._call_deadline(self._calls[ident])
        self._now = now

    def _timer_valid(self, entry: Timer) -> bool:
        """Whether the timer still fires. A call's timer belongs to the call that pushed it (its seq): a call id
        offered again after it finished is a new call, and its predecessor's leftover timer, due at the same
        instant as its own, would fire it out of its seq's turn -- and only in a core that kept the leftover,
        not in one restored from a snapshot or compacted (`Timers.compact`)."""
        t, kind, seq, ident = entry
        if kind == TIMER_RES:
            c = self._calls.get(ident)
            return c is not None and c.seq == seq and c.state is CallState.RESERVED and c.res_expires == t
        if kind == TIMER_AGENT:
            a = self._agents.get(ident)
            return a is not None and a.hold_end() == t
        c = self._calls.get(ident)
        if c is None or c.seq != seq or c.state is not CallState.WAITING:
            return False
        return call_next_time(c, self._queues[c.queue_id].cfg) == t

    def _schedule_agent(self, a: AgentRecord) -> None:
        end = a.hold_end()
        if end is not None:
            self._timers.push(end, TIMER_AGENT, a.seq, a.agent_id)

    def _schedule_call(self, c: CallRecord) -> None:
        t = call_next_time(c, self._queues[c.queue_id].cfg)
        if t is not None:
            self._timers.push(t, TIMER_CALL, c.seq, c.call_id)

    def _call_deadline(self, c: CallRecord) -> None:
        q = self._queues[c.queue_id]
        cfg, now = q.cfg, self._now
        max_wait = cfg.max_wait_s if cfg.overflow is not None and not c.callback else None
        if max_wait is not None and now >= c.entered_at + max_wait:
            self._stop_waiting(c, abandoned=False)
            self._overflow(c, "max wait")
            return
        changed = False
        if c.sticky_agent is not None and now >= c.sticky_until:
            c.sticky_agent = None
            changed = True
        while c.relax_stage < len(cfg.relaxation) and now >= c.entered_at + cfg.relaxation[c.relax_stage].after_s:
            c.relax_stage += 1
            changed = True
        aged, aging = c.aged, cfg.aging
        while aging is not None and aged < aging.max_boost and now >= c.entered_at + (aged + 1) * aging.every_s:
            aged += 1
        if changed or aged != c.aged:
            self._leave_waiting(c)  # under its old key: the boost changes the key
            c.aged = aged
            self._enter_waiting(c)
            self._try_assign(c)
        else:
            self._schedule_call(c)

    def _hold_over(self, a: AgentRecord) -> None:
        a.wrap_until = a.cool_until = a.delay_until = None
        a.since = self._now
        if not a.calls and not a.reservations:
            a.idle_since = self._now
        self._reindex_agent(a)
        self._serve(a)

    # ------------------------------------------------------------------------------------ indexes

    def _available(self, a: AgentRecord, ch: Channel) -> bool:
        if a.status != READY or a.load.get(ch, 0) >= a.capacity.get(ch, 0):
            return False
        end = a.hold_end()
        return end is None or end <= self._now

    def _next_token(self) -> int:
        self._token_seq += 1
        return self._token_seq

    def _reindex_agent(self, a: AgentRecord) -> None:
        a.token = self._next_token()
        for p in a.pools:
            if self._available(a, p.channel):
                self._push_agent(p, a)

    def _push_agent(self, p: Pool, a: AgentRecord) -> None:
        heapq.heappush(p.agents, a.pool_entry(p))
        if len(p.agents) > 2 * p.agent_floor + 64:
            p.agents = [e for e in p.agents if self._agent_entry_valid(p, e)]
            heapq.heapify(p.agents)
            p.agent_floor = len(p.agents)

    def _agent_entry_valid(self, p: Pool, e: tuple[Any, ...]) -> bool:
        a = self._agents[e[-2]]
        return a.token == e[-1] and self._available(a, p.channel)

    def _call_entry_valid(self, e: tuple[int, float, int, str, int]) -> bool:
        c = self._calls.get(e[3])
        return c is not None and c.token == e[4] and c.state is CallState.WAITING

    def _get_pool(self, queue_id: str, ch: Channel, req: Req) -> Pool:
        key = (queue_id, ch, req)
        p = self._pools.get(key)
        if p is not None:
            return p
        if queue_id.startswith("@"):
            p = Pool(queue_id, ch, req, Strategy.LONGEST_IDLE)
            agent_id = queue_id[1:]
            self._sticky_pools.setdefault(agent_id, []).append(p)
            members: Iterable[str] = [agent_id] if agent_id in self._agents else []
        else:
            q = self._queues[queue_id]
            p = Pool(queue_id, ch, req, q.cfg.strategy)
            q.pools[(ch, req)] = p
            members = [aid for aid in q.members if self._agents[aid].qualifies(queue_id, req)]
        self._pools[key] = p
        for aid in members:
            a = self._agents[aid]
            a.pools.append(p)
            if self._available(a, ch):
                self._push_agent(p, a)
        return p

    def _agent_pools(self, a: AgentRecord) -> list[Pool]:
        pools = list(self._sticky_pools.get(a.agent_id, ()))
        for qid in a.queues:
            q = self._queues.get(qid)
            if q is not None:
                pools.extend(p for p in q.pools.values() if a.qualifies(qid, p.req))
        return pools

    def _effective(self, c: CallRecord) -> tuple[Req, tuple[str, ...]]:
        """The call's requirement and queues at its relaxation stage: a function of the queue's configuration,
        the call's own requirement and its stage only, so remembered for each (until a queue is configured)."""
        key = (c.queue_id, c.required, c.relax_stage)
        found = self._effective_memo.get(key)
        if found is None:
            found = self._effective_memo[key] = self._compute_effective(c)
        return found

    def _compute_effective(self, c: CallRecord) -> tuple[Req, tuple[str, ...]]:
        cfg = self._queues[c.queue_id].cfg
        levels: dict[str, int] = {}
        for rs in cfg.skills:
            levels[rs.skill_id] = max(levels.get(rs.skill_id, 0), rs.min_proficiency)
        for sk, lvl in c.required:
            levels[sk] = max(levels.get(sk, 0), lvl)
        queues = [c.queue_id]
        for step in cfg.relaxation[: c.relax_stage]:
            if step.drop_skills:
                levels = {}
            elif step.lower_min_by:
                levels = {k: max(1, v - step.lower_min_by) for k, v in levels.items()}
            if step.add_queue_id and step.add_queue_id not in queues:
                queues.append(step.add_queue_id)
        return tuple(sorted(levels.items())), tuple(queues)

    def _call_pools(self, c: CallRecord) -> list[Pool]:
        """The pools the call waits in. Shared by every call of the same queue, channel, requirement and stage
        (remembered until the pools are rebuilt or a queue is configured): never changed in place."""
        ch = capacity_channel(c.channel)
        if c.sticky_agent is not None:
            return [self._get_pool("@" + c.sticky_agent, ch, ())]
        key = (c.queue_id, ch, c.required, c.relax_stage)
        pools = self._pools_memo.get(key)
        if pools is None:
            req, queues = self._effective(c)
            pools = self._pools_memo[key] = [self._get_pool(qid, ch, req) for qid in queues if qid in self._queues]
        return pools

    def _enter_waiting(self, c: CallRecord, pools: list[Pool] | None = None) -> None:
        c.state = CallState.WAITING
        c.token = self._next_token()
        insort(self._queues[c.queue_id].order, c.order_key())
        c.pools = self._call_pools(c) if pools is None else pools
        entry = (-c.rank, c.venq, c.seq, c.call_id, c.token)
        for p in c.pools:
            p.n_calls += 1
            heapq.heappush(p.calls, entry)
            if len(p.calls) > 2 * p.call_floor + 64:
                p.calls = [e for e in p.calls if self._call_entry_valid(e)]
                heapq.heapify(p.calls)
                p.call_floor = len(p.calls)
        self._schedule_call(c)

    def _leave_waiting(self, c: CallRecord) -> None:
        order = self._queues[c.queue_id].order
        i = bisect_left(order, c.order_key())
        del order[i]
        for p in c.pools:
            p.n_calls -= 1
        c.pools = []
        c.token = self._next_token()

    def _stop_waiting(self, c: CallRecord, *, abandoned: bool) -> None:
        q = self._queues[c.queue_id]
        q.exposure_s += self._now - c.wait_mark
        if abandoned:
            q.abandons += 1
        self._leave_waiting(c)

    def _peek_call(self, p: Pool) -> CallRecord | None:
        h = p.calls
        while h:
            e = h[0]
            if self._call_entry_valid(e):
                return self._calls[e[3]]
            heapq.heappop(h)
        return None

    def _peek_agent(self, p: Pool) -> AgentRecord | None:
        h = p.agents
        while h:
            e = h[0]
            a = self._agents[e[-2]]  # _agent_entry_valid, without looking the agent up twice
            if a.token == e[-1] and self._available(a, p.channel):
                return a
            heapq.heappop(h)
        return None

    # ------------------------------------------------------------------------------------ matching

    def _try_assign(self, c: CallRecord) -> bool:
        for p in c.pools:
            a = self._peek_agent(p)
            if a is not None:
                self._reserve(c, a, None if p.queue_id.startswith("@") else p.queue_id)
                return True
        return False

    def _serve(self, a: AgentRecord) -> None:
        if a.status != READY:
            return
        glob = self._cfg.global_longest_waiting
        for ch in list(a.capacity):
            while self._available(a, ch):
                best: CallRecord | None = None
                best_pool: Pool | None = None
                best_rank: tuple[int, int, float, int, str] | None = None
                for p in a.pools:
                    if p.channel is not ch or p.n_calls <= 0:
                        continue
                    c = self._peek_call(p)
                    if c is None:
                        continue
                    sticky = p.queue_id.startswith("@")
                    pen = -1 if sticky else (0 if glob else a.queues.get(p.queue_id, 0))
                    rank = (pen, -c.rank, c.venq, c.seq, p.queue_id)  # queue: a widened call is in 2 pools
                    if best_rank is None or rank < best_rank:
                        best, best_pool, best_rank = c, p, rank
                if best is None or best_pool is None:
                    break
                self._reserve(best, a, None if best_pool.queue_id.startswith("@") else best_pool.queue_id)

    def _reserve(self, c: CallRecord, a: AgentRecord, rr_queue: str | None) -> None:
        now = self._now
        q = self._queues[c.queue_id]
        if c.state is CallState.WAITING:
            self._stop_waiting(c, abandoned=False)
            q.last_delay_s = now - c.entered_at
        self._res_seq += 1
        rid = f"r{self._res_seq}"
        c.state = CallState.RESERVED
        c.agent_id = a.agent_id
        c.reservation_id = rid
        c.res_expires = now + q.cfg.reservation_timeout_s
        ch = capacity_channel(c.channel)
        a.load[ch] = a.load.get(ch, 0) + 1
        a.reservations[rid] = c.call_id
        a.since = now
        if rr_queue is not None:
            self._rr_seq += 1
            a.rr[rr_queue] = self._rr_seq
        self._res_index[rid] = c.call_id
        self._timers.push(c.res_expires, TIMER_RES, c.seq, c.call_id)
        self._reindex_agent(a)
        self._emit(c, Assigned(agent_id=a.agent_id, reservation_id=rid, reservation_expires_at=c.res_expires))

    def _release_reservation(self, c: CallRecord, a: AgentRecord) -> None:
        rid = c.reservation_id
        assert rid is not None
        del a.reservations[rid]
        self._res_index.pop(rid, None)
        ch = capacity_channel(c.channel)
        a.load[ch] -= 1
        a.since = self._now
        c.reservation_id = None
        c.agent_id = None

    def _requeue(self, c: CallRecord) -> None:
        """Back to waiting with the same key: nobody loses their place."""
        c.wait_mark = self._now
        self._enter_waiting(c)
        if not self._try_assign(c):
            self._emit_queued(c, offer=False)

    # ------------------------------------------------------------------------------------ helpers

    def _emit(self, c: CallRecord, outcome: Outcome) -> None:
        self._out.append(Decision(call_id=c.call_id, queue_id=c.queue_id, outcome=outcome, at=self._now))

    def _position(self, c: CallRecord) -> int:
        return bisect_left(self._queues[c.queue_id].order, c.order_key()) + 1

    def _ewt(self, q: QueueRecord, n_ahead: int) -> float:
        patience = q.cfg.patience_s
        if patience is None and q.abandons:
            patience = q.exposure_s / q.abandons
        handle = q.cfg.service_time_s if q.cfg.service_time_s is not None else q.handle_s
        return expected_wait(n_ahead, len(q.members), handle, patience, q.last_delay_s)

    def _emit_queued(self, c: CallRecord, *, offer: bool) -> None:
        q = self._queues[c.queue_id]
        pos = self._position(c)
        ewt = self._ewt(q, pos - 1)
        th = q.cfg.callback_threshold_s
        if offer and c.callback_allowed and not c.callback and th is not None and ewt >= th:
            self._emit(c, CallbackOffered(position=pos, expected_wait_s=ewt))
        else:
            self._emit(c, Queued(position=pos, expected_wait_s=ewt))

    def _finish(self, c: CallRecord, outcome: CallOutcome) -> None:
        del self._calls[c.call_id]
        self._record_outcome(c.call_id, outcome)

    def _record_outcome(self, call_id: str, outcome: CallOutcome) -> None:
        self._outcomes[call_id] = outcome
        self._outcomes.move_to_end(call_id)
        if len(self._outcomes) > self._cfg.outcomes_kept:
            self._outcomes.popitem(last=False)

    def _admit(self, c: CallRecord, queue_id: str) -> None:
        """The call (not waiting, not with an agent) joins a queue: guards, sticky agent, match or wait."""
        q = self._queues[queue_id]
        now = self._now
        # An overflowing call comes here still marked WAITING (for the queue it left): it is waiting nowhere now.
        c.state = CallState.NEW
        c.queue_id = queue_id
        c.entered_at = now
        c.relax_stage = 0
        c.aged = 0
        c.sticky_agent = None
        c.visited.append(queue_id)
        if not c.callback:
            if not q.members and not q.cfg.join_when_empty:
                self._overflow(c, "no agents logged in")
                return
            if q.cfg.max_length is not None and len(q.order) >= q.cfg.max_length:
                self._overflow(c, "queue full")
                return
        if q.cfg.sticky_window_s > 0 and c.caller_hash:
            last = self._last_agent.get(c.caller_hash)
            if last is not None and now - last[1] <= q.cfg.sticky_window_s:
                a = self._agents.get(last[0])
                if a is not None and a.status != LOGGED_OUT and a.qualifies(queue_id, self._effective(c)[0]):
                    if self._available(a, capacity_channel(c.channel)):
                        self._reserve(c, a, queue_id)
                        return
                    if q.cfg.sticky_wait_s > 0:
                        c.sticky_agent = a.agent_id
                        c.sticky_until = now + q.cfg.sticky_wait_s
        c.wait_mark = now
        pools = self._call_pools(c)
        # An idle agent of the call's pools is one no waiting call may take (it would have been served), so the
        # call goes straight to it, as it would through the waiting indexes, without entering and leaving them.
        for p in pools:
            a = self._peek_agent(p)
            if a is not None:
                q.last_delay_s = 0.0
                self._reserve(c, a, None if p.queue_id.startswith("@") else p.queue_id)
                return
        self._enter_waiting(c, pools)
        self._emit_queued(c, offer=True)

    def _overflow(self, c: CallRecord, reason: str) -> None:
        """The call is not waiting; apply the queue's overflow target."""
        q = self._queues[c.queue_id]
        tgt = q.cfg.overflow
        if tgt is None:
            self._emit(c, Rejected(reason=reason))
            self._finish(c, CallOutcome.REJECTED)
        elif tgt.destination is OverflowDestination.VOICEMAIL:
            self._emit(c, Overflowed(destination=OverflowDestination.VOICEMAIL, reason=reason))
            self._finish(c, CallOutcome.OVERFLOWED)
        elif tgt.destination is OverflowDestination.CALLBACK:
            c.callback = True
            self._emit(c, Overflowed(destination=OverflowDestination.CALLBACK, reason=reason))
            c.wait_mark = self._now
            self._enter_waiting(c)
            self._try_assign(c)
        elif tgt.queue_id not in self._queues or tgt.queue_id in c.visited:
            self._emit(c, Rejected(reason=f"{reason}; no overflow queue"))
            self._finish(c, CallOutcome.REJECTED)
        else:
            self._emit(c, Overflowed(destination=OverflowDestination.QUEUE, to_queue_id=tgt.queue_id, reason=reason))
            self._admit(c, tgt.queue_id)

    def _set_delay(self, a: AgentRecord, seconds: float) -> None:
        if seconds > 0:
            a.delay_until = max(a.delay_until or 0.0, self._now + seconds)
            self._schedule_agent(a)

    def _display(self, a: AgentRecord) -> tuple[AgentStatus, NotReadyReason]:
        now = self._now
        if a.status == LOGGED_OUT:
            return AgentStatus.LOGGED_OUT, NotReadyReason.UNSPECIFIED
        if a.reservations:
            return AgentStatus.RESERVED, NotReadyReason.UNSPECIFIED
        if a.calls:
            return AgentStatus.TALKING, NotReadyReason.UNSPECIFIED
        if a.wrap_until is not None and a.wrap_until > now:
            return AgentStatus.WRAP_UP, NotReadyReason.UNSPECIFIED
        if a.cool_until is not None and a.cool_until > now:
            return AgentStatus.COOL_DOWN, NotReadyReason.COOL_DOWN
        if a.status == NOT_READY:
            return AgentStatus.NOT_READY, a.reason
        if a.delay_until is not None and a.delay_until > now:
            return AgentStatus.NOT_READY, NotReadyReason.OTHER
        return AgentStatus.READY, NotReadyReason.UNSPECIFIED

    # ------------------------------------------------------------------------------------ handlers

    def _configure(self, cmd: ConfigureQueue) -> tuple[bool, str]:
        cfg = cmd.config
        self._effective_memo = {}
        self._pools_memo = {}
        existing = self._queues.get(cfg.queue_id)
        if existing is not None:
            existing.cfg = cfg
            self._rebuild_indexes()
            for a in list(self._agents.values()):
                self._serve(a)
            return True, "reconfigured"
        q = QueueRecord(cfg)
        self._queues[cfg.queue_id] = q
        self._sticky_horizon = max(self._sticky_horizon, cfg.sticky_window_s)
        for a in self._agents.values():
            if a.status != LOGGED_OUT and cfg.queue_id in a.queues:
                q.members[a.agent_id] = None
        self._join_new_queue(cfg.queue_id)
        return True, ""

    def _join_new_queue(self, queue_id: str) -> None:
        """A queue just configured: the calls already waiting whose relaxation adds it (reached before it existed)
        left it out of their pools (`_call_pools` skips unknown queues), so nothing would offer them to its agents
        (an idle member now, one logging in later) unless a later relaxation step re-entered them: a call would
        wait while an eligible agent is idle. They re-enter their pools with the same key (position and virtual
        enqueue time kept), in service order, and each takes an idle agent of its pools as at a relaxation
        (`_call_deadline`); these are the pools a core restored from a snapshot would give them. A call waiting
        for its sticky agent is in that agent's pool only and gets its queues' pools when that wait ends. No other
        call's pools or decisions change: the new queue has no pools, agents or calls of its own yet."""
        calls = [
            c
            for q in self._queues.values()
            if any(step.add_queue_id == queue_id for step in q.cfg.relaxation)
            for c in (self._calls[key[3]] for key in q.order)
            if c.state is CallState.WAITING and c.sticky_agent is None and queue_id in self._effective(c)[1]
        ]
        calls.sort(key=CallRecord.order_key)
        for c in calls:
            self._leave_waiting(c)
            self._enter_waiting(c)
            self._try_assign(c)

    def _offer(self, cmd: OfferCall) -> tuple[bool, str]:
        if cmd.call_id in self._calls:
            return False, "call already active"
        if cmd.queue_id not in self._queues:
            self._out.append(Decision(call_id=cmd.call_id, queue_id=cmd.queue_id,
                                      outcome=Rejected(reason="unknown queue"), at=self._now))
            self._record_outcome(cmd.call_id, CallOutcome.REJECTED)
            return True, ""
        self._call_seq += 1
        c = CallRecord(cmd.call_id, self._call_seq)
        c.priority = cmd.priority
        c.required = tuple((r.skill_id, r.min_proficiency) for r in cmd.required_skills)
        c.caller_hash = cmd.caller_hash
        c.channel = cmd.channel
        c.venq = self._now if cmd.virtual_enqueue_time is None else cmd.virtual_enqueue_time
        c.callback_allowed = cmd.callback_allowed
        c.callback = cmd.channel is Channel.CALLBACK
        self._calls[c.call_id] = c
        self._outcomes.pop(c.call_id, None)
        self._admit(c, cmd.queue_id)
        return True, ""

    def _lookup_reservation(self, rid: str, call_id: str, agent_id: str) -> tuple[CallRecord, AgentRecord] | str:
        cid = self._res_index.get(rid)
        if cid is None:
            return "reservation not active"
        c = self._calls[cid]
        if (call_id and call_id != cid) or (agent_id and agent_id != c.agent_id):
            return "reservation does not match call or agent"
        assert c.agent_id is not None
        return c, self._agents[c.agent_id]

    def _accept(self, cmd: AcceptReservation) -> tuple[bool, str]:
        found = self._lookup_reservation(cmd.reservation_id, cmd.call_id, cmd.agent_id)
        if isinstance(found, str):
            return False, found
        c, a = found
        self._connect(c, a)
        return True, ""

    def _connect(self, c: CallRecord, a: AgentRecord) -> None:
        rid = c.reservation_id
        assert rid is not None
        del a.reservations[rid]
        self._res_index.pop(rid, None)
        a.calls[c.call_id] = None
        c.state = CallState.CONNECTED
        c.reservation_id = None
        c.accepted_at = self._now
        a.misses = 0
        a.handled += 1
        a.since = self._now
        if c.caller_hash and self._sticky_horizon > 0:
            last = self._last_agent
            last[c.caller_hash] = (a.agent_id, self._now)
            last.move_to_end(c.caller_hash)  # kept in time order (the core's clock never goes back) ...
            while self._now - next(iter(last.values()))[1] > self._sticky_horizon:
                last.popitem(last=False)  # ... so the oldest, past every sticky window, go from the front
        self._reindex_agent(a)

    def _reject(self, cmd: RejectReservation) -> tuple[bool, str]:
        found = self._lookup_reservation(cmd.reservation_id, cmd.call_id, cmd.agent_id)
        if isinstance(found, str):
            return False, found
        c, a = found
        self._release_reservation(c, a)
        self._set_delay(a, self._cfg.busy_delay_s if cmd.busy else self._cfg.reject_delay_s)
        self._reindex_agent(a)
        self._requeue(c)
        self._serve(a)
        return True, ""

    def _timeout(self, cmd: TimeoutReservation) -> tuple[bool, str]:
        found = self._lookup_reservation(cmd.reservation_id, cmd.call_id, cmd.agent_id)
        if isinstance(found, str):
            return False, found
        self._ring_no_answer(found[0])
        return True, ""

    def _ring_no_answer(self, c: CallRecord) -> None:
        assert c.agent_id is not None
        a = self._agents[c.agent_id]
        self._release_reservation(c, a)
        a.misses += 1
        if a.misses >= self._cfg.max_ring_misses:
            a.status = NOT_READY
            a.reason = NotReadyReason.RING_NO_ANSWER
        else:
            self._set_delay(a, self._cfg.rna_delay_s)
        self._reindex_agent(a)
        self._requeue(c)
        self._serve(a)

    def _cancel(self, cmd: CancelCall) -> tuple[bool, str]:
        c = self._calls.get(cmd.call_id)
        if c is None:
            return False, "unknown or finished call"
        if c.state is CallState.WAITING:
            self._stop_waiting(c, abandoned=True)
            self._finish(c, CallOutcome.ABANDONED)
        elif c.state is CallState.RESERVED:
            assert c.agent_id is not None
            a = self._agents[c.agent_id]
            self._release_reservation(c, a)
            self._finish(c, CallOutcome.ABANDONED)
            self._reindex_agent(a)
            self._serve(a)
        else:
            self._hang_up(c, hard=False)
        return True, ""

    def _accept_callback(self, cmd: AcceptCallback) -> tuple[bool, str]:
        c = self._calls.get(cmd.call_id)
        if c is None or c.state is not CallState.WAITING:
            return False, "call not waiting"
        if c.callback:
            return False, "already a callback"
        self._leave_waiting(c)
        c.callback = True
        self._enter_waiting(c)
        self._emit(c, Overflowed(destination=OverflowDestination.CALLBACK, reason="callback accepted"))
        return True, ""

    def _release_connected(self, c: CallRecord, *, hard: bool) -> AgentRecord:
        """The agent is done with a connected call: wrap-up, then cool-down after a hard call."""
        assert c.agent_id is not None
        a = self._agents[c.agent_id]
        now = self._now
        del a.calls[c.call_id]
        ch = capacity_channel(c.channel)
        a.load[ch] -= 1
        q = self._queues[c.queue_id]
        wrap = a.wrap_up_s if a.wrap_up_s is not None else q.cfg.wrap_up_s
        handle = now - c.accepted_at + wrap
        alpha = self._cfg.handle_time_alpha
        q.handle_s = handle if q.handle_s is None else (1 - alpha) * q.handle_s + alpha * handle
        a.busy_s += handle
        if wrap > 0:
            a.wrap_until = max(a.wrap_until or 0.0, now + wrap)
        if hard and self._cfg.cool_down_s > 0:
            a.cool_until = max(a.cool_until or 0.0, now + max(wrap, 0.0) + self._cfg.cool_down_s)
        a.since = now
        if a.hold_end() is None and not a.calls and not a.reservations:
            a.idle_since = now
        self._schedule_agent(a)
        c.agent_id = None
        return a

    def _hang_up(self, c: CallRecord, *, hard: bool) -> None:
        a = self._release_connected(c, hard=hard)
        self._finish(c, CallOutcome.CALLED_BACK if c.callback else CallOutcome.COMPLETED)
        self._reindex_agent(a)
        self._serve(a)

    def _end_call(self, cmd: EndCall) -> tuple[bool, str]:
        c = self._calls.get(cmd.call_id)
        if c is None or c.state is CallState.WAITING or (cmd.agent_id and c.agent_id != cmd.agent_id):
            return False, "call not with this agent"
        if c.state is CallState.RESERVED:  # the accept was lost: the call did happen
            assert c.agent_id is not None
            self._connect(c, self._agents[c.agent_id])
        self._hang_up(c, hard=cmd.hard_call)
        return True, ""

    def _transfer(self, cmd: TransferCall) -> tuple[bool, str]:
        c = self._calls.get(cmd.call_id)
        if c is None or c.state is not CallState.CONNECTED or (cmd.from_agent_id and c.agent_id != cmd.from_agent_id):
            return False, "call not connected to this agent"
        target: AgentRecord | None = None
        if cmd.to_agent_id is not None:
            target = self._agents.get(cmd.to_agent_id)
            ch = capacity_channel(c.channel)
            if target is None or target.agent_id == c.agent_id or not self._available(target, ch):
                return False, "target agent unavailable"
        elif cmd.to_queue_id is None or cmd.to_queue_id not in self._queues:
            return False, "unknown target queue"
        a = self._release_connected(c, hard=False)
        self._reindex_agent(a)
        if target is not None:
            self._reserve(c, target, None)
        else:
            assert cmd.to_queue_id is not None
            c.visited = []
            c.state = CallState.NEW
            self._admit(c, cmd.to_queue_id)
        self._serve(a)
        return True, ""

    def _update_priority(self, cmd: UpdatePriority) -> tuple[bool, str]:
        c = self._calls.get(cmd.call_id)
        if c is None:
            return False, "unknown or finished call"
        if c.state is CallState.WAITING:
            self._leave_waiting(c)
            c.priority = cmd.priority
            self._enter_waiting(c)
        else:
            c.priority = cmd.priority
        return True, ""

    def _agent_state(self, cmd: SetAgentState) -> tuple[bool, str]:
        a = self._agents.get(cmd.agent_id)
        if a is not None and cmd.version and cmd.version <= a.version:
            return False, "stale version"
        if a is None:
            if cmd.action not in (AgentAction.LOGIN, AgentAction.UPDATE_PROFILE):
                return False, "unknown agent"
            self._agent_seq += 1
            a = self._agents[cmd.agent_id] = AgentRecord(cmd.agent_id, self._agent_seq)
        if cmd.action is AgentAction.LOGIN:
            self._login(a, cmd)
        elif cmd.action is AgentAction.UPDATE_PROFILE:
            # Before a login too: the profile (from HR, say) is what a later login without one keeps.
            self._set_profile(a, cmd)
            self._reindex_agent(a)
            self._serve(a)
        elif a.status == LOGGED_OUT:
            return False, "agent not logged in"
        elif cmd.action is AgentAction.LOGOUT:
            self._logout(a)
        elif cmd.action is AgentAction.READY:
            if a.status == NOT_READY and not a.calls and not a.reservations:
                a.idle_since = self._now
            a.status, a.reason, a.misses, a.since = READY, NotReadyReason.UNSPECIFIED, 0, self._now
            self._reindex_agent(a)
            self._serve(a)
        elif cmd.action is AgentAction.NOT_READY:
            a.status, a.reason, a.since = NOT_READY, cmd.reason, self._now
            self._reindex_agent(a)
        elif cmd.action is AgentAction.WRAP_UP_DONE:
            if a.wrap_until is None or a.wrap_until <= self._now:
                return False, "not in wrap-up"
            if a.cool_until is not None:
                a.cool_until = self._now + (a.cool_until - a.wrap_until)
            a.wrap_until = None
            if a.hold_end() is None:
                self._hold_over(a)
            else:
                self._schedule_agent(a)
        if cmd.version:
            a.version = cmd.version
        return True, ""

    def _login(self, a: AgentRecord, cmd: SetAgentState) -> None:
        was_in = a.status != LOGGED_OUT
        a.wrap_up_s = cmd.wrap_up_s
        a.status, a.reason, a.since = READY, NotReadyReason.UNSPECIFIED, self._now
        if not was_in:
            a.idle_since = self._now
            a.busy_s = 0.0
            a.handled = 0
            a.misses = 0
        self._set_profile(a, cmd)
        self._reindex_agent(a)
        self._serve(a)

    def _set_profile(self, a: AgentRecord, cmd: SetAgentState) -> None:
        """Queues, skills and capacity from `cmd`; queue member lists follow while the agent is logged in. The
        calls waiting in a queue this leaves without agents (one set to leave when empty) overflow."""
        kept = {m.queue_id for m in cmd.queues}
        emptied = self._leave_queues(a, [qid for qid in a.queues if qid not in kept])
        a.queues = {m.queue_id: m.priority for m in cmd.queues}
        a.skills = {s.skill_id: s.proficiency for s in cmd.skills}
        a.capacity = {Channel.VOICE: 1}
        for cc in cmd.capacity:
            a.capacity[capacity_channel(cc.channel)] = cc.capacity
        for ch, held in a.load.items():  # a new profile never leaves calls held above capacity
            a.capacity[ch] = max(a.capacity.get(ch, 0), held)
        if a.status != LOGGED_OUT:
            for qid in a.queues:
                q = self._queues.get(qid)
                if q is not None:
                    q.members[a.agent_id] = None
        a.pools = self._agent_pools(a)
        self._overflow_emptied(emptied)

    def _leave_queues(self, a: AgentRecord, queue_ids: Iterable[str]) -> list[QueueRecord]:
        """Out of these queues' member lists; returns those left with no agent that are set to leave when empty."""
        emptied = []
        for qid in queue_ids:
            q = self._queues.get(qid)
            if q is not None:
                q.members.pop(a.agent_id, None)
                if not q.members and q.cfg.leave_when_empty:
                    emptied.append(q)
        return emptied

    def _overflow_emptied(self, emptied: Iterable[QueueRecord]) -> None:
        for q in emptied:
            for key in list(q.order):
                c = self._calls[key[3]]
                if c.state is CallState.WAITING and not c.callback and c.queue_id == q.cfg.queue_id:
                    self._stop_waiting(c, abandoned=False)
                    self._overflow(c, "no agents logged in")

    def _logout(self, a: AgentRecord) -> None:
        a.status, a.reason, a.since = LOGGED_OUT, NotReadyReason.UNSPECIFIED, self._now
        emptied = self._leave_queues(a, a.queues)
        released = [self._calls[cid] for cid in a.reservations.values()]
        for c in released:
            self._release_reservation(c, a)
        self._reindex_agent(a)
        for c in released:
            self._requeue(c)
        self._overflow_emptied(emptied)

    # ------------------------------------------------------------------------------------ snapshot

    def snapshot(self) -> dict[str, Any]:
        """The whole state as plain (JSON-ready) data; indexes are derived and not included."""
        return plain_snapshot(self.capture())

    def capture(self) -> dict[str, Any]:
        """The state at this instant, for `plain_snapshot()` to finish later: copies of every mutable container,
        and references to what is immutable (configurations, enum members, the remembered commands' results),
        which `plain_snapshot()` converts. The router holds its lock for the capture only, a third of a whole
        snapshot's time (docs/benchmarks.md, "Measurements behind design choices")."""
        return {
            "format": 1,
            "config": self._cfg,
            "now": self._now,
            "seq": [self._agent_seq, self._call_seq, self._res_seq, self._rr_seq],
            "queues": [capture_queue(q) for q in self._queues.values()],
            "agents": [capture_agent(a) for a in self._agents.values()],
            "calls": [capture_call(c) for c in self._calls.values()],
            "outcomes": dict(self._outcomes),
            "last_agent": {k: [v[0], v[1]] for k, v in self._last_agent.items()},
            "processed": list(self._processed.items()),
        }

    @classmethod
    def restore(cls, snap: dict[str, Any]) -> RoutingCore:
        """A core in exactly the state `snapshot()` described (also after a JSON round trip)."""
        if snap.get("format") != 1:
            raise ValueError("unknown snapshot format")
        core = cls(from_plain(snap["config"]))
        core._now = float(snap["now"])
        core._agent_seq, core._call_seq, core._res_seq, core._rr_seq = (int(x) for x in snap["seq"])
        for qd in snap["queues"]:
            q = restore_queue(qd)
            core._queues[q.cfg.queue_id] = q
        for ad in snap["agents"]:
            a = restore_agent(ad)
            core._agents[a.agent_id] = a
        for cd in snap["calls"]:
            c = restore_call(cd)
            core._calls[c.call_id] = c
        core._outcomes = OrderedDict((k, CallOutcome(v)) for k, v in snap["outcomes"].items())
        core._last_agent = OrderedDict((k, (v[0], float(v[1]))) for k, v in snap["last_agent"].items())
        core._processed = OrderedDict((k, from_plain(v)) for k, v in snap["processed"])
        core._rebuild_indexes()
        return core

    def _rebuild_indexes(self) -> None:
        self._sticky_horizon = max((q.cfg.sticky_window_s for q in self._queues.values()), default=0.0)
        self._pools = {}
        self._pools_memo = {}
        self._sticky_pools = {}
        self._timers = Timers()
        self._res_index = {}
        for q in self._queues.values():
            q.pools = {}
            q.order = []
            q.members = {}
        for a in self._agents.values():
            a.pools = []
            a.token = self._next_token()
            if a.status != LOGGED_OUT:
                for qid in a.queues:
                    member_of = self._queues.get(qid)
                    if member_of is not None:
                        member_of.members[a.agent_id] = None
            self._schedule_agent(a)
            for rid, cid in a.reservations.items():
                self._res_index[rid] = cid
        for c in self._calls.values():
            if c.state is CallState.WAITING:
                self._enter_waiting(c)
            elif c.state is CallState.RESERVED:
                self._timers.push(c.res_expires, TIMER_RES, c.seq, c.call_id)
        for a in self._agents.values():
            a.pools = self._agent_pools(a)
            self._reindex_agent(a)
