"""A real QA HTTP server (uvicorn in a thread, free port) on SQLite and on a throwaway PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from callstream_devtools.local_postgres import LocalPostgres
from callstream_devtools.testing import serve_in_thread
from callstream_qa.config import QASettings
from callstream_qa.entrypoints.app import create_app

TOKENS = {
    "qa": "qa-token-0001", "qa2": "qa-token-0002", "agent1": "agent-token-01", "agent2": "agent-token-02",
    "lead1": "lead-token-001", "lead2": "lead-token-002", "manager": "mgr-token-0001",
}
API_TOKENS = ",".join([
    f"{TOKENS['qa']}:qa", f"{TOKENS['qa2']}:qa", f"{TOKENS['agent1']}:agent", f"{TOKENS['agent2']}:agent",
    f"{TOKENS['lead1']}:team_lead", f"{TOKENS['lead2']}:team_lead", f"{TOKENS['manager']}:manager",
])
PRINCIPALS = ",".join([
    f"{TOKENS['qa']}=qa-07@", f"{TOKENS['qa2']}=qa-08@", f"{TOKENS['agent1']}=agent-1@team-a",
    f"{TOKENS['agent2']}=agent-2@team-b", f"{TOKENS['lead1']}=@team-a", f"{TOKENS['lead2']}=@team-b",
])


@dataclass
class Server:
    base_url: str
    app: FastAPI
    backend: str

    def client(self, who: str) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, headers={"Authorization": f"Bearer {TOKENS[who]}"}, timeout=30)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def qa_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    base = tmp_path_factory.mktemp(f"qa-{request.param}")
    if request.param == "postgresql":
        if not LocalPostgres.available():
            pytest.skip("PostgreSQL binaries not installed (apt-get install postgresql)")
        with LocalPostgres(base) as pg:
            yield from _server(pg.url, request.param)
    else:
        yield from _server(f"sqlite:///{Path(base) / 'qa.db'}", request.param)


def _server(url: str, backend: str) -> Iterator[Server]:
    settings = QASettings(database_url=url, api_tokens=API_TOKENS, qa_principals=PRINCIPALS,
                          outbox_relay_enabled=False, contacts_consumer_enabled=False, log_level="WARNING")
    app = create_app(settings)
    with serve_in_thread(app) as base_url:
        yield Server(base_url, app, backend)
