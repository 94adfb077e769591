"""Snapshots and take-over over a real Kafka broker and real gRPC servers.

- A snapshot on cc.routing-snapshots.v1 plus the log after its offset rebuilds the state a full replay does.
- A hot standby takes over when the leader stops (it resigns) and serves every agent and waiting call as before.
- A leader that freezes (SIGSTOP, as a long GC pause or a cut-off network would) is fenced by the standby
  that takes over; thawed, it refuses every write. Calls go on under load through both, through a client that
  fails over like a switch with two router addresses: no call is assigned twice, none is lost.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from callstream.routing.v1 import routing_pb2, routing_pb2_grpc
from callstream_devtools.local_kafka import free_port
from callstream_devtools.router_processes import new_log_topic
from callstream_routing import domain as d
from callstream_routing.adapters import snapshot_store
from callstream_routing.bootstrap import serve
from callstream_routing.config import RoutingSettings
from callstream_routing.entrypoints.grpc_server import SERVICE
from callstream_routing.service_layer import leadership
from callstream_routing.service_layer.router import Router

pytestmark = pytest.mark.integration
TOKEN = "test-switch-token"
AUTH = (("authorization", f"Bearer {TOKEN}"),)
# Short enough for a test, long enough that a loaded 2-core machine does not fence a healthy leader.
HEARTBEAT_S = 0.3
LEASE_S = 2.0
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@pytest.fixture
def log_topic(kafka_bootstrap: str) -> str:
    return new_log_topic(kafka_bootstrap, "test-routing-log")


@pytest.fixture
def queues_file(tmp_path: Path) -> Path:
    path = tmp_path / "queues.yaml"
    # No wrap-up and reservations that do not time out during the test: every agent holds its call.
    path.write_text("queues:\n  - queue_id: sales\n    wrap_up_s: 0\n    reservation_timeout_s: 3600\n")
    return path


def _settings(kafka_bootstrap: str, queues_file: Path, log_topic: str, **kw: Any) -> RoutingSettings:
    return RoutingSettings(kafka_bootstrap_servers=kafka_bootstrap, grpc_port=0, queues_file=queues_file,
                           api_tokens=f"{TOKEN}:service", command_log_topic=log_topic,
                           heartbeat_interval_s=HEARTBEAT_S, lease_timeout_s=LEASE_S,
                           agent_events_topic="",  # agents set over gRPC only: other suites' agent events stay out
                           **kw)


async def _start(settings: RoutingSettings) -> tuple[asyncio.Task[None], asyncio.Event, str]:
    stop = asyncio.Event()
    started: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(serve(settings, ready=started.set_result, stop=stop))
    done, _ = await asyncio.wait([task, started], timeout=90, return_when=asyncio.FIRST_COMPLETED)
    assert started in done, f"the router did not start: {task.exception() if task in done else 'timeout'}"
    return task, stop, f"127.0.0.1:{started.result()}"


async def _health(address: str, service: str = SERVICE) -> int:
    async with grpc.aio.insecure_channel(address) as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service),
                                                                timeout=2)
        return int(reply.status)


async def _until(predicate: Any, timeout: float, what: str) -> float:
    """Poll an async predicate until it holds; returns when it did (monotonic). Fails after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if await predicate():
                return time.monotonic()
        except grpc.aio.AioRpcError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        await asyncio.sleep(0.02)  # polling interval of a deadline-bound wait


# -- a switch's view: two router addresses, retries with the same command id ------------------------------


