"""The composition root of the HR service: settings -> engine (migrated) -> units of work, auth, the KPI API
client, the outbox relay -> the FastAPI app with one router per resource."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from fastapi import FastAPI
from sqlalchemy import text

from callstream_core.auth import TokenAuth, TokenTable
from callstream_core.db import make_engine, session_factory
from callstream_core.http_errors import install_error_handlers
from callstream_core.observability import ops_router
from callstream_core.outbox import OutboxRelay
from callstream_hr.adapters.db import migrate
from callstream_hr.adapters.kpi_history import KpiApiHistory
from callstream_hr.adapters.outbox import outbox
from callstream_hr.adapters.repositories import SqlUnitOfWork
from callstream_hr.config import HrSettings
from callstream_hr.entrypoints.dependencies import Web, install_refusals
from callstream_hr.entrypoints.routers import employees, organisation, planning, schedules, training


def create_app(settings: HrSettings) -> FastAPI:
    engine = make_engine(settings.database_url)
    migrate(engine)
    sessions = session_factory(engine)
    kpi_api = None
    if settings.kpi_api_url:
        kpi_api = KpiApiHistory(settings.kpi_api_url, settings.kpi_api_token, settings.kpi_api_timeout_s,
                                settings.kpi_api_ca_file)
    web = Web(units_of_work=lambda: SqlUnitOfWork(sessions), auth=TokenAuth(settings.tokens()),
              team_scopes=TokenTable(settings.scopes()), history=kpi_api, targets=kpi_api,
              lateness_grace=timedelta(minutes=settings.lateness_grace_minutes))

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        relay = None
        if settings.outbox_interval_s > 0:
            from callstream_core.kafka import EventProducer

            producer = EventProducer(settings.kafka_bootstrap_servers, client_id="callstream-hr",
                                     wire_format=settings.wire_format)
            relay = OutboxRelay(outbox, sessions, producer, interval_s=settings.outbox_interval_s,
                                batch=settings.outbox_batch, name="hr-outbox-relay")
            relay.start()
        try:
            yield
        finally:
            if relay is not None:
                relay.stop()
            if kpi_api is not None:
                kpi_api.close()
            engine.dispose()

    async def db_ready() -> str | None:
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception as exc:
            return f"database: {exc}"
        return None

    app = FastAPI(title="Callstream HR", version="1", lifespan=lifespan)
    install_error_handlers(app)
    install_refusals(app)
    app.include_router(ops_router({"database": db_ready}))
    for resource in (organisation, employees, training, schedules, planning):
        app.include_router(resource.router(web))
    app.state.sessions = sessions
    app.state.engine = engine
    return app


def main() -> None:
    import uvicorn

    from callstream_core.observability import configure_logging

    settings = HrSettings()
    configure_logging(settings.service_name, settings.log_level)
    uvicorn.run(create_app(settings), host=settings.http_host, port=settings.http_port, log_config=None,
                **settings.uvicorn_tls())
