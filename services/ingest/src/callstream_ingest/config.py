"""Settings of the ingest service (webhook API, queue_log follower, AMI / FreeSWITCH clients) and of the ARI bridge
(`python -m callstream_ingest.ari`: the ingest settings plus Asterisk's ARI, the router and the agents file),
validated at start-up: a bad value stops the process with the variable's name instead of failing later."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from callstream_core.event_checks import EventTimeWindow
from callstream_core.settings import CoreSettings
from callstream_ingest.domain import webhook
from callstream_ingest.domain.ari_routing import Agent
from callstream_ingest.domain.identity import AgentDirectory, parse_agent_map


def parse_sources(spec: str) -> dict[str, str]:
    """`TOKEN=source-name,TOKEN2=other` -> {"TOKEN": "source-name", ...}; short tokens are refused."""
    sources: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        token, sep, source = item.partition("=")
        token, source = token.strip(), source.strip()
        if not sep or not source:
            raise ValueError(f"INGEST_SOURCES entry {item[:4]!r}… must be TOKEN=source-name")
        if len(token) < 16:
            raise ValueError("INGEST_SOURCES tokens must be at least 16 characters")
        if len(source) > 200:
            raise ValueError(f"source name {source[:40]!r}… is longer than 200 characters")
        if token in sources:
            raise ValueError("INGEST_SOURCES lists a token twice")
        sources[token] = source
    return sources


def parse_wrap_up(spec: str) -> dict[str, float]:
    """`sales=2,support=1.5` -> {"sales": 2.0, "support": 1.5}: seconds, 0 to 3600."""
    wrap_up: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        queue, sep, seconds = (part.strip() for part in item.partition("="))
        try:
            value = float(seconds)
        except ValueError:
            value = -1.0
        if not sep or not queue or not 0 <= value <= 3600:
            raise ValueError(f"QUEUE_WRAPUP_S entry {item[:60]!r} must be queue=seconds (0 to 3600)")
        wrap_up[queue] = value
    return wrap_up


# The caller-hash salt of development runs; with the old default, the public word "callstream", it is refused in
# production (CALLSTREAM_ENV=production, the default).
DEVELOPMENT_CALLER_SALT = "development-only-caller-salt"
PUBLIC_CALLER_SALTS = frozenset({DEVELOPMENT_CALLER_SALT, "callstream"})


class IngestSettings(CoreSettings):
    service_name: str = "ingest"
    # Before every topic name (as the KPI worker's TOPIC_PREFIX): several isolated platforms on one broker.
    topic_prefix: str = Field(default="", pattern=r"^[A-Za-z0-9._-]*$")
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8000, ge=1, le=65535)
    # One bearer token per webhook source: "TOKEN=source-name,...". Events posted with a token must carry
    # that source name (or "source-name/<instance>") in envelope.source.
    ingest_sources: str = ""
    webhook_max_event_bytes: int = Field(default=webhook.MAX_EVENT_BYTES, ge=256)
    webhook_max_batch_bytes: int = Field(default=webhook.MAX_BATCH_BYTES, ge=1024)
    webhook_max_batch_events: int = Field(default=webhook.MAX_BATCH_EVENTS, ge=1)
    # Event times the webhook accepts, around the clock at arrival. Ahead: a PBX clock a few minutes fast
    # is normal (NTP drift, a skewed appliance); an event further ahead is a wrong clock or a forged date,
    # and would hold the KPI stream's event time in the future. Behind: a PBX that buffered its events
    # through an outage sends them late; a week covers a long weekend's outage, and history older than
    # that is loaded with `callstream replay`, not the live webhook. 422 names the field otherwise.
    webhook_max_future_s: float = Field(default=300.0, ge=0, le=7 * 24 * 3600.0)
    webhook_max_age_s: float = Field(default=7 * 24 * 3600.0, gt=0)
    # Event ids remembered to acknowledge a repeat without producing it again (per process).
    webhook_dedup_ids: int = Field(default=200_000, ge=0)
    # How long a request waits for Kafka to confirm its batch before answering 503 (nothing acknowledged).
    produce_timeout_s: float = Field(default=10.0, gt=0, le=300)
    # Salt of the caller-number hash (analytics store numbers hashed). A public salt lets anyone hash every
    # phone number and read the hashes back: production must set a secret one (the Helm chart generates it);
    # the default is for development only and says so.
    caller_salt: str = Field(default=DEVELOPMENT_CALLER_SALT, min_length=1)
    # Asterisk queue_log to follow (empty = off) and where its checkpoint lives.
    queue_log_path: str = ""
    queue_log_checkpoint: str = ""
    queue_log_source: str = Field(default="asterisk-queue-log", min_length=1)
    # Asterisk Manager Interface client (empty host = off).
    ami_host: str = ""
    ami_port: int = Field(default=5038, ge=1, le=65535)
    ami_username: str = ""
    ami_secret: str = ""
    ami_source: str = Field(default="asterisk-ami", min_length=1)
    # FreeSWITCH event socket client for mod_callcenter (empty host = off).
    esl_host: str = ""
    esl_port: int = Field(default=8021, ge=1, le=65535)
    esl_password: str = ""
    esl_source: str = Field(default="freeswitch-callcenter", min_length=1)
    # Each Asterisk queue's `wrapuptime` (queues.conf), "sales=2,support=1": queue_log and AMI never say when a
    # member's wrap-up ends, so the adapters announce this as the ACW of the queue's answered calls.
    queue_wrapup_s: str = ""
    # Switch identities -> Callstream agent ids (HR employee ids): a CSV file of `switch_id,agent_id` lines.
    # Empty: the switch's names are the agent ids. Unknown agents keep their switch name and are counted.
    agent_map: str = ""
    # Reconnect back-off of the AMI / event-socket clients: doubles from min to max, with jitter.
    reconnect_min_s: float = Field(default=0.5, gt=0)
    reconnect_max_s: float = Field(default=30.0, gt=0)

    @model_validator(mode="after")
    def _secret_salt_in_production(self) -> IngestSettings:
        if self.callstream_env == "production" and self.caller_salt in PUBLIC_CALLER_SALTS:
            raise ValueError("CALLER_SALT must be set to a secret of your own in production (the default is public: "
                             "anyone could hash every phone number and match the stored hashes); for a "
                             "development run set CALLSTREAM_ENV=development")
        return self

    @field_validator("ingest_sources")
    @classmethod
    def _sources_parse(cls, value: str) -> str:
        parse_sources(value)
        return value

    def sources(self) -> dict[str, str]:
        return parse_sources(self.ingest_sources)

    @field_validator("queue_wrapup_s")
    @classmethod
    def _wrap_up_parse(cls, value: str) -> str:
        parse_wrap_up(value)
        return value

    @field_validator("agent_map")
    @classmethod
    def _agent_map_reads(cls, value: str) -> str:
        if value:
            path = Path(value)
            if not path.is_file():
                raise ValueError(f"AGENT_MAP {value}: no such file")
            parse_agent_map(path.read_text().splitlines(), value)
        return value

    def wrap_up(self) -> dict[str, float]:
        return parse_wrap_up(self.queue_wrapup_s)

    def agent_directory(self) -> AgentDirectory:
        """A directory per adapter: each counts its own unknown agents."""
        if not self.agent_map:
            return AgentDirectory()
        return AgentDirectory(parse_agent_map(Path(self.agent_map).read_text().splitlines(), self.agent_map))

    def webhook_window(self) -> EventTimeWindow:
        return EventTimeWindow(max_future_s=self.webhook_max_future_s, max_age_s=self.webhook_max_age_s)


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
    # Each agent's status at the switch is the custom device state <prefix><switch id> (domain.ari_presence); the switch
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