@dataclass
class Switch:
    addresses: list[str]
    channels: dict[str, grpc.aio.Channel] = field(default_factory=dict)
    # What the routers answered: the newest assignment of every call, and which calls were answered queued.
    assigned: dict[str, str] = field(default_factory=dict)
    queued: set[str] = field(default_factory=set)
    successes: list[tuple[float, str]] = field(default_factory=list)
    failovers: int = 0
    current: int = 0  # the address that answered last: tried first (a switch sticks to the leader it found)

    def stub(self, address: str) -> routing_pb2_grpc.RouterStub:
        if address not in self.channels:
            self.channels[address] = grpc.aio.insecure_channel(address)
        return routing_pb2_grpc.RouterStub(self.channels[address])

    async def call(self, method: str, request: Any, timeout: float = 60.0) -> Any:
        """Try the routers in turn until one leads; a retry carries the same command id (idempotent)."""
        deadline = time.monotonic() + timeout
        while True:
            address = self.addresses[self.current % len(self.addresses)]
            try:
                reply = await getattr(self.stub(address), method)(request, timeout=2.5, metadata=AUTH)
            except grpc.aio.AioRpcError as exc:
                if exc.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                    raise
                if self.addresses[self.current % len(self.addresses)] == address:
                    self.current += 1
                self.failovers += 1
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.05)  # back-off between attempts, as a switch would
                continue
            self.successes.append((time.monotonic(), address))
            self._record(reply)
            return reply

    def _record(self, reply: Any) -> None:
        if isinstance(reply, routing_pb2.RoutingDecision):
            decisions = [reply]
        elif isinstance(reply, routing_pb2.CommandResult):
            decisions = list(reply.decisions)
        else:
            return  # a query
        for decision in decisions:
            outcome = decision.WhichOneof("outcome")
            if outcome == "assigned":
                self.assigned[decision.call_id] = decision.assigned.agent_id
                self.queued.discard(decision.call_id)
            elif outcome == "queued":
                self.queued.add(decision.call_id)

    async def login(self, agent: str) -> None:
        await self.call("SetAgentState", routing_pb2.AgentStateRequest(
            command_id=f"login-{agent}", agent_id=agent, action=routing_pb2.AgentStateRequest.ACTION_LOGIN,
            queues=[routing_pb2.QueueMembership(queue_id="sales")], version=1))
        await self.call("SetAgentState", routing_pb2.AgentStateRequest(
            command_id=f"ready-{agent}", agent_id=agent, action=routing_pb2.AgentStateRequest.ACTION_READY,
            version=2))

    async def offer(self, call: str) -> None:
        await self.call("OfferCall", routing_pb2.OfferCallRequest(command_id=f"offer-{call}", call_id=call,
                                                                  queue_id="sales"))

    async def close(self) -> None:
        for channel in self.channels.values():
            await channel.close()


async def _load(switch: Switch, prefix: str, workers: int, calls: int, agents_every: int) -> None:
    """`workers` switches' lines offering calls at once; every `agents_every` calls one more agent logs in."""

    async def line(w: int) -> None:
        for i in range(calls):
            await switch.offer(f"{prefix}-call-{w}-{i}")
            if i % agents_every == agents_every - 1:
                await switch.login(f"{prefix}-agent-{w}-{i}")

    await asyncio.gather(*(line(w) for w in range(workers)))


async def _view(switch: Switch, agents: list[str]) -> dict[str, Any]:
    queue = await switch.call("GetQueueState", routing_pb2.GetQueueStateRequest(queue_id="sales"))
    views = [await switch.call("GetAgentState", routing_pb2.GetAgentStateRequest(agent_id=a)) for a in agents]
    return {"waiting": queue.calls_waiting, "logged_in": queue.agents_logged_in, "idle": queue.agents_idle,
            "agents": {v.agent_id: (v.state, tuple(v.call_ids), v.version) for v in views}}


async def _check_books(switch: Switch, agents: list[str], offered: int) -> None:
    """The routers' answers and the leader's state agree: every call assigned once, to the agent it holds."""
    view = await _view(switch, agents)
    held = [call for _state, calls, _v in view["agents"].values() for call in calls]
    assert len(held) == len(set(held)), "a call is held by two agents"
    assert {c: a for a, (_s, calls, _v) in view["agents"].items() for c in calls} == switch.assigned
    assert view["waiting"] == len(switch.queued) == offered - len(switch.assigned)
    # The waiting calls are the ones answered "queued": new agents take exactly those, each once.
    before = dict(switch.assigned)
    waiting = set(switch.queued)
    for i in range(len(waiting)):
        await switch.login(f"drain-agent-{i}")
    taken = {c: a for c, a in switch.assigned.items() if c not in before}
    assert set(taken) == waiting and len(set(taken.values())) == len(taken)
    assert not switch.queued


