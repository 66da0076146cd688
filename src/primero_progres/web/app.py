"""The FastAPI app: inbox, health, readiness, metrics and the operator console (``/admin``)."""

from __future__ import annotations

from collections.abc import Iterable

from fastapi import APIRouter, FastAPI, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from .. import __version__
from ..runtime.metrics import QUEUE_DEPTH, REGISTRY
from ..settings import Settings
from ..store import Store
from . import console
from .errors import documented
from .inbox import build_router


def create_app(
    settings: Settings, store: Store, *, extra_routers: Iterable[APIRouter] = ()
) -> FastAPI:
    app = FastAPI(title="primero-progres", version=__version__)
    app.state.settings = settings
    app.state.store = store
    if settings.unhcr_gateway == "dtp":
        # over PING nothing calls the bridge: no inbox, so a stray DTP call gets a 404
        app.include_router(build_router(settings, store))

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
        except Exception:
            counts = {}
        QUEUE_DEPTH.clear()
        for (kind, state), count in counts.items():
            if state in ("pending", "running", "dead"):
                QUEUE_DEPTH.labels(kind, state).set(count)
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    console.install(app, settings, store)
    for router in extra_routers:
        app.include_router(router)
    return app
