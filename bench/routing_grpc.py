"""Routing over gRPC on loopback: OfferCall p50/p99 as a ratio to an empty unary call (gRPC health Check)
on the same server, calls/s per process, and p99 at half that rate. The router runs in its own process
with its command log on Kafka (log_ack=durable: a command is answered after Kafka confirmed it, and with
log_ack=async for comparison). Client, router and broker share the machine's CPUs. Run by `make bench`."""

from __future__ import annotations

import asyncio
import gc
import multiprocessing
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from multiprocessing.connection import Connection
from pathlib import Path

import grpc
from confluent_kafka.admin import NewTopic
from grpc_health.v1 import health_pb2

from bench.common import percentile, print_figures
from bench.kafka_baseline import bootstrap_servers
from callstream.routing.v1 import routing_pb2, routing_pb2_grpc
from callstream_core.kafka import admin, apply_topics
from callstream_routing.config import RoutingSettings
from callstream_routing.entrypoints.grpc_server import serve

TOKEN = "bench-switch-token"
AUTH = (("authorization", f"Bearer {TOKEN}"),)
AGENTS = 200
SAMPLES = 3000
PACED_S = 15.0
# The broker is started for this bench, and its JIT compiles the transactional produce path under this load for
# about a minute (its C2 compiler threads took 0.44 cores in the first 5 s, 0.25 after 30 s, under 0.05 after
# 65 s; a router's pair of calls cost the broker 3.4 ms of CPU in the first 20 s): on two cores that CPU is taken
# from the router and its client. A broker in service compiled it long ago, so the first router warms it first.
BROKER_WARM_UP_S = 70.0
CALLERS = 32


def _server(settings: RoutingSettings, port_out: Connection) -> None:
    asyncio.run(serve(settings, ready=port_out.send))


def _health_request() -> bytes:
    return health_pb2.HealthCheckRequest(service="").SerializeToString()


async def _paced(call: Callable[[], Awaitable[float]], rate: float, seconds: float) -> list[float]:
    """Start `call` at `rate` per second for `seconds` without waiting for the earlier ones; their latencies."""
    interval = 1 / rate
    tasks = []
    start = time.perf_counter()
    for i in range(int(rate * seconds)):
        delay = start + i * interval - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)  # pacing the open-loop load
        tasks.append(asyncio.ensure_future(call()))
    return list(await asyncio.gather(*tasks))


async def _closed_loop(offer: Callable[[], Awaitable[float]], seconds: float) -> float:
    """CALLERS in flight for `seconds`, each starting its next offer when the last one ended; offers per second."""
    done, deadline = 0, time.perf_counter() + seconds

    async def caller() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await offer()
            done += 1

    began = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(CALLERS)))
    return done / (time.perf_counter() - began)


