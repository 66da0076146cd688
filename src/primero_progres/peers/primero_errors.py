"""Typed Primero failures, and the safe reading of Primero's error envelope.

Primero answers errors as ``{"errors": [{"status", "resource", "detail"?, "message"}]}``
(PRIMERO-API.md §2.5), Devise 401s as ``{"error": "..."}``. ``detail`` and
``message`` may echo data (an exception text), so only fragments that cannot
carry personal data are kept: JSON pointers, field names, message codes and
Primero's fixed messages.
"""

from __future__ import annotations

import re
from typing import Any

from .._compat import Peer
from .errors import PermanentPeerError, TransientPeerError, is_transient_status, parse_retry_after

PEER: Peer = "primero"

_POINTER = re.compile(r"\A(/[A-Za-z0-9_]+)+\Z")
_FIELD_NAME = re.compile(r"\A[a-z][a-z0-9_]{0,63}\Z")
_MESSAGE_CODE = re.compile(r"\A[a-z0-9_]+(\.[a-z0-9_]+)+\Z")
_FIXED_MESSAGES = frozenset(
    {
        "Not Found",
        "Forbidden",
        "Invalid Record JSON",
        "Service Unavailable",
        "Conflict: A record with this id already exists",
        "Invalid User name or password.",
        "Your account is locked.",
        "You need to sign in or sign up before continuing.",
    }
)


class PrimeroTransientError(TransientPeerError):
    """Connection error, timeout, 429 or 5xx from Primero."""


class PrimeroPermanentError(PermanentPeerError):
    """Primero refused the request for good."""


class AuthenticationError(PrimeroPermanentError):
    """401: wrong credentials, locked account, or a token Primero no longer accepts."""


class ForbiddenError(PrimeroPermanentError):
    """403: the API user's role may not do this."""


class NotFoundError(PrimeroPermanentError):
    """404: no such case, referral or user (or an id that is not a case's primary key)."""


class ConflictError(PrimeroPermanentError):
    """409: a record with this ``id`` or ``case_id`` already exists."""


class InvalidRecordError(PrimeroPermanentError):
    """422: the record failed Primero's schema or model validation."""


class UnexpectedResponseError(PrimeroPermanentError):
    """A success status whose body is not what Primero sends (not JSON, wrong shape)."""


class FilterIgnoredError(PrimeroPermanentError):
    """Primero returned records that do not match a filter: it silently dropped it.

    Primero drops filters on fields the API user's role cannot read and answers
    unfiltered results (PRIMERO-API.md §2.1). Fix the role, not the bridge.
    """


class ReferralNotUpdatedError(PrimeroPermanentError):
    """A referral PATCH answered 200 without the requested status: an illegal transition."""


class TokenNotIssuedError(PrimeroPermanentError):
    """``POST /api/v2/tokens`` answered without a token (Primero v2.11+): use Basic auth."""


_BY_STATUS: dict[int, type[PrimeroPermanentError]] = {
    401: AuthenticationError,
    403: ForbiddenError,
    404: NotFoundError,
    409: ConflictError,
    422: InvalidRecordError,
}


def safe_details(body: Any) -> tuple[str, ...]:
    """The parts of an error body that cannot carry personal data."""
    details: list[str] = []
    if isinstance(body, dict) and body.get("error") in _FIXED_MESSAGES:
        details.append(f"error={body['error']}")
    errors = body.get("errors") if isinstance(body, dict) else None
    for item in errors if isinstance(errors, list) else []:
        if not isinstance(item, dict):
            continue
        messages = item.get("message")
        for message in messages if isinstance(messages, list) else [messages]:
            if isinstance(message, str) and (
                message in _FIXED_MESSAGES or _MESSAGE_CODE.match(message)
            ):
                details.append(f"message={message}")
        detail = item.get("detail")
        for part in detail if isinstance(detail, list) else [detail]:
            if isinstance(part, str) and (_POINTER.match(part) or _FIELD_NAME.match(part)):
                details.append(f"detail={part}")
    return tuple(dict.fromkeys(details))


def retry_after_seconds(header: str | None, body: Any) -> float | None:
    """Seconds from ``Retry-After`` (delay or HTTP date) or, failing that, the 503 envelope's
    ``"detail": "Retry-After: N"``."""
    candidates = [header]
    errors = body.get("errors") if isinstance(body, dict) else None
    for item in errors if isinstance(errors, list) else []:
        detail = item.get("detail") if isinstance(item, dict) else None
        if isinstance(detail, str) and detail.startswith("Retry-After:"):
            candidates.append(detail.partition(":")[2])
    for candidate in candidates:
        seconds = parse_retry_after(candidate)
        if seconds is not None:
            return seconds
    return None


def error_for_status(
    operation: str, status_code: int, body: Any, retry_after_header: str | None
) -> PrimeroTransientError | PrimeroPermanentError:
    """The typed failure for an HTTP error status."""
    if is_transient_status(status_code):
        return PrimeroTransientError(
            PEER,
            operation,
            f"HTTP {status_code}",
            status_code=status_code,
            retry_after=retry_after_seconds(retry_after_header, body),
        )
    details = safe_details(body)
    cls = _BY_STATUS.get(status_code, PrimeroPermanentError)
    suffix = f" ({', '.join(details)})" if details else ""
    return cls(
        PEER, operation, f"HTTP {status_code}{suffix}", status_code=status_code, details=details
    )
