"""Typed peer failures, shared by the Primero, DTP and PING clients.

Texts name the peer, the operation, the HTTP status and system IDs only: a
response body may echo personal data and is never copied into a message.
"""

from __future__ import annotations

import ssl
import time
from email.utils import parsedate_to_datetime
from enum import StrEnum

from .._compat import Peer
from ..errors import BridgeError, PermanentError, TransientError

#: besides every 5xx, the statuses after which the same request may later succeed
_TRANSIENT_STATUSES = frozenset({408, 429})


def is_transient_status(status_code: int) -> bool:
    """Whether a peer's error status is worth retrying: 408, 429 and 5xx, for both peers."""
    return status_code in _TRANSIENT_STATUSES or status_code >= 500


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` in seconds, from either of its forms (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - time.time())


class PeerError(Exception):
    """Mixin carrying what every peer failure has in common."""

    peer: Peer
    operation: str
    status_code: int | None

    def _init_peer(self, peer: Peer, operation: str, status_code: int | None) -> None:
        self.peer = peer
        self.operation = operation
        self.status_code = status_code


class TransientPeerError(TransientError, PeerError):
    """Connection error, timeout, 429, 5xx: worth retrying later."""

    def __init__(
        self,
        peer: Peer,
        operation: str,
        message: str,
        *,
        status_code: int | None = None,
        retry_after: float | None = None,
        reason: str | None = None,
    ) -> None:
        super().__init__(f"{peer} {operation}: {message}", reason=reason or _reason(status_code))
        self._init_peer(peer, operation, status_code)
        #: seconds the peer asked us to wait (``Retry-After``), if it said
        self.retry_after = retry_after


class PermanentPeerError(PermanentError, PeerError):
    """The peer refused the request for good (400, 401, 403, 404, 409, 422...)."""

    def __init__(
        self,
        peer: Peer,
        operation: str,
        message: str,
        *,
        status_code: int | None = None,
        reason: str | None = None,
        details: tuple[str, ...] = (),
    ) -> None:
        super().__init__(f"{peer} {operation}: {message}", reason=reason or _reason(status_code))
        self._init_peer(peer, operation, status_code)
        #: safe fragments of the peer's error envelope (JSON pointers, field names, message codes)
        self.details = details


class CredentialsRefused(PeerError):
    """Mixin: the peer, or the identity provider in front of it, refused the bridge's own
    credentials, whatever status it said it with (Azure AD B2C answers a wrong PING password
    with 400 ``invalid_grant``)."""


def _reason(status_code: int | None) -> str:
    return f"http_{status_code}" if status_code is not None else "connection"


class CallFailure(StrEnum):
    """How a call to a peer failed, whatever the client: a bounded set, safe as a metric label."""

    TIMEOUT = "timeout"
    CONNECTION = "connection"
    #: the TLS handshake failed (server certificate untrusted, our certificate refused)
    TLS = "tls"
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    RATE_LIMITED = "rate_limited"
    SERVER_ERROR = "server_error"
    #: any other 4xx, or an answer the bridge cannot use: the peer answered, about this one
    #: request
    CLIENT_ERROR = "client_error"


#: the peer refused the bridge itself (credentials, permissions, certificate): worth an alert
#: at the first occurrence
REFUSALS = frozenset({CallFailure.UNAUTHORIZED, CallFailure.FORBIDDEN, CallFailure.TLS})
#: failures that say nothing about the peer's health: it answered, about this request only
ANSWERED = frozenset({CallFailure.CLIENT_ERROR})


def status_failure(status_code: int) -> CallFailure | None:
    """The failure of an HTTP status (None for 1xx-3xx)."""
    if status_code < 400:
        return None
    if status_code == 401:
        return CallFailure.UNAUTHORIZED
    if status_code == 403:
        return CallFailure.FORBIDDEN
    if status_code == 408:
        return CallFailure.TIMEOUT
    if status_code == 429:
        return CallFailure.RATE_LIMITED
    if status_code >= 500:
        return CallFailure.SERVER_ERROR
    return CallFailure.CLIENT_ERROR


def tls_failure(exc: BaseException) -> bool:
    """Whether a connection failure was the TLS handshake (certificate, protocol)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ssl.SSLError):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def call_failure(exc: PeerError) -> CallFailure:
    """How the call that raised ``exc`` failed: by its HTTP status, else by what failed below
    HTTP (a timeout, the TLS handshake, the connection); a peer error with neither is an
    answer the bridge could not use. Refused credentials are ``UNAUTHORIZED`` whatever the
    status."""
    if isinstance(exc, CredentialsRefused):
        return CallFailure.UNAUTHORIZED
    if exc.status_code is not None:
        failure = status_failure(exc.status_code)
        if failure is not None:
            return failure
    if tls_failure(exc):
        return CallFailure.TLS
    if isinstance(exc, BridgeError) and exc.reason == "timeout":
        return CallFailure.TIMEOUT
    if isinstance(exc, TransientError):
        return CallFailure.CONNECTION
    return CallFailure.CLIENT_ERROR
