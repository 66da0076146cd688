"""AES-256-GCM at rest: round trip, row binding, rotation, re-sealing, bad keys, keyed
fingerprints."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

import pytest

from primero_progres.errors import ConfigurationError
from primero_progres.store import Cipher, PayloadUnreadable, generate_key
from primero_progres.store.crypto import fingerprint, key_id


def test_round_trip_and_token_format() -> None:
    cipher = Cipher.from_config(generate_key())
    token = cipher.encrypt({"name": "Given E"}, context="jobs", row_id="r1")
    assert token.startswith("v1:default:")
    assert "Given" not in token
    assert cipher.decrypt(token, context="jobs", row_id="r1") == {"name": "Given E"}


def test_a_token_is_bound_to_its_row_and_table() -> None:
    cipher = Cipher.throwaway()
    token = cipher.encrypt({"n": 1}, context="jobs", row_id="r1")
    with pytest.raises(PayloadUnreadable):
        cipher.decrypt(token, context="jobs", row_id="r2")
    with pytest.raises(PayloadUnreadable):
        cipher.decrypt(token, context="inbound_messages", row_id="r1")


def test_rotation_new_key_encrypts_old_key_still_decrypts() -> None:
    old, new = generate_key(), generate_key()
    before = Cipher.from_config(f"k1:{old}")
    token = before.encrypt({"n": 1}, context="jobs", row_id="r")
    after = Cipher.from_config(f"k2:{new},k1:{old}")
    assert after.current == "k2"
    assert after.decrypt(token, context="jobs", row_id="r") == {"n": 1}
    assert after.encrypt({"n": 2}, context="jobs", row_id="r").startswith("v1:k2:")
    with pytest.raises(PayloadUnreadable, match="unknown key id"):
        Cipher.from_config(f"k2:{new}").decrypt(token, context="jobs", row_id="r")


def test_wrong_key_does_not_decrypt() -> None:
    token = Cipher.throwaway().encrypt({"n": 1}, context="jobs", row_id="r")
    with pytest.raises(PayloadUnreadable, match="does not decrypt"):
        Cipher.throwaway().decrypt(token, context="jobs", row_id="r")


@pytest.mark.parametrize(
    "value",
    [
        "",
        "not base64 !!!",
        base64.urlsafe_b64encode(b"short").decode(),
        f"a:{generate_key()},a:{generate_key()}",
        f"bad id:{generate_key()}",
    ],
    # ids that do not hold the random keys: pytest-xdist's workers must collect the same ids
    ids=["empty", "not-base64", "too-short", "duplicate-id", "id-with-a-space"],
)
def test_bad_keys_are_configuration_errors_naming_the_variable(value: str) -> None:
    with pytest.raises(ConfigurationError, match="PRIMERO_PROGRES_ENCRYPTION_KEY"):
        Cipher.from_config(value)


def test_fingerprints_are_keyed_and_order_independent() -> None:
    key, other = os.urandom(32), os.urandom(32)
    assert fingerprint(key, {"a": 1, "b": [1, 2]}) == fingerprint(key, {"b": [1, 2], "a": 1})
    assert fingerprint(key, {"a": 1}) != fingerprint(key, {"a": 2})
    assert fingerprint(key, {"a": 1}) != fingerprint(other, {"a": 1})
    assert len(fingerprint(key, {})) == 64
    assert fingerprint(key, {"a": 1}) == hmac.new(key, b'{"a":1}', hashlib.sha256).hexdigest()


def test_the_fingerprint_key_earlier_versions_used_is_derived_from_each_ring_key() -> None:
    old, new = generate_key(), generate_key()
    ring = Cipher.from_config(f"k2:{new},k1:{old}")
    label = b"primero-progres fingerprint v1"
    raw_old = base64.urlsafe_b64decode(old)
    assert ring.derived_fingerprint_key("k1") == hmac.new(raw_old, label, hashlib.sha256).digest()
    assert ring.derived_fingerprint_key("k2") != ring.derived_fingerprint_key("k1")


def test_reseal_moves_a_token_onto_the_current_key_only_if_needed() -> None:
    old, new = generate_key(), generate_key()
    token = Cipher.from_config(f"k1:{old}").encrypt({"n": 1}, context="jobs", row_id="r")
    ring = Cipher.from_config(f"k2:{new},k1:{old}")
    resealed = ring.reseal(token, context="jobs", row_id="r")
    assert resealed is not None and key_id(resealed) == "k2" and key_id(token) == "k1"
    assert Cipher.from_config(f"k2:{new}").decrypt(resealed, context="jobs", row_id="r") == {"n": 1}
    assert ring.reseal(resealed, context="jobs", row_id="r") is None
    with pytest.raises(PayloadUnreadable):
        ring.reseal(token, context="jobs", row_id="another row")
