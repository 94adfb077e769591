"""The switch side of the Router (issue 17 item 6), against a real router process and real Kafka:

- a router started on a port already taken exits at once with one clear line, and fences nobody (it used to
  bind too, through gRPC's SO_REUSEPORT, and answer half the connections UNAVAILABLE);
- a StreamAssignments re-opened with replay_last_s gets the decisions published before it was opened;
- RouterClient finds the leader by its health, raises the router's answer at once, and gives up on routers that
  never lead at its deadline.
The take-over itself, under load with the simulator, is apps/simulator/tests/test_router_failover.py.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from callstream.routing.v1 import routing_pb2, routing_pb2_grpc
from callstream_devtools.local_kafka import free_port
from callstream_devtools.router_processes import SERVING, RouterProcess, new_log_topic, start_router
from callstream_routing.client import RetryPolicy, RouterClient, RouterUnavailable

pytestmark = pytest.mark.integration
TOKEN = "test-switch-token"


@pytest.fixture
def log_topic(kafka_bootstrap: str) -> str:
    return new_log_topic(kafka_bootstrap, "test-client-log")


@pytest.fixture
def leader(kafka_bootstrap: str, log_topic: str, tmp_path: Path) -> Iterator[RouterProcess]:
    queues = tmp_path / "queues.yaml"
    queues.write_text("queues:\n  - queue_id: sales\n    wrap_up_s: 0\n    reservation_timeout_s: 3600\n")
    router = start_router(kafka_bootstrap, log_topic, queues, TOKEN, tmp_path, role="leader", instance_id="router-a")
    try:
        router.wait_for(SERVING)
        yield router
    finally:
        router.stop()


def _login(client: RouterClient, agent: str) -> None:
    for command_id, action in ((f"login-{agent}", routing_pb2.AgentStateRequest.ACTION_LOGIN),
                               (f"ready-{agent}", routing_pb2.AgentStateRequest.ACTION_READY)):
        client.call("SetAgentState", routing_pb2.AgentStateRequest(
            command_id=command_id, agent_id=agent, action=action,
            queues=[routing_pb2.QueueMembership(queue_id="sales")]))


def test_a_router_on_a_taken_port_exits_with_one_line_and_fences_nobody(
        kafka_bootstrap: str, log_topic: str, tmp_path: Path, leader: RouterProcess) -> None:
    port = int(leader.address.rsplit(":", 1)[1])
    # As a leader of the same log: had it started, its init_transactions() would have fenced the running one.
    second = start_router(kafka_bootstrap, log_topic, tmp_path / "queues.yaml", TOKEN, tmp_path,
                          role="leader", instance_id="router-b", port=port)
    try:
        status = second.process.wait(60)
    finally:
        second.stop()
    output = second.log_path.read_text()
    assert status == 1, output
    assert f"cannot listen on 127.0.0.1:{port}: the port is taken" in output
    assert "Traceback" not in output
    # The running leader still leads: a command is answered by it.
    client = RouterClient([leader.address], TOKEN)
    try:
        _login(client, "agent-1")
        reply = client.call("OfferCall", routing_pb2.OfferCallRequest(command_id="offer-1", call_id="call-1",
                                                                      queue_id="sales"))
        assert reply.WhichOneof("outcome") == "assigned" and client.retries == 0
    finally:
        client.close()


def test_a_reopened_stream_replays_what_it_missed(leader: RouterProcess) -> None:
    client = RouterClient([leader.address], TOKEN)
    try:
        _login(client, "agent-1")
        reply = client.call("OfferCall", routing_pb2.OfferCallRequest(command_id="offer-1", call_id="call-1",
                                                                      queue_id="sales"))
        assert reply.WhichOneof("outcome") == "assigned"
        with grpc.insecure_channel(leader.address) as channel:
            stream = routing_pb2_grpc.RouterStub(channel).StreamAssignments(
                routing_pb2.StreamAssignmentsRequest(replay_last_s=30), metadata=client.metadata, timeout=10)
            first = next(iter(stream))
            stream.cancel()
        assert first.envelope.event_id == reply.envelope.event_id and first.assigned.agent_id == "agent-1"
    finally:
        client.close()


def test_the_client_raises_answers_at_once_and_gives_up_at_its_deadline(leader: RouterProcess) -> None:
    wrong = RouterClient([leader.address], "not-a-token")
    try:
        with pytest.raises(grpc.RpcError) as refused:
            wrong.call("GetQueueState", routing_pb2.GetQueueStateRequest(queue_id="sales"))
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED and wrong.retries == 0
    finally:
        wrong.close()
    nobody = f"127.0.0.1:{free_port()}"  # nothing listens there: UNAVAILABLE on every attempt
    policy = RetryPolicy(attempt_timeout_s=0.5, deadline_s=1.5, backoff_initial_s=0.05, backoff_max_s=0.2)
    both = RouterClient([nobody, leader.address], TOKEN, policy=policy)
    try:
        assert both.wait_for_leader(10) == leader.address == both.leader  # found by its health, tried first
        both.call("GetQueueState", routing_pb2.GetQueueStateRequest(queue_id="sales"))
        assert both.retries == 0
    finally:
        both.close()
    absent = RouterClient([nobody], TOKEN, policy=policy)
    began = time.monotonic()
    try:
        with pytest.raises(RouterUnavailable, match=f"no router of {nobody} led within 1.5 s"):
            absent.call("GetQueueState", routing_pb2.GetQueueStateRequest(queue_id="sales"))
    finally:
        absent.close()
    assert 1.5 <= time.monotonic() - began < 5 and absent.retries > 1
