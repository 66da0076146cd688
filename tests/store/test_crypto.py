"""AES-256-GCM at rest: round trip, row binding, rotation, bad keys, keyed fingerprints."""

from __future__ import annotations

import base64

import pytest

from primero_progres.errors import ConfigurationError
from primero_progres.store import Cipher, PayloadUnreadable, generate_key


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
)
def test_bad_keys_are_configuration_errors_naming_the_variable(value: str) -> None:
    with pytest.raises(ConfigurationError, match="PRIMERO_PROGRES_ENCRYPTION_KEY"):
        Cipher.from_config(value)


def test_fingerprints_are_keyed_and_order_independent() -> None:
    key = generate_key()
    one, same = Cipher.from_config(key), Cipher.from_config(key)
    assert one.fingerprint({"a": 1, "b": [1, 2]}) == same.fingerprint({"b": [1, 2], "a": 1})
    assert one.fingerprint({"a": 1}) != one.fingerprint({"a": 2})
    assert one.fingerprint({"a": 1}) != Cipher.throwaway().fingerprint({"a": 1})
    assert len(one.fingerprint({})) == 64
