"""The KPI API and the wallboard: KPIs by scope, grain and period; agent scorecards; real-time figures
and their live stream (SSE). In embedded mode it shares the worker's process (one chDB per process).

No `from __future__ import annotations` here: FastAPI must evaluate the `Annotated[..., Depends(...)]`
parameters, which name objects local to `create_app`.
"""


import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from importlib.resources import files
from typing import Annotated, Any, Literal, cast

from clickhouse_connect.driver.client import Client
from fastapi import APIRouter, Body, Depends, FastAPI, HTTPException, Path, Query, Request
from fastapi.responses import FileResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field, field_validator

from callstream_core.auth import Principal, TokenAuth
from callstream_core.http_errors import install_error_handlers
from callstream_core.observability import ReadinessCheck, ops_router
from callstream_kpi.adapters.kpi_queries import KpiQuery
from callstream_kpi.adapters.queue_settings import QueueSettingsStore, SettingsStore, TeamSettingsStore
from callstream_kpi.config import KpiSettings
from callstream_kpi.domain.kpis import KPIS, VARIANTS
from callstream_kpi.domain.targets import (
    DEFAULT_TARGETS,
    QueueSettings,
    QueueTargets,
    ScopeRef,
    TargetBook,
    TeamSettings,
)
from callstream_kpi.entrypoints.broadcast import Broadcaster
from callstream_kpi.service_layer.reports import kpi_report, with_targets

READERS = ("team_lead", "manager", "qa", "hr")
TARGET_WRITERS = ("manager", "admin")
GRAIN_LIMIT = {"30m": timedelta(days=31), "hour": timedelta(days=93), "day": timedelta(days=3 * 366),
               "week": timedelta(days=10 * 366), "month": timedelta(days=20 * 366)}
STATIC = files("callstream_kpi.entrypoints") / "static"


# What the facts can hold: ClickHouse's DateTime64 spans 1900-01-01 .. 2299-12-31, and the stream refuses
# event times before 1970 (event_checks). A period outside it is a 422, never date arithmetic that overflows
# (`from=9999-12-31` plus the default day was a 500).
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2299, 12, 31, tzinfo=UTC)
# An agent scorecard is a daily report: the same span as the day grain of /v1/kpis.
SCORECARD_LIMIT = GRAIN_LIMIT["day"]


def _aware(moment: datetime, name: str) -> datetime:
    """`moment` in UTC (naive = UTC), or a 422 naming the parameter when it is outside EARLIEST..LATEST."""
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    if not EARLIEST <= aware <= LATEST:
        raise HTTPException(422, f"'{name}' must lie between {EARLIEST.date()} and {LATEST.date()}")
    return aware


class _TargetsIn(BaseModel):
    """What queue and team targets share. A bad value is a 422 whose `loc` names the field."""

    model_config = ConfigDict(extra="forbid")
    sl_goal_pct: float = Field(default=80.0, ge=0, le=100, description="share answered within T, percent")
    kpi_targets: dict[str, float] = Field(default={}, description="KPI name -> target value (its comparison "
                                                                  "is the default target's)")

    @field_validator("kpi_targets")
    @classmethod
    def _known(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(value) - set(DEFAULT_TARGETS))
        if unknown:
            raise ValueError(f"no KPI target named {unknown}; known: {sorted(DEFAULT_TARGETS)}")
        return value


class QueueTargetsIn(_TargetsIn):
    """A queue's targets."""

    sl_threshold_s: float = Field(default=20.0, gt=0, le=3600, description="T of the service level")
    short_abandon_s: float = Field(default=20.0, ge=0, le=600, description="abandons this fast are not counted")
    patience_s: float | None = Field(default=None, gt=0, le=86400, description="callers' mean patience")


class QueueTargetsOut(QueueTargetsIn):
    queue_id: str


class TeamTargetsIn(_TargetsIn):
    """A team's targets: no short-abandon threshold or patience (those are the callers', so a queue's)."""

    sl_threshold_s: float | None = Field(default=None, gt=0, le=3600,
                                         description="T for the calls the team answers (none: each call's queue's)")


class TeamTargetsOut(TeamTargetsIn):
    team_id: str


