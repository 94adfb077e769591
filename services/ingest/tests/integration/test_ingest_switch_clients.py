"""AMI and FreeSWITCH event-socket clients against small servers speaking the documented protocols: login,
subscription, events, a dropped connection and a refused login (reconnect with back-off); and end to end into
a real Kafka broker: keys, partitions (murmur2), event types and times read back, a connection dropped in the
middle of a message with nothing lost and the switch's repeat absorbed by its event id, malformed input in the
DLQ with its reason."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from aiokafka.partitioner import murmur2

from callstream_core.topics import AGENT_EVENTS, CALL_EVENTS, topic
from callstream_ingest.adapters.switch_clients import AmiClient, Backoff, EslClient
from callstream_ingest.service_layer.event_sink import CALL_DLQ, EventSink, make_producer


class RecordingSink:
    """Stands in for EventSink (the produce path has its own tests against Kafka)."""

    def __init__(self) -> None:
        self.events: list[Any] = []
        self.received_n = 0

    def start_polling(self) -> None:
        pass

    def received(self, adapter: str, n: int = 1) -> None:
        self.received_n += n

    def send(self, event: Any, adapter: str) -> None:
        self.events.append(event)


def test_backoff_is_capped_exponential_with_jitter() -> None:
    b = Backoff(0.5, 8.0, random.Random(7))
    delays = [b.delay(n) for n in range(8)]
    for n, d in enumerate(delays):
        base = min(8.0, 0.5 * 2**n)
        assert base * 0.5 <= d <= base
    assert max(delays) <= 8.0 and len(set(delays)) == len(delays)


def ami_event(name: str, **headers: str) -> bytes:
    lines = [f"Event: {name}", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def wait_for(cond: Any, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        if loop.time() > end:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.02)


async def test_ami_client_logs_in_maps_events_and_reconnects() -> None:
    sessions: list[dict[str, str]] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"Asterisk Call Manager/9.0.0\r\n")
        login = (await reader.readuntil(b"\r\n\r\n")).decode()
        fields = dict(line.split(": ", 1) for line in login.strip().split("\r\n"))
        sessions.append(fields)
        n = len(sessions)
        if n == 2:  # second attempt: refused
            writer.write(f"Response: Error\r\nActionID: {fields['ActionID']}\r\nMessage: Authentication failed"
                         "\r\n\r\n".encode())
            await writer.drain()
            writer.close()
            return
        writer.write(f"Response: Success\r\nActionID: {fields['ActionID']}\r\nMessage: Authentication accepted"
                     "\r\n\r\n".encode())
        call = f"170000000{n}.1"
        # split one event across two writes: the parser must reassemble it
        data = ami_event("QueueCallerJoin", Linkedid=call, Uniqueid=call, Queue="support", Position="1",
                         Timestamp="1700000000.25")
        writer.write(data[:20])
        await writer.drain()
        writer.write(data[20:] + ami_event("AgentConnect", Linkedid=call, Uniqueid=call, Queue="support",
                                           Interface="SIP/1001", Timestamp="1700000003.5"))
        writer.write(ami_event("FullyBooted"))  # ignored
        await writer.drain()
        await asyncio.sleep(0.1)
        writer.close()  # connection drops: the client must reconnect

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    sink = RecordingSink()
    client = AmiClient("127.0.0.1", port, "callstream", "s3cret", sink,  # type: ignore[arg-type]
                       backoff=Backoff(0.01, 0.05))
    task = asyncio.create_task(client.run())
    try:
        await wait_for(lambda: len(sink.events) >= 8)
    finally:
        task.cancel()
        server.close()
    assert sessions[0]["Action"] == "Login" and sessions[0]["Username"] == "callstream"
    assert sessions[0]["Secret"] == "s3cret"
    assert client.stats.logins >= 2 and client.stats.failures["login"] == 1
    kinds = [e.WhichOneof("kind") for e in sink.events[:8]]
    assert kinds == ["offered", "queued", "answered", "talking"] * 2
    assert sink.events[0].call_id == "1700000001.1" and sink.events[4].call_id == "1700000003.1"
    assert sink.events[3].agent_id == "SIP/1001"
    assert sink.events[0].envelope.occurred_at.ToMilliseconds() == 1700000000250


def esl_event(**headers: str) -> bytes:
    from urllib.parse import quote

    body = "".join(f"{k}: {quote(v)}\n" for k, v in headers.items()) + "\n"
    raw = body.encode()
    return f"Content-Length: {len(raw)}\nContent-Type: text/event-plain\n\n".encode() + raw


async def test_esl_client_auth_subscribe_events_and_reconnect() -> None:
    commands: list[str] = []
    connections = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        writer.write(b"Content-Type: auth/request\n\n")
        await writer.drain()
        auth = (await reader.readuntil(b"\n\n")).decode().strip()
        commands.append(auth)
        if auth != "auth ClueCon":
            writer.write(b"Content-Type: command/reply\nReply-Text: -ERR invalid\n\n")
            await writer.drain()
            writer.close()
            return
        writer.write(b"Content-Type: command/reply\nReply-Text: +OK accepted\n\n")
        await writer.drain()
        commands.append((await reader.readuntil(b"\n\n")).decode().strip())
        writer.write(b"Content-Type: command/reply\nReply-Text: +OK event listener enabled plain\n\n")
        common = {"Event-Name": "CUSTOM", "Event-Subclass": "callcenter::info", "CC-Queue": "support@default",
                  "CC-Member-Session-UUID": f"uuid-{connections}", "CC-Agent": "1000@default"}
        writer.write(esl_event(**common, **{"CC-Action": "member-queue-start",
                                            "Event-Date-Timestamp": "1700000000000000"}))
        writer.write(esl_event(**common, **{"CC-Action": "bridge-agent-start",
                                            "Event-Date-Timestamp": "1700000004000000"}))
        await writer.drain()
        await asyncio.sleep(0.1)
        writer.write(b"Content-Type: text/disconnect-notice\nContent-Length: 0\n\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    sink = RecordingSink()
    client = EslClient("127.0.0.1", port, "ClueCon", sink, backoff=Backoff(0.01, 0.05))  # type: ignore[arg-type]
    task = asyncio.create_task(client.run())
    try:
        await wait_for(lambda: len(sink.events) >= 8)
    finally:
        task.cancel()
        server.close()
    assert commands[:2] == ["auth ClueCon", "event plain CUSTOM callcenter::info"]
    kinds = [e.WhichOneof("kind") for e in sink.events[:8]]
    assert kinds == ["offered", "queued", "answered", "talking"] * 2
    assert sink.events[0].call_id == "uuid-1" and sink.events[4].call_id == "uuid-2"
    assert sink.events[3].agent_id == "1000@default"
    assert client.stats.connects >= 2


async def test_esl_refused_password_backs_off() -> None:
    attempts = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal attempts
        attempts += 1
        writer.write(b"Content-Type: auth/request\n\n")
        await reader.readuntil(b"\n\n")
        writer.write(b"Content-Type: command/reply\nReply-Text: -ERR invalid\n\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = EslClient("127.0.0.1", port, "wrong", RecordingSink(),  # type: ignore[arg-type]
                       backoff=Backoff(0.01, 0.04))
    task = asyncio.create_task(client.run())
    try:
        await wait_for(lambda: client.stats.failures["login"] >= 3)
    finally:
        task.cancel()
        server.close()
    assert client.stats.logins == 0 and attempts >= 3


# -- end to end into Kafka ---------------------------------------------------------------------------------------

Records = list[tuple[str | None, Any, dict[str, bytes]]]


def _check_keys_and_partitions(records: Records, key_of: Callable[[Any], str], partitions: dict[str | None, set[int]],
                               topic_name: str) -> None:
    """Every record keyed by its entity, and each key on the one partition murmur2 gives (what Java, aiokafka and
    Faust clients compute)."""
    count = topic(topic_name).partitions
    assert all(key == key_of(value) for key, value, _ in records)
    for key, seen in partitions.items():
        assert key is not None
        assert seen == {(murmur2(key.encode()) & 0x7FFFFFFF) % count}, key


def _kinds(records: Records, key: str) -> list[str]:
    return [v.WhichOneof("kind") for k, v, _ in records if k == key]


def _ids(records: Records) -> list[str]:
    return [v.envelope.event_id for _, v, _ in records]


def _dead_letters(consume: Callable[..., Records], origin: str, expected: int) -> dict[str, tuple[bytes, str]]:
    got = consume(CALL_DLQ, expected, keep=lambda _v, h: h.get("ingest.source") == origin.encode())
    return {h["ingest.reason"].decode(): (value, h["dlq.error"].decode()) for _, value, h in got}


async def _through_kafka(handle: Callable[..., Any], done: asyncio.Event,
                         make_client: Callable[[int, EventSink], AmiClient | EslClient], bootstrap: str,
                         consume: Callable[..., Records], source: str, *, events: int, dead: int, calls: int,
                         agents: int) -> tuple[Records, Records, int]:
    """Serve `handle`, run the real client into Kafka until it handed over `events` events and `dead` dead
    letters and Kafka confirmed them, then read the source's call and agent events back, checking keys and
    partitions. Returns them and the server's port."""
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    sink = EventSink(make_producer(bootstrap))
    client = make_client(port, sink)
    task = asyncio.create_task(client.run())
    try:
        await wait_for(lambda: client.stats.events >= events and client.stats.dead_lettered >= dead, 60)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.to_thread(sink.confirm, 60)
    finally:
        task.cancel()
        done.set()
        server.close()
        sink.close()
    assert client.stats.connects == 2 and client.stats.logins == 2
    # the second login ends a gap: counted, with the time it lasted (at least the back-off's first delay)
    assert client.stats.reconnects == 1 and client.stats.gap_s >= 0.005
    call_partitions: dict[str | None, set[int]] = {}
    agent_partitions: dict[str | None, set[int]] = {}
    got_calls = consume(CALL_EVENTS, calls, source=source, partitions=call_partitions)
    got_agents = consume(AGENT_EVENTS, agents, source=source, partitions=agent_partitions)
    _check_keys_and_partitions(got_calls, lambda v: v.call_id, call_partitions, CALL_EVENTS)
    _check_keys_and_partitions(got_agents, lambda v: v.agent_id, agent_partitions, AGENT_EVENTS)
    return got_calls, got_agents, port


