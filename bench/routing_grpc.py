"""Routing over gRPC on loopback: OfferCall p50/p99 as a ratio to an empty unary call (gRPC health Check)
on the same server, calls/s per process, and p99 at half that rate. The router runs in its own process
with its command log on Kafka (log_ack=durable: a command is answered after Kafka confirmed it, and with
log_ack=async for comparison). Client, router and broker share the machine's CPUs. Run by `make bench`."""

from __future__ import annotations

import asyncio
import multiprocessing
import tempfile
import uuid
from contextlib import ExitStack
from multiprocessing.connection import Connection
from pathlib import Path

import grpc
from confluent_kafka.admin import NewTopic

from bench.common import SWEEP, build_loadgen, percentile, print_figures, run_loadgen, steal_figure, sweep_figures
from bench.kafka_baseline import bootstrap_servers
from callstream.routing.v1 import routing_pb2, routing_pb2_grpc
from callstream_core.kafka import admin, apply_topics
from callstream_routing.bootstrap import serve
from callstream_routing.config import RoutingSettings

TOKEN = "bench-switch-token"
AUTH = (("authorization", f"Bearer {TOKEN}"),)
AGENTS = 200
SAMPLES = 3000
# Each paced load lasts 15 s: over 5 s (about 1,200 calls) the p99 was the 12th-worst call, moved by a single stall
# of the machine, and the log's transactions are committed every 4 s: the window holds several, as real time does.
PACED_S = 15.0
# The broker is started for this bench, and its JIT compiles the transactional produce path under this load for
# about a minute (its C2 compiler threads took 0.44 cores in the first 5 s, 0.25 after 30 s, under 0.05 after
# 65 s; a router's pair of calls cost the broker 3.4 ms of CPU in the first 20 s): on two cores that CPU is taken
# from the router and its client. A broker in service compiled it long ago, so the first router warms it first.
BROKER_WARM_UP_S = 70.0
CALLERS = 32


def _server(settings: RoutingSettings, port_out: Connection) -> None:
    asyncio.run(serve(settings, ready=port_out.send))


async def _log_in_agents(port: int) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = routing_pb2_grpc.RouterStub(channel)
        for i in range(AGENTS):
            agent = f"agent-{i}"
            await stub.SetAgentState(routing_pb2.AgentStateRequest(
                agent_id=agent, action=routing_pb2.AgentStateRequest.ACTION_LOGIN,
                queues=[routing_pb2.QueueMembership(queue_id="q")]), metadata=AUTH, timeout=5)
            await stub.SetAgentState(routing_pb2.AgentStateRequest(
                agent_id=agent, action=routing_pb2.AgentStateRequest.ACTION_READY), metadata=AUTH, timeout=5)


def _drive(loadgen: Path, port: int, broker_warm_up_s: float) -> dict[str, float]:
    """The load generator's measurement (bench/loadgen/main.go), reduced to figures."""
    run = run_loadgen(loadgen, port, token=TOKEN, samples=SAMPLES, load_warm_up_s=broker_warm_up_s,
                      callers=CALLERS, paced_s=PACED_S, sweep=",".join(SWEEP))
    empty, offers = run["empty"], run["offers"]
    figures = {
        "empty_unary_p50_ms": percentile(empty, 50) * 1000,
        "empty_unary_p99_ms": percentile(empty, 99) * 1000,
        "offer_call_p50_ms": percentile(offers, 50) * 1000,
        "offer_call_p99_ms": percentile(offers, 99) * 1000,
        "p50_ratio_offer_to_empty": percentile(offers, 50) / percentile(empty, 50),
        "offer_calls_per_s": run["calls_per_s"],
        "p99_ms_at_half_rate": percentile(run["paced"], 99) * 1000,
        "p50_ms_at_half_rate": percentile(run["paced"], 50) * 1000,
        **steal_figure("steal_pct_at_half_rate", run, "paced"),
        "empty_p99_ms_same_pacing": percentile(run["paced_empty"], 99) * 1000,
        **steal_figure("steal_pct_empty_same_pacing", run, "paced_empty"),
    }
    return figures | sweep_figures(run)


def measure(bootstrap: str, log_ack: str, workdir: Path, loadgen: Path,
            broker_warm_up_s: float = 0.0) -> dict[str, float]:
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
        port = int(receiver.recv())
        asyncio.run(_log_in_agents(port))
        return _drive(loadgen, port, broker_warm_up_s)
    finally:
        server.terminate()
        server.join(10)


def main() -> None:
    with ExitStack() as stack:
        bootstrap = bootstrap_servers(stack)
        apply_topics(bootstrap)
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        loadgen = build_loadgen(workdir)
        for i, log_ack in enumerate(("durable", "async")):
            figures = measure(bootstrap, log_ack, workdir, loadgen, broker_warm_up_s=0.0 if i else BROKER_WARM_UP_S)
            print_figures(f"Router over gRPC, {AGENTS} agents, command log ack {log_ack}", figures)


if __name__ == "__main__":
    main()
