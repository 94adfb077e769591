"""AMI and FreeSWITCH event-socket clients against small fake servers speaking the documented framing:
login, subscription, events, a dropped connection and a refused login (reconnect with back-off)."""

from __future__ import annotations

import asyncio
import random
from typing import Any

from callstream_ingest.adapters.switch_clients import AmiClient, Backoff, EslClient


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
