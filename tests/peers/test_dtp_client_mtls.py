"""DTPClient over real mutual TLS against the DTP simulator, with certificates made by trustme.

A client the gateway refuses at the TLS layer gets a *transient* error: with
TLS 1.3 the refusal arrives after the client's handshake completed, as a reset
connection that cannot be told apart from a network fault (see peers/dtp.py).
A server the client does not trust is *permanent*: retrying cannot fix it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from primero_progres.errors import ConfigurationError
from primero_progres.peers.dtp import DTPClient
from primero_progres.peers.errors import PermanentPeerError, TransientPeerError
from primero_progres.peers.tls import uvicorn_tls_options
from primero_progres.sim.common import ServerThread, serve_in_thread
from primero_progres.sim.dtp import DTPState, create_app
from tls_helpers import PKCS12_PASSWORD, TLSFiles, make_tls_files

KEY = "mtls-key"
DECISION = {"status": "Pending Acknowledgement", "case_id": "c-1"}


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TLSFiles:
    return make_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def gateway(tls: TLSFiles) -> Iterator[tuple[ServerThread, DTPState]]:
    app = create_app(subscription_key=KEY)
    options = uvicorn_tls_options(cert=tls.server, client_ca=tls.ca)
    with serve_in_thread(app, timeout_graceful_shutdown=1, **options) as server:
        yield server, app.state.dtp


def _client(server: ServerThread, tls: TLSFiles, **options: Any) -> DTPClient:
    """A client of ``server`` with the right subscription key, trusting the test CA;
    ``options`` choose the identity it presents or override those defaults."""
    return DTPClient(server.url, **{"subscription_key": KEY, "ca": tls.ca, **options})


async def test_right_certificate_and_key_is_200(
    gateway: tuple[ServerThread, DTPState], tls: TLSFiles
) -> None:
    server, state = gateway
    assert server.url.startswith("https://")
    async with _client(
        server, tls, client_cert=tls.client_cert, client_key=tls.client_key
    ) as client:
        receipt = await client.send_decision(DECISION)
    assert receipt.status_code == 200
    assert [m.body for m in state.messages] == [DECISION]


async def test_combined_pem_is_200(gateway: tuple[ServerThread, DTPState], tls: TLSFiles) -> None:
    server, _ = gateway
    async with _client(server, tls, client_cert=tls.client_combined) as client:
        assert (await client.send_referral({"id": "x#y"})).status_code == 200


async def test_pkcs12_certificate_is_200(
    gateway: tuple[ServerThread, DTPState], tls: TLSFiles
) -> None:
    server, state = gateway
    async with _client(
        server, tls, pkcs12=tls.client_pkcs12, pkcs12_password=PKCS12_PASSWORD
    ) as client:
        assert (await client.send_referral({"id": "x#y"})).status_code == 200
    assert [m.endpoint for m in state.messages] == ["ReceiveIncomingReferral"]


async def test_right_certificate_wrong_key_is_permanent_401(
    gateway: tuple[ServerThread, DTPState], tls: TLSFiles
) -> None:
    server, state = gateway
    async with _client(
        server,
        tls,
        subscription_key="not-" + KEY,
        client_cert=tls.client_cert,
        client_key=tls.client_key,
    ) as client:
        with pytest.raises(PermanentPeerError) as caught:
            await client.send_decision(DECISION)
    assert caught.value.status_code == 401
    assert state.messages == []


async def test_no_client_certificate_is_refused(
    gateway: tuple[ServerThread, DTPState], tls: TLSFiles
) -> None:
    server, state = gateway
    async with _client(server, tls) as client:
        with pytest.raises(TransientPeerError) as caught:
            await client.send_decision(DECISION)
    assert caught.value.reason == "connection"
    assert caught.value.status_code is None
    assert state.messages == []


async def test_certificate_from_another_ca_is_refused(
    gateway: tuple[ServerThread, DTPState], tls: TLSFiles
) -> None:
    server, state = gateway
    async with _client(
        server, tls, client_cert=tls.stranger_cert, client_key=tls.stranger_key
    ) as client:
        with pytest.raises(TransientPeerError):
            await client.send_decision(DECISION)
    assert state.messages == []


async def test_untrusted_server_is_permanent(
    gateway: tuple[ServerThread, DTPState], tls: TLSFiles
) -> None:
    server, state = gateway
    async with _client(
        server, tls, ca=None, client_cert=tls.client_cert, client_key=tls.client_key
    ) as client:
        with pytest.raises(PermanentPeerError) as caught:
            await client.send_decision(DECISION)
    assert caught.value.reason == "tls_server_untrusted"
    assert caught.value.status_code is None
    assert state.messages == []


@pytest.mark.parametrize(
    "bad",
    [
        {"client_cert": Path("/nonexistent/client.pem"), "client_key": Path("/nonexistent/k")},
        {"pkcs12": Path("/nonexistent/client.p12"), "pkcs12_password": "x"},
        {"ca": Path("/nonexistent/ca.pem")},
    ],
)
def test_bad_certificate_paths_fail_at_construction(bad: dict[str, Path]) -> None:
    with pytest.raises(ConfigurationError):
        DTPClient("https://dtp.example.org/api", subscription_key=KEY, **bad)  # type: ignore[arg-type]


def test_wrong_pkcs12_password_fails_at_construction(tls: TLSFiles) -> None:
    with pytest.raises(ConfigurationError) as caught:
        DTPClient(
            "https://dtp.example.org/api",
            subscription_key=KEY,
            pkcs12=tls.client_pkcs12,
            pkcs12_password="bad-pfx-password-42",
        )
    assert caught.value.reason == "tls_bad_pkcs12"
    assert "bad-pfx-password-42" not in str(caught.value)
