"""First-call resolution (KPI 17): repeat-call detection on event time.

An answered call whose disposition is `resolved` counts as FCR only if no other call from the same
`caller_hash` on the same topic is offered within `fcr_window` after it (default 72 h, per queue
of the first call). The verdict is provisional until the window has closed on the watermark: when a
repeat arrives later (or a call arrives out of order), an `FcrUpdate` revises the earlier call so the
rollup of *its* interval can be corrected (resolved_no_repeat -1).

Anonymous calls (empty caller_hash) are never repeats. Memory: a call is kept until the watermark
passes offered_at + window (it is needed as a possible repeat of earlier calls as long as theirs is
open); a call first observed after its own window closed is judged against what is still kept.
"""

from __future__ import annotations

import bisect
import contextlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from callstream_core.kpi_definitions import FCR_WINDOW_S

from .contact import ContactRecord


@dataclass(frozen=True)
class FcrUpdate:
    """The FCR verdict of one answered call (the one whose offered_at interval carries the figure)."""

    call_id: str
    offered_at: datetime
    queue_id: str
    agent_id: str
    first_call_resolved: bool
    # True once the window closed: the verdict can no longer change.
    final: bool = False
    repeated_by: str = ""


@dataclass
class _CallInfo:
    call_id: str
    key: tuple[str, str]
    offered_at: datetime
    queue_id: str
    agent_id: str
    answered: bool
    resolved: bool
    verdict: bool | None = None
    repeated_by: str = ""


class FcrTracker:
    def __init__(self, window_s: float = FCR_WINDOW_S,
                 window_per_queue: Mapping[str, float] | None = None) -> None:
        self.window_s = window_s
        self.window_per_queue: Mapping[str, float] = window_per_queue or {}
        self._calls: dict[str, _CallInfo] = {}
        self._by_key: dict[tuple[str, str], list[tuple[datetime, str]]] = {}

    def window(self, queue_id: str) -> timedelta:
        return timedelta(seconds=self.window_per_queue.get(queue_id, self.window_s))

    def observe_call(self, call_id: str, *, caller_hash: str, topic: str, offered_at: datetime, queue_id: str = "",
                     agent_id: str = "", answered: bool, resolved: bool) -> list[FcrUpdate]:
        """A completed (or revised) call. Returns the verdicts that are new or changed."""
        old = self._calls.pop(call_id, None)
        if old is not None:
            self._unindex(old)
        info = _CallInfo(call_id, (caller_hash, topic), offered_at, queue_id, agent_id, answered, resolved,
                         verdict=old.verdict if old else None, repeated_by=old.repeated_by if old else "")
        self._calls[call_id] = info
        if caller_hash:
            bisect.insort(self._by_key.setdefault(info.key, []), (offered_at, call_id))
        out: list[FcrUpdate] = []
        # the new call can be the repeat of any earlier call of the same key; and itself can be repeated
        for other_id in self._same_key(info):
            update = self._judge(self._calls[other_id])
            if update is not None:
                out.append(update)
        return out

    def observe(self, contacts: Iterable[ContactRecord]) -> list[FcrUpdate]:
        """Contact segments of completed calls (any order): one call = its segment 0 + its resolved leg."""
        by_call: dict[str, list[ContactRecord]] = {}
        for c in contacts:
            by_call.setdefault(c.call_id, []).append(c)
        out: list[FcrUpdate] = []
        for call_id, segs in by_call.items():
            first = min(segs, key=lambda s: s.segment)
            if first.segment != 0:
                continue  # a revision of a later leg only: the call is known already
            resolved_leg = next((s for s in sorted(segs, key=lambda s: -s.segment) if s.answered and s.resolved),
                                None)
            topic = (resolved_leg or first).topic or first.call_type
            out.extend(self.observe_call(
                call_id, caller_hash=first.caller_hash, topic=topic, offered_at=first.offered_at,
                queue_id=first.queue_id, agent_id=first.agent_id, answered=first.answered,
                resolved=resolved_leg is not None))
        return out

    def verdict(self, call_id: str) -> bool | None:
        info = self._calls.get(call_id)
        return None if info is None else info.verdict

    def is_first_call_resolved(self, contact: ContactRecord) -> bool:
        """For `kpis.rollup_contacts(first_call_resolved=...)`."""
        return bool(self.verdict(contact.call_id))

    def sweep(self, now: datetime) -> list[FcrUpdate]:
        """Final verdicts of calls whose window closed by `now` (the watermark); they are then forgotten."""
        out: list[FcrUpdate] = []
        for call_id in list(self._calls):
            info = self._calls[call_id]
            if now > info.offered_at + self.window(info.queue_id):
                if info.verdict is not None:
                    out.append(self._update(info, final=True))
                self._unindex(info)
                del self._calls[call_id]
        return out

    def __len__(self) -> int:
        return len(self._calls)

    def _same_key(self, info: _CallInfo) -> list[str]:
        if not info.key[0]:
            return [info.call_id]
        return [cid for _, cid in self._by_key.get(info.key, [])]

    def _judge(self, info: _CallInfo) -> FcrUpdate | None:
        if not info.answered:
            if not info.verdict:
                return None
            info.verdict = False  # revised to unanswered: withdraw an earlier "resolved"
            return self._update(info, final=False)
        repeat = ""
        if info.resolved and info.key[0]:
            limit = info.offered_at + self.window(info.queue_id)
            for at, cid in self._by_key.get(info.key, []):
                if cid != info.call_id and info.offered_at < at <= limit:
                    repeat = cid
                    break
        verdict = info.resolved and not repeat
        if verdict == info.verdict and repeat == info.repeated_by:
            return None
        info.verdict, info.repeated_by = verdict, repeat
        return self._update(info, final=False)

    @staticmethod
    def _update(info: _CallInfo, *, final: bool) -> FcrUpdate:
        return FcrUpdate(info.call_id, info.offered_at, info.queue_id, info.agent_id, bool(info.verdict), final,
                         info.repeated_by)

    def _unindex(self, info: _CallInfo) -> None:
        entries = self._by_key.get(info.key)
        if entries is None:
            return
        with contextlib.suppress(ValueError):
            entries.remove((info.offered_at, info.call_id))
        if not entries:
            del self._by_key[info.key]
