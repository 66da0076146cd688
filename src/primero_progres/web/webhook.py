"""``POST /api/v1/primero/webhook``: Primero says a case was created or updated.

A webhook is only a hint. Its body carries the fields the webhook's role may read (names,
dates of birth: personal data); the route keeps ``record_id`` and ``record_type`` and lets
the rest go unread into nothing, never stored or logged. It answers 202 once a targeted
check of that case is queued for flows 2 and 3 (``<flow>.webhook``), one
pending check per case and flow however many webhooks arrive. The check reads the case from
Primero and the ledger decides, as a poll does: a forged or repeated webhook can cause a
read, never a send.

Primero authenticates a webhook with ``x-api-key`` or Basic auth when an administrator set
them on it; a webhook registered without auth carries the token as the last path segment.
Primero sets no JSON content type (``application/x-www-form-urlencoded`` up to v2.14, none
since), so the body is read as JSON whatever the header says.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Request, Security
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader
from pydantic import BaseModel

from .. import flows
from ..logging import get_logger
from ..runtime.metrics import WEBHOOKS
from ..settings import WEBHOOK_PATH, Settings
from ..store import Store
from .errors import documented, error_response
from .inbox import ClientGone, InboxRejection, _read_body_or_gone, load_json, token_valid

log = get_logger(__name__)

PATH = WEBHOOK_PATH
#: the only record type flows 2 and 3 follow
RECORD_TYPE = "case"
#: a Primero record id is a UUID; this admits any id of that alphabet, bounded, and nothing
#: that could smuggle a path, a query or a key separator into the job key
RECORD_ID_PATTERN = "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
RECORD_ID = re.compile(RECORD_ID_PATTERN)
#: a case with every subform is large, but no webhook body needs more than this
MAX_BYTES = 1024 * 1024

#: declared for the OpenAPI document; the route reads the token itself, Basic auth included
#: (FastAPI's HTTPBasic answers a malformed header itself, in another error format)
_API_KEY = APIKeyHeader(
    name="X-API-Key",
    scheme_name="PrimeroWebhookToken",
    auto_error=False,
    description="a token of PRIMERO_WEBHOOK_TOKENS (or the Basic password, any user name)",
)


class Checked(BaseModel):
    record_id: str
    status: Literal["queued", "pending"]


def _presented(request: Request, path_token: str | None) -> list[bytes]:
    """Every token the request offers: the x-api-key header, the Basic password, the path."""
    found: list[bytes] = []
    api_key = request.headers.get("x-api-key")
    if api_key:
        found.append(api_key.strip().encode())
    header = request.headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "basic":
            try:
                pair = base64.b64decode(value.strip(), validate=True)
            except (binascii.Error, ValueError):
                pair = b""
            found.append(pair.partition(b":")[2])
    if path_token:
        found.append(path_token.encode())
    return found


def _authorized(request: Request, path_token: str | None, tokens: list[bytes]) -> bool:
    """Constant time per token; every presented one is compared (no early exit)."""
    matched = False
    for presented in _presented(request, path_token):
        matched |= token_valid(presented, tokens)
    return matched


def parse_hint(body: bytes) -> str:
    """The case id of a webhook body; everything else in it is dropped unread."""
    data = load_json(body)
    inner = data.get("data") if isinstance(data, dict) else None
    if not isinstance(inner, dict):
        raise InboxRejection(400, "not_a_webhook", 'the body must be {"data": {...}}')
    record_type, record_id = inner.get("record_type"), inner.get("record_id")
    if not isinstance(record_type, str) or not isinstance(record_id, str):
        raise InboxRejection(
            422, "missing_record", "data.record_type and data.record_id must be strings"
        )
    if record_type != RECORD_TYPE:
        raise InboxRejection(
            422, "unsupported_record_type", 'the bridge follows record_type "case" only'
        )
    if not RECORD_ID.fullmatch(record_id):
        raise InboxRejection(
            422, "bad_record_id", "data.record_id must be 1-64 letters, digits, '.', '_' or '-'"
        )
    return record_id


def build_router(settings: Settings, store: Store) -> APIRouter:
    router = APIRouter()
    tokens = settings.webhook_token_values()
    if settings.webhooks and not tokens:
        log.warning("webhook.no_tokens", reason="PRIMERO_PROGRES_PRIMERO_WEBHOOK_TOKENS is empty")
    responses: dict[int | str, dict[str, Any]] = {
        202: {"model": Checked, "description": "A check of the case is queued (or pending)."},
        400: documented(400, 'Malformed JSON, nested too deep, or not {"data": {...}}.'),
        401: documented(401, "Missing or invalid token."),
        413: documented(413, "Body over the size limit."),
        422: documented(422, 'record_type is not "case", or record_id is missing or unsafe.'),
        503: documented(503, "The database is unavailable; the next poll will catch up."),
    }

    # what the route reads of Primero's body; anything else in ``data`` is allowed and dropped
    body_schema = {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": ["data"],
                        "properties": {
                            "data": {
                                "type": "object",
                                "required": ["record_id", "record_type"],
                                "properties": {
                                    "record_id": {"type": "string", "pattern": RECORD_ID_PATTERN},
                                    "record_type": {"type": "string", "enum": [RECORD_TYPE]},
                                },
                            }
                        },
                    }
                }
            },
        }
    }

    async def receive(request: Request, path_token: str | None) -> JSONResponse:
        if not _authorized(request, path_token, tokens):
            WEBHOOKS.labels("unauthorized").inc()
            log.info("webhook.rejected", status_code=401, reason="unauthorized")
            return error_response(
                401, "unauthorized", "a valid token is required (x-api-key, Basic, or the path)"
            )
        try:
            body = await _read_body_or_gone(request, MAX_BYTES)
            record_id = parse_hint(body)
        except ClientGone:
            WEBHOOKS.labels("client_disconnected").inc()
            log.info("webhook.client_disconnected")
            return error_response(400, "client_disconnected", "the client went away")
        except InboxRejection as rejection:
            WEBHOOKS.labels(rejection.code).inc()
            log.info("webhook.rejected", status_code=rejection.status, reason=rejection.code)
            return error_response(rejection.status, rejection.code, rejection.message)
        queued = False
        try:
            for kind in flows.webhook_checks():
                result = await store.jobs.enqueue_coalesced(
                    kind,
                    f"{kind}:{record_id}:",
                    {"record_id": record_id},
                    refs={"case_record_id": record_id},
                )
                queued |= result.created
        except Exception as exc:
            WEBHOOKS.labels("store_failed").inc()
            log.error("webhook.store_failed", error=type(exc).__name__)
            return error_response(503, "unavailable", "the check could not be queued")
        status: Literal["queued", "pending"] = "queued" if queued else "pending"
        WEBHOOKS.labels(status).inc()
        log.info("webhook.received", case_record_id=record_id, outcome=status)
        return JSONResponse(Checked(record_id=record_id, status=status).model_dump(), 202)

    @router.post(
        PATH,
        status_code=202,
        summary="Receive a Primero webhook (a case was created or updated)",
        response_model=Checked,
        responses=responses,
        openapi_extra=body_schema,
    )
    async def webhook(
        request: Request,
        _api_key: Annotated[Any, Security(_API_KEY)] = None,
    ) -> JSONResponse:
        return await receive(request, None)

    @router.post(
        PATH + "/{token}",
        status_code=202,
        summary="The same, for a webhook registered without auth: the token ends the path",
        response_model=Checked,
        responses=responses,
        openapi_extra=body_schema,
    )
    async def webhook_with_token(token: str, request: Request) -> JSONResponse:
        return await receive(request, token)

    return router
