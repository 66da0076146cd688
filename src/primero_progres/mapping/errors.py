"""Typed mapping errors.

A mapping error says *which* fields are wrong, never *what* they hold: its
``message`` and ``fields`` are built only from field names and fixed texts,
because they reach logs, the audit trail, operator views and DTP.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..profiles.schema import INVALID_DATA, MISSING_FIELDS, SERVICE_TYPE

UNKNOWN_CODE = "unknown_code"
#: an ID (intervention number, individual number...) longer than ``MAX_ID_LENGTH``
ID_TOO_LONG = "id_too_long"
#: no proGres or Primero ID is this long; the bridge keys its ledger on them
MAX_ID_LENGTH = 128
UNREADABLE = "unreadable"
UNKNOWN_REFERRAL = "unknown_referral"
AMBIGUOUS_REFERRAL = "ambiguous_referral"

__all__ = [
    "AMBIGUOUS_REFERRAL",
    "ID_TOO_LONG",
    "INVALID_DATA",
    "KINDS",
    "MAX_ID_LENGTH",
    "MISSING_FIELDS",
    "SERVICE_TYPE",
    "UNKNOWN_CODE",
    "UNKNOWN_REFERRAL",
    "UNREADABLE",
    "MappingError",
    "invalid",
    "missing",
    "too_long",
    "unknown_code",
    "unreadable",
]

KINDS = frozenset(
    {
        MISSING_FIELDS,
        INVALID_DATA,
        SERVICE_TYPE,
        UNKNOWN_CODE,
        UNREADABLE,
        UNKNOWN_REFERRAL,
        AMBIGUOUS_REFERRAL,
        ID_TOO_LONG,
    }
)


@dataclass(frozen=True, slots=True)
class MappingError:
    """Why a payload (or one item of it) cannot be mapped."""

    kind: str
    message: str
    fields: tuple[str, ...] = field(default=())

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "message": self.message, "fields": list(self.fields)}


def missing(fields: list[str] | tuple[str, ...]) -> MappingError:
    return MappingError(MISSING_FIELDS, "required fields are missing", tuple(fields))


def invalid(fields: list[str] | tuple[str, ...], what: str = "invalid values") -> MappingError:
    return MappingError(INVALID_DATA, what, tuple(fields))


def too_long(fields: list[str] | tuple[str, ...]) -> MappingError:
    return MappingError(
        ID_TOO_LONG, f"IDs longer than {MAX_ID_LENGTH} characters", tuple(fields)
    )


def unknown_code(fields: list[str] | tuple[str, ...]) -> MappingError:
    return MappingError(UNKNOWN_CODE, "code not in the profile's table", tuple(fields))


def unreadable(what: str) -> MappingError:
    return MappingError(UNREADABLE, what, ())
