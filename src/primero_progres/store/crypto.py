"""Encryption of personal data at rest.

Payloads are sealed with AES-256-GCM. The stored token is
``v1:<key id>:<base64url(nonce || ciphertext)>`` so keys can be rotated: the
first key of the ring encrypts, any key of the ring decrypts. The associated
data binds a token to its table and row id, so a ciphertext copied onto another
row does not decrypt.

Fingerprints (keyed content hashes) use their own key, which the store keeps sealed in the
database (``keys.py``) so that it survives a rotation; ``fingerprint`` takes it as an argument.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import re
from collections.abc import Mapping
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..errors import ConfigurationError, PermanentError

VERSION = "v1"
DEFAULT_KEY_ID = "default"
_KID = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
_ENV = "PRIMERO_PROGRES_ENCRYPTION_KEY"
#: the label earlier versions derived the fingerprint key from the current encryption key with
_FINGERPRINT_LABEL = b"primero-progres fingerprint v1"


class PayloadUnreadable(PermanentError):
    """A stored payload cannot be decrypted (unknown key id, wrong key, tampered row)."""


def generate_key() -> str:
    """32 random bytes in URL-safe base64: a value for ``PRIMERO_PROGRES_ENCRYPTION_KEY``."""
    return base64.urlsafe_b64encode(os.urandom(32)).decode("ascii")


def _decode_key(text: str, kid: str) -> bytes:
    try:
        raw = base64.urlsafe_b64decode(text.strip() + "=" * (-len(text.strip()) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ConfigurationError(
            f"{_ENV}: key {kid!r} is not URL-safe base64", reason="invalid_encryption_key"
        ) from exc
    if len(raw) != 32:
        raise ConfigurationError(
            f"{_ENV}: key {kid!r} must be 32 bytes, got {len(raw)}",
            reason="invalid_encryption_key",
        )
    return raw


def canonical_json(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


class Cipher:
    """A key ring: ``keys`` by key id, ``current`` is the one that encrypts."""

    def __init__(self, keys: Mapping[str, bytes], current: str) -> None:
        if current not in keys:
            raise ConfigurationError(
                f"{_ENV}: current key id missing", reason="invalid_encryption_key"
            )
        for kid, key in keys.items():
            if not _KID.match(kid) or len(key) != 32:
                raise ConfigurationError(
                    f"{_ENV}: bad key {kid!r}", reason="invalid_encryption_key"
                )
        self._keys = {kid: AESGCM(key) for kid, key in keys.items()}
        self.current = current
        self._derived = {
            kid: hmac.new(key, _FINGERPRINT_LABEL, hashlib.sha256).digest()
            for kid, key in keys.items()
        }

    @classmethod
    def from_config(cls, value: str) -> Cipher:
        """Parse ``KEY`` or ``kid:KEY,kid2:KEY2`` (the first is current)."""
        value = (value or "").strip()
        if not value:
            raise ConfigurationError(f"{_ENV} is not set", reason="missing_encryption_key")
        keys: dict[str, bytes] = {}
        current = None
        for part in (p.strip() for p in value.split(",") if p.strip()):
            kid, sep, text = part.partition(":")
            if not sep:
                kid, text = DEFAULT_KEY_ID, part
            if not _KID.match(kid):
                raise ConfigurationError(f"{_ENV}: bad key id", reason="invalid_encryption_key")
            if kid in keys:
                raise ConfigurationError(
                    f"{_ENV}: key id {kid!r} given twice", reason="invalid_encryption_key"
                )
            keys[kid] = _decode_key(text, kid)
            current = current or kid
        assert current is not None
        return cls(keys, current)

    @classmethod
    def throwaway(cls) -> Cipher:
        """A fresh random key, for the demo and tests only."""
        return cls.from_config(generate_key())

    @property
    def key_ids(self) -> tuple[str, ...]:
        return tuple(self._keys)

    @staticmethod
    def _aad(kid: str, context: str, row_id: str) -> bytes:
        return f"{VERSION}|{kid}|{context}|{row_id}".encode()

    def encrypt(self, obj: Any, *, context: str, row_id: str) -> str:
        """Seal a JSON-able object for one row of one table."""
        nonce = os.urandom(12)
        sealed = self._keys[self.current].encrypt(
            nonce, canonical_json(obj), self._aad(self.current, context, row_id)
        )
        token = base64.urlsafe_b64encode(nonce + sealed).decode("ascii")
        return f"{VERSION}:{self.current}:{token}"

    def decrypt(self, token: str, *, context: str, row_id: str) -> Any:
        version, _, rest = token.partition(":")
        kid, _, body = rest.partition(":")
        if version != VERSION or kid not in self._keys:
            raise PayloadUnreadable(
                f"payload of {context} {row_id} uses unknown key id {kid!r}",
                reason="unknown_key_id",
            )
        try:
            raw = base64.urlsafe_b64decode(body)
            plain = self._keys[kid].decrypt(raw[:12], raw[12:], self._aad(kid, context, row_id))
        except (InvalidTag, ValueError, binascii.Error) as exc:
            raise PayloadUnreadable(
                f"payload of {context} {row_id} does not decrypt", reason="payload_unreadable"
            ) from exc
        return json.loads(plain)

    def reseal(self, token: str, *, context: str, row_id: str) -> str | None:
        """``token`` sealed again under the current key; None if it already is."""
        if key_id(token) == self.current:
            return None
        plain = self.decrypt(token, context=context, row_id=row_id)
        return self.encrypt(plain, context=context, row_id=row_id)

    def derived_fingerprint_key(self, kid: str) -> bytes:
        """The fingerprint key earlier versions derived from key ``kid`` while it was current
        (before the store kept its own): what an existing deployment's fingerprints used."""
        return self._derived[kid]


def key_id(token: str) -> str:
    """The id of the key a token is sealed with (not checked against any ring)."""
    return token.split(":", 2)[1] if token.count(":") >= 2 else ""


def token_prefix(kid: str) -> str:
    """How every token sealed with key ``kid`` starts."""
    return f"{VERSION}:{kid}:"


def fingerprint(key: bytes, obj: Any) -> str:
    """HMAC-SHA256 of the canonical JSON: equal content, equal fingerprint; not guessable."""
    return hmac.new(key, canonical_json(obj), hashlib.sha256).hexdigest()
