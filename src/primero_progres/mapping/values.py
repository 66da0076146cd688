"""Small readers for DTP and Primero values, shared by the transforms.

Each returns the value or a sentinel, never raises on odd input: payloads
are untrusted JSON.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import Enum
from typing import Any, Final, Literal

from .errors import MappingError, invalid, missing, unreadable


class _Absent(Enum):
    ABSENT = "absent"


ABSENT: Final = _Absent.ABSENT
"""Returned for a value of the wrong type, so callers can report ``invalid_data``."""
Absent = Literal[_Absent.ABSENT]

_PARAGRAPH = re.compile(r"</?p\b[^>]*>", re.IGNORECASE)


def text(value: Any) -> str | Absent | None:
    """A non-empty string, ``None`` when absent or blank, ``ABSENT`` for another type."""
    if value is None:
        return None
    if isinstance(value, str):
        return value if value.strip() else None
    return ABSENT


def lookup_name(value: Any) -> str | Absent | None:
    """The ``Name`` of a DTP lookup object (a plain string is taken as the name)."""
    if isinstance(value, str):
        return value if value.strip() else None
    if isinstance(value, Mapping):
        return text(value.get("Name"))
    return text(value)


def code(value: Any) -> str | Absent | None:
    """An option-set code as a string (DTP sends ``"125080000"``, sometimes a number)."""
    if isinstance(value, bool):
        return ABSENT
    if isinstance(value, int):
        return str(value)
    return text(value)


def date_part(value: Any) -> date | Absent | None:
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
    """The message inside ``{"data": {...}, "__query_params": ...}`` (some DTP versions wrap
    it), else the payload itself; a payload with its own ``request_type`` is never unwrapped.

    The one reader of DTP's envelope: the inbox, the flows and the ``map`` dry run use it.
    """
    if (
        isinstance(payload, Mapping)
        and "request_type" not in payload
        and isinstance(payload.get("data"), Mapping)
    ):
        return payload["data"]
    return payload


@dataclass(frozen=True, slots=True)
class ProgresMessage:
    """A readable proGres message (referral or decision): its raw interventions, in order."""

    request_type: str | None
    interventions: list[Any]


def read_interventions(payload: Any, request_type: str, what: str) -> ProgresMessage | MappingError:
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
    return ProgresMessage(None if found is None else request_type, list(items))