def _targets_routes(api: APIRouter, auth: TokenAuth, kind: Literal["queue", "team"],
                    store: SettingsStore[Any], settings_type: type[QueueSettings | TeamSettings],
                    body_model: type[_TargetsIn], out_model: type[BaseModel]) -> None:
    """PUT /{kind}s/{id}/targets, GET /{kind}s/targets and GET /{kind}s/{id}/targets over one settings table:
    the queue and team routes are the same but for the model. The route functions' annotations are evaluated
    here, so FastAPI sees the kind's own body model and path parameter name."""
    id_field = f"{kind}_id"
    scope_path = Path(alias=id_field, min_length=1, max_length=200)

    def out(settings: QueueSettings | TeamSettings) -> BaseModel:
        return out_model.model_validate(asdict(settings))

    @api.put(f"/{kind}s/{{{id_field}}}/targets", response_model=out_model, name=f"put_{kind}_targets")
    async def put_targets(
        principal: Annotated[Principal, Depends(auth.require(*TARGET_WRITERS))],
        scope_id: Annotated[str, scope_path],
        body: Annotated[body_model, Body()],  # type: ignore[valid-type]
    ) -> BaseModel:
        """Write the targets (a new version replaces the previous one); the KPI queries, dashboards and the
        planner read them."""
        settings = settings_type(scope_id, **cast(_TargetsIn, body).model_dump())
        await asyncio.to_thread(store.put, settings)
        return out(settings)

    @api.get(f"/{kind}s/targets", response_model=list[out_model], name=f"list_{kind}_targets")  # type: ignore[valid-type]
    async def list_targets(
        principal: Annotated[Principal, Depends(auth.require(*READERS, *TARGET_WRITERS))],
    ) -> list[BaseModel]:
        return [out(s) for s in await asyncio.to_thread(store.all)]

    @api.get(f"/{kind}s/{{{id_field}}}/targets", response_model=out_model, name=f"get_{kind}_targets")
    async def get_targets(
        principal: Annotated[Principal, Depends(auth.require(*READERS, *TARGET_WRITERS))],
        scope_id: Annotated[str, scope_path],
    ) -> BaseModel:
        found = await asyncio.to_thread(store.all, scope_id)
        if not found:
            raise HTTPException(404, f"{kind} {scope_id!r} has no targets (the defaults apply)")
        return out(found[0])


