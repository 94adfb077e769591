"""Who is who across a switch and Callstream: switch identities of agents -> Callstream agent ids.

A switch names an agent its own way (queue_log's agent field, AMI's MemberName or Interface, FreeSWITCH's
agent name); Callstream's agent figures, teams and adherence need the HR employee id. A directory maps one to
the other, from a CSV file (`switch_id,agent_id` per line, `#` comments; `callstream_ingest.config`
reads `INGEST_AGENT_MAP`) or from whatever HR exports in that form. An agent the directory does not know
keeps the switch's name (nothing is dropped) and is counted in `unknown`, so an operator sees who is missing.
Without a directory every switch name is taken as the agent id.

Caller identity: analytics store caller numbers hashed with a salt (`caller_hash`), never in clear.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from callstream_core.envelope import hash_caller


class AgentMapError(ValueError):
    """A line of an agent map that cannot be read; the message names the file and line."""


def parse_agent_map(lines: Iterable[str], file: str) -> dict[str, str]:
    mapping: dict[str, str] = {}
    for n, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        switch_id, sep, agent_id = (part.strip() for part in line.partition(","))
        if not sep or not switch_id or not agent_id or "," in agent_id:
            raise AgentMapError(f"{file}:{n}: expected 'switch_id,agent_id', got {line[:80]!r}")
        if switch_id == "switch_id" and n == 1:
            continue  # a header line
        if switch_id in mapping and mapping[switch_id] != agent_id:
            raise AgentMapError(f"{file}:{n}: {switch_id!r} is mapped twice ({mapping[switch_id]!r}, {agent_id!r})")
        mapping[switch_id] = agent_id
    return mapping


@dataclass
class AgentDirectory:
    mapping: dict[str, str] = field(default_factory=dict)
    unknown: Counter[str] = field(default_factory=Counter)

    def agent_id(self, *switch_ids: str) -> str:
        """The Callstream id of the first of `switch_ids` the directory knows (a switch may name an agent in
        several ways); unknown: the first non-empty name, counted when a directory was given."""
        names = [s for s in switch_ids if s]
        if not names:
            return ""
        for name in names:
            found = self.mapping.get(name)
            if found is not None:
                return found
        if self.mapping:
            self.unknown[names[0]] += 1
        return names[0]


def caller_hash(salt: str, number: str) -> str:
    """The platform's caller hash (`callstream_core.envelope.hash_caller`, as the simulator's); empty for an
    unknown number (anonymous callers are not one caller)."""
    return hash_caller(number, salt)
