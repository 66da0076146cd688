"""The FastAPI app: inbox, health, readiness, metrics and the operator console (``/admin``)."""

from __future__ import annotations

from collections.abc import Iterable

from fastapi import APIRouter, FastAPI, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from .. import __version__
from ..alerts import monitoring
from ..logging import get_logger
from ..runtime.metrics import REGISTRY, clear_gauges, set_gauges
from ..settings import Settings
from ..store import Store
from . import console, webhook
from .errors import documented
from .inbox import build_router

log = get_logger(__name__)


def create_app(
    settings: Settings, store: Store, *, extra_routers: Iterable[APIRouter] = ()
) -> FastAPI:
    app = FastAPI(title="primero-progres", version=__version__)
    app.state.settings = settings
    app.state.store = store
    if settings.unhcr_gateway == "dtp":
        # over PING nothing calls the bridge: no inbox, so a stray DTP call gets a 404
        app.include_router(build_router(settings, store))
    # Primero's webhooks drive flows 2 and 3 whichever gateway reaches proGres
    app.include_router(webhook.build_router(settings, store))

    @app.get("/healthz", responses={200: {"description": "The process is up."}})
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/readyz",
        responses={
            200: {"description": "The database is reachable."},
            503: documented(503, "The database is not reachable."),
        },
    )
    async def readyz() -> JSONResponse:
        if await store.ping():
            return JSONResponse({"status": "ready"})
        return JSONResponse(
            {"error": {"code": "database_unreachable", "message": "the database is not reachable"}},
            status_code=503,
        )

    @app.get(
        "/metrics",
        response_class=Response,
        responses={200: {"description": "Prometheus text format.", "content": {"text/plain": {}}}},
    )
    async def metrics() -> Response:
        try:
            counts = await store.jobs.counts()
            set_gauges(await monitoring.read(store, settings), counts)
        except Exception as exc:
            # the process's own counters are still true; nothing read from the database is
            log.warning("metrics.refresh_failed", error=type(exc).__name__)
            clear_gauges()
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    console.install(app, settings, store)
    for router in extra_routers:
        app.include_router(router)
    return app