async def test_ami_client_into_kafka_reconnects_mid_message_without_loss(ingest_kafka: str,
                                                                         consume: Callable[..., Records]) -> None:
    source = f"test-ami-{uuid.uuid4().hex[:8]}"
    call_a, call_b, member, name = f"{source}.a", f"{source}.b", f"SIP/{source}", f"alice-{source}"
    complete = ami_event("AgentComplete", Linkedid=call_a, Uniqueid=call_a, Queue="support", Interface=member,
                         MemberName=name, Reason="agent", TalkTime="57", Timestamp="1700000070.5")
    repeated = ami_event("AgentConnect", Linkedid=call_a, Uniqueid=call_a, Queue="support", Interface=member,
                         MemberName=name, Timestamp="1700000012.75")
    sessions = 0
    done = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal sessions
        sessions += 1
        writer.write(b"Asterisk Call Manager/9.0.0\r\n")
        login = dict(line.split(": ", 1) for line in (await reader.readuntil(b"\r\n\r\n")).decode().split("\r\n")
                     if line)
        writer.write(f"Response: Success\r\nActionID: {login['ActionID']}\r\nMessage: Authentication accepted"
                     "\r\n\r\n".encode())
        if sessions == 1:
            writer.write(ami_event("QueueCallerJoin", Linkedid=call_a, Uniqueid=call_a, Queue="support",
                                   Position="1", Count="1", Timestamp="1700000000.25"))
            writer.write(repeated)
            writer.write(ami_event("QueueMemberPause", Queue="support", Interface=member, MemberName=name,
                                   Paused="1", PausedReason="lunch", Timestamp="1700000100"))
            writer.write(b"this line has no colon\r\n\r\n")  # malformed: to the DLQ, the session goes on
            writer.write(ami_event("AgentConnect", Linkedid=call_a, Uniqueid=call_a, Queue="support",
                                   Timestamp="1700000013"))
            writer.write(complete[:30])  # the connection drops in the middle of this message
            await writer.drain()
            writer.close()
            return
        # The switch repeats the last event it sent before the drop: the same event ids, absorbed downstream.
        writer.write(repeated + complete)
        writer.write(ami_event("QueueCallerJoin", Linkedid=call_b, Uniqueid=call_b, Queue="sales", Position="1",
                               Timestamp="1700000200"))
        writer.write(ami_event("QueueCallerAbandon", Linkedid=call_b, Uniqueid=call_b, Queue="sales", Position="1",
                               OriginalPosition="1", HoldTime="31", Timestamp="1700000231"))
        writer.write(ami_event("Hangup", Linkedid=call_b, Uniqueid=call_b, Cause="16", Timestamp="1700000231.1"))
        writer.write(ami_event("QueueMemberPause", Queue="support", Interface=member, MemberName=name,
                               Paused="0", Timestamp="1700000300"))
        await writer.drain()
        await done.wait()
        writer.close()

    calls, agents, port = await _through_kafka(
        handle, done, lambda port, sink: AmiClient("127.0.0.1", port, "callstream", "s3cret", sink, source=source,
                                                   backoff=Backoff(0.01, 0.05)),
        ingest_kafka, consume, source, events=14, dead=3, calls=9, agents=5)
    assert sessions == 2
    assert _kinds(calls, call_a) == ["offered", "queued", "answered", "answered", "ended"]
    assert _kinds(calls, call_b) == ["offered", "queued", "abandoned", "ended"]
    # the agent is named by MemberName (an agent map could name it by Interface too)
    assert _kinds(agents, name) == ["talking", "not_ready", "talking", "after_call_work", "ready"]
    # Nothing lost, and the only repeats are the switch's own, with the ids of the first copies.
    assert len(set(_ids(calls))) == 8 and len(set(_ids(agents))) == 4
    answered = [v for k, v, _ in calls if v.WhichOneof("kind") == "answered"]
    assert answered[0].envelope.event_id == answered[1].envelope.event_id
    times = {v.WhichOneof("kind"): v.envelope.occurred_at.ToMilliseconds() for k, v, _ in calls if k == call_a}
    assert times == {"offered": 1700000000250, "queued": 1700000000250, "answered": 1700000012750,
                     "ended": 1700000070500}
    assert [v.envelope.occurred_at.ToMilliseconds() for _, v, _ in agents][1] == 1700000100000

    dead = _dead_letters(consume, f"ami://127.0.0.1:{port}", 3)
    assert dead["truncated"][0] == complete[:30]  # what the dropped connection cut off, as it came
    assert dead["truncated"][1].startswith("truncated: the connection ended inside a message (closed by peer)")
    assert dead["malformed_message"] == (b"this line has no colon",
                                         "malformed_message: header line without ':': 'this line has no colon'")
    assert dead["missing_agent"][1] == "missing_agent: ami event AgentConnect is defective"
    assert b"Linkedid: " + call_a.encode() in dead["missing_agent"][0]


