"""``POST /api/v1/dtp/messages``: the one URL DTP calls, routed by ``request_type``.

The answer is 202 only once the message and its job are committed; the same
message again (same intervention numbers, same content) answers 200
``duplicate`` with the first message's id and creates no work.
"""

from __future__ import annotations

import hmac
import json
import math
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Request, Security
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader, HTTPBearer
from pydantic import BaseModel
from starlette.requests import ClientDisconnect

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
#: declared so the OpenAPI document says how to authenticate; the route checks the token itself
_BEARER = HTTPBearer(auto_error=False, description="a token of PRIMERO_PROGRES_INBOX_TOKENS")
_API_KEY = APIKeyHeader(name="X-API-Key", auto_error=False, description="the same token")
#: deeper JSON than this is no DTP message (theirs nest 4 levels): refused before anything
#: walks it recursively (a 10,000-deep body used to end in a RecursionError and a 500)
MAX_DEPTH = 32


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


class ClientGone(Exception):
    """The client disconnected before its body was read: nobody is left to answer."""


async def _read_body_or_gone(request: Request, limit: int) -> bytes:
    try:
        return await _read_body(request, limit)
    except ClientDisconnect:
        raise ClientGone from None


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("a number too large for a float")
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _depth(data: Any) -> int:
    """How deep a parsed JSON value nests (iterative: the value may be deep). Only objects and
    arrays go on the stack: a message is mostly strings, and this runs on every one."""
    if not isinstance(data, dict | list):
        return 0
    deepest = 0
    stack: list[tuple[dict[str, Any] | list[Any], int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > deepest:
            deepest = depth
            if depth > MAX_DEPTH:
                return depth
        for child in value.values() if isinstance(value, dict) else value:
            if isinstance(child, dict | list):
                stack.append((child, depth + 1))
    return deepest


def load_json(body: bytes) -> Any:
    """Strict JSON: no ``NaN``/``Infinity``, no number that overflows a float, nothing nested
    deeper than ``MAX_DEPTH``; any of these is an ``InboxRejection`` (400), never a 500."""
    try:
        data = json.loads(body, parse_float=_finite, parse_constant=_no_constant)
    except RecursionError:
        raise InboxRejection(
            400, "too_deep", f"the body nests deeper than {MAX_DEPTH} levels"
        ) from None
    except ValueError:  # JSONDecodeError, a non-finite number, an integer of 4,300+ digits
        raise InboxRejection(
            400, "malformed_json", "the body is not valid JSON (finite numbers only)"
        ) from None
    if _depth(data) > MAX_DEPTH:
        raise InboxRejection(400, "too_deep", f"the body nests deeper than {MAX_DEPTH} levels")
    return data


def parse_message(
    body: bytes, *, max_interventions: int | None = None
) -> tuple[str, Flow, dict[str, Any]]:
    """Validate the envelope; return (request_type, flow, normalised message)."""
    data = load_json(body)
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
    if max_interventions is not None and len(interventions) > max_interventions:
        raise InboxRejection(
            413,
            "too_many_interventions",
            f"a message may carry at most {max_interventions} interventions "
            f"(this one has {len(interventions)}): send them in several messages",
        )
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
    max_interventions = settings.inbox_max_interventions
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
            400: documented(
                400,
                "Malformed JSON (NaN, Infinity and numbers too large for a float included), "
                "nested too deep, not an object, unknown request_type, interventions not a "
                "list of objects.",
            ),
            401: documented(401, "Missing or invalid token."),
            413: documented(
                413, "Body over the size limit, or more interventions than the inbox takes."
            ),
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
                            "required": ["request_type", "interventions"],
                            "properties": {
                                "request_type": {"type": "string", "enum": sorted(ROUTES)},
                                "interventions": {
                                    "type": "array",
                                    "items": {"type": "object"},
                                    "maxItems": max_interventions,
                                },
                            },
                        }
                    }
                },
            }
        },
    )
    async def receive_message(
        request: Request,
        _bearer: Annotated[Any, Security(_BEARER)] = None,
        _api_key: Annotated[Any, Security(_API_KEY)] = None,
    ) -> JSONResponse:
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
            body = await _read_body_or_gone(request, limit)
            request_type, flow, message = parse_message(body, max_interventions=max_interventions)
        except ClientGone:
            INBOUND_MESSAGES.labels("unknown", "client_disconnected").inc()
            log.info("inbox.client_disconnected")
            return error_response(400, "client_disconnected", "the client went away")
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
