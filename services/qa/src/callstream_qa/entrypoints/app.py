"""FastAPI app factory of the QA service and `main()` (uvicorn): the error answers, the ops router and one
router per resource (entrypoints/routers)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from callstream_core.http_errors import install_error_handlers
from callstream_core.observability import configure_logging, ops_router
from callstream_core.outbox import Producer
from callstream_qa.bootstrap import bootstrap
from callstream_qa.config import QASettings
from callstream_qa.domain.forms import FormError
from callstream_qa.domain.states import IllegalTransition
from callstream_qa.entrypoints.routers import calibration, coaching, evaluations, forms, reports, sampling
from callstream_qa.service_layer import common


def create_app(settings: QASettings, *, producer: Producer | None = None) -> FastAPI:
    configure_logging(settings.service_name, settings.log_level)
    container = bootstrap(settings, producer=producer)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        container.start()
        try:
            yield
        finally:
            container.stop()

    app = FastAPI(title="Callstream QA", version="1", lifespan=lifespan)
    install_error_handlers(app)
    app.state.container = container

    async def database_ready() -> str | None:
        try:
            with container.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception as exc:
            return f"database: {exc}"
        return None

    app.include_router(ops_router({"database": database_ready}))
    for resource in (forms, evaluations, coaching, sampling, calibration, reports):
        app.include_router(resource.router)

    @app.exception_handler(common.NotFound)
    async def _not_found(_r: Request, exc: common.NotFound) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(IllegalTransition)
    async def _illegal(_r: Request, exc: IllegalTransition) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=409)

    @app.exception_handler(common.Conflict)
    async def _conflict(_r: Request, exc: common.Conflict) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=409)

    @app.exception_handler(FormError)
    async def _invalid(_r: Request, exc: FormError) -> JSONResponse:
        return JSONResponse({"detail": [{"loc": ["body"], "msg": str(exc), "type": "value_error"}]},
                            status_code=422)

    return app


def main() -> None:
    import uvicorn

    settings = QASettings()
    uvicorn.run(create_app(settings), host=settings.http_host, port=settings.http_port, log_config=None,
                **settings.uvicorn_tls())