# -- snapshots ---------------------------------------------------------------------------------------------


def test_snapshot_plus_tail_rebuilds_what_a_full_replay_does(kafka_bootstrap: str, queues_file: Path,
                                                             log_topic: str) -> None:
    settings = _settings(kafka_bootstrap, queues_file, log_topic, snapshot_every_commands=10)

    async def scenario() -> int:
        task, stop, address = await _start(settings)
        switch = Switch([address])
        for i in range(4):
            await switch.login(f"agent-{i}")
        for i in range(8):
            await switch.offer(f"call-{i}")
        # A snapshot is due (18 commands > 10): it commits within a few heartbeats.
        deadline = time.monotonic() + 30
        while (snap := snapshot_store.load_newest(kafka_bootstrap, log_topic)) is None:
            assert time.monotonic() < deadline, "no snapshot was written"
            await asyncio.sleep(0.1)  # polling interval of a deadline-bound wait
        for i in range(8, 12):  # the tail after the snapshot
            await switch.offer(f"call-{i}")
        await switch.login("agent-late")
        await switch.close()
        stop.set()
        await task
        return snap.next_offset

    covered = asyncio.run(scenario())
    router = Router(settings)
    with_snapshot, reader = leadership.rebuild(settings, router.configure)
    reader.close()
    assert reader.commands == 4 * 2 + 12 + 2
    without, reader = leadership.rebuild(settings.model_copy(update={"snapshots_enabled": False}),
                                         router.configure)
    tail_end = reader.position
    reader.close()
    assert 0 < covered < tail_end, "the snapshot must cover part of the log, not all of it"
    # The live router's clock moved on between commands; bring both to the same later time.
    later = max(with_snapshot.now, without.now) + 1.0
    with_snapshot.handle(d.Tick(now=later))
    without.handle(d.Tick(now=later))
    assert with_snapshot.snapshot() == without.snapshot()
    assert len(with_snapshot.agent_ids()) == 5 and with_snapshot.queue_state("sales").calls_waiting == 7


# -- take-over after a clean stop ---------------------------------------------------------------------------


