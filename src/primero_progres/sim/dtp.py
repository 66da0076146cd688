"""A simulator of UNHCR's DTP gateway (Azure API Management in front of proGres v4).

It plays both sides of DTP for tests and the demo:

* the gateway the bridge calls: ``POST /ReceiveIncomingReferral`` and
  ``POST /ReceiveDecisionOutgoingReferral``, guarded by the
  ``Ocp-Apim-Subscription-Key`` header (401 with API Management's JSON shape
  when it is missing or wrong) and, when served with a client CA, by mutual
  TLS; every accepted message is recorded;
* proGres calling the bridge: ``POST /_sim/send-referral`` and
  ``/_sim/send-decision`` forward a DTP message to the bridge inbox with a
  bearer token and answer with what the bridge answered.

Test-only routes live under ``/_sim/``; faults come from ``sim/common.py``.
"""

from __future__ import annotations

import hmac
import json
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import httpx2 as httpx
import structlog
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from ..peers.tls import uvicorn_tls_options
from .common import FaultInjector, SimulatorConfigError, foreground_logging, install_faults

log = structlog.get_logger(__name__)

REFERRAL_ENDPOINT = "ReceiveIncomingReferral"
DECISION_ENDPOINT = "ReceiveDecisionOutgoingReferral"
ENDPOINTS = (REFERRAL_ENDPOINT, DECISION_ENDPOINT)
SUBSCRIPTION_HEADER = "Ocp-Apim-Subscription-Key"
IDEMPOTENCY_HEADER = "Idempotency-Key"

#: what proGres sends the bridge, by simulator route
OUTBOUND_REQUEST_TYPES = {
    "send-referral": "PrimeroOutgoingReferral",
    "send-decision": "PrimeroIncomingReferralDecision",
}

# API Management's own texts for a refused subscription key.
_MISSING_KEY = (
    "Access denied due to missing subscription key. "
    "Make sure to include subscription key when making requests to an API."
)
_INVALID_KEY = (
    "Access denied due to invalid subscription key. "
    "Make sure to provide a valid key for an active subscription."
)


@dataclass
class ReceivedMessage:
    """One message the gateway accepted."""

    sequence: int
    endpoint: str
    request_id: str
    received_at: str
    body: Any
    idempotency_key: str | None = None
    #: how many later requests with the same key were answered with this receipt (dedupe on)
    repeats: int = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "sequence": self.sequence,
            "endpoint": self.endpoint,
            "request_id": self.request_id,
            "received_at": self.received_at,
            "idempotency_key": self.idempotency_key,
            "repeats": self.repeats,
            "body": self.body,
        }


@dataclass
class ForwardedMessage:
    """One message proGres (the simulator) sent to the bridge, with the bridge's answer."""

    sequence: int
    route: str
    request_type: str
    sent_at: str
    status_code: int | None
    body: Any

    def as_json(self) -> dict[str, Any]:
        return {
            "sequence": self.sequence,
            "route": self.route,
            "request_type": self.request_type,
            "sent_at": self.sent_at,
            "status_code": self.status_code,
            "body": self.body,
        }


@dataclass
class DTPState:
    """Everything the simulator holds; tests read it from ``app.state.dtp``."""

    subscription_key: str
    bridge_inbox_url: str | None = None
    bridge_token: str | None = None
    forward_timeout: float = 30.0
    #: answer a repeated ``Idempotency-Key`` with the first receipt instead of recording it
    dedupe: bool = False
    faults: FaultInjector = field(default_factory=FaultInjector)
    messages: list[ReceivedMessage] = field(default_factory=list)
    forwarded: list[ForwardedMessage] = field(default_factory=list)
    _first_by_key: dict[tuple[str, str], ReceivedMessage] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def record(
        self, endpoint: str, body: Any, idempotency_key: str | None = None
    ) -> tuple[ReceivedMessage, bool]:
        """The message as recorded, and whether it is new.

        With ``dedupe`` on, a key already seen on this endpoint gives back the first
        message (its ``repeats`` counted) and records nothing; a key seen with another
        body raises :class:`KeyReused`.
        """
        with self._lock:
            first = (
                self._first_by_key.get((endpoint, idempotency_key))
                if self.dedupe and idempotency_key is not None
                else None
            )
            if first is not None:
                if first.body != body:
                    raise KeyReused()
                first.repeats += 1
                return first, False
            message = ReceivedMessage(
                sequence=len(self.messages) + 1,
                endpoint=endpoint,
                request_id=str(uuid.uuid4()),
                received_at=_now(),
                body=body,
                idempotency_key=idempotency_key,
            )
            self.messages.append(message)
            if idempotency_key is not None:
                self._first_by_key.setdefault((endpoint, idempotency_key), message)
            return message, True

    def record_forward(
        self, route: str, request_type: str, status_code: int | None, body: Any
    ) -> ForwardedMessage:
        with self._lock:
            forwarded = ForwardedMessage(
                sequence=len(self.forwarded) + 1,
                route=route,
                request_type=request_type,
                sent_at=_now(),
                status_code=status_code,
                body=body,
            )
            self.forwarded.append(forwarded)
            return forwarded

    def received(self, endpoint: str | None = None) -> list[ReceivedMessage]:
        with self._lock:
            return [m for m in self.messages if endpoint is None or m.endpoint == endpoint]

    def count(self, endpoint: str | None = None) -> int:
        with self._lock:
            return sum(1 for m in self.messages if endpoint is None or m.endpoint == endpoint)

    def reset(self) -> None:
        """Forget messages and faults; the bridge inbox settings are configuration and stay."""
        with self._lock:
            self.messages.clear()
            self.forwarded.clear()
            self._first_by_key.clear()
        self.faults.clear()

    def key_problem(self, presented: str | None) -> str | None:
        """API Management's refusal text for a missing or wrong key, or None when it is right."""
        if not presented:
            return _MISSING_KEY
        if not hmac.compare_digest(presented.encode(), self.subscription_key.encode()):
            return _INVALID_KEY
        return None