async def _measure(port: int, broker_warm_up_s: float) -> dict[str, float]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = routing_pb2_grpc.RouterStub(channel)
        health = channel.unary_unary("/grpc.health.v1.Health/Check", request_serializer=None,
                                     response_deserializer=None)
        for i in range(AGENTS):
            agent = f"agent-{i}"
            await stub.SetAgentState(routing_pb2.AgentStateRequest(
                agent_id=agent, action=routing_pb2.AgentStateRequest.ACTION_LOGIN,
                queues=[routing_pb2.QueueMembership(queue_id="q")]), metadata=AUTH, timeout=5)
            await stub.SetAgentState(routing_pb2.AgentStateRequest(
                agent_id=agent, action=routing_pb2.AgentStateRequest.ACTION_READY), metadata=AUTH, timeout=5)
        n = 0

        async def offer() -> float:
            nonlocal n
            n += 1
            call_id = f"c{n}"
            began = time.perf_counter()
            await stub.OfferCall(routing_pb2.OfferCallRequest(call_id=call_id, queue_id="q"), metadata=AUTH,
                                 timeout=5)
            took = time.perf_counter() - began
            # The caller hangs up: the reservation is released and the agent is free again.
            await stub.CancelCall(routing_pb2.CancelCallRequest(call_id=call_id), metadata=AUTH, timeout=5)
            return took

        request = _health_request()
        for _ in range(300):  # warm-up of both paths
            await health(request, timeout=5)
            await offer()
        if broker_warm_up_s:
            await _closed_loop(offer, broker_warm_up_s)
        # The client's own garbage collector off while it measures (as timeit does): a full collection of this
        # process paused every call in flight (one 200 ms stall in 20 s made the paced p99), and that is the
        # client's cost, not the router's. The router runs with its production GC policy (entrypoints/heap.py).
        gc.collect()
        gc.freeze()
        gc.disable()
        async def empty_call() -> float:
            began = time.perf_counter()
            await health(request, timeout=5)
            return time.perf_counter() - began

        # Alternating, so both see the same machine: on a shared one, load changes within seconds.
        empty, offers = [], []
        for _ in range(SAMPLES):
            empty.append(await empty_call())
            offers.append(await offer())

        # Throughput: CALLERS in flight for 5 s (each offer is followed by its cancel, not counted).
        rate = await _closed_loop(offer, 5)

        # p99 at half that rate, paced (open loop); the empty call paced the same way is the floor of this
        # machine at that moment (on a shared machine its p99 is mostly other processes).
        # 15 s each: a p99 of 5 s (about 1,200 calls) was the 12th-worst call, moved by a single stall of the
        # machine, and the log's transactions are committed every 4 s: the window holds several, as real time does.
        paced = await _paced(offer, rate / 2, PACED_S)
        paced_empty = await _paced(empty_call, rate / 2, PACED_S)
        gc.enable()
    return {
        "empty_unary_p50_ms": percentile(empty, 50) * 1000,
        "empty_unary_p99_ms": percentile(empty, 99) * 1000,
        "offer_call_p50_ms": percentile(offers, 50) * 1000,
        "offer_call_p99_ms": percentile(offers, 99) * 1000,
        "p50_ratio_offer_to_empty": percentile(offers, 50) / percentile(empty, 50),
        "offer_calls_per_s": rate,
        "p99_ms_at_half_rate": percentile(paced, 99) * 1000,
        "p50_ms_at_half_rate": percentile(paced, 50) * 1000,
        "empty_p99_ms_same_pacing": percentile(paced_empty, 99) * 1000,
    }


def measure(bootstrap: str, log_ack: str, workdir: Path, broker_warm_up_s: float = 0.0) -> dict[str, float]:
    topic = f"bench-routing-log-{uuid.uuid4().hex[:8]}"
    client = admin(bootstrap)
    for future in client.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)]).values():
        future.result(30)
    queues = workdir / "queues.yaml"
    queues.write_text("queues:\n  - queue_id: q\n")
    settings = RoutingSettings(kafka_bootstrap_servers=bootstrap, grpc_port=0, queues_file=queues,
                               api_tokens=f"{TOKEN}:service", command_log_topic=topic,
                               log_ack=log_ack,  # type: ignore[arg-type]
                               agent_events_topic="")  # the RPC path alone: no agent events consumer beside it
    receiver, sender = multiprocessing.Pipe(duplex=False)
    server = multiprocessing.Process(target=_server, args=(settings, sender), daemon=True)
    server.start()
    try:
        return asyncio.run(_measure(int(receiver.recv()), broker_warm_up_s))
    finally:
        server.terminate()
        server.join(10)


def main() -> None:
    with ExitStack() as stack:
        bootstrap = bootstrap_servers(stack)
        apply_topics(bootstrap)
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        for i, log_ack in enumerate(("durable", "async")):
            print_figures(f"Router over gRPC, {AGENTS} agents, command log ack {log_ack}",
                          measure(bootstrap, log_ack, workdir, broker_warm_up_s=0.0 if i else BROKER_WARM_UP_S))


if __name__ == "__main__":
    main()
