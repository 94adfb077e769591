"""HR's integration fixtures: an empty HR database engine, and a real HR HTTP server (uvicorn in a thread on
a free port) that tests talk to with httpx; each on SQLite and, when the binaries are installed, on a throwaway
PostgreSQL server."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import Engine

from callstream_core.db import make_engine
from callstream_devtools.testing import serve_in_thread
from callstream_hr.bootstrap import create_app
from callstream_hr.config import HrSettings


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        eng = make_engine(f"sqlite:///{tmp_path}/m.db")
        yield eng
        eng.dispose()
        return
    from callstream_devtools.local_postgres import LocalPostgres

    if not LocalPostgres.available():
        pytest.skip("PostgreSQL binaries are not installed")
    with LocalPostgres(tmp_path) as pg:
        eng = make_engine(pg.url)
        yield eng
        eng.dispose()


TOKENS = {
    "hr": "hr-token-0001",
    "manager": "mgr-token-0001",
    "lead_a": "lead-token-aaa",
    "lead_b": "lead-token-bbb",
    "lead_none": "lead-token-zzz",
    "admin": "admin-token-01",
    "agent": "agent-token-01",
    "service": "svc-token-0001",
}
ROLE_OF = {"hr": "hr", "manager": "manager", "lead_a": "team_lead", "lead_b": "team_lead", "lead_none": "team_lead",
           "admin": "admin", "agent": "agent", "service": "service"}


@dataclass
class Server:
    base_url: str
    backend: str
    app: FastAPI

    def client(self, who: str) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, headers={"Authorization": f"Bearer {TOKENS[who]}"}, timeout=30)


def run_server(settings: HrSettings) -> Iterator[tuple[str, FastAPI]]:
    app = create_app(settings)
    with serve_in_thread(app) as base_url:
        yield base_url, app


def settings_for(url: str, **extra: object) -> HrSettings:
    return HrSettings(
        database_url=url,
        api_tokens=",".join(f"{TOKENS[k]}:{ROLE_OF[k]}" for k in TOKENS),
        team_lead_scopes=f"{TOKENS['lead_a']}:team-a,{TOKENS['lead_b']}:team-b",
        outbox_interval_s=0,
        **extra,  # type: ignore[arg-type]
    )


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    base: Path = tmp_path_factory.mktemp("hr")
    if request.param == "sqlite":
        yield from (Server(url, "sqlite", app) for url, app in run_server(settings_for(f"sqlite:///{base}/hr.db")))
        return
    try:
        from callstream_devtools.local_postgres import LocalPostgres
    except ImportError:
        pytest.skip("callstream_devtools.local_postgres is not available")
    if not LocalPostgres.available():
        pytest.skip("PostgreSQL binaries are not installed")
    with LocalPostgres(base) as pg:
        yield from (Server(url, "postgresql", app) for url, app in run_server(settings_for(pg.url)))
