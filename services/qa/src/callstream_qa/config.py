"""Settings of the QA service (environment variables, validated at start-up: fail fast)."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import Field, field_validator, model_validator

from callstream_core.settings import SqlServiceSettings


@dataclass(frozen=True)
class Binding:
    """Who a bearer token is: an agent id (agents, also evaluators' own ids) and a team id (team leads, agents)."""

    person_id: str
    team_id: str


def parse_principals(spec: str) -> dict[str, Binding]:
    """`TOKEN=PERSON@TEAM,TOKEN=@TEAM` -> {token: Binding}; PERSON or TEAM may be empty."""
    out: dict[str, Binding] = {}
    for item in filter(None, (p.strip() for p in spec.split(","))):
        token, sep, who = item.rpartition("=")
        person, at, team = who.partition("@")
        if not sep or not token or not at:
            raise ValueError(f"QA_PRINCIPALS entry {item!r} must be TOKEN=PERSON@TEAM (either side may be empty)")
        out[token] = Binding(person.strip(), team.strip())
    return out


class QASettings(SqlServiceSettings):
    service_name: str = "callstream-qa"
    database_url: str = "sqlite:///./callstream-qa.db"
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8002, ge=0, le=65535)
    # Which agent/team each bearer token belongs to (see parse_principals); tokens and roles are in API_TOKENS.
    qa_principals: str = ""
    coaching_due_days: int = Field(default=14, ge=1, le=365)
    outbox_relay_enabled: bool = True
    outbox_interval_s: float = Field(default=0.5, gt=0)
    contacts_consumer_enabled: bool = True
    contacts_group_id: str = "callstream-qa-contacts"

    @field_validator("qa_principals")
    @classmethod
    def _principals_parse(cls, value: str) -> str:
        parse_principals(value)
        return value

    @model_validator(mode="after")
    def _principals_match_tokens(self) -> QASettings:
        tokens = self.tokens()
        bindings = self.principals()
        unknown = [t[:4] + "…" for t in bindings if t not in tokens]
        if unknown:
            raise ValueError(f"QA_PRINCIPALS names tokens missing from API_TOKENS: {unknown}")
        for token, role in tokens.items():
            b = bindings.get(token)
            if role == "agent" and (b is None or not b.person_id):
                raise ValueError(f"agent token {token[:4]}… needs an agent id in QA_PRINCIPALS (TOKEN=AGENT@TEAM)")
            if role == "team_lead" and (b is None or not b.team_id):
                raise ValueError(f"team_lead token {token[:4]}… needs a team in QA_PRINCIPALS (TOKEN=@TEAM)")
        return self

    def principals(self) -> dict[str, Binding]:
        return parse_principals(self.qa_principals)
