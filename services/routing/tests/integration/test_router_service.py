"""The Router over real gRPC with a real Kafka command log: calls routed, bad requests refused, and a
restart mid-load that loses no call and no agent (the state is rebuilt from the log)."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import grpc
import pytest
from confluent_kafka.admin import NewTopic
from grpc_health.v1 import health_pb2, health_pb2_grpc

from callstream.routing.v1 import routing_pb2, routing_pb2_grpc
from callstream_core.kafka import admin, apply_topics
from callstream_routing.bootstrap import serve
from callstream_routing.config import RoutingSettings

pytestmark = pytest.mark.integration
TOKEN = "test-switch-token"
AUTH = (("authorization", f"Bearer {TOKEN}"),)


def _settings(kafka_bootstrap: str, tmp_path: Path, log_topic: str) -> RoutingSettings:
    queues = tmp_path / "queues.yaml"
    queues.write_text("queues:\n  - queue_id: sales\n    wrap_up_s: 0\n  - queue_id: billing\n")
    return RoutingSettings(kafka_bootstrap_servers=kafka_bootstrap, grpc_port=0, queues_file=queues,
                           api_tokens=f"{TOKEN}:service,viewer-token-1:team_lead", command_log_topic=log_topic,
                           agent_events_topic="")  # agents set over gRPC only: other suites' agent events stay out


async def _start(settings: RoutingSettings) -> tuple[asyncio.Task[None], asyncio.Event, int]:
    stop = asyncio.Event()
    started: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(serve(settings, ready=started.set_result, stop=stop))
    port = await asyncio.wait_for(started, 60)
    return task, stop, port


def test_routing_survives_a_restart(kafka_bootstrap: str, tmp_path: Path) -> None:
    apply_topics(kafka_bootstrap)
    log_topic = f"test-routing-log-{uuid.uuid4().hex[:8]}"
    client_admin = admin(kafka_bootstrap)
    for future in client_admin.create_topics([NewTopic(log_topic, num_partitions=1, replication_factor=1)]).values():
        future.result(30)
    settings = _settings(kafka_bootstrap, tmp_path, log_topic)
    agents = [f"agent-{i}" for i in range(3)]
    calls = [f"call-{i}" for i in range(5)]

    async def scenario() -> dict[str, object]:
        found: dict[str, object] = {}
        task, stop, port = await _start(settings)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = routing_pb2_grpc.RouterStub(channel)
            health = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service="callstream.routing.v1.Router"), timeout=5)
            found["health"] = health.status
            with pytest.raises(grpc.aio.AioRpcError) as unauthenticated:
                await stub.OfferCall(routing_pb2.OfferCallRequest(call_id="x", queue_id="sales"), timeout=5)
            found["no_token"] = unauthenticated.value.code()
            with pytest.raises(grpc.aio.AioRpcError) as bad:
                await stub.OfferCall(routing_pb2.OfferCallRequest(call_id="", queue_id="sales"), timeout=5,
                                     metadata=AUTH)
            found["bad_request"] = (bad.value.code(), bad.value.details())
            for agent in agents:
                request = routing_pb2.AgentStateRequest(
                    command_id=f"login-{agent}", agent_id=agent, action=routing_pb2.AgentStateRequest.ACTION_LOGIN,
                    queues=[routing_pb2.QueueMembership(queue_id="sales")], version=1)
                await stub.SetAgentState(request, timeout=5, metadata=AUTH)
                await stub.SetAgentState(routing_pb2.AgentStateRequest(
                    command_id=f"ready-{agent}", agent_id=agent, action=routing_pb2.AgentStateRequest.ACTION_READY,
                    version=2), timeout=5, metadata=AUTH)
            decisions = [await stub.OfferCall(routing_pb2.OfferCallRequest(
                command_id=f"offer-{c}", call_id=c, queue_id="sales"), timeout=5, metadata=AUTH) for c in calls]
            found["outcomes"] = [x.WhichOneof("outcome") for x in decisions]
            first = decisions[0].assigned
            await stub.AcceptReservation(routing_pb2.ReservationRequest(
                command_id="accept-0", reservation_id=first.reservation_id, call_id=calls[0],
                agent_id=first.agent_id), timeout=5, metadata=AUTH)
            found["before"] = await _state(stub, agents)
        stop.set()
        await task

        # A new process: everything it knows comes from the command log.
        task, stop, port = await _start(settings)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = routing_pb2_grpc.RouterStub(channel)
            found["after"] = await _state(stub, agents)
            # The answered call ends: its agent (no wrap-up in `sales`) takes the longest waiting caller.
            ended = await stub.EndCall(routing_pb2.EndCallRequest(
                command_id="end-0", call_id=calls[0], agent_id=first.agent_id), timeout=5, metadata=AUTH)
            found["after_end"] = [(x.call_id, x.WhichOneof("outcome"), x.assigned.agent_id) for x in ended.decisions]
            found["first_agent"] = first.agent_id
        stop.set()
        await task
        return found

    found = asyncio.run(scenario())
    assert found["health"] == health_pb2.HealthCheckResponse.SERVING
    assert found["no_token"] == grpc.StatusCode.UNAUTHENTICATED
    assert found["bad_request"] == (grpc.StatusCode.INVALID_ARGUMENT, "call_id is required")
    assert found["outcomes"] == ["assigned", "assigned", "assigned", "queued", "queued"]
    assert found["after"] == found["before"], "the restarted router lost or changed state"
    assert ("call-3", "assigned", found["first_agent"]) in found["after_end"]  # type: ignore[operator]


async def _state(stub: routing_pb2_grpc.RouterStub, agents: list[str]) -> dict[str, object]:
    queue = await stub.GetQueueState(routing_pb2.GetQueueStateRequest(queue_id="sales"), timeout=5, metadata=AUTH)
    views = [await stub.GetAgentState(routing_pb2.GetAgentStateRequest(agent_id=a), timeout=5, metadata=AUTH)
             for a in agents]
    return {"waiting": queue.calls_waiting, "logged_in": queue.agents_logged_in,
            "agents": [(v.agent_id, v.state, tuple(v.call_ids), v.version) for v in views]}
