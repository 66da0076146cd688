"""``primero-progres simulate dtp`` runs the simulator standalone, plain or with mutual TLS."""

from __future__ import annotations

import ssl
from contextlib import AbstractContextManager
from pathlib import Path

import httpx2 as httpx
import pytest
from typer.testing import CliRunner

from primero_progres.cli import app as cli_app
from sim_process import simulate
from tls_helpers import make_tls_files

KEY = "cli-key"


def simulator(*args: str, verify: ssl.SSLContext | bool = True) -> AbstractContextManager[str]:
    """The DTP simulator in a child process, with the test's subscription key."""
    return simulate("dtp", "--subscription-key", KEY, *args, ready="/_sim/bridge", verify=verify)


def test_plain_simulator_checks_the_key_and_records() -> None:
    with simulator() as url:
        refused = httpx.post(f"{url}/ReceiveIncomingReferral", json={"id": "a#b"})
        assert refused.status_code == 401
        accepted = httpx.post(
            f"{url}/ReceiveIncomingReferral",
            json={"id": "a#b"},
            headers={"Ocp-Apim-Subscription-Key": KEY},
        )
        assert accepted.status_code == 200
        assert [m["body"] for m in httpx.get(f"{url}/_sim/messages").json()] == [{"id": "a#b"}]


def test_mtls_simulator_requires_a_client_certificate(tmp_path: Path) -> None:
    files = make_tls_files(tmp_path)
    identified = ssl.create_default_context(cafile=str(files.ca))
    identified.load_cert_chain(str(files.client_cert), str(files.client_key))
    args = ("--tls-cert", str(files.server), "--client-ca", str(files.ca))
    with simulator(*args, verify=identified) as url:
        anonymous = ssl.create_default_context(cafile=str(files.ca))
        with pytest.raises(httpx.TransportError):
            httpx.post(f"{url}/ReceiveDecisionOutgoingReferral", json={}, verify=anonymous)
        response = httpx.post(
            f"{url}/ReceiveDecisionOutgoingReferral",
            json={"status": "Pending Acknowledgement"},
            headers={"Ocp-Apim-Subscription-Key": KEY},
            verify=identified,
        )
        assert response.status_code == 200


@pytest.mark.parametrize(
    "args",
    [
        ["--tls-cert", "/nonexistent/server.pem"],
        ["--client-ca", "/nonexistent/ca.pem"],
    ],
)
def test_bad_tls_settings_exit_with_code_2(args: list[str]) -> None:
    result = CliRunner().invoke(
        cli_app, ["simulate", "dtp", "--port", "1", "--subscription-key", KEY, *args]
    )
    assert result.exit_code == 2


def test_dedupe_option_answers_a_repeated_key_with_the_first_receipt() -> None:
    headers = {"Ocp-Apim-Subscription-Key": KEY, "Idempotency-Key": "k-1"}
    with simulator("--dedupe") as url:
        assert httpx.get(f"{url}/_sim/dedupe").json() == {"enabled": True}
        first = httpx.post(f"{url}/ReceiveIncomingReferral", json={"id": "a#b"}, headers=headers)
        again = httpx.post(f"{url}/ReceiveIncomingReferral", json={"id": "a#b"}, headers=headers)
        assert again.json() == first.json()
        assert len(httpx.get(f"{url}/_sim/messages").json()) == 1
