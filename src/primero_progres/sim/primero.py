"""A faithful Primero v2 simulator for the calls the bridge makes (PRIMERO-API.md).

``create_app()`` returns a FastAPI app serving ``/api/v2/...`` the way Primero
does, awkward parts included (silently dropped filters and fields, the role's
scope, 200 no-op referral transitions, PATCH merge rules), plus test-only
endpoints under ``/_sim/``. What the instance and its API role are is a
``PrimeroSimConfig`` (``sim/primero_config.py``).
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal

import uvicorn
from fastapi import APIRouter, FastAPI, Request
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, ConfigDict, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..profiles import load_profile
from .common import FaultInjector, SimulatorConfigError, foreground_logging, install_faults
from .primero_auth import WWW_AUTHENTICATE, Authenticator, AuthFailure, Throttled
from .primero_config import PrimeroSimConfig, load_config, profile_users
from .primero_forms import modules
from .primero_records import parse_index_query
from .primero_state import PrimeroState, SimError
from .primero_webhooks import (
    WebhookDispatcher,
    create_webhook,
    delete_webhook,
    get_webhook,
    list_webhooks,
)

__all__ = ["PrimeroSimConfig", "PrimeroState", "create_app", "serve"]

API = "/api/v2"


class DecideService(BaseModel):
    model_config = ConfigDict(extra="forbid")
    case_record_id: str
    service_unique_id: str
    status: Literal["accepted", "rejected"]
    rejection_reason: str | None = None


class ReferToUnhcr(BaseModel):
    model_config = ConfigDict(extra="forbid")
    case_record_id: str
    transitioned_to: str
    service: dict[str, Any] = {}
    transitioned_by: str | None = None


class FieldSet(BaseModel):
    fields: list[str]


def _unauthorized(message: str) -> JSONResponse:
    return JSONResponse(
        {"error": message}, status_code=401, headers={"WWW-Authenticate": WWW_AUTHENTICATE}
    )


def _envelope(error: SimError, resource: str) -> JSONResponse:
    items = []
    for message, detail in [(error.message, error.detail), *error.more]:
        item: dict[str, Any] = {"status": error.status, "resource": resource}
        if detail not in (None, "", []):
            item["detail"] = detail
        item["message"] = message
        items.append(item)
    return JSONResponse({"errors": items}, status_code=error.status)


async def _data(request: Request) -> Any:
    """The ``data`` member of a JSON body; missing or unparsable is ParameterMissing (422)."""
    try:
        body = await request.json()
    except ValueError as exc:
        raise SimError(422, "param is missing or the value is empty: data") from exc
    if not isinstance(body, dict) or not isinstance(body.get("data"), dict):
        raise SimError(422, "param is missing or the value is empty: data")
    return body["data"]


def register_passwords(auth: Authenticator, payload: Mapping[str, Any]) -> None:
    """Seeded users that carry a ``password`` can log in (it is never rendered back)."""
    for user in payload.get("users", []):
        if isinstance(user, dict) and user.get("password") and user.get("user_name"):
            auth.add_user(str(user["user_name"]), str(user["password"]))


def create_app(
    *,
    users: Mapping[str, str] | None = None,
    token_login: bool = True,
    seed: dict[str, Any] | None = None,
    fault_seed: int | None = None,
    config: PrimeroSimConfig | None = None,
    max_per: int | None = 1000,
) -> FastAPI:
    """The simulator app; ``users`` maps API user names to passwords (default primero/primero).

    ``token_login=True`` answers ``POST /api/v2/tokens`` as v2.0-v2.10 did (a JWT);
    ``False`` as v2.11+ does (no token: Basic auth is then the only way in).
    ``config``: the instance (default ``PrimeroSimConfig()``: everything permitted, nothing
    validated; ``PrimeroSimConfig.for_profile(profile)`` for a realistic one).
    """
    api_users = dict(users) if users is not None else {"primero": "primero"}
    state = PrimeroState(config=config, max_per=max_per)
    auth = Authenticator(api_users, token_login=token_login)
    faults = FaultInjector(seed=fault_seed)
    webhooks = WebhookDispatcher(state, faults)
    state.on_case_saved = webhooks.notify

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        webhooks.close()

    app = FastAPI(
        title="Primero v2 simulator",
        docs_url="/_sim/docs",
        openapi_url="/_sim/openapi.json",
        lifespan=lifespan,
    )
    app.state.primero = state
    app.state.auth = auth
    app.state.faults = faults
    app.state.webhooks = webhooks

    def load_api_users() -> None:
        for user_name in api_users:
            state.add_api_user(user_name)

    load_api_users()
    if seed:
        register_passwords(auth, seed)
        state.seed(seed)

    install_faults(app, faults)

    @app.middleware("http")
    async def journal(request: Request, call_next: Any) -> Response:
        """Outermost: records every API request received, faults included (never bodies)."""
        if request.url.path.startswith("/_sim/"):
            return await call_next(request)
        entry: dict[str, Any] = {
            "method": request.method,
            "path": request.url.path,
            "query": request.url.query,
            "status": None,
        }
        with state.lock:
            state.journal.append(entry)
        response = await call_next(request)
        entry["status"] = response.status_code
        return response

    @app.exception_handler(SimError)
    async def sim_error(request: Request, exc: SimError) -> JSONResponse:
        return _envelope(exc, request.url.path)

    @app.exception_handler(AuthFailure)
    async def auth_failure(_request: Request, exc: AuthFailure) -> JSONResponse:
        return _unauthorized(exc.message)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if request.url.path.startswith("/_sim/"):
            return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)
        status = 404 if exc.status_code in (404, 405) else exc.status_code
        return _envelope(
            SimError(status, "Not Found" if status == 404 else str(exc.detail)), request.url.path
        )

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        if request.url.path.startswith("/_sim/"):
            return await request_validation_exception_handler(request, exc)
        pointers = ["/" + "/".join(str(p) for p in err.get("loc", ())[1:]) for err in exc.errors()]
        return _envelope(SimError(422, "Invalid Record JSON", detail=pointers), request.url.path)

    def current_user(request: Request) -> str:
        return auth.authenticate(request.headers.get("authorization"))

    api = APIRouter(prefix=API)

    @api.post("/tokens")
    async def login(request: Request) -> Response:
        authorization = request.headers.get("authorization")
        try:
            body = await request.json()
        except ValueError:
            body = None
        user = body.get("user") if isinstance(body, dict) else None
        if isinstance(user, dict) and isinstance(user.get("user_name"), str):
            user_name = user["user_name"]
            try:
                auth.throttle_login(user_name)
            except Throttled:
                return PlainTextResponse("Retry later\n", status_code=429)
            auth.check_password(user_name, str(user.get("password", "")))
        elif authorization:
            user_name = auth.authenticate(authorization)
        else:
            raise AuthFailure("Invalid User name or password.")
        record = state.users.get(user_name, {"id": 0})
        answer: dict[str, Any] = {"id": record["id"], "user_name": user_name}
        if not auth.token_login:
            return JSONResponse(answer)
        token = auth.issue_token(user_name)
        answer["token"] = token
        return JSONResponse(answer, headers={"Authorization": f"Bearer {token}"})

    @api.delete("/tokens")
    async def logout(request: Request) -> dict[str, Any]:
        current_user(request)
        _scheme, _, token = (request.headers.get("authorization") or "").partition(" ")
        auth.revoke(token.strip())
        return {}

    def query(request: Request) -> dict[str, str | list[str]]:
        return parse_index_query(request.query_params.multi_items())

    @api.get("/cases")
    async def list_cases(request: Request) -> dict[str, Any]:
        return state.list_cases(query(request), current_user(request))

    @api.post("/cases")
    async def create_case(request: Request) -> Response:
        user_name = current_user(request)
        answer = state.create_case(await _data(request), user_name)
        return Response(status_code=204) if answer is None else JSONResponse(answer)

    @api.get("/cases/{record_id}")
    async def get_case(record_id: str, request: Request) -> dict[str, Any]:
        return state.get_case(record_id, current_user(request))

    @api.patch("/cases/{record_id}")
    async def patch_case(record_id: str, request: Request) -> dict[str, Any]:
        user_name = current_user(request)
        return state.patch_case(record_id, await _data(request), user_name)

    @api.get("/cases/{record_id}/referrals")
    async def list_referrals(record_id: str, request: Request) -> dict[str, Any]:
        return state.list_referrals(record_id, current_user(request))

    @api.post("/cases/{record_id}/referrals")
    async def create_referral(record_id: str, request: Request) -> dict[str, Any]:
        user_name = current_user(request)
        return state.create_referral(record_id, await _data(request), user_name)

    @api.patch("/cases/{record_id}/referrals/{referral_id}")
    async def update_referral(record_id: str, referral_id: str, request: Request) -> dict[str, Any]:
        user_name = current_user(request)
        return state.update_referral(record_id, referral_id, await _data(request), user_name)

    @api.delete("/cases/{record_id}/referrals/{referral_id}")
    async def revoke_referral(record_id: str, referral_id: str, request: Request) -> dict[str, Any]:
        return state.revoke_referral(record_id, referral_id, current_user(request))

    @api.get("/users")
    async def list_users(request: Request) -> dict[str, Any]:
        return state.list_users(query(request), current_user(request))

    @api.get("/users/{user_id}")
    async def get_user(user_id: str, request: Request) -> dict[str, Any]:
        extended = request.query_params.get("extended") == "true"
        return state.get_user(user_id, current_user(request), extended=extended)

    @api.get("/lookups")
    async def list_lookups(request: Request) -> dict[str, Any]:
        current_user(request)
        return state.list_lookups(query(request))

    @api.get("/forms")
    async def list_forms(request: Request) -> dict[str, Any]:
        current_user(request)
        return state.list_forms(query(request))

    @api.get("/primero_modules")
    async def list_modules(request: Request) -> dict[str, Any]:
        """``PrimeroModulesController#index`` (``authorize! :index, PrimeroModule``)."""
        current_user(request)
        if not state.config.modules_permission:
            raise SimError(403, "Forbidden")
        return {"data": modules(state.config)}

    @api.get("/webhooks")
    async def index_webhooks(request: Request) -> dict[str, Any]:
        return list_webhooks(state, current_user(request))

    @api.post("/webhooks")
    async def post_webhook(request: Request) -> Response:
        user_name = current_user(request)
        try:
            data = await _data(request)
        except SimError:
            data = None  # refused after the permission check, as Primero does
        answer = create_webhook(state, data, user_name)
        return Response(status_code=204) if answer is None else JSONResponse(answer)

    @api.get("/webhooks/{webhook_id}")
    async def show_webhook(webhook_id: str, request: Request) -> dict[str, Any]:
        return get_webhook(state, webhook_id, current_user(request))

    @api.delete("/webhooks/{webhook_id}")
    async def destroy_webhook(webhook_id: str, request: Request) -> dict[str, Any]:
        return delete_webhook(state, webhook_id, current_user(request))

    app.include_router(api)

    sim = APIRouter(prefix="/_sim", tags=["simulator"])

    @sim.post("/reset")
    async def reset() -> dict[str, str]:
        state.reset()
        auth.reset()
        faults.clear()
        load_api_users()
        return {"status": "reset"}

    @sim.post("/seed")
    async def seed_state(payload: dict[str, Any]) -> dict[str, int]:
        register_passwords(auth, payload)
        return state.seed(payload)

    @sim.get("/journal")
    async def get_journal() -> list[dict[str, Any]]:
        with state.lock:
            return [dict(entry) for entry in state.journal]

    @sim.delete("/journal")
    async def clear_journal() -> dict[str, str]:
        with state.lock:
            state.journal.clear()
        return {"status": "cleared"}

    @sim.get("/cases")
    async def all_cases() -> list[dict[str, Any]]:
        return state.all_cases()

    @sim.get("/cases/{record_id}/audit")
    async def case_audit(record_id: str) -> list[dict[str, Any]]:
        """The case's webhook audit log: mark_synced PATCHes and webhook sends, oldest first."""
        return state.audit_of(record_id)

    @sim.get("/webhooks/deliveries")
    async def webhook_deliveries() -> list[dict[str, Any]]:
        """Every webhook POST attempted, oldest first (never its body)."""
        with state.lock:
            return [dict(delivery) for delivery in state.deliveries]

    @sim.delete("/webhooks/deliveries")
    async def clear_webhook_deliveries() -> dict[str, str]:
        with state.lock:
            state.deliveries.clear()
        return {"status": "cleared"}

    @sim.post("/webhooks/wait")
    async def wait_for_webhooks(timeout: float = 10.0) -> dict[str, bool]:
        """Wait until every queued webhook job has run (or ``timeout`` seconds)."""
        idle = await asyncio.to_thread(webhooks.wait_idle, min(max(timeout, 0.0), 120.0))
        return {"idle": idle}

    @sim.get("/referrals")
    async def all_referrals() -> list[dict[str, Any]]:
        with state.lock:
            return [state.render_referral(r, None) for r in state.referrals.values()]

    @sim.put("/readable-fields")
    async def set_readable_fields(body: FieldSet) -> dict[str, list[str]]:
        """Shorthand for the ``readable_fields`` of the configuration."""
        with state.lock:
            state.configure(state.config.merged({"readable_fields": body.fields}))
            return {"fields": sorted(body.fields)}

    @sim.get("/config")
    async def get_config() -> PrimeroSimConfig:
        return state.config

    @sim.put("/config")
    async def put_config(body: PrimeroSimConfig) -> PrimeroSimConfig:
        """The whole configuration (keys left out take their permissive defaults)."""
        return state.configure(body)

    @sim.patch("/config")
    async def patch_config(body: dict[str, Any]) -> Any:
        """Some top-level keys of the configuration, the others kept (e.g. only the scope)."""
        with state.lock:
            try:
                changed = state.config.merged(body)
            except ValidationError as exc:
                errors = exc.errors(include_url=False, include_context=False, include_input=False)
                return JSONResponse({"detail": errors}, status_code=422)
            return state.configure(changed)

    @sim.post("/expire-tokens")
    async def expire_tokens() -> dict[str, str]:
        auth.expire_tokens()
        return {"status": "expired"}

    @sim.post("/actions/decide-service")
    async def decide_service(body: DecideService) -> dict[str, Any]:
        return state.decide_service(
            body.case_record_id, body.service_unique_id, body.status, body.rejection_reason
        )

    @sim.post("/actions/refer-to-unhcr")
    async def refer_to_unhcr(body: ReferToUnhcr) -> dict[str, Any]:
        return state.refer_to_unhcr(
            body.case_record_id, body.transitioned_to, body.service, body.transitioned_by
        )

    app.include_router(sim)
    return app


