"""Guards that keep personal data out of the clear-text columns (refs, audit, ledger detail)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..logging import is_safe_key

_MAX_VALUE = 200


def safe_ids(values: Mapping[str, Any], *, what: str) -> dict[str, Any]:
    """Return ``values`` if every key is an allow-listed ID/status key and every value a
    short scalar (or list of them); raise ``ValueError`` otherwise (a programming error)."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if not (is_safe_key(key) or key.endswith("_numbers")):
            raise ValueError(f"{what}: key {key!r} is not on the ID allow-list")
        if isinstance(value, list | tuple):
            if not all(_scalar(v) for v in value):
                raise ValueError(f"{what}: {key!r} must be a list of scalars")
            out[key] = list(value)
        elif _scalar(value):
            out[key] = value
        else:
            raise ValueError(f"{what}: {key!r} must be a scalar")
    return out


def _scalar(value: Any) -> bool:
    if isinstance(value, str):
        return len(value) <= _MAX_VALUE
    return value is None or isinstance(value, bool | int | float)
