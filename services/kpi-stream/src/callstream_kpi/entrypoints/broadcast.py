"""Fan-out of real-time snapshots and alerts to the wallboard's live streams (SSE), latest-value per key."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator


class Broadcaster:
    """Keeps the latest message per key and wakes every listener on change.

    A slow listener never blocks the publisher: it is given the latest value of each key, not a backlog.
    """

    def __init__(self) -> None:
        self._latest: dict[tuple[str, str], str] = {}
        self._version = 0
        self._changed = asyncio.Condition()

    async def publish(self, event: str, key: str, data: str) -> None:
        async with self._changed:
            self._latest[(event, key)] = data
            self._version += 1
            self._changed.notify_all()

    def latest(self) -> dict[tuple[str, str], str]:
        return dict(self._latest)

    async def listen(self) -> AsyncIterator[tuple[str, str]]:
        """Yields (event, data): first the current state, then every change."""
        sent: dict[tuple[str, str], str] = {}
        seen = -1
        while True:
            async with self._changed:
                await self._changed.wait_for(lambda seen=seen: self._version != seen)  # type: ignore[misc]
                seen = self._version
                fresh = {k: v for k, v in self._latest.items() if sent.get(k) != v}
            for (event, _key), data in fresh.items():
                yield event, data
            sent.update(fresh)
