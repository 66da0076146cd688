"""Keys and IDs that always fit their columns.

A job key or a ledger key is built from IDs a peer chose (an intervention number, an org
referral id), and a peer may send one of any length: on PostgreSQL a value over its
``VARCHAR`` limit fails the whole transaction (the valid neighbours of a message with it).
A value that is too long is stored as a readable prefix and the SHA-256 of the whole, so
it stays unique and the same value always gives the same key.
"""

from __future__ import annotations

import hashlib

from .schema import ID_LENGTH, KEY_LENGTH

_SEPARATOR = "~"


def fit(value: str, limit: int) -> str:
    """``value`` itself when it fits in ``limit`` characters, else a prefix and its hash."""
    if len(value) <= limit:
        return value
    digest = hashlib.sha256(value.encode()).hexdigest()
    return f"{value[: limit - len(digest) - len(_SEPARATOR)]}{_SEPARATOR}{digest}"


def fit_key(key: str) -> str:
    return fit(key, KEY_LENGTH)


def fit_id(value: str) -> str:
    return fit(value, ID_LENGTH)
