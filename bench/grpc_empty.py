"""Baseline: an empty unary gRPC call (grpc.aio, loopback): p50/p99 latency and calls/s per process.

The server runs in its own process (as a real service would) and the client in this one, so the
figures are the server's, not a shared event loop's. Later ratios (routing's OfferCall) divide by
these figures. Run by `make bench`.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import statistics
import time
from multiprocessing.connection import Connection

import grpc

from bench.common import percentile, print_figures

METHOD = "/callstream.bench.v1.Empty/Call"


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


async def measure_unary(port: int, method: str, request: bytes, latency_calls: int = 5_000,
                        throughput_s: float = 5.0, concurrency: int = 32) -> dict[str, float]:
    """p50/p99 of sequential calls, then calls/s with `concurrency` calls in flight."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = channel.unary_unary(method, request_serializer=None, response_deserializer=None)
        for _ in range(500):  # warm-up: connection, HTTP/2 windows, code paths
            await stub(request, timeout=5)
        samples = []
        for _ in range(latency_calls):
            start = time.perf_counter()
            await stub(request, timeout=5)
            samples.append(time.perf_counter() - start)
        done = 0
        deadline = time.perf_counter() + throughput_s

        async def worker() -> None:
            nonlocal done
            while time.perf_counter() < deadline:
                await stub(request, timeout=5)
                done += 1

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
    return {
        "p50_ms": percentile(samples, 50) * 1000,
        "p99_ms": percentile(samples, 99) * 1000,
        "mean_ms": statistics.fmean(samples) * 1000,
        "calls_per_s": done / elapsed,
    }


def measure() -> dict[str, float]:
    receiver, sender = multiprocessing.Pipe(duplex=False)
    server = multiprocessing.Process(target=_server_process, args=(sender,), daemon=True)
    server.start()
    try:
        port = int(receiver.recv())
        return asyncio.run(measure_unary(port, METHOD, b""))
    finally:
        server.terminate()
        server.join(10)


def main() -> None:
    figures = measure()
    print_figures("gRPC empty unary call (grpc.aio, loopback, one process)", figures)


if __name__ == "__main__":
    main()
