"""Guards that keep personal data out of the clear-text columns (refs, audit, ledger detail).

Like the log redactor, a key that is not on the ID/status allow-list keeps its
place but its value becomes ``"[redacted]"``: the record stays useful, nothing
personal is stored, and the redaction shows up in review.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..logging import REDACTED, is_safe_key

_EXTRA_SAFE = frozenset(
    {
        "index",
        "fields",
        "direction",
        "dead_reason",
        # operator actions: the account acted on, its role, where a start point came from
        "account",
        "role",
        "previous_role",
        "previous_cursor",
        "source",
        "from_beginning",
        "full_scan",
    }
)
_MAX_VALUE = 200


def is_safe_id_key(key: str) -> bool:
    return is_safe_key(key) or key in _EXTRA_SAFE or key.endswith("_numbers")


def safe_ids(values: Mapping[str, Any], *, what: str) -> dict[str, Any]:
    """Keep allow-listed keys with short scalar (or list of scalar) values; redact the rest."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if not is_safe_id_key(key):
            out[key] = REDACTED
        elif isinstance(value, list | tuple):
            out[key] = [v if _scalar(v) else REDACTED for v in value]
        else:
            out[key] = value if _scalar(value) else REDACTED
    return out


def _scalar(value: Any) -> bool:
    if isinstance(value, str):
        return len(value) <= _MAX_VALUE
    return value is None or isinstance(value, bool | int | float)
