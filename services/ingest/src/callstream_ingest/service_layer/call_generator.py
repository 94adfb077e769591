"""Calls for a real Asterisk: the test center's call generator (deploy/local/asterisk), driven over AMI.

Each call is planned from a seeded random generator (`domain.call_plan.plan_calls`): Poisson arrivals, a queue,
the caller's patience, ring and talk times, whether the caller or the agent ends the call, a blind transfer, a
maximum wait. `CallGenerator.run` originates them at their times (`Originate` of `Local/<queue>@<context>/n`, the plan
in inherited channel variables the dialplan reads), performs the blind transfers the agents' dialplan asks
for (`UserEvent CallstreamTransfer` -> `BlindTransfer`), adds, pauses, unpauses and removes a dynamic member
during the run, and returns once every channel has hung up. What happened is Asterisk's to say (queue_log,
AMI, CDRs): the plan only shapes it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from callstream_ingest.adapters.ami_session import AmiSession
from callstream_ingest.domain.ami import Message
from callstream_ingest.domain.call_plan import PlannedCall, originate_headers

# The member the generator adds, pauses (reason "lunch"), unpauses and removes while calls run.
DYNAMIC_MEMBER = ("support", "Local/b4@agents/n", "b4")


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