async def test_esl_client_into_kafka_reconnects_mid_frame_without_loss(ingest_kafka: str,
                                                                        consume: Callable[..., Records]) -> None:
    source = f"test-esl-{uuid.uuid4().hex[:8]}"
    call_a, call_b, agent = f"{source}-a", f"{source}-b", f"{source}@default"

    def cc(action: str, n: int, micros: int, **headers: str) -> bytes:
        return esl_event(**{"Event-Name": "CUSTOM", "Event-Subclass": "callcenter::info",
                            "Event-UUID": f"{source}-{n}", "Event-Date-Timestamp": str(micros),
                            "CC-Queue": "support@default", "CC-Action": action, **headers})

    bridged = cc("bridge-agent-start", 3, 1700000012_750000, **{"CC-Member-Session-UUID": call_a, "CC-Agent": agent})
    ended = cc("bridge-agent-end", 4, 1700000070_500000, **{"CC-Member-Session-UUID": call_a, "CC-Agent": agent,
                                                             "CC-Hangup-Cause": "NORMAL_CLEARING"})
    sessions = 0
    done = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal sessions
        sessions += 1
        writer.write(b"Content-Type: auth/request\n\n")
        await writer.drain()
        assert (await reader.readuntil(b"\n\n")) == b"auth ClueCon\n\n"
        writer.write(b"Content-Type: command/reply\nReply-Text: +OK accepted\n\n")
        await writer.drain()
        assert (await reader.readuntil(b"\n\n")) == b"event plain CUSTOM callcenter::info\n\n"
        writer.write(b"Content-Type: command/reply\nReply-Text: +OK event listener enabled plain\n\n")
        if sessions == 1:
            writer.write(cc("member-queue-start", 1, 1700000000_250000, **{"CC-Member-Session-UUID": call_a,
                                                                         "CC-Member-CID-Number": "5551234"}))
            writer.write(cc("agent-offering", 2, 1700000010_000000, **{"CC-Member-Session-UUID": call_a,
                                                                     "CC-Agent": agent}))
            writer.write(bridged)
            body = b"Event-Name: CUSTOM\nthis line has no colon\n\n"  # malformed: to the DLQ, the session goes on
            writer.write(b"Content-Length: %d\nContent-Type: text/event-plain\n\n" % len(body) + body)
            writer.write(cc("agent-status-change", 9, 0, **{"CC-Agent": agent, "CC-Agent-Status": "Available",
                                                          "Event-Date-Timestamp": "soon"}))
            writer.write(ended[:40])  # the connection drops in the middle of this frame
            await writer.drain()
            writer.close()
            return
        writer.write(bridged + ended)  # the switch repeats its last event: same Event-UUID, same event ids
        writer.write(cc("agent-status-change", 5, 1700000100_000000, **{"CC-Agent": agent,
                                                                       "CC-Agent-Status": "Available"}))
        writer.write(cc("member-queue-start", 6, 1700000200_000000, **{"CC-Member-Session-UUID": call_b}))
        writer.write(cc("member-queue-end", 7, 1700000231_000000, **{"CC-Member-Session-UUID": call_b,
                                                                   "CC-Cause": "Cancel", "CC-Cancel-Reason": "NONE"}))
        await writer.drain()
        await done.wait()
        writer.close()

    calls, agents, port = await _through_kafka(
        handle, done, lambda port, sink: EslClient("127.0.0.1", port, "ClueCon", sink, source=source,
                                                   backoff=Backoff(0.01, 0.05)),
        ingest_kafka, consume, source, events=15, dead=3, calls=10, agents=5)
    assert sessions == 2
    assert _kinds(calls, call_a) == ["offered", "queued", "ringing", "answered", "answered", "ended"]
    assert _kinds(calls, call_b) == ["offered", "queued", "abandoned", "ended"]
    assert _kinds(agents, agent) == ["reserved", "talking", "talking", "after_call_work", "ready"]
    assert len(set(_ids(calls))) == 9 and len(set(_ids(agents))) == 4
    talking = [v for _, v, _ in agents if v.WhichOneof("kind") == "talking"]
    assert talking[0].envelope.event_id == talking[1].envelope.event_id
    times = [v.envelope.occurred_at.ToMilliseconds() for k, v, _ in calls if k == call_a]
    assert times == [1700000000250, 1700000000250, 1700000010000, 1700000012750, 1700000012750, 1700000070500]

    dead = _dead_letters(consume, f"freeswitch://127.0.0.1:{port}", 3)
    assert dead["truncated"][0] == ended[:40]
    assert dead["malformed_event"][1] == "malformed_event: header line without ':': 'this line has no colon'"
    assert dead["malformed_event"][0].endswith(b"this line has no colon\n\n")
    assert dead["bad_timestamp"][1] == "bad_timestamp: freeswitch event agent-status-change is defective"
