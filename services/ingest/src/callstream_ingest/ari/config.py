"""Settings of the ARI bridge (`python -m callstream_ingest.ari`), validated at start-up.

They extend the ingest service's (Kafka, TOPIC_PREFIX, CALLER_SALT and its production check, reconnect
back-off) with Asterisk's ARI, the router and the agents file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from callstream_ingest.ari.domain import Agent
from callstream_ingest.config import IngestSettings


class AgentsFileError(ValueError):
    """The agents file cannot be read; the message names the file and what is wrong."""


class _AgentEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    agent_id: str = Field(min_length=1)
    endpoint: str = Field(min_length=3, pattern=r"^[A-Za-z]+/\S+$")  # Asterisk dial string: TECH/resource
    queues: list[str] = Field(min_length=1)
    # skill id -> proficiency (1 novice .. 5 expert), for queues with required skills (the `skills` strategy)
    skills: dict[str, Annotated[int, Field(ge=1, le=5)]] = Field(default_factory=dict)
    # queue -> penalty (0 when absent): lower serves first among the agent's queues, as Asterisk's member penalty
    penalties: dict[str, Annotated[int, Field(ge=0)]] = Field(default_factory=dict)


class _AgentsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    agents: list[_AgentEntry] = Field(min_length=1)


def read_agents(path: Path) -> list[Agent]:
    """`agents:` entries with `agent_id`, `endpoint` (what Asterisk dials), `queues` they log in to and, optionally,
    `skills` (skill id: proficiency 1-5) and `penalties` (queue: penalty, lower serves first)."""
    try:
        raw = yaml.safe_load(path.read_text())
        parsed = _AgentsFile.model_validate(raw)
    except OSError as exc:
        raise AgentsFileError(f"{path}: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise AgentsFileError(f"{path}: not YAML: {exc}") from exc
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise AgentsFileError(f"{path}: {where}: {first['msg']}") from exc
    ids = [a.agent_id for a in parsed.agents]
    if len(set(ids)) != len(ids):
        raise AgentsFileError(f"{path}: an agent_id is listed twice")
    for entry in parsed.agents:
        if set(entry.penalties) - set(entry.queues):
            raise AgentsFileError(f"{path}: agent {entry.agent_id}: penalties of queues it is not in: "
                                  f"{sorted(set(entry.penalties) - set(entry.queues))}")
    return [Agent(agent_id=a.agent_id, endpoint=a.endpoint, queues=tuple(a.queues), skills=tuple(a.skills.items()),
                  penalties=tuple(a.penalties.items())) for a in parsed.agents]


class AriBridgeSettings(IngestSettings):
    service_name: str = "ari-bridge"
    # Asterisk's HTTP server (http.conf) and an ARI user (ari.conf).
    ari_url: str = Field(default="http://127.0.0.1:8088", pattern=r"^https?://[^/]+$")
    ari_username: str = Field(min_length=1)
    ari_password: str = Field(min_length=1)
    # The Stasis application the dialplan hands calls to: `Stasis(<ari_app>,<queue>)`.
    ari_app: str = Field(default="callstream", min_length=1, pattern=r"^[A-Za-z0-9_-]+$")
    ari_source: str = Field(default="asterisk-ari", min_length=1)
    # What waiting callers hear (musiconhold.conf class).
    moh_class: str = "default"
    # Every router's host:port, comma-separated (the leader and its standbys, or one Service address): commands
    # go to whichever leads (callstream_routing.client.RouterClient).
    router_targets: str = Field(default="127.0.0.1:50051", pattern=r"^[^:/,\s]+:\d+(,[^:/,\s]+:\d+)*$")
    # A service token of the routers' API_TOKENS.
    router_token: str = Field(min_length=1)
    # One attempt of a command on one router: a durable command answers in milliseconds, so a router silent for
    # this long is frozen and the next address is tried (RetryPolicy.attempt_timeout_s).
    router_timeout_s: float = Field(default=2.5, gt=0)
    # A command that finds no leader (a take-over: ~6-7 s with the default lease) is retried with the same
    # command id, so nothing is decided twice, for this long; after it the command is given up and logged.
    router_retry_s: float = Field(default=30.0, gt=0)
    # The agents the bridge logs in at start, with the endpoint Asterisk dials for each.
    agents_file: Path
    # What Asterisk dials to call a caller back when the router gives them a callback (a queue's overflow to
    # `callback`), `{number}` their number: `PJSIP/{number}@trunk`. Empty: callbacks are not served (the caller is
    # released with an `overflowed` event).
    callback_endpoint: str = Field(default="", pattern=r"^$|^[A-Za-z]+/\S*\{number\}\S*$")
    # How long the caller's phone rings for a callback before it is given up (the agent waits meanwhile).
    callback_ring_s: float = Field(default=30.0, gt=0, le=300)
    # Each agent's status at the switch is the custom device state <prefix><switch id> (ari.presence); the switch
    # id goes through AGENT_MAP. Empty: no status from the switch (the agents file's logins only).
    agent_device_prefix: str = Field(default="Custom:agent-", pattern=r"^$|^[A-Za-z]+:\S*$")

    @model_validator(mode="after")
    def _attempt_within_retry(self) -> AriBridgeSettings:
        if self.router_timeout_s > self.router_retry_s:
            raise ValueError(f"ROUTER_TIMEOUT_S ({self.router_timeout_s}) must not exceed ROUTER_RETRY_S "
                             f"({self.router_retry_s})")
        return self

    def router_target_list(self) -> list[str]:
        return self.router_targets.split(",")

    def agents(self) -> list[Agent]:
        return read_agents(self.agents_file)
