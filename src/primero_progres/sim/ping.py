"""A simulator of UNHCR's PING middleware, with its Azure AD B2C token endpoint and APIM in front.

It plays, on one port:

* B2C: ``POST <token path>``, the password grant (client id, user, password,
  scope), opaque tokens with a configurable ``expires_in``;
* APIM: 401 for a missing or wrong ``Ocp-Apim-Subscription-Key`` and for a
  missing, unknown, revoked or expired bearer token (APIM's JSON shape), an
  optional rate limit answering 429 with ``Retry-After``;
* PING: the retrieve query, synchronous and asynchronous ingestion and the
  check-status query, over proGres tables held in ``sim/ping_state.py``;
* proGres users, under ``/_sim/``: flag an intervention for Primero, accept or
  reject an interoperability referral; plus seeding, inspection, run-time
  modes (page size, empty answers, malformed check status, async delay, chaos)
  and the fault rules of ``sim/common.py``.
"""

from __future__ import annotations

import hmac
import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import structlog
import uvicorn
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, Response

from .common import FaultInjector, SimulatorConfigError, foreground_logging, install_faults
from .ping_state import (
    DEFAULT_SHIPPING_PROCESSES,
    Clock,
    Decide,
    Modes,
    PingProblem,
    PingState,
    Seed,
    new_guid,
)

__all__ = ["DEFAULT_SCOPE", "DEFAULT_TOKEN_PATH", "PingState", "create_app", "serve"]

log = structlog.get_logger(__name__)

SUBSCRIPTION_HEADER = "Ocp-Apim-Subscription-Key"
RETRIEVE_PATH = "/primes/fetch/paging/v3/retrievedatawithpaging"
CHECK_STATUS_PATH = "/primes/ingestion/checkstatus/v1/pingdata"
DEFAULT_TOKEN_PATH = "/sim-tenant.onmicrosoft.com/B2C_1_ROPC_sim/oauth2/v2.0/token"
DEFAULT_SCOPE = "https://sim-tenant.onmicrosoft.com/apimurls/API.Read"
RECORD_IDS = "{record_ids}"

# API Management's own texts.
_MISSING_KEY = (
    "Access denied due to missing subscription key. "
    "Make sure to include subscription key when making requests to an API."
)
_INVALID_KEY = (
    "Access denied due to invalid subscription key. "
    "Make sure to provide a valid key for an active subscription."
)
_BAD_TOKEN = "Unauthorized. Access token is missing or invalid."


def _member(body: Mapping[str, Any], name: str) -> Any:
    """PING reads its envelope members whatever their letter case (``InteropId``/``InteropID``)."""
    folded = name.casefold()
    for key, value in body.items():
        if isinstance(key, str) and key.casefold() == folded:
            return value
    return None


def _record_ids(parameters: Any) -> list[str] | None:
    """``{record_ids}``: one GUID, or a bracketed list ``[g1,g2]`` [C]; other parameters ignored."""
    if not isinstance(parameters, list):
        return None
    for parameter in parameters:
        if not isinstance(parameter, Mapping) or parameter.get("ParameterName") != RECORD_IDS:
            continue
        value = parameter.get("Value")
        if not isinstance(value, str):
            return []
        value = value.strip()
        if value.startswith("[") and value.endswith("]"):
            return [v.strip().strip('"') for v in value[1:-1].split(",") if v.strip()]
        return [value]
    return None


def _error_answer(message: str, status_code: int = 200) -> JSONResponse:
    return JSONResponse(
        {"Data": None, "ErrorMessage": message, "RecordCount": 0,
         "SPHTransactionId": new_guid(), "PagingSummary": None},
        status_code=status_code,
    )


def _b2c_error(error: str, description: str) -> JSONResponse:
    return JSONResponse({"error": error, "error_description": description}, status_code=400)


def _same(presented: str | None, expected: str) -> bool:
    return presented is not None and hmac.compare_digest(presented.encode(), expected.encode())


