"""bench/loadgen, the Go load generator the gRPC benches measure with: it builds, its flags are checked, it counts
what it was asked to, and it refuses an OfferCall answer that is not an assignment (the bench's latencies would
then be of another path). Real servers on loopback: its own -serve mode and a grpc.aio stand-in for the router."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import threading
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import grpc
import pytest

from bench.common import build_loadgen, run_loadgen
from callstream.routing.v1 import routing_pb2

pytestmark = pytest.mark.timeout(240)  # the first build compiles grpc-go (about 20 s here, 2 cores)


@pytest.fixture(scope="module")
def loadgen(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("go") is None:
        pytest.skip("go not on PATH: bench/loadgen needs Go 1.26 (https://go.dev/dl/)")
    return build_loadgen(tmp_path_factory.mktemp("loadgen"))


@pytest.fixture
def go_server(loadgen: Path) -> Iterator[int]:
    with subprocess.Popen([str(loadgen), "-serve"], stdout=subprocess.PIPE, text=True) as server:
        assert server.stdout is not None
        yield int(server.stdout.readline())
        server.kill()


class _RouterStandIn:
    """A grpc.aio server answering OfferCall with `decision` and CancelCall/health Check with empty messages,
    in a thread of its own; `offers` counts the OfferCalls it answered."""

    def __init__(self, decision: routing_pb2.RoutingDecision) -> None:
        self.decision = decision.SerializeToString()
        self.offers = 0
        self.port = 0
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._loop.run_until_complete, args=(self._serve(),), daemon=True)

    async def _serve(self) -> None:
        async def offer(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
            call = routing_pb2.OfferCallRequest.FromString(request)
            assert call.call_id and call.queue_id == "q", call
            self.offers += 1
            return self.decision

        async def empty(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
            return b""

        def unary(handler: Callable[[bytes, grpc.aio.ServicerContext], Awaitable[bytes]]) -> grpc.RpcMethodHandler:
            return grpc.unary_unary_rpc_method_handler(handler, request_deserializer=None, response_serializer=None)

        server = grpc.aio.server()
        server.add_generic_rpc_handlers((
            grpc.method_handlers_generic_handler("callstream.routing.v1.Router",
                                                 {"OfferCall": unary(offer), "CancelCall": unary(empty)}),
            grpc.method_handlers_generic_handler("grpc.health.v1.Health", {"Check": unary(empty)}),
        ))
        self.port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        self._stop = asyncio.Event()
        self._ready.set()
        await self._stop.wait()
        await server.stop(None)

    def __enter__(self) -> _RouterStandIn:
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)


def test_empty_calls_are_counted_as_asked(loadgen: Path, go_server: int) -> None:
    run = run_loadgen(loadgen, go_server, offers="false", samples=200, warm_up=10, callers=4, closed_s=0.5,
                      paced_s=0.5, sweep="0.5,0.25", sweep_calls=50)
    assert len(run["empty"]) == 200 and "offers" not in run and "paced" not in run
    rate = run["calls_per_s"]
    assert rate > 0
    assert len(run["paced_empty"]) == int(rate / 2 * 0.5)
    # A step is -paced-s long, or longer to reach -sweep-calls.
    assert len(run["sweep"]["0.5"]) == int(rate * 0.5 * max(0.5, 50 / (rate * 0.5)))
    assert len(run["sweep"]["0.25"]) == int(rate * 0.25 * max(0.5, 50 / (rate * 0.25)))
    assert all(0 < latency < 5 for key in ("empty", "paced_empty") for latency in run[key])
    # The stolen share of CPU time of every paced phase (this is Linux: /proc/stat is there).
    assert set(run["steal"]) == {"paced_empty", "0.5", "0.25"}
    assert all(0 <= share <= 1 for share in run["steal"].values())


def test_offers_are_measured_when_assigned(loadgen: Path) -> None:
    decision = routing_pb2.RoutingDecision(call_id="x", assigned=routing_pb2.Assigned(agent_id="agent-1"))
    with _RouterStandIn(decision) as router:
        run = run_loadgen(loadgen, router.port, samples=50, warm_up=5, callers=2, closed_s=0.3, paced_s=0.3)
    assert len(run["offers"]) == len(run["empty"]) == 50
    assert len(run["paced"]) == int(run["calls_per_s"] / 2 * 0.3)
    assert set(run["steal"]) == {"paced", "paced_empty"}
    assert router.offers >= 5 + 50 + len(run["paced"])


def test_an_offer_not_assigned_fails_the_run(loadgen: Path) -> None:
    decision = routing_pb2.RoutingDecision(call_id="x", queued=routing_pb2.Queued(position=1))
    with _RouterStandIn(decision) as router, pytest.raises(SystemExit, match="not an assignment"):
        run_loadgen(loadgen, router.port, samples=5, warm_up=1)


def test_a_bad_flag_is_refused_with_its_value(loadgen: Path) -> None:
    with pytest.raises(SystemExit, match=r'-sweep: "2" is not a fraction'):
        run_loadgen(loadgen, 1, sweep="2")
