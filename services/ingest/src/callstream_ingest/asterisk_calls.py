"""Calls for a real Asterisk: the test center's call generator (deploy/local/asterisk), driven over AMI.

Each call is planned from a seeded random generator (`plan_calls`): Poisson arrivals, a queue, the caller's
patience, ring and talk times, whether the caller or the agent ends the call, a blind transfer, a maximum
wait. `CallGenerator.run` originates them at their times (`Originate` of `Local/<queue>@<context>/n`, the plan
in inherited channel variables the dialplan reads), performs the blind transfers the agents' dialplan asks
for (`UserEvent CallstreamTransfer` -> `BlindTransfer`), adds, pauses, unpauses and removes a dynamic member
during the run, and returns once every channel has hung up. What happened is Asterisk's to say (queue_log,
AMI, CDRs): the plan only shapes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from callstream_ingest.domain.ami import AmiParser, Message, login_action

# The member the generator adds, pauses (reason "lunch"), unpauses and removes while calls run.
DYNAMIC_MEMBER = ("support", "Local/b4@agents/n", "b4")


@dataclass(frozen=True, slots=True)
class PlannedCall:
    token: str
    at_s: float  # seconds after the start of the run
    queue: str
    caller_number: str
    patience_s: float
    ring_s: float
    agent_talk_s: float
    caller_talk_s: float
    transfer: bool
    max_wait_s: int  # 0: no limit

    def variables(self) -> dict[str, str]:
        # "__": inherited by the ;2 half of the Local channel and by the members' channels app_queue dials.
        return {"__CALLTOKEN": self.token, "PATIENCE": f"{self.patience_s:.2f}",
                "CALLER_TALK": f"{self.caller_talk_s:.2f}", "__RING": f"{self.ring_s:.2f}",
                "__TALK": f"{self.agent_talk_s:.2f}", "__XFER": "1" if self.transfer else "0",
                "__MAXWAIT": str(self.max_wait_s) if self.max_wait_s else ""}


def originate_headers(call: PlannedCall, context: str) -> dict[str, str]:
    """AMI `Originate` of a planned call into `context` (with `call.variables()`): the ;2 half of the Local
    channel runs the center's dialplan, the ;1 half the caller's."""
    return {"Channel": f"Local/{call.queue}@{context}/n", "Context": "caller", "Exten": "s", "Priority": "1",
            "CallerID": f'"Caller" <{call.caller_number}>', "Async": "true", "Timeout": "30000"}


@dataclass(frozen=True, slots=True)
class LoadShape:
    calls: int = 300
    calls_per_s: float = 3.0
    queues: tuple[tuple[str, float], ...] = (("sales", 0.55), ("support", 0.45))
    patience_s: tuple[float, float] = (0.5, 12.0)
    ring_s: tuple[float, float] = (0.2, 1.0)
    agent_talk_s: tuple[float, float] = (1.0, 4.0)
    caller_talk_s: tuple[float, float] = (1.5, 6.0)
    transfer_share: float = 0.03
    max_wait_share: float = 0.08
    max_wait_s: int = 4
    callers: int = 150  # distinct caller numbers: some call again


def plan_calls(seed: int, shape: LoadShape = LoadShape()) -> list[PlannedCall]:
    rng = random.Random(seed)
    names = [q for q, _ in shape.queues]
    weights = [w for _, w in shape.queues]
    at = 0.0
    calls: list[PlannedCall] = []
    for n in range(shape.calls):
        at += rng.expovariate(shape.calls_per_s)
        calls.append(PlannedCall(
            token=f"g{seed}x{n:05d}", at_s=at, queue=rng.choices(names, weights)[0],
            caller_number=f"+4072{rng.randrange(shape.callers):07d}",
            patience_s=rng.uniform(*shape.patience_s), ring_s=rng.uniform(*shape.ring_s),
            agent_talk_s=rng.uniform(*shape.agent_talk_s), caller_talk_s=rng.uniform(*shape.caller_talk_s),
            transfer=rng.random() < shape.transfer_share,
            max_wait_s=shape.max_wait_s if rng.random() < shape.max_wait_share else 0))
    return calls


class AmiSession:
    """A minimal asyncio AMI session for actions: responses matched by ActionID, events to handlers."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._parser = AmiParser()
        self._pending: dict[str, asyncio.Future[Message]] = {}
        self._lists: dict[str, list[Message]] = {}
        self._ids = itertools.count(1)
        self._task: asyncio.Task[None] | None = None
        self.handlers: list[Callable[[Message], None]] = []

    async def open(self, username: str, secret: str) -> None:
        self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        self._task = asyncio.create_task(self._read())
        self._writer.write(login_action(username, secret, action_id="login", events="on"))
        fut = self._pending["login"] = asyncio.get_running_loop().create_future()
        reply = await asyncio.wait_for(fut, 10)
        if reply.get("Response", "").lower() != "success":
            raise ConnectionError(f"AMI login refused: {reply.get('Message', '')}")

    async def _read(self) -> None:
        assert self._reader is not None
        while data := await self._reader.read(65536):
            for msg in self._parser.feed(data):
                action_id = msg.get("ActionID", "")
                if "Event" in msg:
                    if action_id in self._lists:
                        if msg["Event"].endswith("Complete"):
                            fut = self._pending.pop(action_id, None)
                            if fut is not None and not fut.done():
                                fut.set_result(msg)
                        else:
                            self._lists[action_id].append(msg)
                        continue
                    for handler in self.handlers:
                        handler(msg)
                elif action_id in self._pending and action_id not in self._lists:
                    fut = self._pending.pop(action_id)
                    if not fut.done():
                        fut.set_result(msg)

    async def action(self, name: str, headers: dict[str, str] | None = None,
                     variables: dict[str, str] | None = None, timeout: float = 10.0) -> Message:
        assert self._writer is not None
        action_id = f"a{next(self._ids)}"
        lines = [f"Action: {name}", f"ActionID: {action_id}"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        lines += [f"Variable: {k}={v}" for k, v in (variables or {}).items()]
        fut = self._pending[action_id] = asyncio.get_running_loop().create_future()
        self._writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        return await asyncio.wait_for(fut, timeout)

    async def list_action(self, name: str, timeout: float = 10.0) -> list[Message]:
        """An action answered by a list of events and a ...Complete event (e.g. CoreShowChannels)."""
        assert self._writer is not None
        action_id = f"l{next(self._ids)}"
        self._lists[action_id] = []
        fut = self._pending[action_id] = asyncio.get_running_loop().create_future()
        self._writer.write(f"Action: {name}\r\nActionID: {action_id}\r\n\r\n".encode())
        try:
            await asyncio.wait_for(fut, timeout)
            return self._lists[action_id]
        finally:
            self._lists.pop(action_id, None)

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(OSError):
                await self._writer.wait_closed()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


class AgentStatus(StrEnum):
    """What an agent sets at the test center's switch (deploy/local/asterisk/extensions.conf, [agent-<status>])."""

    ready = "ready"
    pause = "pause"
    logout = "logout"


async def dial_agent_status(session: AmiSession, agent: str, status: AgentStatus) -> None:
    """What the agent's phone does: dial the center's feature code for `status` (`<agent>@agent-<status>`), whose
    dialplan sets the agent's custom device state; refused by Asterisk: ConnectionError with its message."""
    reply = await session.action("Originate", {
        "Channel": f"Local/{agent}@agent-{status.value}/n", "Application": "Hangup", "Async": "true"})
    if reply.get("Response", "").lower() != "success":
        raise ConnectionError(f"Asterisk refused the {status.value} code of {agent}: {reply.get('Message', '')}")


@dataclass
class GeneratorReport:
    originated: int = 0
    refused: list[str] = field(default_factory=list)
    transfers_requested: int = 0
    transfers_done: int = 0


class CallGenerator:
    def __init__(self, host: str, port: int, username: str, secret: str, *, context: str = "incoming") -> None:
        # The dialplan context calls enter: `incoming` (app_queue's Queue()) or `routed` (Stasis: the ARI
        # bridge and Callstream's router).
        self.context = context
        self.session = AmiSession(host, port)
        self.username, self.secret = username, secret
        self.report = GeneratorReport()
        self._background: set[asyncio.Task[None]] = set()

    def _on_event(self, msg: Message) -> None:
        if msg.get("Event") == "UserEvent" and msg.get("UserEvent") == "CallstreamTransfer":
            self.report.transfers_requested += 1
            # The agent's dialplan runs on the ;2 half of its Local channel; the half in the bridge with the
            # caller, the transferer, is ;1.
            transferer = msg.get("Self", "").removesuffix(";2") + ";1"
            task = asyncio.create_task(self._transfer(transferer))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def _transfer(self, channel: str) -> None:
        reply = await self.session.action("BlindTransfer", {"Channel": channel, "Exten": "s",
                                                            "Context": "xfer-target"})
        if reply.get("Response", "").lower() == "success":
            self.report.transfers_done += 1

    async def _originate(self, call: PlannedCall) -> None:
        reply = await self.session.action("Originate", originate_headers(call, self.context), call.variables())
        if reply.get("Response", "").lower() == "success":
            self.report.originated += 1
        else:
            self.report.refused.append(f"{call.token}: {reply.get('Message', '')}")

    async def _members(self, duration_s: float, start: float) -> None:
        """ADDMEMBER at the start, PAUSE (lunch) at a third, UNPAUSE at two thirds, REMOVEMEMBER at the end."""
        queue, interface, name = DYNAMIC_MEMBER
        loop = asyncio.get_running_loop()
        steps: list[tuple[float, str, dict[str, str]]] = [
            (0.0, "QueueAdd", {"Queue": queue, "Interface": interface, "MemberName": name}),
            (duration_s / 3, "QueuePause", {"Queue": queue, "Interface": interface, "Paused": "true",
                                            "Reason": "lunch"}),
            (2 * duration_s / 3, "QueuePause", {"Queue": queue, "Interface": interface, "Paused": "false"}),
            (duration_s, "QueueRemove", {"Queue": queue, "Interface": interface}),
        ]
        for at, action, headers in steps:
            await asyncio.sleep(max(0.0, start + at - loop.time()))
            await self.session.action(action, headers)

    async def run(self, calls: list[PlannedCall], *, drain_timeout_s: float = 120.0,
                  on_progress: Callable[[int], None] | None = None) -> GeneratorReport:
        await self.session.open(self.username, self.secret)
        self.session.handlers.append(self._on_event)
        loop = asyncio.get_running_loop()
        start = loop.time()
        members = asyncio.create_task(self._members(calls[-1].at_s if calls else 0.0, start))
        try:
            for n, call in enumerate(calls):
                # Paced to the plan's arrival times (the load itself), not a synchronisation.
                await asyncio.sleep(max(0.0, start + call.at_s - loop.time()))
                await self._originate(call)
                if on_progress is not None:
                    on_progress(n + 1)
            await members
            await self.wait_idle(drain_timeout_s)
        finally:
            members.cancel()
            await self.session.close()
        return self.report

    async def wait_idle(self, timeout_s: float) -> None:
        """Until Asterisk has no channel left (every call over), polling CoreShowChannels with a deadline."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            channels = await self.session.list_action("CoreShowChannels")
            if not [c for c in channels if c.get("Event") == "CoreShowChannel"]:
                return
            if loop.time() > deadline:
                raise TimeoutError(f"{len(channels)} channels still up {timeout_s:.0f} s after the last call")
            await asyncio.sleep(0.5)
