"""Settings of the ingest service (webhook API, queue_log follower, AMI / FreeSWITCH clients), validated at
start-up: a bad value stops the process with the variable's name instead of failing later."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator, model_validator

from callstream_core.event_checks import EventTimeWindow
from callstream_core.settings import CoreSettings
from callstream_ingest.domain import webhook
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
