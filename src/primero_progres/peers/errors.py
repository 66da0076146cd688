"""Typed peer failures, shared by the Primero, DTP and PING clients.

Texts name the peer, the operation, the HTTP status and system IDs only: a
response body may echo personal data and is never copied into a message.
"""

from __future__ import annotations

import time
from email.utils import parsedate_to_datetime

from .._compat import Peer
from ..errors import PermanentError, TransientError

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


def _reason(status_code: int | None) -> str:
    return f"http_{status_code}" if status_code is not None else "connection"
