"""Client of UNHCR's DTP gateway: two POST endpoints behind API Management, over mutual TLS.

Every call carries ``Ocp-Apim-Subscription-Key`` and, when configured, a client
certificate (PEM or PKCS#12, see ``peers/tls.py``). Failures are typed so the
flows never read error texts:

* transient (retry with backoff): connection errors, resets, timeouts, 408,
  429 and 5xx, with ``Retry-After`` carried on the error;
* permanent (dead letter): 400, 401, 403, 404, 409, 413, 422 and any other
  unexpected status, and a server certificate we do not trust.

A refused client certificate cannot be told apart from a network reset: with
TLS 1.3 the gateway's refusal arrives after the handshake, and the client sees
only a reset connection. It is therefore transient, like any reset; the
certificate files themselves are checked at construction (ConfigurationError).

Messages carry personal data, so neither log lines nor exception texts ever
include a request or response body.

Delivery is at-least-once: a message whose answer was lost is sent again. Each
send may carry an ``Idempotency-Key`` header, the same on every retry of one
message, so DTP can answer a repeat with its first receipt (docs/dtp.md).
"""

from __future__ import annotations

import json
import ssl
import string
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2 as httpx

from ..errors import InvalidInputError
from ..logging import get_logger
from ..mapping.dtp import DECISION_REQUEST, REFERRAL_REQUEST
from .errors import (
    PermanentPeerError,
    TransientPeerError,
    is_transient_status,
    parse_retry_after,
)
from .pooled import PooledClient
from .tls import client_ssl_context

log = get_logger(__name__)

SUBSCRIPTION_HEADER = "Ocp-Apim-Subscription-Key"
IDEMPOTENCY_HEADER = "Idempotency-Key"
#: the namespace of :func:`idempotency_key_for` (a fixed random UUID: never change it, or every
#: retry after an upgrade looks like a new message to DTP)
IDEMPOTENCY_NAMESPACE = uuid.UUID("0b6f3c1e-5d0a-4f8e-9a51-6c1f2b7d4e90")
_KEY_CHARACTERS = frozenset(string.ascii_letters + string.digits + "-_.:~+/=")
_KEY_MAX_LENGTH = 255
_REQUEST_ID_HEADERS = ("apim-request-id", "x-request-id", "x-ms-request-id", "request-id")


@dataclass(frozen=True)
class DTPReceipt:
    """What DTP answered to an accepted message."""

    status_code: int
    request_id: str | None


def idempotency_key_for(job_key: str) -> str:
    """The ``Idempotency-Key`` for a message: a UUID (v5) of the job key that sends it.

    The same job key gives the same UUID in every process and release, so a retry
    after a crash carries the key of the first attempt. UUID-shaped because many
    gateways accept nothing else, and a hash, so no ID inside the job key reaches DTP
    through the header.
    """
    return str(uuid.uuid5(IDEMPOTENCY_NAMESPACE, job_key))


