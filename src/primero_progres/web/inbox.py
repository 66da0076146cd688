"""``POST /api/v1/dtp/messages``: the one URL DTP calls, routed by ``request_type``.

The answer is 202 only once the message and its job are committed; the same
message again (same intervention numbers, same content) answers 200
``duplicate`` with the first message's id and creates no work.
"""

from __future__ import annotations

import hmac
import json
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from ..logging import get_logger
from ..mapping.dtp import PROGRES_DECISION_REQUEST, PROGRES_REFERRAL_REQUEST
from ..mapping.values import unwrap
from ..runtime.metrics import INBOUND_MESSAGES
from ..settings import Settings
from ..store import Flow, Store
from .errors import documented, error_response

log = get_logger(__name__)

#: request_type -> flow
ROUTES = {
    PROGRES_REFERRAL_REQUEST: Flow.PROGRES_REFERRAL,
    PROGRES_DECISION_REQUEST: Flow.PROGRES_DECISION,
}
_ID_MAX = 128


class Queued(BaseModel):
    message_id: str
    status: Literal["queued"] = "queued"


class Duplicate(BaseModel):
    message_id: str
    status: Literal["duplicate"] = "duplicate"


class InboxRejection(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(code)
        self.status, self.code, self.message = status, code, message


def _token_from(request: Request) -> bytes | None:
    header = request.headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip().encode()
    api_key = request.headers.get("x-api-key")
    return api_key.strip().encode() if api_key else None


def token_valid(presented: bytes | None, valid: list[bytes]) -> bool:
    """Constant-time comparison against every valid token (no early exit)."""
    if presented is None:
        return False
    matched = False
    for token in valid:
        matched |= hmac.compare_digest(presented, token)
    return matched


def _is_json(content_type: str | None) -> bool:
    if not content_type:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            too_big = int(declared) > limit
        except ValueError:
            raise InboxRejection(
                400, "bad_content_length", "Content-Length is not a number"
            ) from None
        if too_big:
            raise InboxRejection(413, "too_large", f"the body is over the {limit}-byte limit")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise InboxRejection(413, "too_large", f"the body is over the {limit}-byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_message(body: bytes) -> tuple[str, Flow, dict[str, Any]]:
    """Validate the envelope; return (request_type, flow, normalised message)."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise InboxRejection(400, "malformed_json", "the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise InboxRejection(400, "not_an_object", "the body must be a JSON object")
    data = dict(unwrap(data))
    request_type = data.get("request_type")
    if request_type is None:
        raise InboxRejection(400, "missing_request_type", "request_type is missing")
    if not isinstance(request_type, str) or request_type not in ROUTES:
        raise InboxRejection(
            400,
            "unknown_request_type",
            "request_type must be one of: " + ", ".join(sorted(ROUTES)),
        )
    interventions = data.get("interventions")
    if not isinstance(interventions, list):
        raise InboxRejection(400, "missing_interventions", "interventions must be a list")
    if not all(isinstance(item, dict) for item in interventions):
        raise InboxRejection(400, "invalid_intervention", "each intervention must be an object")
    message = {k: v for k, v in data.items() if k != "__query_params"}
    return request_type, ROUTES[request_type], message


def _ids(interventions: list[dict[str, Any]], field: str) -> list[str]:
    values = []
    for item in interventions:
        value = item.get(field)
        if isinstance(value, str | int) and len(str(value)) <= _ID_MAX:
            values.append(str(value))
    return values


def build_router(settings: Settings, store: Store) -> APIRouter:
    router = APIRouter()
    tokens = settings.inbox_token_values()
    limit = settings.inbox_max_bytes
    if not tokens:
        log.warning("inbox.no_tokens", reason="PRIMERO_PROGRES_INBOX_TOKENS is empty")

    @router.post(
        "/api/v1/dtp/messages",
        status_code=202,
        summary="Receive a message from DTP (proGres referrals and decisions)",
        response_model=Queued,
        responses={
            200: {"model": Duplicate, "description": "Already received; no new work."},
            202: {"model": Queued, "description": "Stored durably and queued."},
            400: documented(400, "Malformed JSON, not an object, unknown request_type..."),
            401: documented(401, "Missing or invalid token."),
            413: documented(413, "Body over the size limit."),
            415: documented(415, "Content type is not JSON."),
            503: documented(503, "The database is unavailable; retry later."),
        },
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "properties": {
                                "request_type": {"type": "string", "enum": sorted(ROUTES)},
                                "interventions": {"type": "array", "items": {"type": "object"}},
                            },
                        }
                    }
                },
            }
        },
    )
    async def receive_message(request: Request) -> JSONResponse:
        if not token_valid(_token_from(request), tokens):
            INBOUND_MESSAGES.labels("unknown", "unauthorized").inc()
            return error_response(
                401,
                "unauthorized",
                "a valid token is required (Authorization: Bearer or X-API-Key)",
                **{"WWW-Authenticate": "Bearer"},
            )
        try:
            if not _is_json(request.headers.get("content-type")):
                raise InboxRejection(
                    415, "unsupported_media_type", "Content-Type must be application/json"
                )
            body = await _read_body(request, limit)
            request_type, flow, message = parse_message(body)
        except InboxRejection as rejection:
            INBOUND_MESSAGES.labels("unknown", rejection.code).inc()
            log.info("inbox.rejected", status_code=rejection.status, reason=rejection.code)
            return error_response(rejection.status, rejection.code, rejection.message)
        interventions = message["interventions"]
        try:
            receipt = await store.messages.receive(
                request_type=request_type,
                flow=flow,
                message=message,
                intervention_numbers=_ids(interventions, "progres_interventionnumber"),
                org_referral_ids=_ids(interventions, "progres_orgreferralid"),
            )
        except Exception as exc:
            INBOUND_MESSAGES.labels(flow, "store_failed").inc()
            log.error("inbox.store_failed", flow=flow, error=type(exc).__name__)
            return error_response(
                503, "unavailable", "the message could not be stored; retry later"
            )
        if receipt.duplicate:
            INBOUND_MESSAGES.labels(flow, "duplicate").inc()
            log.info("inbox.duplicate", flow=flow, message_id=receipt.message_id)
            return JSONResponse(
                Duplicate(message_id=receipt.message_id).model_dump(), status_code=200
            )
        INBOUND_MESSAGES.labels(flow, "queued").inc()
        log.info("inbox.queued", flow=flow, message_id=receipt.message_id, job_id=receipt.job_id)
        return JSONResponse(Queued(message_id=receipt.message_id).model_dump(), status_code=202)

    return router
