"""``primero-progres serve`` starts on the embedded default and its inbox answers."""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest

from primero_progres.store import generate_key
from tls_helpers import make_tls_files


def _cli(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "primero_progres.cli", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRIMERO_PROGRES_")}
    env.update(values)
    return env


def _serve_env(port: int) -> dict[str, str]:
    return _env(
        PRIMERO_PROGRES_ENCRYPTION_KEY=generate_key(),
        PRIMERO_PROGRES_INBOX_TOKENS="t1",
        PRIMERO_PROGRES_PORT=str(port),
        # peers that are not there: the flows' jobs just wait and retry
        PRIMERO_PROGRES_PRIMERO_URL="http://127.0.0.1:9",
        PRIMERO_PROGRES_PRIMERO_USERNAME="bridge",
        PRIMERO_PROGRES_PRIMERO_PASSWORD="unused",
        PRIMERO_PROGRES_DTP_URL="http://127.0.0.1:9",
        PRIMERO_PROGRES_DTP_SUBSCRIPTION_KEY="unused",
        PRIMERO_PROGRES_POLL_INTERVAL_SECONDS="3600",
    )


def _wait_ready(server: subprocess.Popen[bytes], url: str, **client: Any) -> None:
    deadline = time.monotonic() + 60
    while True:
        assert server.poll() is None, server.communicate()[1].decode()
        try:
            if httpx.get(url, **client).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "serve did not become ready"
        time.sleep(0.1)


def _inbox_round(tmp_path: Path, env: dict[str, str], port: int) -> None:
    """Serve, accept one message and its duplicate, refuse a token-less one, stop on SIGINT;
    then ``messages`` lists what was accepted."""
    server = _cli("serve", cwd=tmp_path, env=env)
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_ready(server, f"{base}/readyz")
        message = {
            "request_type": "PrimeroOutgoingReferral",
            "interventions": [{"progres_interventionnumber": "811-23-PRTITV-1000095"}],
        }
        accepted = httpx.post(
            f"{base}/api/v1/dtp/messages", json=message, headers={"Authorization": "Bearer t1"}
        )
        assert accepted.status_code == 202
        again = httpx.post(f"{base}/api/v1/dtp/messages", json=message, headers={"X-API-Key": "t1"})
        assert again.json() == {"status": "duplicate", "message_id": accepted.json()["message_id"]}
        assert httpx.post(f"{base}/api/v1/dtp/messages", json=message).status_code == 401
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=30)
    assert server.returncode == 0, server.communicate()[1].decode()
    listing = subprocess.run(
        [sys.executable, "-m", "primero_progres.cli", "messages"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        check=True,
    )
    assert b"811-23-PRTITV-1000095" in listing.stdout


def test_serve_on_the_default_sqlite_file(tmp_path: Path, child_port: int) -> None:
    """The worker side runs in a thread of its own here (SQLite)."""
    _inbox_round(tmp_path, _serve_env(child_port), child_port)
    assert (tmp_path / "primero-progres.db").exists()


def test_serve_on_postgresql(tmp_path: Path, postgres_url: str, child_port: int) -> None:
    """On PostgreSQL the worker shares the inbox's event loop; it starts and stops the same."""
    env = {**_serve_env(child_port), "PRIMERO_PROGRES_DATABASE_URL": postgres_url}
    _inbox_round(tmp_path, env, child_port)
    assert not (tmp_path / "primero-progres.db").exists()


def test_serve_refuses_to_start_without_a_key(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "primero_progres.cli", "serve"],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert b"PRIMERO_PROGRES_ENCRYPTION_KEY" in result.stderr
    assert not (tmp_path / "primero-progres.db").exists()


def test_serve_with_built_in_tls_answers_the_inbox_over_https(
    tmp_path: Path, child_port: int
) -> None:
    tls = make_tls_files(tmp_path / "tls")
    port = child_port
    env = _serve_env(port)
    # the certificate and key as separate files, given on the command line
    key_file, cert_file = tmp_path / "server.key", tmp_path / "server.crt"
    pem = tls.server.read_text()
    cut = pem.index("-----BEGIN CERTIFICATE-----")
    key_file.write_text(pem[:cut])
    cert_file.write_text(pem[cut:])
    server = _cli(
        "serve", "--tls-cert", str(cert_file), "--tls-key", str(key_file), cwd=tmp_path, env=env
    )
    trusted = ssl.create_default_context(cafile=str(tls.ca))
    base = f"https://127.0.0.1:{port}"
    try:
        _wait_ready(server, f"{base}/readyz", verify=trusted)
        message = {
            "request_type": "PrimeroOutgoingReferral",
            "interventions": [{"progres_interventionnumber": "811-23-PRTITV-1000095"}],
        }
        answer = httpx.post(
            f"{base}/api/v1/dtp/messages",
            json=message,
            headers={"Authorization": "Bearer t1"},
            verify=trusted,
        )
        assert (answer.status_code, answer.json()["status"]) == (202, "queued")
        with pytest.raises(httpx.TransportError):  # no plain HTTP on the TLS port
            httpx.post(f"http://127.0.0.1:{port}/api/v1/dtp/messages", json=message)
        with pytest.raises(httpx.TransportError):  # a client that does not trust the CA
            httpx.get(f"{base}/healthz")
        probe = subprocess.run(
            [sys.executable, "-m", "primero_progres.cli", "healthcheck"],
            env={**env, "PRIMERO_PROGRES_TLS_CERT": str(cert_file)},
            capture_output=True,
            timeout=60,
        )
        assert probe.returncode == 0, probe.stderr.decode()
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=30)
    down = subprocess.run(
        [sys.executable, "-m", "primero_progres.cli", "healthcheck"],
        env={**env, "PRIMERO_PROGRES_TLS_CERT": str(cert_file)},
        capture_output=True,
        timeout=60,
    )
    assert down.returncode == 1


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"PRIMERO_PROGRES_TLS_CERT": "absent.pem"}, b"absent.pem"),
        ({"PRIMERO_PROGRES_TLS_KEY": "server.key"}, b"PRIMERO_PROGRES_TLS_KEY"),
    ],
)
def test_serve_refuses_unusable_tls_settings(
    tmp_path: Path, settings: dict[str, str], named: bytes
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "primero_progres.cli", "serve"],
        cwd=tmp_path,
        env=_env(PRIMERO_PROGRES_ENCRYPTION_KEY=generate_key(), **settings),
        capture_output=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert named in result.stderr
    assert not (tmp_path / "primero-progres.db").exists()