def create_app(settings: KpiSettings, client: Client, broadcaster: Broadcaster,
               readiness: dict[str, ReadinessCheck] | None = None) -> FastAPI:
    auth = TokenAuth(settings.tokens())
    app = FastAPI(title="Callstream KPI API", version="1",
                  description="Contact-center KPIs (kpis.md) by queue, agent, team and center; real-time figures.")
    install_error_handlers(app)
    app.include_router(ops_router(readiness))
    api = APIRouter(prefix="/v1")
    known_kpis = sorted([*KPIS, *VARIANTS])
    queue_settings, team_settings = QueueSettingsStore(client), TeamSettingsStore(client)
    stores: dict[str, SettingsStore[Any]] = {"queue": queue_settings, "team": team_settings}

    def default_book() -> TargetBook:
        """The handbook's targets with the configured default SL goal (as the stream's alerts use them)."""
        return QueueTargets(QueueSettings("", settings.default_sl_threshold_s, settings.default_sl_goal_pct)).book()

    @api.get("/kpis")
    async def kpis(
        principal: Annotated[Principal, Depends(auth.require(*READERS))],
        start: Annotated[datetime, Query(alias="from", description="ISO 8601 with offset; naive = UTC")],
        end: Annotated[datetime | None, Query(alias="to")] = None,
        scope: Literal["center", "queue", "agent", "team"] = "center",
        scope_id: Annotated[str, Query(alias="id", max_length=200)] = "",
        grain: Literal["30m", "hour", "day", "week", "month"] = "30m",
        kpi: Annotated[list[str] | None, Query(description="only these KPIs (default all)")] = None,
        sl_threshold_s: Annotated[float | None, Query(gt=0, le=3600)] = None,
        variants: bool = False,
    ) -> dict[str, Any]:
        begin = _aware(start, "from")
        finish = _aware(end, "to") if end else min(begin + timedelta(days=1), LATEST)
        if finish <= begin:
            raise HTTPException(422, "'to' must be after 'from'")
        if finish - begin > GRAIN_LIMIT[grain]:
            raise HTTPException(422, f"a {grain} report covers at most {GRAIN_LIMIT[grain].days} days")
        if scope != "center" and not scope_id:
            raise HTTPException(422, f"scope {scope!r} needs an 'id'")
        unknown = sorted(set(kpi or []) - set(known_kpis))
        if unknown:
            raise HTTPException(422, f"unknown KPI {unknown}; known: {known_kpis}")
        # A queue's or team's stored targets judge its figures; a team's T (when set) measures its calls.
        store = stores.get(scope)
        stored = (await asyncio.to_thread(store.all, scope_id) or [None])[0] if store else None
        if isinstance(stored, TeamSettings) and sl_threshold_s is None:
            sl_threshold_s = stored.sl_threshold_s
        query = KpiQuery(scope, scope_id, grain, begin, finish, sl_threshold_s=sl_threshold_s,
                         ring_cycle_s=settings.ring_cycle_s, fcr_window_s=settings.fcr_window_s,
                         default_sl_threshold_s=settings.default_sl_threshold_s)
        report = await asyncio.to_thread(kpi_report, client, query, variants=variants)
        if store is None:
            return report.as_dict(kpi)
        return with_targets(report.as_dict(kpi), default_book(), ScopeRef(scope, scope_id), stored)

    @api.get("/agents/{agent_id}/scorecard")
    async def scorecard(
        agent_id: str,
        principal: Annotated[Principal, Depends(auth.require(*READERS))],
        start: Annotated[datetime, Query(alias="from")],
        end: Annotated[datetime, Query(alias="to")],
    ) -> dict[str, Any]:
        query = KpiQuery("agent", agent_id, "day", _aware(start, "from"), _aware(end, "to"),
                         ring_cycle_s=settings.ring_cycle_s, fcr_window_s=settings.fcr_window_s,
                         default_sl_threshold_s=settings.default_sl_threshold_s)
        if query.end <= query.start:
            raise HTTPException(422, "'to' must be after 'from'")
        if query.end - query.start > SCORECARD_LIMIT:
            raise HTTPException(422, f"a scorecard covers at most {SCORECARD_LIMIT.days} days")
        report = await asyncio.to_thread(kpi_report, client, query)
        names = ["average_handle_time", "average_talk_time", "average_hold_time", "average_acw", "calls_per_hour",
                 "occupancy", "adherence", "first_call_resolution", "transfer_rate", "monitoring_score",
                 "attendance_rate"]
        return {"agent_id": agent_id, **report.as_dict(names)}

    _targets_routes(api, auth, "queue", queue_settings, QueueSettings, QueueTargetsIn, QueueTargetsOut)
    _targets_routes(api, auth, "team", team_settings, TeamSettings, TeamTargetsIn, TeamTargetsOut)

    @api.get("/realtime")
    async def realtime(principal: Annotated[Principal, Depends(auth.require(*READERS, "agent"))]) -> dict[str, Any]:
        latest = broadcaster.latest()
        return {
            "snapshots": [json.loads(v) for (event, _), v in latest.items() if event == "snapshot"],
            "alerts": [json.loads(v) for (event, _), v in latest.items() if event == "alert"],
        }

    # The stream checks its token itself (header or `?access_token=`): its OpenAPI says which roles, as the
    # routes guarded by `auth.require` do.
    stream_roles = sorted({*READERS, "agent", "admin"})

    @api.get("/realtime/stream", openapi_extra={"security": [{"HTTPBearer": stream_roles}]})
    async def realtime_stream(request: Request, access_token: str = "") -> StreamingResponse:
        """Server-sent events `snapshot` and `alert`. EventSource cannot send headers: the token may come as
        `?access_token=`."""
        header = request.headers.get("authorization", "")
        principal = auth.from_header(header) if header else auth.authenticate(access_token) if access_token else None
        if principal is None:
            raise HTTPException(401, "a bearer token is required (header or ?access_token=)")
        if principal.role not in stream_roles:
            raise HTTPException(403, f"role {principal.role!r} may not read real-time figures")

        async def events() -> AsyncIterator[bytes]:
            # Starlette cancels this generator when the client goes away.
            yield b": connected\n\n"
            async for event, data in broadcaster.listen():
                yield f"event: {event}\ndata: {data}\n\n".encode()

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    app.include_router(api)
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")

    @app.get("/wallboard", include_in_schema=False)
    async def wallboard() -> FileResponse:
        return FileResponse(str(STATIC / "wallboard.html"))

    return app
