"""An asyncio AMI session for actions (the test center's call generator drives Asterisk with it)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Callable

from callstream_ingest.domain.ami import AmiParser, Message, login_action


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
