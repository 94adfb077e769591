"""The four HTTP services on real uvicorn servers (ingest on the session's Kafka broker, the KPI API on chDB,
QA and HR on SQLite), with one bearer token per role, for the fuzz and the auth matrix."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from callstream_core.clickhouse import get_client
from callstream_core.kafka import apply_topics
from callstream_core.settings import ROLES
from callstream_core.topics import AGENT_EVENTS, CALL_EVENTS, topic
from callstream_devtools.testing import serve_in_thread

sys.path.insert(0, str(Path(__file__).parent))  # openapi_cases, under --import-mode=importlib

TOKENS = {role: f"fuzz-{role}-token-0001" for role in sorted(ROLES)}
API_TOKENS = ",".join(f"{token}:{role}" for role, token in TOKENS.items())
INGEST_TOKEN = "fuzz-ingest-source-token-0001"  # ingest's tokens name a webhook source, not a role
SERVICES = ("ingest", "kpi", "qa", "hr")


@dataclass(frozen=True)
class Service:
    name: str
    base_url: str
    spec: dict[str, Any]


def _ingest(kafka_bootstrap: str, stack: ExitStack) -> Any:
    from callstream_ingest.config import IngestSettings
    from callstream_ingest.entrypoints.api import create_app
    from callstream_ingest.service_layer.event_sink import EventSink, make_producer

    apply_topics(kafka_bootstrap, [topic(CALL_EVENTS), topic(AGENT_EVENTS)])
    settings = IngestSettings(ingest_sources=f"{INGEST_TOKEN}=fuzz", callstream_env="development",
                              kafka_bootstrap_servers=kafka_bootstrap, produce_timeout_s=5)
    sink = EventSink(make_producer(kafka_bootstrap))
    stack.callback(sink.close)
    return create_app(settings, sink)


def _kpi(clickhouse_url: str) -> Any:
    from callstream_kpi.adapters.clickhouse_facts import apply_migrations
    from callstream_kpi.config import KpiSettings
    from callstream_kpi.entrypoints.api import create_app
    from callstream_kpi.entrypoints.broadcast import Broadcaster

    client = get_client(clickhouse_url, database=f"fuzz_{uuid.uuid4().hex[:8]}")
    apply_migrations(client)
    return create_app(KpiSettings(api_tokens=API_TOKENS), client, Broadcaster())


def _qa(base: Path) -> Any:
    from callstream_qa.config import QASettings
    from callstream_qa.entrypoints.app import create_app

    return create_app(QASettings(database_url=f"sqlite:///{base / 'qa.db'}", api_tokens=API_TOKENS,
                                 qa_principals=f"{TOKENS['agent']}=agent-1@team-a,{TOKENS['team_lead']}=@team-a",
                                 outbox_relay_enabled=False, contacts_consumer_enabled=False, log_level="WARNING"))


def _hr(base: Path) -> Any:
    from callstream_hr.bootstrap import create_app
    from callstream_hr.config import HrSettings

    return create_app(HrSettings(database_url=f"sqlite:///{base / 'hr.db'}", api_tokens=API_TOKENS,
                                 team_lead_scopes=f"{TOKENS['team_lead']}:team-a", outbox_interval_s=0))


@pytest.fixture(scope="module")
def services(kafka_bootstrap: str, clickhouse_url: str, tmp_path_factory: pytest.TempPathFactory,
             ) -> Iterator[dict[str, Service]]:
    base = tmp_path_factory.mktemp("fuzz")
    with ExitStack() as stack:
        apps = {"ingest": _ingest(kafka_bootstrap, stack), "kpi": _kpi(clickhouse_url), "qa": _qa(base),
                "hr": _hr(base)}
        found = {}
        for name, app in apps.items():
            url = stack.enter_context(serve_in_thread(app))
            found[name] = Service(name, url, httpx.get(url + "/openapi.json", timeout=30).json())
        yield found
