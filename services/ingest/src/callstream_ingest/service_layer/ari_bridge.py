"""The ARI bridge's I/O loop: Asterisk's events and the router's decisions in, `CallRouting`'s effects out.

One asyncio task applies every input in arrival order (ARI events, streamed decisions, ring deadlines) and
executes its effects one after the other, feeding each router command's result back into the domain: a call's
commands reach the router in the order the domain made them (an offer before its cancel). Router commands go
through callstream_routing's RouterClient (it follows the leader) in a worker thread; ARI requests over httpx.
Events go to Kafka through the ingest service's EventSink (adapter `ari`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime

import grpc
import httpx
from confluent_kafka import KafkaException
from prometheus_client import Counter

from callstream_core.topics import CALL_EVENTS
from callstream_ingest.adapters.ari_rest import AriError, AriRest
from callstream_ingest.adapters.switch_clients import Backoff
from callstream_ingest.domain import ari_messages as m
from callstream_ingest.domain.ari_presence import AgentPresence
from callstream_ingest.domain.ari_routing import (
    CallRouting,
    Connect,
    DestroyBridge,
    Dial,
    Effect,
    Hangup,
    HoldCaller,
    Publish,
    Route,
    WatchDevices,
)
from callstream_ingest.service_layer.event_sink import EventSink
from callstream_routing import domain as d
from callstream_routing.client import RouterUnavailable
from callstream_routing.grpc_router import GrpcRouter

log = logging.getLogger(__name__)
ADAPTER = "ari"

ARI_MESSAGES = Counter("callstream_ari_messages_total",
                       "ARI WebSocket messages, by outcome (handled, ignored: a type the bridge does not need, "
                       "malformed: logged, dead-lettered and skipped).", ["outcome"])
ROUTER_COMMANDS = Counter("callstream_ari_router_commands_total",
                          "Router commands the bridge sent, by command and outcome (accepted, refused, failed).",
                          ["command", "outcome"])
ARI_FAILURES = Counter("callstream_ari_request_failures_total", "ARI requests Asterisk refused, by request.",
                       ["request"])
RECONCILED = Counter("callstream_ari_reconciled_total",
                     "What re-reading Asterisk's channels after the events WebSocket (re)connected changed, by action "
                     "(ended, agent_lost, offered, hung_up, bridge_destroyed).", ["action"])
PUBLISH_FAILURES = Counter("callstream_ari_publish_failures_total",
                           "Events Kafka refused at once (a missing topic, say): logged, the routing goes on.")


@dataclass(frozen=True, slots=True)
class _RingDeadline:
    channel_id: str


@dataclass(frozen=True, slots=True)
class _Streamed:
    """The router's stream delivered decisions: drain them."""


@dataclass(frozen=True, slots=True)
class _Reconnected:
    """The events WebSocket (re)opened: compare Asterisk's channels with the calls the bridge holds, and watch the
    agents' devices again (a new connection has no subscriptions)."""


_Input = m.AriInput | _RingDeadline | _Streamed | _Reconnected


