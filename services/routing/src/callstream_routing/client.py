"""A switch's client of the Router service that follows the leader (docs/routing.md, "Standby and take-over").

Routing's public client, outside the service's layers on purpose: the processes that drive a router (the
simulator, the ARI bridge) import it; nothing in the router itself does.

The router runs as a leader and hot standbys; only the leader answers, the others say UNAVAILABLE, and a killed
leader is replaced once the standby's lease ran out (~6-7 s with the defaults). A switch (the simulator, an ARI
bridge) gives this client every router's address and calls `call()`: a command that meets UNAVAILABLE (a
standby, a fenced or dead leader) or DEADLINE_EXCEEDED (a frozen leader, a log that did not confirm in time) is
sent again, the very same request, to the next address, with backoff, until one leads or the retry deadline
passes. The request keeps its command_id, so the router's idempotence (a repeated id returns the first answer)
decides it once, whether or not the old leader had logged it. Any other status is the answer and is raised.

`stream_assignments()` keeps one StreamAssignments open on the leader in a thread and re-opens it after a
take-over, asking the new leader to replay what it published since the old stream broke (replay_last_s), so
the assignments a new leader makes as it takes over (overdue deadlines) reach the switch; the caller drops
repeats by the decision's event_id.

Blocking (threads), because the switches that use it are: the simulator's paced loop; an ARI bridge can run it
in a thread pool.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc

from callstream.routing.v1 import routing_pb2, routing_pb2_grpc

log = logging.getLogger(__name__)
_ROUTER_SERVICE = routing_pb2.DESCRIPTOR.services_by_name["Router"].full_name

# Statuses after which the same request may go to another router: nothing was decided by a router that does
# not lead, and one that leads decides a repeated command id once. Everything else is the router's answer.
RETRYABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})

# Reconnect quickly to a router that comes back (gRPC's default backoff grows to 120 s): a restarted leader
# comes back as a standby and may be the next to lead.
_CHANNEL_OPTIONS = [("grpc.initial_reconnect_backoff_ms", 100), ("grpc.min_reconnect_backoff_ms", 100),
                    ("grpc.max_reconnect_backoff_ms", 1000)]


@dataclass(frozen=True)
class RetryPolicy:
    # One attempt: a durable command answers in milliseconds; a frozen leader must not hold the call much
    # longer than that before the client tries the next address (the router's own RPC limit is 5 s).
    attempt_timeout_s: float = 2.5
    # The whole command, retries included: above the default take-over (lease 5 s + fencing + catch-up, 6.7 s
    # measured after a SIGKILL, docs/reliability.md) with room for a loaded machine; a switch that gets no
    # answer by then treats the ACD as down.
    deadline_s: float = 30.0
    # After every address refused once, wait this long before the next round, doubling up to backoff_max_s:
    # short enough that the new leader is found within a fraction of a second, long enough not to hammer a
    # standby with a burst of calls per command in flight.
    backoff_initial_s: float = 0.05
    backoff_max_s: float = 0.5

    def __post_init__(self) -> None:
        if not (0 < self.attempt_timeout_s <= self.deadline_s and 0 < self.backoff_initial_s <= self.backoff_max_s):
            raise ValueError(f"inconsistent retry policy: {self}")


class RouterUnavailable(RuntimeError):
    """No router led within the retry deadline."""


class RouterClient:
    """Calls the Router service on whichever of `targets` (host:port) leads."""

    def __init__(self, targets: Sequence[str], token: str, *, policy: RetryPolicy | None = None,
                 channel_factory: Callable[[str], grpc.Channel] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not targets:
            raise ValueError("at least one router address is needed")
        self.targets = list(targets)
        self.policy = policy or RetryPolicy()
        factory = channel_factory or (lambda target: grpc.insecure_channel(target, options=_CHANNEL_OPTIONS))
        self._channels = [factory(t) for t in self.targets]
        self._stubs = [routing_pb2_grpc.RouterStub(c) for c in self._channels]
        self.metadata = (("authorization", f"Bearer {token}"),)
        self.clock = clock
        self._lock = threading.Lock()
        self._leader = 0  # the address that answered last: tried first (the leader stays the leader)
        self._closed = threading.Event()
        self._streams: list[Any] = []
        self._threads: list[threading.Thread] = []
        self.retries = 0  # attempts that met a router not leading (for logs and tests)

    @property
    def leader(self) -> str:
        return self.targets[self._leader]

    def _next_after(self, index: int) -> None:
        with self._lock:
            if self._leader == index:  # another thread may have found the leader meanwhile
                self._leader = (index + 1) % len(self.targets)

    def wait_for_leader(self, timeout_s: float) -> str:
        """Block until one of the targets reports the Router service SERVING (it leads) and return it; for a
        switch started together with its routers (`make run`), whose start-up (the log replayed) may take longer
        than one command's retry deadline. Raises RouterUnavailable after `timeout_s`."""
        deadline = self.clock() + timeout_s
        request = health_pb2.HealthCheckRequest(service=_ROUTER_SERVICE)
        while True:
            for index, channel in enumerate(self._channels):
                try:
                    reply = health_pb2_grpc.HealthStub(channel).Check(request, timeout=self.policy.attempt_timeout_s)
                except grpc.RpcError:
                    continue
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    with self._lock:
                        self._leader = index
                    return self.targets[index]
            if self.clock() >= deadline:
                raise RouterUnavailable(f"no router of {', '.join(self.targets)} led within {timeout_s:g} s")
            self._closed.wait(self.policy.backoff_max_s)

    # -- unary commands and queries -------------------------------------------------------------------------
    def call(self, method: str, request: Message) -> Any:
        """`method` of the Router service (e.g. "OfferCall") with `request`, on the leader; the same request is
        retried on the next address after UNAVAILABLE or DEADLINE_EXCEEDED until the policy's deadline."""
        deadline = self.clock() + self.policy.deadline_s
        backoff = self.policy.backoff_initial_s
        refused_in_round = 0
        while True:
            index = self._leader
            remaining = deadline - self.clock()
            try:
                return getattr(self._stubs[index], method)(
                    request, metadata=self.metadata, timeout=min(self.policy.attempt_timeout_s, max(remaining, 0.01)))
            except grpc.RpcError as exc:
                code = exc.code()  # a failed call is also a grpc.Call
                if code not in RETRYABLE:
                    raise
                self.retries += 1
                if self.clock() >= deadline:
                    raise RouterUnavailable(
                        f"no router of {', '.join(self.targets)} led within {self.policy.deadline_s:g} s "
                        f"(last: {code.name} from {self.targets[index]}: {exc.details()})") from exc
                self._next_after(index)
                refused_in_round += 1
                if refused_in_round >= len(self.targets):
                    refused_in_round = 0
                    self._closed.wait(min(backoff, max(0.0, deadline - self.clock())))
                    backoff = min(backoff * 2, self.policy.backoff_max_s)

    # -- the assignment stream ------------------------------------------------------------------------------
    def stream_assignments(self, on_decision: Callable[[routing_pb2.RoutingDecision], None],
                           queue_ids: Sequence[str] = ()) -> None:
        """Call `on_decision` (in a thread of this client) for every decision the leader streams, re-opening
        the stream on the next leader after a take-over (with the decisions it missed meanwhile) until close."""
        thread = threading.Thread(target=self._follow_stream, args=(on_decision, list(queue_ids)),
                                  name="router-stream", daemon=True)
        self._threads.append(thread)
        thread.start()

    def _follow_stream(self, on_decision: Callable[[routing_pb2.RoutingDecision], None],
                       queue_ids: list[str]) -> None:
        broken_at: float | None = None  # when the last stream broke: replay from a little before it
        backoff = self.policy.backoff_initial_s
        while not self._closed.is_set():
            index = self._leader
            # From a second before the break (what was in flight); the router caps it at what it keeps.
            replay = 0.0 if broken_at is None else self.clock() - broken_at + 1.0
            stream = self._stubs[index].StreamAssignments(
                routing_pb2.StreamAssignmentsRequest(queue_ids=queue_ids, replay_last_s=replay),
                metadata=self.metadata)
            self._streams.append(stream)
            try:
                for message in stream:
                    if broken_at is not None:
                        log.info("routing client: assignment stream re-opened on %s", self.targets[index])
                        broken_at, backoff = None, self.policy.backoff_initial_s
                    on_decision(message)
                # A stream that ends without an error: the router stopped (it ends its streams on a clean stop).
            except grpc.RpcError as exc:
                if self._closed.is_set():
                    return
                code = exc.code()
                if code not in RETRYABLE and code is not grpc.StatusCode.CANCELLED:
                    log.error("routing client: assignment stream on %s failed: %s %s", self.targets[index],
                              code.name, exc.details())
            finally:
                self._streams.remove(stream)
            if broken_at is None:
                broken_at = self.clock()
                log.warning("routing client: assignment stream on %s ended; following the leader",
                            self.targets[index])
            self._next_after(index)
            self._closed.wait(backoff)
            backoff = min(backoff * 2, self.policy.backoff_max_s)

    def close(self) -> None:
        self._closed.set()
        for stream in list(self._streams):
            stream.cancel()
        for thread in self._threads:
            thread.join(timeout=5)
        for channel in self._channels:
            channel.close()
