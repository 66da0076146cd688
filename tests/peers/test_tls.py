"""TLS contexts: bad local certificates are ConfigurationErrors; PKCS#12 leaves no key on disk."""

from __future__ import annotations

import ssl
import tempfile
from pathlib import Path

import pytest

from primero_progres.errors import ConfigurationError
from primero_progres.peers.tls import client_ssl_context, server_ssl_context, uvicorn_tls_options
from tls_helpers import PKCS12_PASSWORD, TLSFiles, make_tls_files

MISSING = Path("/nonexistent/file.pem")


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TLSFiles:
    return make_tls_files(tmp_path_factory.mktemp("tls"))


def test_default_client_context_verifies_the_server() -> None:
    context = client_ssl_context()
    assert context.verify_mode is ssl.CERT_REQUIRED
    assert context.check_hostname is True


def test_pkcs12_identity_leaves_no_file_behind(
    tls: TLSFiles, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    client_ssl_context(pkcs12_file=tls.client_pkcs12, pkcs12_password=PKCS12_PASSWORD, ca=tls.ca)
    assert list(scratch.iterdir()) == []


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"client_cert": MISSING, "client_key": MISSING}, "tls_file_missing"),
        ({"ca": MISSING}, "tls_file_missing"),
        ({"pkcs12_file": MISSING, "pkcs12_password": "x"}, "tls_file_missing"),
        ({"client_key": Path("client.key")}, "tls_key_without_cert"),
        ({"pkcs12_password": "x"}, "tls_password_without_pkcs12"),
    ],
)
def test_missing_or_incomplete_settings(kwargs: dict[str, Path | str], reason: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        client_ssl_context(**kwargs)  # type: ignore[arg-type]
    assert caught.value.reason == reason


def test_pem_and_pkcs12_together_are_ambiguous(tls: TLSFiles) -> None:
    with pytest.raises(ConfigurationError) as caught:
        client_ssl_context(
            client_cert=tls.client_cert, client_key=tls.client_key, pkcs12_file=tls.client_pkcs12
        )
    assert caught.value.reason == "tls_ambiguous_identity"


def test_key_of_another_certificate_is_refused(tls: TLSFiles) -> None:
    with pytest.raises(ConfigurationError) as caught:
        client_ssl_context(client_cert=tls.client_cert, client_key=tls.stranger_key)
    assert caught.value.reason == "tls_bad_cert_or_key"


def test_certificate_without_its_key_is_refused(tls: TLSFiles) -> None:
    with pytest.raises(ConfigurationError) as caught:
        client_ssl_context(client_cert=tls.client_cert)
    assert caught.value.reason == "tls_bad_cert_or_key"


def test_garbage_ca_bundle_is_refused(tmp_path: Path) -> None:
    garbage = tmp_path / "ca.pem"
    garbage.write_text("not a certificate\n")
    with pytest.raises(ConfigurationError) as caught:
        client_ssl_context(ca=garbage)
    assert caught.value.reason == "tls_bad_ca"


@pytest.mark.parametrize("password", [None, "wrong-password-1"])
def test_pkcs12_with_wrong_or_no_password_is_refused(tls: TLSFiles, password: str | None) -> None:
    with pytest.raises(ConfigurationError) as caught:
        client_ssl_context(pkcs12_file=tls.client_pkcs12, pkcs12_password=password)
    assert caught.value.reason == "tls_bad_pkcs12"


def test_pem_file_given_as_pkcs12_is_refused(tls: TLSFiles) -> None:
    with pytest.raises(ConfigurationError) as caught:
        client_ssl_context(pkcs12_file=tls.client_cert, pkcs12_password="x")
    assert caught.value.reason == "tls_bad_pkcs12"


def test_server_context_requires_client_certificates_with_a_client_ca(tls: TLSFiles) -> None:
    assert server_ssl_context(cert=tls.server, client_ca=tls.ca).verify_mode is ssl.CERT_REQUIRED
    assert server_ssl_context(cert=tls.server).verify_mode is ssl.CERT_NONE


def test_uvicorn_options_for_mutual_tls(tls: TLSFiles) -> None:
    assert uvicorn_tls_options(cert=tls.server, client_ca=tls.ca) == {
        "ssl_certfile": str(tls.server),
        "ssl_ca_certs": str(tls.ca),
        "ssl_cert_reqs": ssl.CERT_REQUIRED,
    }
    assert uvicorn_tls_options(cert=tls.client_cert, key=tls.client_key) == {
        "ssl_certfile": str(tls.client_cert),
        "ssl_keyfile": str(tls.client_key),
    }


def test_uvicorn_options_check_the_files(tls: TLSFiles) -> None:
    with pytest.raises(ConfigurationError):
        uvicorn_tls_options(cert=MISSING)
    with pytest.raises(ConfigurationError):
        uvicorn_tls_options(cert=tls.server, client_ca=MISSING)
