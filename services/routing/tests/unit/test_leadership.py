"""The rules of leadership and snapshots (pure), and that a snapshot through its Kafka record plus the tail of
the log rebuilds exactly the state a full replay does (the queues file applied again on top, as a start does)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from callstream_routing.adapters import snapshot_store
from callstream_routing.config import RoutingSettings
from callstream_routing.domain import (
    AgentAction,
    Command,
    ConfigureQueue,
    QueueConfig,
    RoutingCore,
    Tick,
    UpdatePriority,
    plain_snapshot,
)
from callstream_routing.domain.leadership import Lease, SnapshotSchedule


def test_lease_runs_out_without_records_and_is_renewed_by_each() -> None:
    lease = Lease(2.0, now=100.0)
    assert not lease.expired(101.9)
    lease.seen(101.9)
    assert not lease.expired(103.8)
    assert lease.remaining(103.0) == pytest.approx(0.9)
    assert lease.expired(104.0)


def test_a_resigning_leader_ends_the_lease_at_once_and_a_new_leader_starts_one() -> None:
    lease = Lease(5.0, now=0.0)
    lease.seen(1.0, resigning=True)
    assert lease.expired(1.0) and lease.remaining(1.0) == 0.0
    lease.seen(1.5)  # another router took over and writes
    assert not lease.expired(2.0)


def test_snapshot_schedule_by_count_or_by_time_when_something_changed() -> None:
    schedule = SnapshotSchedule(100, 60.0, commands=1_000, now=0.0)
    assert not schedule.due(1_099, 59.0)
    assert schedule.due(1_100, 1.0)
    assert schedule.due(1_001, 60.0)
    assert not schedule.due(1_000, 600.0), "nothing changed: no new snapshot"
    schedule.taken(1_100, 61.0)
    assert not schedule.due(1_150, 100.0)
    assert schedule.due(1_150, 121.0)


def test_a_lease_shorter_than_three_heartbeats_is_refused_at_start() -> None:
    with pytest.raises(ValidationError, match=r"LEASE_TIMEOUT_S .* at least 3 × HEARTBEAT_INTERVAL_S"):
        RoutingSettings(heartbeat_interval_s=1.0, lease_timeout_s=2.5)
    with pytest.raises(ValidationError, match="routing_role"):
        RoutingSettings(routing_role="follower")  # type: ignore[arg-type]
    assert RoutingSettings(command_log_topic="cc.routing-commands-emea.v1").transactional_id.endswith(
        "cc.routing-commands-emea.v1")


QUEUES = [QueueConfig(queue_id="sales", wrap_up_s=20.0, reservation_timeout_s=8.0),
          QueueConfig(queue_id="billing", max_wait_s=120.0)]


def _configure(core: RoutingCore) -> None:
    for queue in QUEUES:  # as the queues file is applied at every start: at time 0, without a command id
        core.handle(ConfigureQueue(config=queue, now=0.0))


def _day(center) -> list[Command]:  # type: ignore[no-untyped-def]
    """Logins, offers that are assigned and queued, a ring-no-answer, talks, wrap-up, priorities, a hard call."""
    c = center()
    _configure(c.core)
    c.login("a1", ["sales", "billing"])
    c.login("a2", ["sales"], skills={"fr": 3})
    c.login("a3", ["billing"])
    for agent in ("a1", "a2", "a3"):
        c.agent(agent, AgentAction.READY)
    for i in range(7):
        c.t += 3.0
        c.offer(f"call-{i}", "sales" if i % 2 else "billing", priority=i % 3)
    c.t += 10.0
    c.tick(c.t)  # a reservation times out (ring-no-answer)
    for call in ("call-0", "call-1"):
        if c.core.call_state(call) is not None and c.core.call_state(call).reservation_id:
            c.talk(call, hard=call == "call-1")
    c.t += 5.0
    c.do(UpdatePriority, call_id="call-6", priority=5)
    c.agent("a3", AgentAction.NOT_READY)
    c.t += 30.0
    c.tick(c.t)
    c.agent("a3", AgentAction.READY)
    return [cmd for cmd in c.log if not isinstance(cmd, ConfigureQueue)]


def test_snapshot_record_plus_tail_equals_full_replay(center) -> None:  # type: ignore[no-untyped-def]
    log = _day(center)
    full = RoutingCore()
    _configure(full)
    full.handle_all(log)
    for k in range(0, len(log) + 1, 3):
        head = RoutingCore()
        _configure(head)
        head.handle_all(log[:k])
        # What the leader does: capture, then convert and compress (outside its lock), then the record.
        captured = head.capture()
        record = snapshot_store.record(snapshot_store.compress(plain_snapshot(captured)), captured["format"],
                                       command_log_topic="t", next_offset=k, commands=k, source="test")
        loaded = snapshot_store.decode(type(record).FromString(record.SerializeToString()))
        assert (loaded.next_offset, loaded.commands) == (k, k)
        rebuilt = RoutingCore.restore(loaded.state)
        _configure(rebuilt)
        rebuilt.handle_all(log[loaded.next_offset:])
        assert rebuilt.snapshot() == full.snapshot(), f"snapshot after {k} commands"
        # and the same future: the deadlines still to come fire alike
        assert rebuilt.next_deadline() == full.next_deadline()
        later = full.now + 3600.0
        assert rebuilt.handle(Tick(now=later)) == RoutingCore.restore(full.snapshot()).handle(Tick(now=later))