def create_app(
    *,
    subscription_key: str,
    client_id: str,
    username: str,
    password: str,
    scope: str = DEFAULT_SCOPE,
    token_path: str = DEFAULT_TOKEN_PATH,
    partner_id: str = "PNR-1363",
    interop_id: str = "INT-1436",
    shipping_processes: Mapping[str, str] | None = None,
    seed: Seed | None = None,
    modes: Modes | None = None,
    fault_seed: int | None = None,
    clock: Clock = time.monotonic,
) -> FastAPI:
    """The simulator as an ASGI app; its state is ``app.state.ping`` (``PingState``)."""
    if not subscription_key or not client_id or not username or not password:
        raise SimulatorConfigError(
            "the PING simulator needs a subscription key, client id, user and password",
            reason="missing_credentials",
        )
    if not token_path.startswith("/"):
        raise SimulatorConfigError("--token-path must start with /", reason="bad_token_path")
    state = PingState(
        partner_id=partner_id,
        interop_id=interop_id,
        shipping_processes=shipping_processes or DEFAULT_SHIPPING_PROCESSES,
        clock=clock,
    )
    if modes is not None:
        state.modes = modes.model_copy()
    if seed is not None:
        state.seed(seed)
    faults = FaultInjector(fault_seed)
    app = FastAPI(
        title="PING simulator",
        version="1",
        docs_url="/_sim/docs",
        redoc_url=None,
        openapi_url="/_sim/openapi.json",
    )
    app.state.ping = state
    app.state.faults = faults
    install_faults(app, faults)

    @app.middleware("http")
    async def journal(request: Request, call_next: Any) -> Response:
        """Outermost: every request received, faults included (never bodies)."""
        if request.url.path.startswith("/_sim/"):
            passed: Response = await call_next(request)
            return passed
        entry: dict[str, Any] = {
            "method": request.method,
            "path": request.url.path,
            "status": None,
        }
        with state.lock:
            state.journal.append(entry)
        response: Response = await call_next(request)
        entry["status"] = response.status_code
        return response

    def apim_refusal(request: Request) -> JSONResponse | None:
        """APIM: the subscription key first, then the rate limit, then the bearer token."""
        key = request.headers.get(SUBSCRIPTION_HEADER)
        if not key:
            return JSONResponse({"statusCode": 401, "message": _MISSING_KEY}, status_code=401)
        if not _same(key, subscription_key):
            return JSONResponse({"statusCode": 401, "message": _INVALID_KEY}, status_code=401)
        wait = state.throttled()
        if wait is not None:
            seconds = int(wait + 0.999)
            return JSONResponse(
                {"statusCode": 429,
                 "message": f"Rate limit is exceeded. Try again in {seconds} seconds."},
                status_code=429,
                headers={"Retry-After": str(seconds)},
            )
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.casefold() != "bearer" or not state.token_valid(token.strip()):
            return JSONResponse({"statusCode": 401, "message": _BAD_TOKEN}, status_code=401)
        return None

    async def json_body(request: Request) -> Any:
        try:
            return json.loads(await request.body())
        except (UnicodeDecodeError, json.JSONDecodeError):
            return None

    def envelope_problem(body: Any, *, partner_in_body: bool) -> str | None:
        if not isinstance(body, Mapping) or not isinstance(body.get("ShippingProcessId"), str):
            return "Invalid request: ShippingProcessId is required"
        if partner_in_body and _member(body, "PartnerId") != state.partner_id:
            return "Partner not found"
        if _member(body, "InteropId") != state.interop_id:
            return "Interoperability not found for this partner"
        return None

    # ---------------------------------------------------------------- B2C

    @app.post(token_path, tags=["b2c"])
    async def token(request: Request) -> Response:
        """ROPC grant (PING.md §3): form-encoded, answers a bearer token or a B2C error."""
        form = await request.form()
        values = {k: v for k, v in form.items() if isinstance(v, str)}
        if values.get("grant_type") != "password":
            return _b2c_error("unsupported_grant_type", "AADB2C90086: The supplied grant_type "
                              "is not supported.")
        if not _same(values.get("client_id"), client_id):
            return _b2c_error("invalid_client", "AADB2C90081: The specified client_id is not "
                              "found.")
        if values.get("scope") != scope:
            return _b2c_error("invalid_scope", "AADB2C90055: The scope provided in the request "
                              "must specify a resource.")
        if not (_same(values.get("username"), username) and _same(values.get("password"),
                                                                     password)):
            return _b2c_error("invalid_grant", "AADB2C90225: The username or password provided "
                              "in the request are invalid.")
        issued, lifetime = state.issue_token(request.cookies.get("x-ms-cpim-geo"))
        return JSONResponse(
            {"access_token": issued, "token_type": "Bearer", "expires_in": lifetime,
             "resource": client_id}
        )

    # ---------------------------------------------------------------- PING

    @app.post(RETRIEVE_PATH, tags=["ping"])
    async def retrieve(request: Request) -> Response:
        refused = apim_refusal(request)
        if refused is not None:
            return refused
        body = await json_body(request)
        problem = envelope_problem(body, partner_in_body=True)
        if problem is not None:
            return _error_answer(problem)
        page = _member(body, "PageNumber")
        try:
            answer = state.retrieve(
                body["ShippingProcessId"],
                _record_ids(body.get("QueryParameters")),
                page if isinstance(page, int) and not isinstance(page, bool) else None,
                _member(body, "PagingCookie"),
            )
        except PingProblem as exc:
            return _error_answer(str(exc))
        return JSONResponse(answer)

    async def ingestion(request: Request, partner: str, endpoint: str) -> Response:
        refused = apim_refusal(request)
        if refused is not None:
            return refused
        body = await json_body(request)
        problem = envelope_problem(body, partner_in_body=False)
        if problem is None and partner != state.partner_id:
            problem = "Partner not found"
        items = _member(body, "Data") if isinstance(body, Mapping) else None
        if problem is None and not isinstance(items, list):
            problem = "Invalid request: Data must be a list"
        answer: dict[str, Any]
        try:
            if problem is not None or not isinstance(items, list):
                raise PingProblem(problem or "Invalid request")
            shp = body["ShippingProcessId"]
            answer = (
                state.ingest(shp, items) if endpoint == "data" else state.ingest_async(shp, items)
            )
        except PingProblem as exc:
            answer = {"SPHTransactionId": None, "RecordCount": 0, "ErrorMessage": str(exc)}
        with state.lock:
            state.ingestions.append(
                {"endpoint": endpoint,
                 "shipping_process_id": body.get("ShippingProcessId")
                 if isinstance(body, Mapping) else None,
                 "body": body, "answer": answer}
            )
        if state.answer_lost(endpoint):
            return JSONResponse({"statusCode": 504, "message": "Gateway timeout"}, status_code=504)
        return JSONResponse(answer)

    @app.post("/api/ingestion/v2/{partner}/data", tags=["ping"])
    async def ingest(partner: str, request: Request) -> Response:
        """Synchronous ingestion: field updates on the rows the key fields name."""
        return await ingestion(request, partner, "data")

    @app.post("/api/ingestion/v2/{partner}/asyncdata", tags=["ping"])
    async def ingest_async(partner: str, request: Request) -> Response:
        """Asynchronous ingestion: queued, processed after the configured delay."""
        return await ingestion(request, partner, "asyncdata")

    @app.post(CHECK_STATUS_PATH, tags=["ping"])
    async def check_status(request: Request) -> Response:
        refused = apim_refusal(request)
        if refused is not None:
            return refused
        body = await json_body(request)
        problem = envelope_problem(body, partner_in_body=True)
        if problem is not None:
            return JSONResponse({"Data": None, "ErrorMessage": problem})
        transaction = _member(body, "SPHTransactionId")
        data = state.check_status(transaction) if isinstance(transaction, str) else None
        if data is None:
            return JSONResponse({"Data": None, "ErrorMessage": "Transaction not found"})
        return JSONResponse({"Data": data})

    # ---------------------------------------------------------------- /_sim/

    def found(kind: str, key: str) -> Any:
        with state.lock:
            table: Mapping[str, Any] = (
                state.interventions if kind == "intervention" else state.referrals
            )
            if key not in table:
                raise HTTPException(404, f"no such {kind}")
            return table[key]

    @app.post("/_sim/reset", tags=["simulator"])
    async def reset() -> dict[str, str]:
        """Empty tables, transactions, tokens, journals; modes and faults back to defaults."""
        state.reset()
        faults.clear()
        return {"status": "reset"}

    @app.post("/_sim/seed", tags=["simulator"])
    async def seed_tables(seed: Seed) -> dict[str, list[str]]:
        """Add LP interventions and interoperability referrals; answers their ids."""
        return state.seed(seed)

    @app.get("/_sim/modes", tags=["simulator"])
    async def get_modes() -> Modes:
        return state.modes

    @app.put("/_sim/modes", tags=["simulator"])
    async def set_modes(modes: Modes) -> Modes:
        with state.lock:
            state.modes = modes
        return state.modes

    @app.get("/_sim/interventions", tags=["simulator"])
    async def interventions() -> list[dict[str, Any]]:
        return state.snapshot("interventions")

    @app.get("/_sim/interventions/{lp_intervention_id}", tags=["simulator"])
    async def intervention(lp_intervention_id: str) -> dict[str, Any]:
        record = found("intervention", lp_intervention_id)
        with state.lock:
            return dict(record.as_json())

    @app.post("/_sim/interventions/{lp_intervention_id}/flag", tags=["simulator"])
    async def flag(lp_intervention_id: str) -> dict[str, Any]:
        """A proGres user queues the intervention for Primero (status ready, today's date)."""
        found("intervention", lp_intervention_id)
        return dict(state.flag(lp_intervention_id).as_json())

    @app.get("/_sim/referrals", tags=["simulator"])
    async def referrals() -> list[dict[str, Any]]:
        return state.snapshot("referrals")

    @app.get("/_sim/referrals/{referral_id}", tags=["simulator"])
    async def referral(referral_id: str) -> dict[str, Any]:
        record = found("referral", referral_id)
        with state.lock:
            return dict(record.as_json())

    @app.post("/_sim/referrals/{referral_id}/decide", tags=["simulator"])
    async def decide(referral_id: str, decision: Decide) -> dict[str, Any]:
        """A proGres user accepts or rejects the referral (status, review decision, reason)."""
        found("referral", referral_id)
        return dict(state.decide(referral_id, decision).as_json())

    @app.get("/_sim/transactions", tags=["simulator"])
    async def transactions() -> list[dict[str, Any]]:
        return state.snapshot("transactions")

    @app.post("/_sim/transactions/process", tags=["simulator"])
    async def process() -> dict[str, int]:
        """Finish every queued asynchronous transaction now."""
        return {"processed": state.process_all()}

    @app.post("/_sim/tokens/revoke", tags=["simulator"])
    async def revoke() -> dict[str, int]:
        """Invalidate every issued token: the next API call answers 401."""
        return {"revoked": state.revoke_tokens()}

    @app.get("/_sim/tokens", tags=["simulator"])
    async def tokens() -> dict[str, int]:
        with state.lock:
            return {"issued": state.token_requests, "valid": len(state.tokens)}

    @app.get("/_sim/journal", tags=["simulator"])
    async def get_journal() -> list[dict[str, Any]]:
        """Every request received (method, path, status), faulted ones included."""
        return state.snapshot("journal")

    @app.get("/_sim/queries", tags=["simulator"])
    async def queries() -> list[dict[str, Any]]:
        """Every retrieve call: shipping process, record ids, page number and cookie, rows."""
        return state.snapshot("queries")

    @app.get("/_sim/writes", tags=["simulator"])
    async def writes() -> list[dict[str, Any]]:
        """Every ingestion item applied to a row, in order: table (``intervention``,
        ``referral``, ``referral_created``), record id, the status it set (None: none)."""
        return state.snapshot("writes")

    @app.get("/_sim/ingestions", tags=["simulator"])
    async def ingestions() -> list[dict[str, Any]]:
        """Every ingestion call with its body and the answer given."""
        return state.snapshot("ingestions")

    return app


def read_seed(path: Path) -> Seed:
    """A seed file: ``{"interventions": [...], "referrals": [...]}`` (see ``ping_state.Seed``)."""
    return Seed.model_validate_json(path.read_bytes())


def serve(
    *,
    port: int,
    host: str = "127.0.0.1",
    seed: Seed | None = None,
    modes: Modes | None = None,
    log_level: str = "info",
    **options: Any,
) -> None:
    """Run the simulator in the foreground (the ``simulate ping`` command)."""
    app = create_app(seed=seed, modes=modes, **options)
    log.info("ping_sim_start", peer="ping", host=host, port=port)
    uvicorn.run(app, host=host, port=port, **foreground_logging(log_level))