def test_standby_takes_over_when_the_leader_stops(kafka_bootstrap: str, queues_file: Path, log_topic: str,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    leader_settings = _settings(kafka_bootstrap, queues_file, log_topic, instance_id="router-a")
    standby_settings = _settings(kafka_bootstrap, queues_file, log_topic, instance_id="router-b",
                                 routing_role="standby")
    found: dict[str, Any] = {}

    async def scenario() -> None:
        leader, stop_leader, leader_address = await _start(leader_settings)
        standby, stop_standby, standby_address = await _start(standby_settings)
        assert await _health(standby_address) == NOT_SERVING
        assert await _health(standby_address, "") == SERVING
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await Switch([standby_address]).offer("not-here")
        found["standby_refuses"] = refused.value.code()

        switch = Switch([leader_address, standby_address])
        for i in range(6):
            await switch.login(f"agent-{i}")
        await _load(switch, "p1", workers=3, calls=12, agents_every=6)
        agents = [f"agent-{i}" for i in range(6)] + [f"p1-agent-{w}-{i}" for w in range(3) for i in (5, 11)]
        before = await _view(switch, agents)

        stopped = time.monotonic()
        stop_leader.set()
        await leader
        serving = await _until(lambda: _health_is(standby_address, SERVING), 60, "the standby serves")
        after = await _view(Switch([standby_address]), agents)
        found["takeover_s"] = serving - stopped
        found["same"] = after == before
        # New work on the new leader, under load, through the same switch.
        await _load(switch, "p2", workers=3, calls=8, agents_every=4)
        agents += [f"p2-agent-{w}-{i}" for w in range(3) for i in (3, 7)]
        await _check_books(switch, agents, offered=3 * 12 + 3 * 8)
        await switch.close()
        stop_standby.set()
        await standby

    asyncio.run(scenario())
    print(f"\ntake-over after a clean stop: {found['takeover_s']:.2f} s (leader stopped -> standby SERVING)")
    assert found["standby_refuses"] == grpc.StatusCode.UNAVAILABLE
    assert found["same"], "the standby's state differs from the leader's"
    assert "the leader resigned" in caplog.text, "a resigning leader must not make the standby wait for the lease"


async def _health_is(address: str, status: int) -> bool:
    return await _health(address) == status


# -- a frozen leader is fenced ------------------------------------------------------------------------------


@pytest.fixture
def frozen_capable_leader(kafka_bootstrap: str, queues_file: Path, log_topic: str,
                          tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """`python -m callstream_routing` as the leader, in its own process (so it can be frozen)."""
    port = free_port()
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "GRPC_PORT": str(port),
           "METRICS_PORT": str(free_port([port])), "QUEUES_FILE": str(queues_file), "API_TOKENS": f"{TOKEN}:service",
           "COMMAND_LOG_TOPIC": log_topic, "ROUTING_ROLE": "leader", "INSTANCE_ID": "router-frozen",
           "HEARTBEAT_INTERVAL_S": str(HEARTBEAT_S), "LEASE_TIMEOUT_S": str(LEASE_S),
           # As in _settings: agents over gRPC only, other suites' agent events on the shared broker stay out.
           "AGENT_EVENTS_TOPIC": ""}
    with open(tmp_path / "leader.log", "wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "callstream_routing"], env=env, stdout=out, stderr=out)
    try:
        yield process, f"127.0.0.1:{port}"
    finally:
        process.send_signal(signal.SIGCONT)
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def test_a_frozen_leader_is_fenced_and_refuses_writes(
        kafka_bootstrap: str, queues_file: Path, log_topic: str,
        frozen_capable_leader: tuple[subprocess.Popen[bytes], str]) -> None:
    process, leader_address = frozen_capable_leader
    standby_settings = _settings(kafka_bootstrap, queues_file, log_topic, instance_id="router-b",
                                 routing_role="standby")
    found: dict[str, Any] = {}

    async def scenario() -> None:
        await _until(lambda: _health_is(leader_address, SERVING), 90, "the leader process serves")
        standby, stop_standby, standby_address = await _start(standby_settings)
        switch = Switch([leader_address, standby_address])
        for i in range(6):
            await switch.login(f"agent-{i}")

        async def freeze_mid_load() -> float:
            """Freeze the leader once the load is well under way; return when the standby serves."""
            while len(switch.successes) < 30:
                await asyncio.sleep(0.01)  # polling interval (bounded by the load's own deadline)
            process.send_signal(signal.SIGSTOP)
            frozen_at = time.monotonic()
            serving = await _until(lambda: _health_is(standby_address, SERVING), 60, "the standby serves")
            return serving - frozen_at

        found["takeover_s"], _ = await asyncio.gather(freeze_mid_load(),
                                                      _load(switch, "z", workers=3, calls=20, agents_every=5))
        found["failovers"] = switch.failovers
        found["served_by"] = {address for _t, address in switch.successes}
        agents = [f"agent-{i}" for i in range(6)] + [f"z-agent-{w}-{i}" for w in range(3) for i in (4, 9, 14, 19)]
        await _check_books(switch, agents, offered=3 * 20)

        # Thawed, the old leader finds it was fenced: it refuses writes and reports itself unhealthy.
        process.send_signal(signal.SIGCONT)
        await _until(lambda: _health_is(leader_address, NOT_SERVING), 60, "the fenced leader reports NOT_SERVING")
        found["fenced_process_health"] = await _health(leader_address, "")
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await Switch([leader_address]).offer("after-thaw")
        found["fenced_refuses"] = refused.value.code()
        await switch.close()
        stop_standby.set()
        await standby

    asyncio.run(scenario())
    print(f"\ntake-over after the leader froze: {found['takeover_s']:.2f} s (SIGSTOP -> standby SERVING; "
          f"lease {LEASE_S} s), {found['failovers']} client retries")
    assert len(found["served_by"]) == 2, "the load went through the old and the new leader"
    assert found["takeover_s"] >= LEASE_S, "the standby must wait for the lease before fencing"
    assert found["fenced_refuses"] == grpc.StatusCode.UNAVAILABLE
    assert found["fenced_process_health"] == NOT_SERVING
