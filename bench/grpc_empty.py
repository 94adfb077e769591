"""Baseline: an empty unary gRPC call to a server doing nothing (loopback): p50/p99 latency, calls/s per process
(32 calls in flight), and the p99 paced at a half, a quarter and an eighth of that rate.

Two servers, each in its own process: a grpc.aio one (the Python gRPC stack the router is built on: the router's
figures cannot be better than these) and a grpc-go one (bench/loadgen -serve: what this machine allows any gRPC
server). The load comes from bench/loadgen (Go), whose own CPU per call is small beside a Python server's, as
for bench/routing_grpc.py. Run by `make bench`.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import statistics
import subprocess
import tempfile
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import grpc

from bench.common import SWEEP, build_loadgen, percentile, print_figures, run_loadgen, steal_figure, sweep_figures

METHOD = "/callstream.bench.v1.Empty/Call"
SAMPLES = 5_000
PACED_S = 15.0


async def _serve(port_out: Connection) -> None:
    async def call(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        return b""

    handler = grpc.method_handlers_generic_handler(
        "callstream.bench.v1.Empty",
        {"Call": grpc.unary_unary_rpc_method_handler(call, request_deserializer=None, response_serializer=None)},
    )
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    port_out.send(port)
    await server.wait_for_termination()


def _server_process(port_out: Connection) -> None:
    asyncio.run(_serve(port_out))


def _figures(run: dict[str, Any]) -> dict[str, float]:
    figures = {
        "p50_ms": percentile(run["empty"], 50) * 1000,
        "p99_ms": percentile(run["empty"], 99) * 1000,
        "mean_ms": statistics.fmean(run["empty"]) * 1000,
        "calls_per_s": run["calls_per_s"],
        "p99_ms_at_half_rate": percentile(run["paced_empty"], 99) * 1000,
        **steal_figure("steal_pct_at_half_rate", run, "paced_empty"),
    }
    return figures | sweep_figures(run)


def _load(loadgen: Path, port: int) -> dict[str, float]:
    return _figures(run_loadgen(loadgen, port, offers="false", empty_method=METHOD, samples=SAMPLES, warm_up=500,
                                paced_s=PACED_S, sweep=",".join(SWEEP)))


def measure_python(loadgen: Path) -> dict[str, float]:
    receiver, sender = multiprocessing.Pipe(duplex=False)
    server = multiprocessing.Process(target=_server_process, args=(sender,), daemon=True)
    server.start()
    try:
        return _load(loadgen, int(receiver.recv()))
    finally:
        server.terminate()
        server.join(10)


def measure_go(loadgen: Path) -> dict[str, float]:
    with subprocess.Popen([str(loadgen), "-serve"], stdout=subprocess.PIPE, text=True) as server:
        try:
            assert server.stdout is not None
            return _load(loadgen, int(server.stdout.readline()))
        finally:
            server.kill()


def main() -> None:
    with tempfile.TemporaryDirectory() as workdir:
        loadgen = build_loadgen(Path(workdir))
        print_figures("gRPC empty unary call, grpc.aio server (Python), loopback", measure_python(loadgen))
        print_figures("gRPC empty unary call, grpc-go server (the machine's floor), loopback", measure_go(loadgen))


if __name__ == "__main__":
    main()