class DTPClient(PooledClient):
    """Async client of the two DTP endpoints; one instance per process, closed on shutdown."""

    def __init__(
        self,
        base_url: str,
        *,
        subscription_key: str,
        client_cert: Path | None = None,
        client_key: Path | None = None,
        pkcs12: Path | None = None,
        pkcs12_password: str | None = None,
        ca: Path | None = None,
        timeout: float = 30.0,
        referral_path: str = REFERRAL_REQUEST,
        decision_path: str = DECISION_REQUEST,
    ) -> None:
        ssl_context: ssl.SSLContext = client_ssl_context(
            client_cert=client_cert,
            client_key=client_key,
            pkcs12_file=pkcs12,
            pkcs12_password=pkcs12_password,
            ca=ca,
        )
        self.base_url = base_url.rstrip("/")
        self.referral_url = f"{self.base_url}/{referral_path.lstrip('/')}"
        self.decision_url = f"{self.base_url}/{decision_path.lstrip('/')}"
        #: parsed once: httpx parses a URL given as a string on every request
        self._targets = {url: httpx.URL(url) for url in (self.referral_url, self.decision_url)}
        self._http = httpx.AsyncClient(
            verify=ssl_context,
            timeout=httpx.Timeout(timeout),
            headers={SUBSCRIPTION_HEADER: subscription_key, "Accept": "application/json"},
            follow_redirects=False,
            trust_env=False,
        )

    async def send_referral(
        self, message: dict[str, Any], *, idempotency_key: str | None = None
    ) -> DTPReceipt:
        """Flow 3: a Primero referral to UNHCR (``ReceiveIncomingReferral``).

        ``idempotency_key``: sent as ``Idempotency-Key``; pass the same value on every
        retry of this message (:func:`idempotency_key_for` the job key).
        """
        return await self._post("send_referral", self.referral_url, message, idempotency_key)

    async def send_decision(
        self, message: dict[str, Any], *, idempotency_key: str | None = None
    ) -> DTPReceipt:
        """Flow 1 feedback and flow 2 decisions (``ReceiveDecisionOutgoingReferral``)."""
        return await self._post("send_decision", self.decision_url, message, idempotency_key)

    async def _post(
        self, operation: str, url: str, message: dict[str, Any], idempotency_key: str | None
    ) -> DTPReceipt:
        headers = {"Content-Type": "application/json"}
        if idempotency_key is not None:
            _check_key(operation, idempotency_key)
            headers[IDEMPOTENCY_HEADER] = idempotency_key
        try:
            content = json.dumps(message, ensure_ascii=False, allow_nan=False).encode()
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(
                f"dtp {operation}: the message is not serialisable as JSON",
                reason="unserialisable_message",
            ) from exc
        started = time.monotonic()
        try:
            response = await self._http.post(self._targets[url], content=content, headers=headers)
        except httpx.TimeoutException as exc:
            raise TransientPeerError(
                "dtp", operation, f"timed out ({type(exc).__name__})", reason="timeout"
            ) from exc
        except httpx.HTTPError as exc:
            raise _transport_error(operation, exc) from exc
        duration_ms = round((time.monotonic() - started) * 1000)
        status = response.status_code
        if 200 <= status < 300:
            receipt = DTPReceipt(status_code=status, request_id=_request_id(response))
            log.info(
                "dtp_sent",
                peer="dtp",
                operation=operation,
                status_code=status,
                request_id=receipt.request_id,
                duration_ms=duration_ms,
            )
            return receipt
        log.warning(
            "dtp_refused",
            peer="dtp",
            operation=operation,
            status_code=status,
            duration_ms=duration_ms,
        )
        if is_transient_status(status):
            raise TransientPeerError(
                "dtp",
                operation,
                f"HTTP {status}",
                status_code=status,
                retry_after=parse_retry_after(response.headers.get("Retry-After")),
            )
        raise PermanentPeerError("dtp", operation, f"HTTP {status}", status_code=status)


def _check_key(operation: str, key: str) -> None:
    """A key must travel unchanged through proxies: 1-255 characters, no space or quote."""
    if not 0 < len(key) <= _KEY_MAX_LENGTH or not set(key) <= _KEY_CHARACTERS:
        raise InvalidInputError(
            f"dtp {operation}: the idempotency key is empty, longer than "
            f"{_KEY_MAX_LENGTH} characters or holds characters outside [A-Za-z0-9-_.:~+/=]",
            reason="bad_idempotency_key",
        )


def _transport_error(operation: str, exc: httpx.HTTPError) -> Exception:
    """Classify a failure below HTTP: an untrusted server certificate is permanent, the rest not."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return PermanentPeerError(
                "dtp",
                operation,
                "the server certificate is not trusted (check the CA bundle)",
                reason="tls_server_untrusted",
            )
        cause = cause.__cause__ or cause.__context__
    return TransientPeerError(
        "dtp", operation, f"transport failure ({type(exc).__name__})", reason="connection"
    )


def _request_id(response: httpx.Response) -> str | None:
    for header in _REQUEST_ID_HEADERS:
        value = response.headers.get(header)
        if value:
            return value
    try:
        body = response.json()
    except ValueError:
        return None
    value = body.get("request_id") if isinstance(body, dict) else None
    return value if isinstance(value, str) and value else None