class AriBridge:
    def __init__(self, routing: CallRouting, ari: AriRest, router: GrpcRouter, sink: EventSink, *,
                 moh_class: str = "default", backoff: Backoff | None = None,
                 presence: AgentPresence | None = None) -> None:
        self.routing, self.ari, self.router, self.sink = routing, ari, router, sink
        self.presence = presence  # agents' status from the switch's device states; None: the agents file only
        self.moh_class = moh_class
        self.backoff = backoff or Backoff()
        self.inputs: asyncio.Queue[_Input] = asyncio.Queue()
        self.connected = asyncio.Event()  # the events WebSocket is open (the app is registered with Asterisk)
        self.malformed = 0
        self._loop = asyncio.get_running_loop()  # built inside the running loop (the composition root)

    def streamed(self) -> None:
        """The router stream's thread calls this after each decision it received."""
        self._loop.call_soon_threadsafe(self.inputs.put_nowait, _Streamed())

    async def run(self, stop: asyncio.Event) -> None:
        self.sink.start_polling()
        reader = asyncio.create_task(self._read_events())
        try:
            await self.connected.wait()
            await self._apply(self.routing.log_in_agents(datetime.now(UTC)))
            stopping = asyncio.create_task(stop.wait())
            while not stop.is_set():
                getting = asyncio.create_task(self.inputs.get())
                await asyncio.wait({getting, stopping}, return_when=asyncio.FIRST_COMPLETED)
                if not getting.done():
                    getting.cancel()
                    break
                item = getting.result()
                if isinstance(item, _Reconnected):
                    await self._apply([*await self._reconcile(),
                                       *(self.presence.watch() if self.presence is not None else [])])
                else:
                    await self._apply(self._dispatch(item))
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader

    # -- inputs ----------------------------------------------------------------------------------------------
    async def _read_events(self) -> None:
        """The ARI WebSocket, reconnected with back-off when it closes (Asterisk restarting, say)."""
        attempt = 0

        def opened() -> None:
            nonlocal attempt
            log.info("ARI events connected (app %s)", self.ari.app)
            self.connected.set()
            # What happened while no WebSocket was open (or before the bridge started) is not replayed: from
            # here on Asterisk reports every change, so its channels now are compared with the calls held.
            self.inputs.put_nowait(_Reconnected())
            attempt = 0

        while True:
            try:
                async for raw in self.ari.events(opened):
                    self._received(raw)
                reason = "closed by Asterisk"
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any failure of the connection means: reconnect
                reason = repr(exc)
            self.connected.clear()
            delay = self.backoff.delay(attempt)
            attempt += 1
            log.warning("ARI events lost (%s); reconnecting in %.1f s", reason, delay)
            await asyncio.sleep(delay)

    def _received(self, raw: str | bytes) -> None:
        parsed = m.parse(raw, datetime.now(UTC))
        if isinstance(parsed, m.Ignored):
            ARI_MESSAGES.labels("ignored").inc()
            return
        if isinstance(parsed, m.Malformed):
            ARI_MESSAGES.labels("malformed").inc()
            self.malformed += 1
            log.warning("ARI message skipped (%s): %s", parsed.reason, parsed.excerpt)
            self.sink.dead_letter(ADAPTER, CALL_EVENTS, raw if isinstance(raw, bytes) else raw.encode(),
                                  {"ingest.source": self.routing.source, "ingest.reason": parsed.reason})
            return
        ARI_MESSAGES.labels("handled").inc()
        self.inputs.put_nowait(parsed)

    async def _reconcile(self) -> list[Effect]:
        try:
            channels = m.stasis_channels(await self.ari.channels(), self.ari.app)
            bridges = await self.ari.app_bridges()
        except (AriError, httpx.HTTPError, ValueError) as exc:  # gone again: the next connection re-reads them
            log.warning("Asterisk's channels not re-read (%r); the next connection will", exc)
            return []
        before = dict(self.routing.counts.reconciled)
        effects = self.routing.reconcile({c.channel_id: (c.args, c.caller_number) for c in channels}, bridges,
                                         datetime.now(UTC))
        changed = {action: n - before.get(action, 0) for action, n in self.routing.counts.reconciled.items()
                   if n != before.get(action, 0)}
        for action, n in changed.items():
            RECONCILED.labels(action).inc(n)
        log.info("re-read %d channels and %d bridges in the app: %s", len(channels), len(bridges),
                 dict(changed) or "nothing to change")
        return effects

    def _dispatch(self, item: _Input) -> list[Effect]:
        now = datetime.now(UTC)
        if isinstance(item, m.CallerEntered):
            return self.routing.caller_entered(item.channel_id, item.queue_id, item.caller_number, item.at)
        if isinstance(item, m.AgentAnswered):
            return self.routing.agent_answered(item.channel_id, item.at)
        if isinstance(item, m.CallbackAnswered):
            return self.routing.called_back(item.channel_id, item.at)
        if isinstance(item, m.EnteredBridge):
            return self.routing.agent_joined(item.channel_id, item.bridge_channels, item.at)
        if isinstance(item, m.ChannelLeft):
            return self.routing.channel_left(item.channel_id, item.at)
        if isinstance(item, _RingDeadline):
            return self.routing.ring_deadline(item.channel_id, now)
        if isinstance(item, _Streamed):
            return [e for decision in self.router.drain() for e in self.routing.decided(decision, now)]
        if isinstance(item, m.DeviceStateChanged):
            return self.presence.changed(item.device, item.state, item.at) if self.presence is not None else []
        return []  # Ignored / Malformed never reach the queue

    # -- effects ---------------------------------------------------------------------------------------------
    async def _apply(self, effects: list[Effect]) -> None:
        pending = deque(effects)
        while pending:
            effect = pending.popleft()
            try:
                pending.extend(await self._execute(effect))
            except AriError as exc:
                ARI_FAILURES.labels(type(effect).__name__).inc()
                log.warning("%s failed: %s", type(effect).__name__, exc)
                pending.extend(await self._failed(effect))
            except httpx.TransportError as exc:
                # Asterisk unreachable (restarting): the calls are settled when the events reconnect and its
                # channels are re-read.
                ARI_FAILURES.labels(type(effect).__name__).inc()
                log.warning("%s not done, Asterisk unreachable: %r", type(effect).__name__, exc)

    async def _failed(self, effect: Effect) -> list[Effect]:
        now = datetime.now(UTC)
        if isinstance(effect, Dial):
            # The caller hung up meanwhile (their hangup event is on its way): that ends the call, and the agent
            # is not to blame. Otherwise the endpoint cannot be dialled: as if it failed at once (busy).
            if effect.caller_channel_id and not await self.ari.channel_exists(effect.caller_channel_id):
                return self.routing.channel_left(effect.caller_channel_id, now)
            return self.routing.channel_left(effect.channel_id, now)
        if isinstance(effect, Connect):
            return self.routing.connect_failed(effect.call_id, now)
        return []  # holding, hanging up, destroying: the channel's own hangup event settles the call

    async def _execute(self, effect: Effect) -> list[Effect]:
        if isinstance(effect, Publish):
            try:
                self.sink.send(effect.event, ADAPTER)
            except KafkaException as exc:  # refused at once (e.g. the topic does not exist): the calls go on
                PUBLISH_FAILURES.inc()
                log.error("event %s not sent to Kafka: %s", effect.event.envelope.event_id, exc)
        elif isinstance(effect, Route):
            return await self._route(effect.command)
        elif isinstance(effect, HoldCaller):
            await self.ari.hold(effect.bridge_id, effect.channel_id, self.moh_class)
        elif isinstance(effect, Dial):
            ring_s = max(0.0, effect.ring_deadline - time.time())
            # Asterisk gives up a little after our own deadline: only a lost deadline timer leaves it to Asterisk.
            await self.ari.originate(effect.channel_id, effect.endpoint, effect.caller_channel_id, effect.app_args,
                                     timeout_s=int(ring_s) + 5)
            self._loop.call_later(ring_s, self.inputs.put_nowait, _RingDeadline(effect.channel_id))
        elif isinstance(effect, Connect):
            await self.ari.connect(effect.bridge_id, effect.channel_id)
        elif isinstance(effect, Hangup):
            await self.ari.hangup(effect.channel_id)
        elif isinstance(effect, DestroyBridge):
            await self.ari.destroy_bridge(effect.bridge_id)
        elif isinstance(effect, WatchDevices) and self.presence is not None:
            now = datetime.now(UTC)
            states = await self.ari.watch_devices(effect.devices)
            return [e for device, state in states for e in self.presence.changed(device, state, now)]
        return []

    async def _route(self, command: d.Command) -> list[Effect]:
        """One command through the RouterClient (in a worker thread), which retries it on the leader with the same
        command id across a take-over; a router that stays away or refuses the request is logged and counted."""
        name = type(command).__name__
        try:
            result = await asyncio.to_thread(self.router.handle, command)
        except (RouterUnavailable, grpc.RpcError) as exc:
            ROUTER_COMMANDS.labels(name, "failed").inc()
            log.error("router %s %s failed: %s", name, command.command_id, exc)
            return []
        ROUTER_COMMANDS.labels(name, "accepted" if result.accepted else "refused").inc()
        if not result.accepted:
            log.info("router refused %s %s: %s", name, command.command_id, result.reason)
        return self.routing.result(command, result, datetime.now(UTC))
