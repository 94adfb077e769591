"""Sampling plans: N contacts per agent per period, random (seeded, reproducible) and stratified."""

from __future__ import annotations

import hashlib
import random
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class ContactRecord:
    call_id: str
    segment: int
    agent_id: str
    queue_id: str
    call_type: str
    talk_s: float
    transferred: bool
    abandoned_after_answer: bool


def kind(contact: ContactRecord, long_call_s: float) -> str:
    """The contact's special kind, first match wins: abandoned after answer, transfer, long call, normal."""
    if contact.abandoned_after_answer:
        return "abandoned_after_answer"
    if contact.transferred:
        return "transfer"
    if contact.talk_s >= long_call_s:
        return "long"
    return "normal"


def stratum(contact: ContactRecord, long_call_s: float) -> str:
    return f"{contact.queue_id}|{contact.call_type}|{kind(contact, long_call_s)}"


@dataclass(frozen=True)
class Pick:
    agent_id: str
    call_id: str
    segment: int
    stratum: str


def allocate(sizes: dict[str, int], n: int) -> dict[str, int]:
    """Split n over strata: one each to the largest strata first, the rest proportionally (largest remainder)."""
    total = sum(sizes.values())
    n = min(n, total)
    order = sorted(sizes, key=lambda s: (-sizes[s], s))
    if n <= len(order):
        return {s: (1 if i < n else 0) for i, s in enumerate(order)}
    alloc = dict.fromkeys(order, 1)
    rest = n - len(order)
    room = {s: sizes[s] - 1 for s in order}
    room_total = sum(room.values())
    quotas = {s: rest * room[s] / room_total for s in order}
    for s in order:
        alloc[s] += int(quotas[s])
    left = n - sum(alloc.values())
    for s in sorted(order, key=lambda s: (-(quotas[s] - int(quotas[s])), s)):
        if left == 0:
            break
        if alloc[s] < sizes[s]:
            alloc[s] += 1
            left -= 1
    return alloc


def _rng(seed: int, agent_id: str, stratum_key: str) -> random.Random:
    digest = hashlib.sha256(f"{seed}\x1f{agent_id}\x1f{stratum_key}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def sample(contacts: Iterable[ContactRecord], per_agent: int, seed: int, long_call_s: float = 600.0) -> list[Pick]:
    """Pick `per_agent` contacts for every agent; the same input and seed always give the same picks."""
    by_agent: dict[str, dict[str, list[ContactRecord]]] = defaultdict(lambda: defaultdict(list))
    for c in contacts:
        if c.agent_id:
            by_agent[c.agent_id][stratum(c, long_call_s)].append(c)
    picks: list[Pick] = []
    for agent_id in sorted(by_agent):
        strata = by_agent[agent_id]
        alloc = allocate({k: len(v) for k, v in strata.items()}, per_agent)
        for key in sorted(strata):
            pool = sorted(strata[key], key=lambda c: (c.call_id, c.segment))
            chosen = _rng(seed, agent_id, key).sample(pool, alloc[key])
            picks += [Pick(agent_id, c.call_id, c.segment, key) for c in sorted(chosen, key=lambda c: c.call_id)]
    return picks
