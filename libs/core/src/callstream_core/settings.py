"""Settings shared by every service: read from the environment, validated at start-up (fail fast)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

S = TypeVar("S", bound="CoreSettings")

ROLES = frozenset({"agent", "team_lead", "qa", "hr", "manager", "admin", "service"})


class CoreSettings(BaseSettings):
    """The settings every Callstream process has. Services subclass it with their own prefix-free fields."""

    model_config = SettingsConfigDict(env_file=None, extra="ignore", frozen=True)

    service_name: str = Field(default="callstream", min_length=1)
    # production (the default, so a deployment that forgets it is held to the strict rules) or development
    # (`make run` / `callstream up`, tests): development may run on defaults that are public, e.g. the salt
    # of the caller-number hash; production refuses to start on them.
    callstream_env: Literal["production", "development"] = "production"
    kafka_bootstrap_servers: str = Field(default="127.0.0.1:9092", min_length=3)
    # chdb:///abs/path = embedded engine (one process per data directory); http(s)://host:8123 = a server.
    clickhouse_url: str = "chdb:///tmp/callstream-chdb"
    # json = protobuf JSON mapping (any enterprise tool reads it); protobuf = binary, smaller and faster.
    wire_format: Literal["json", "protobuf"] = "json"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # "token:role,token:role"; every API call needs one of these bearer tokens.
    api_tokens: str = ""
    # TLS of the process's own server (HTTP or gRPC): TLS_ENABLED=true with both files, or neither. Half a
    # configuration is refused at start-up: a server in plain text behind HTTPS probes and clients would only
    # show up as failing probes.
    tls_enabled: bool = False
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None

    @field_validator("kafka_bootstrap_servers")
    @classmethod
    def _hosts_have_ports(cls, value: str) -> str:
        for server in value.split(","):
            host, _, port = server.strip().rpartition(":")
            if not host or not port.isdigit():
                raise ValueError(f"{server!r} is not host:port")
        return value

    @field_validator("clickhouse_url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        if not value.startswith(("chdb://", "http://", "https://")):
            raise ValueError("CLICKHOUSE_URL must start with chdb://, http:// or https://")
        if value.startswith("chdb://") and not value.startswith("chdb:///"):
            raise ValueError("CLICKHOUSE_URL=chdb:///ABSOLUTE/PATH (three slashes: an absolute data directory)")
        return value

    @field_validator("api_tokens")
    @classmethod
    def _tokens_have_roles(cls, value: str) -> str:
        parse_tokens(value)
        return value

    @model_validator(mode="after")
    def _tls_all_or_nothing(self) -> CoreSettings:
        files = {"TLS_CERT_FILE": self.tls_cert_file, "TLS_KEY_FILE": self.tls_key_file}
        if not self.tls_enabled:
            given = [name for name, path in files.items() if path is not None]
            if given:
                raise ValueError(f"{' and '.join(given)} set but TLS_ENABLED is not true: set it, or drop the files")
            return self
        for name, path in files.items():
            if path is None:
                raise ValueError(f"TLS_ENABLED=true needs {name}")
            if not path.is_file():
                raise ValueError(f"{name}={path}: no such file")
        return self

    def tokens(self) -> dict[str, str]:
        return parse_tokens(self.api_tokens)

    def uvicorn_tls(self) -> dict[str, Any]:
        """uvicorn.run/uvicorn.Config arguments serving HTTPS with the configured files ({} when TLS is off)."""
        if not self.tls_enabled:
            return {}
        return {"ssl_certfile": str(self.tls_cert_file), "ssl_keyfile": str(self.tls_key_file)}


class SqlServiceSettings(CoreSettings):
    """Settings of a service keeping its state in SQL (HR, QA: callstream_core.db)."""

    # A SQLite file (`make run`, tests) or PostgreSQL (Kubernetes); services set their own default file.
    database_url: str = "sqlite:///./callstream.db"

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        if not value.startswith(("sqlite://", "postgresql://", "postgresql+psycopg://")):
            raise ValueError("DATABASE_URL must be sqlite:///PATH or postgresql+psycopg://USER@HOST/DB")
        return value


def parse_tokens(spec: str) -> dict[str, str]:
    """`tok1:manager,tok2:qa` -> {"tok1": "manager", ...}; unknown roles and short tokens are refused."""
    tokens: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        token, sep, role = item.rpartition(":")
        if not sep or role not in ROLES:
            raise ValueError(f"API token entry {item!r} must be TOKEN:ROLE with ROLE in {sorted(ROLES)}")
        if len(token) < 8:
            raise ValueError("API tokens must be at least 8 characters")
        tokens[token] = role
    return tokens


def load_settings(settings_type: type[S]) -> S:
    """The settings from the environment, or exit at once with one line per bad variable (no traceback)."""
    try:
        return settings_type()
    except ValidationError as exc:
        lines = [f"{'.'.join(str(p) for p in e['loc']).upper() or 'settings'}: {e['msg']}" for e in exc.errors()]
        raise SystemExit(f"{settings_type.__name__}: cannot start:\n  " + "\n  ".join(lines)) from None
