"""Small readers for DTP and Primero values, shared by the transforms.

Each returns the value or a sentinel, never raises on odd input: payloads
are untrusted JSON.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

from .errors import MappingError, invalid, missing, unreadable

ABSENT: Any = object()
"""Returned for a value of the wrong type, so callers can report ``invalid_data``."""

_PARAGRAPH = re.compile(r"</?p\b[^>]*>", re.IGNORECASE)


def text(value: Any) -> str | None:
    """A non-empty string, ``None`` when absent or blank, ``ABSENT`` for another type."""
    if value is None:
        return None
    if isinstance(value, str):
        return value if value.strip() else None
    return ABSENT


def lookup_name(value: Any) -> str | None:
    """The ``Name`` of a DTP lookup object (a plain string is taken as the name)."""
    if isinstance(value, Mapping):
        return text(value.get("Name"))
    return text(value)


def code(value: Any) -> str | None:
    """An option-set code as a string (DTP sends ``"125080000"``, sometimes a number)."""
    if isinstance(value, bool):
        return ABSENT
    if isinstance(value, int):
        return str(value)
    return text(value)


def date_part(value: Any) -> date | None:
    """The calendar date of an ISO date or date-time, ``ABSENT`` when unparsable."""
    if value is None:
        return None
    if not isinstance(value, str) or len(value) < 10:
        return ABSENT
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return ABSENT


def whole_years(born: date, today: date) -> int:
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


def strip_paragraphs(value: str) -> str:
    return _PARAGRAPH.sub("", value).strip()


def timestamp(value: Any) -> datetime | None:
    """An aware datetime from Primero's ISO-8601 (naive is taken as UTC)."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def unwrap(payload: Any) -> Any:
    """The message inside ``{"data": {...}}`` (some DTP versions wrap it), else the payload."""
    if isinstance(payload, Mapping) and isinstance(payload.get("data"), Mapping):
        return payload["data"]
    return payload


def read_interventions(
    payload: Any, request_type: str, what: str
) -> tuple[Any, list[Any]] | MappingError:
    """The ``request_type`` and ``interventions`` of a DTP message (bare or wrapped).

    Both proGres messages share this envelope; ``what`` names the expected one in errors.
    """
    body = unwrap(payload)
    if not isinstance(body, Mapping):
        return unreadable("the message is not a JSON object")
    found = body.get("request_type")
    if found is not None and found != request_type:
        return invalid(["request_type"], f"not a proGres {what} message")
    items = body.get("interventions")
    if items is None:
        return missing(["interventions"])
    if not isinstance(items, list):
        return invalid(["interventions"], "interventions is not a list")
    return found, items