def basic_header(user_name: str, password: str) -> str:
    """``Authorization`` value for Basic auth (handy in tests and curl-less scripts)."""
    return "Basic " + base64.b64encode(f"{user_name}:{password}".encode()).decode()


def load_seed(path: Path) -> dict[str, Any]:
    """A seed file: ``{"cases": [...], "users": [...], "referrals": [...]}`` as JSON."""
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SimulatorConfigError(
            f"cannot read seed file {path.name}", reason="bad_seed"
        ) from exc
    if not isinstance(payload, dict):
        raise SimulatorConfigError("seed file must hold a JSON object", reason="bad_seed")
    return payload


def serve(
    *,
    port: int,
    users: Mapping[str, str],
    host: str = "127.0.0.1",
    seed_file: Path | None = None,
    token_login: bool = True,
    log_level: str = "info",
    config_file: Path | None = None,
    profile: str = "gambella",
) -> None:
    """Run the simulator in the foreground (the ``simulate primero`` command).

    Without ``config_file`` the instance is the profile's (``PrimeroSimConfig.for_profile``);
    its focal points and UNHCR caseworkers are seeded as Primero users either way.
    """
    mapping_profile = load_profile(profile)
    if config_file is not None:
        config = load_config(config_file)
    else:
        config = PrimeroSimConfig.for_profile(mapping_profile)
    seed = load_seed(seed_file) if seed_file is not None else {}
    seed = {**seed, "users": [*profile_users(mapping_profile), *seed.get("users", [])]}
    app = create_app(users=users, token_login=token_login, seed=seed, config=config)
    uvicorn.run(app, host=host, port=port, **foreground_logging(log_level))
