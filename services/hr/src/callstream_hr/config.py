"""HR service settings: environment variables, validated at start-up (fail fast)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator, model_validator

from callstream_core.settings import SqlServiceSettings


class HrSettings(SqlServiceSettings):
    service_name: str = "hr"
    database_url: str = "sqlite:///./callstream-hr.db"
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8003, ge=1, le=65535)
    # Seconds between outbox relay runs; 0 disables the relay thread (tests drive it by hand).
    outbox_interval_s: float = Field(default=1.0, ge=0)
    outbox_batch: int = Field(default=500, ge=1)
    lateness_grace_minutes: int = Field(default=5, ge=0)
    # "TOKEN:TEAM_ID,..." - which team a team-lead token may see (schedules, attendance).
    team_lead_scopes: str = ""
    # The KPI API the forecast reads its history from (http(s)://host:8001); empty = no forecast endpoint.
    kpi_api_url: str = ""
    # Bearer token of a KPI API reader role (hr); required with kpi_api_url.
    kpi_api_token: str = ""
    # Seconds per KPI API request: a hung KPI API fails the forecast request instead of holding it.
    kpi_api_timeout_s: float = Field(default=30.0, gt=0, le=600)
    # PEM bundle of the CA that signed the KPI API's certificate (in-cluster TLS with a private CA); empty = the
    # system's CAs. Checked at start-up: a missing file would otherwise surface as a failed forecast much later.
    kpi_api_ca_file: str = ""

    @field_validator("kpi_api_url")
    @classmethod
    def _kpi_url(cls, value: str) -> str:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("KPI_API_URL must be http(s)://host:port (or empty: no forecast)")
        return value

    @field_validator("kpi_api_ca_file")
    @classmethod
    def _kpi_ca_file(cls, value: str) -> str:
        if value and not Path(value).is_file():
            raise ValueError(f"KPI_API_CA_FILE {value!r} is not a file (a PEM CA bundle, or empty)")
        return value

    @model_validator(mode="after")
    def _kpi_token(self) -> HrSettings:
        if bool(self.kpi_api_url) != bool(self.kpi_api_token):
            raise ValueError("KPI_API_URL and KPI_API_TOKEN go together (set both, or neither)")
        return self

    @field_validator("team_lead_scopes")
    @classmethod
    def _scopes(cls, value: str) -> str:
        parse_scopes(value)
        return value

    def scopes(self) -> dict[str, str]:
        return parse_scopes(self.team_lead_scopes)


def parse_scopes(spec: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in filter(None, (p.strip() for p in spec.split(","))):
        token, sep, team = item.rpartition(":")
        if not sep or not token or not team:
            raise ValueError(f"TEAM_LEAD_SCOPES entry {item!r} must be TOKEN:TEAM_ID")
        out[token] = team
    return out
