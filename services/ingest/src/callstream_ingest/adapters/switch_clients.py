"""asyncio TCP clients of the switches: Asterisk Manager Interface and FreeSWITCH event socket (mod_callcenter).

Each client connects, logs in, subscribes, maps every event with the domain mappers and hands the events
to the EventSink. A lost connection, a framing error or a refused login is logged and retried after a
capped exponential back-off with jitter; the back-off restarts after a session that logged in.

Neither protocol acknowledges events or replays them: what the switch sent while we were disconnected is
gone. The time between losing a session and the next login (the gap) is logged and counted
(``ClientStats.gap_s``, metric ``callstream_ingest_switch_gap_seconds_total``). After every AMI login the
client asks for the queues' state (``QueueStatus``): the calls waiting now and the members' pause states are
learnt again, so a call that joined during the gap and is still waiting, or answered, is counted; a call
that started and ended inside the gap is not (the queue_log follower is the lossless path for Asterisk).

Malformed input goes to ``cc.call-events.v1.dlq`` with its reason (headers ``ingest.source``,
``ingest.reason``, ``dlq.error``) and the session goes on: an AMI message block that is not ``Key: Value``
lines, an event-socket event whose body cannot be read, a message the connection cut off (``truncated``),
and events the mappers find defective (no call id, no agent, a bad timestamp, an unknown status or cause;
the value is then the event's headers as received).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from prometheus_client import Counter as Metric

from callstream_core.topics import CALL_EVENTS
from callstream_ingest.domain.ami import AmiEventMapper, AmiFramingError, AmiParser, filter_actions, login_action
from callstream_ingest.domain.freeswitch import CallcenterMapper, EslFramingError, EslParser
from callstream_ingest.domain.identity import AgentDirectory
from callstream_ingest.service_layer.event_sink import Event, EventSink

log = logging.getLogger(__name__)
READ_BYTES = 65536
GAP_SECONDS = Metric("callstream_ingest_switch_gap_seconds_total",
                     "Seconds a switch client was without a session between two logins (events then are lost).",
                     ["adapter"])
RECONNECTS = Metric("callstream_ingest_switch_reconnects_total",
                    "Logins after a lost session (each one a gap in what the switch told).", ["adapter"])
RECOVERED_CALLS = Metric("callstream_ingest_switch_recovered_calls_total",
                         "Waiting calls learnt from the switch's queue state after a login, not from their events.",
                         ["adapter"])


class LoginRefused(RuntimeError):
    pass


@dataclass
class Backoff:
    """Delay before reconnect attempt n (0-based): min * 2**n capped at max, times a jitter in [0.5, 1]."""

    min_s: float = 0.5
    max_s: float = 30.0
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, attempt: int) -> float:
        base = min(self.max_s, self.min_s * (2 ** min(attempt, 32)))
        return base * self.rng.uniform(0.5, 1.0)


@dataclass
class ClientStats:
    connects: int = 0
    logins: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    events: int = 0
    dead_lettered: int = 0
    reconnects: int = 0
    gap_s: float = 0.0  # seconds without a session between logins, summed


class _Client:
    adapter = "switch"

    def __init__(self, host: str, port: int, sink: EventSink, backoff: Backoff | None,
                 connect_timeout_s: float) -> None:
        self.host, self.port, self.sink = host, port, sink
        self.backoff = backoff or Backoff()
        self.connect_timeout_s = connect_timeout_s
        self.stats = ClientStats()
        self.logged_in = asyncio.Event()
        self._attempt = 0
        self._lost_at: float | None = None  # loop time the last logged-in session ended
        self._unfinished: Callable[[], bytes] = bytes  # the bytes the session's parser holds unfinished

    async def run(self) -> None:
        """Forever (until cancelled): connect, serve a session, back off, reconnect."""
        self.sink.start_polling()
        while True:
            try:
                await self._connect_and_serve()
                reason = "closed by peer"
            except asyncio.CancelledError:
                raise
            except LoginRefused as exc:
                reason = f"login refused: {exc}"
                self.stats.failures["login"] += 1
            except (OSError, asyncio.IncompleteReadError, TimeoutError) as exc:
                reason = f"connection: {exc!r}"
                self.stats.failures["connection"] += 1
            except (AmiFramingError, EslFramingError) as exc:
                reason = f"framing: {exc}"
                self.stats.failures["framing"] += 1
            unfinished = self._unfinished()
            if unfinished:
                self._dead_letter(unfinished, "truncated", f"the connection ended inside a message ({reason})")
            if self.logged_in.is_set():
                self._lost_at = asyncio.get_running_loop().time()
            self.logged_in.clear()
            delay = self.backoff.delay(self._attempt)
            self._attempt += 1
            log.warning("%s %s:%d: %s; reconnecting in %.2f s", self.adapter, self.host, self.port, reason, delay)
            await asyncio.sleep(delay)

    async def _connect_and_serve(self) -> None:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(self.host, self.port),
                                                self.connect_timeout_s)
        self.stats.connects += 1
        try:
            await self._session(reader, writer)
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    def _logged_in(self) -> None:
        self.stats.logins += 1
        self._attempt = 0  # a good session resets the back-off
        self.logged_in.set()
        if self._lost_at is None:
            log.info("%s %s:%d: logged in", self.adapter, self.host, self.port)
            return
        gap = asyncio.get_running_loop().time() - self._lost_at
        self._lost_at = None
        self.stats.reconnects += 1
        self.stats.gap_s += gap
        RECONNECTS.labels(self.adapter).inc()
        GAP_SECONDS.labels(self.adapter).inc(gap)
        log.warning("%s %s:%d: logged in again after %.1f s without a session: what the switch said in that "
                    "time is lost", self.adapter, self.host, self.port, gap)

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError

    def _dead_letter(self, raw: bytes, reason: str, detail: str) -> None:
        self.sink.rejected(self.adapter, reason)
        self.sink.dead_letter(self.adapter, CALL_EVENTS, raw, {
            "ingest.source": f"{self.adapter}://{self.host}:{self.port}", "ingest.reason": reason,
            "dlq.error": f"{reason}: {detail}"})
        self.stats.dead_lettered += 1

    def _send(self, events: list[Event], defect: str | None, name: str, headers: dict[str, str],
              separator: str) -> None:
        """Hand a switch event's events to the sink, or dead-letter it with the mapper's reason."""
        if defect is not None:
            raw = "".join(f"{k}: {v}{separator}" for k, v in headers.items()).encode()
            self._dead_letter(raw, defect, f"{self.adapter} event {name} is defective")
            return
        for ev in events:
            self.sink.send(ev, self.adapter)
            self.stats.events += 1


class AmiClient(_Client):
    adapter = "ami"
    LOGIN_ID = "callstream-login"
    QUEUE_STATUS_ID = "callstream-queuestatus"
    FILTER_ID = "callstream-filter"
    # Asterisk sends every event to a manager session (a queue call is ~60% dialplan events: Newexten, VarSet),
    # and parsing those cost the adapter most of its time. Whitelist filters (AMI `Filter`, regular expressions
    # over the event's text) keep only what the mapper reads; action answers (QueueStatus) are not filtered. A
    # user without the `system` write class is refused the filter: the session then goes on unfiltered.
    EVENT_FILTERS = (
        "Event: (Queue|Agent)",
        "Event: (Hangup|Hold|Unhold|BlindTransfer|AttendedTransfer)",
        "Variable: QUEUESTATUS",
    )

    def __init__(self, host: str, port: int, username: str, secret: str, sink: EventSink, *,
                 source: str = "asterisk-ami", caller_salt: str = "callstream",
                 wrap_up_s: Mapping[str, float] | None = None, agents: AgentDirectory | None = None,
                 backoff: Backoff | None = None, connect_timeout_s: float = 10.0,
                 login_timeout_s: float = 10.0) -> None:
        super().__init__(host, port, sink, backoff, connect_timeout_s)
        self.username, self.secret = username, secret
        self.mapper = AmiEventMapper(source, caller_salt, wrap_up_s=wrap_up_s, agents=agents)
        self.login_timeout_s = login_timeout_s

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        parser = AmiParser()
        self._unfinished = parser.unfinished
        writer.write(login_action(self.username, self.secret, action_id=self.LOGIN_ID, events="on"))
        await writer.drain()
        pending: list[dict[str, str]] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.login_timeout_s
        while not self.logged_in.is_set():  # wait for the login response (events may come first)
            data = await asyncio.wait_for(reader.read(READ_BYTES), max(0.01, deadline - loop.time()))
            if not data:
                return
            messages = parser.feed(data)
            self._drain_malformed(parser)
            for msg in messages:
                if msg.get("ActionID") == self.LOGIN_ID and "Response" in msg:
                    if msg["Response"].lower() != "success":
                        raise LoginRefused(msg.get("Message", msg["Response"]))
                    self._logged_in()
                else:
                    pending.append(msg)
        # What came with the login answer first: a connection that drops while we send the actions below
        # must not take these events with it.
        self._handle(pending)
        # The filters, then the queues' state now: waiting calls and members' pauses this session has no
        # events of.
        writer.write(filter_actions(self.FILTER_ID, self.EVENT_FILTERS)
                     + f"Action: QueueStatus\r\nActionID: {self.QUEUE_STATUS_ID}\r\n\r\n".encode())
        await writer.drain()
        while True:
            data = await reader.read(READ_BYTES)
            if not data:
                return
            self._handle(parser.feed(data))
            self._drain_malformed(parser)

    def _drain_malformed(self, parser: AmiParser) -> None:
        for block, reason in parser.malformed:
            self.sink.received(self.adapter)
            self._dead_letter(block, "malformed_message", reason)
        parser.malformed.clear()

    def _handle(self, messages: list[dict[str, str]]) -> None:
        now = datetime.now(UTC)
        for msg in messages:
            if "Event" not in msg:
                if msg.get("ActionID") == self.FILTER_ID and msg.get("Response", "").lower() != "success":
                    log.warning("ami %s:%d: event filter refused (%s); reading every event", self.host, self.port,
                                msg.get("Message", ""))
                continue
            self.sink.received(self.adapter)
            recovered = self.mapper.summary.recovered_calls
            events = self.mapper.map(msg, now)
            if self.mapper.summary.recovered_calls > recovered:
                RECOVERED_CALLS.labels(self.adapter).inc()
            self._send(events, self.mapper.last_defect, msg["Event"], msg, "\r\n")


class EslClient(_Client):
    """FreeSWITCH inbound event socket: ``auth``, then ``event plain CUSTOM callcenter::info``."""

    adapter = "freeswitch"
    SUBSCRIBE = b"event plain CUSTOM callcenter::info\n\n"

    def __init__(self, host: str, port: int, password: str, sink: EventSink, *,
                 source: str = "freeswitch-callcenter", caller_salt: str = "callstream",
                 agents: AgentDirectory | None = None, backoff: Backoff | None = None,
                 connect_timeout_s: float = 10.0, login_timeout_s: float = 10.0) -> None:
        super().__init__(host, port, sink, backoff, connect_timeout_s)
        self.password = password
        self.mapper = CallcenterMapper(source, caller_salt, agents=agents)
        self.login_timeout_s = login_timeout_s

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if "\n" in self.password or "\r" in self.password:
            raise LoginRefused("password contains a line break")
        parser = EslParser()
        self._unfinished = parser.unfinished
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.login_timeout_s
        state = "auth"  # auth -> authed -> subscribed
        while True:
            timeout = None if state == "subscribed" else max(0.01, deadline - loop.time())
            data = await asyncio.wait_for(reader.read(READ_BYTES), timeout)
            if not data:
                return
            for frame in parser.feed(data):
                ctype = frame.headers.get("Content-Type", "")
                if ctype == "auth/request" and state == "auth":
                    writer.write(f"auth {self.password}\n\n".encode())
                    await writer.drain()
                    state = "authed"
                elif ctype == "command/reply" and state in ("authed", "subscribing"):
                    reply = frame.headers.get("Reply-Text", "")
                    if not reply.startswith("+OK"):
                        raise LoginRefused(reply or "no Reply-Text")
                    if state == "authed":
                        writer.write(self.SUBSCRIBE)
                        await writer.drain()
                        state = "subscribing"
                    else:
                        state = "subscribed"
                        self._logged_in()
                elif ctype == "text/disconnect-notice":
                    return
                elif ctype == "text/event-plain":
                    self.sink.received(self.adapter)
                    try:
                        headers = frame.event()
                    except EslFramingError as exc:  # the outer frame was whole: the stream is still in step
                        self._dead_letter(frame.body, "malformed_event", str(exc))
                        continue
                    if headers is not None:
                        events = self.mapper.map(headers)
                        self._send(events, self.mapper.last_defect, headers.get("CC-Action", ""), headers, "\n")