class KeyReused(Exception):
    """An ``Idempotency-Key`` came back with another message (dedupe on): answered 422."""


class DedupeSettings(BaseModel):
    """Whether the gateway deduplicates on ``Idempotency-Key``, set at run time."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool


class BridgeSettings(BaseModel):
    """Where proGres (the simulator) delivers its messages, set at run time."""

    model_config = ConfigDict(extra="forbid")

    inbox_url: str | None = Field(
        None, description="the bridge inbox, e.g. http://127.0.0.1:8080/api/v1/dtp/messages"
    )
    token: str | None = Field(None, description="bearer token the bridge accepts")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _unwrap(message: Any) -> Any:
    """Some DTP versions wrap the message as ``{"data": {...}, "__query_params": {}}``."""
    if (
        isinstance(message, dict)
        and isinstance(message.get("data"), dict)
        and "request_type" not in message
    ):
        return message["data"]
    return message


def create_app(
    *,
    subscription_key: str,
    bridge_inbox_url: str | None = None,
    bridge_token: str | None = None,
    fault_seed: int | None = None,
    dedupe: bool = False,
) -> FastAPI:
    """The DTP simulator as an ASGI app; serve it with ``serve_in_thread`` or :func:`serve`.

    ``dedupe``: answer a repeated ``Idempotency-Key`` with the first receipt (also
    ``PUT /_sim/dedupe``).
    """
    if not subscription_key:
        raise ValueError("the DTP simulator needs a subscription key")
    state = DTPState(
        subscription_key=subscription_key,
        bridge_inbox_url=bridge_inbox_url,
        bridge_token=bridge_token,
        dedupe=dedupe,
        faults=FaultInjector(fault_seed),
    )
    app = FastAPI(
        title="DTP simulator",
        version="1",
        docs_url="/_sim/docs",
        redoc_url=None,
        openapi_url="/_sim/openapi.json",
    )
    app.state.dtp = state
    install_faults(app, state.faults)

    async def receive(endpoint: str, request: Request) -> Response:
        problem = state.key_problem(request.headers.get(SUBSCRIPTION_HEADER))
        if problem is not None:
            log.info("dtp_sim_refused", peer="dtp", path=request.url.path, status_code=401)
            return JSONResponse({"statusCode": 401, "message": problem}, status_code=401)
        raw = await request.body()
        try:
            body = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError):
            return JSONResponse(
                {"statusCode": 400, "message": "The request body is not valid JSON."},
                status_code=400,
            )
        try:
            message, new = state.record(endpoint, body, request.headers.get(IDEMPOTENCY_HEADER))
        except KeyReused:
            return JSONResponse(
                {
                    "statusCode": 422,
                    "message": "The Idempotency-Key was already used with a different message.",
                },
                status_code=422,
            )
        log.debug(
            "dtp_sim_received" if new else "dtp_sim_repeat_answered",
            peer="dtp",
            path=request.url.path,
            request_id=message.request_id,
        )
        return JSONResponse(
            {"status": "received", "request_id": message.request_id},
            headers={"apim-request-id": message.request_id},
        )

    @app.post(f"/{REFERRAL_ENDPOINT}", tags=["dtp"])
    async def receive_incoming_referral(request: Request) -> Response:
        """Flow 3: a Primero referral to UNHCR."""
        return await receive(REFERRAL_ENDPOINT, request)

    @app.post(f"/{DECISION_ENDPOINT}", tags=["dtp"])
    async def receive_decision_outgoing_referral(request: Request) -> Response:
        """Flow 1 feedback and flow 2 decisions."""
        return await receive(DECISION_ENDPOINT, request)

    @app.get("/_sim/messages", tags=["simulator"])
    async def list_messages(endpoint: str | None = None) -> Response:
        if endpoint is not None and endpoint not in ENDPOINTS:
            return JSONResponse(
                {"error": "unknown endpoint", "endpoints": list(ENDPOINTS)}, status_code=400
            )
        return JSONResponse([m.as_json() for m in state.received(endpoint)])

    @app.get("/_sim/messages/count", tags=["simulator"])
    async def count_messages(endpoint: str | None = None) -> Response:
        """How many messages arrived (at ``endpoint``): a benchmark's cheap progress check."""
        if endpoint is not None and endpoint not in ENDPOINTS:
            return JSONResponse(
                {"error": "unknown endpoint", "endpoints": list(ENDPOINTS)}, status_code=400
            )
        return JSONResponse({"count": state.count(endpoint)})

    @app.get("/_sim/dedupe", tags=["simulator"])
    async def get_dedupe() -> DedupeSettings:
        return DedupeSettings(enabled=state.dedupe)

    @app.put("/_sim/dedupe", tags=["simulator"])
    async def set_dedupe(settings: DedupeSettings) -> DedupeSettings:
        """Turn deduplication on or off; the keys seen so far are kept."""
        state.dedupe = settings.enabled
        return DedupeSettings(enabled=state.dedupe)

    @app.get("/_sim/forwarded", tags=["simulator"])
    async def list_forwarded() -> list[dict[str, Any]]:
        return [f.as_json() for f in state.forwarded]

    @app.post("/_sim/reset", tags=["simulator"])
    async def reset() -> dict[str, str]:
        state.reset()
        return {"status": "reset"}

    @app.get("/_sim/bridge", tags=["simulator"])
    async def get_bridge() -> dict[str, Any]:
        return {"inbox_url": state.bridge_inbox_url, "token_set": state.bridge_token is not None}

    @app.put("/_sim/bridge", tags=["simulator"])
    async def set_bridge(settings: BridgeSettings) -> dict[str, Any]:
        state.bridge_inbox_url = settings.inbox_url
        state.bridge_token = settings.token
        return {"inbox_url": state.bridge_inbox_url, "token_set": state.bridge_token is not None}

    async def forward(
        route: Literal["send-referral", "send-decision"], request: Request
    ) -> Response:
        expected = OUTBOUND_REQUEST_TYPES[route]
        try:
            message = json.loads(await request.body())
        except (UnicodeDecodeError, json.JSONDecodeError):
            return JSONResponse({"error": "the body is not valid JSON"}, status_code=400)
        inner = _unwrap(message)
        if not isinstance(inner, dict) or inner.get("request_type") != expected:
            return JSONResponse(
                {"error": f"{route} takes a message with request_type {expected}"}, status_code=422
            )
        if not isinstance(inner.get("interventions"), list):
            return JSONResponse({"error": "interventions must be a list"}, status_code=422)
        if not state.bridge_inbox_url:
            return JSONResponse(
                {"error": "no bridge inbox configured; PUT /_sim/bridge first"}, status_code=409
            )
        headers = {"Authorization": f"Bearer {state.bridge_token}"} if state.bridge_token else {}
        try:
            async with httpx.AsyncClient(timeout=state.forward_timeout) as client:
                answer = await client.post(state.bridge_inbox_url, json=message, headers=headers)
        except httpx.HTTPError as exc:
            state.record_forward(route, expected, None, None)
            log.warning("dtp_sim_forward_failed", peer="dtp", error=type(exc).__name__)
            return JSONResponse(
                {"error": "bridge unreachable", "detail": type(exc).__name__}, status_code=502
            )
        try:
            answer_body: Any = answer.json()
        except ValueError:
            answer_body = answer.text
        state.record_forward(route, expected, answer.status_code, answer_body)
        log.debug(
            "dtp_sim_forwarded", peer="dtp", request_type=expected, status_code=answer.status_code
        )
        if isinstance(answer_body, str):
            return Response(answer_body, status_code=answer.status_code, media_type="text/plain")
        return JSONResponse(answer_body, status_code=answer.status_code)

    @app.post("/_sim/send-referral", tags=["simulator"])
    async def send_referral(request: Request) -> Response:
        """proGres sends the bridge a referral (flow 1)."""
        return await forward("send-referral", request)

    @app.post("/_sim/send-decision", tags=["simulator"])
    async def send_decision(request: Request) -> Response:
        """proGres sends the bridge a decision on a Primero referral (flow 4)."""
        return await forward("send-decision", request)

    return app


def serve(
    *,
    port: int,
    subscription_key: str,
    host: str = "127.0.0.1",
    tls_cert: Path | None = None,
    tls_key: Path | None = None,
    client_ca: Path | None = None,
    bridge_inbox_url: str | None = None,
    bridge_token: str | None = None,
    log_level: str = "info",
    dedupe: bool = False,
) -> None:
    """Run the simulator in the foreground (the ``simulate dtp`` command)."""
    options: dict[str, Any] = {}
    if tls_cert is not None:
        options = uvicorn_tls_options(cert=tls_cert, key=tls_key, client_ca=client_ca)
    elif tls_key is not None or client_ca is not None:
        raise SimulatorConfigError(
            "--tls-key and --client-ca need --tls-cert", reason="tls_incomplete"
        )
    app = create_app(
        subscription_key=subscription_key,
        bridge_inbox_url=bridge_inbox_url,
        bridge_token=bridge_token,
        dedupe=dedupe,
    )
    uvicorn.run(app, host=host, port=port, **foreground_logging(log_level), **options)
