"""The alert check as ``serve`` and ``worker`` run it, as real processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx2 as httpx
from prometheus_client.parser import text_string_to_metric_families

from alert_receivers import WebhookReceiver
from primero_progres import demo_data
from primero_progres.store import generate_key

SECRET = "S3CRET-IN-THE-URL"


def _env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRIMERO_PROGRES_")}
    env.update(
        PRIMERO_PROGRES_ENCRYPTION_KEY=generate_key(),
        PRIMERO_PROGRES_INBOX_TOKENS="t1",
        # peers nobody answers for (port 9, discard, unused on loopback): every call fails
        PRIMERO_PROGRES_PRIMERO_URL="http://127.0.0.1:9",
        PRIMERO_PROGRES_PRIMERO_USERNAME="bridge",
        PRIMERO_PROGRES_PRIMERO_PASSWORD="unused",
        PRIMERO_PROGRES_DTP_URL="http://127.0.0.1:9",
        PRIMERO_PROGRES_DTP_SUBSCRIPTION_KEY="unused",
        PRIMERO_PROGRES_POLL_INTERVAL_SECONDS="3600",
    )
    env.update(values)
    return env


def test_serve_announces_a_dead_letter_and_the_peer_down(
    tmp_path: Path, webhook: WebhookReceiver, child_port: int, refused_url: str
) -> None:
    port = child_port
    env = _env(
        PRIMERO_PROGRES_PORT=str(port),
        PRIMERO_PROGRES_PRIMERO_URL=refused_url,
        PRIMERO_PROGRES_DTP_URL=refused_url,
        PRIMERO_PROGRES_ALERT_URLS=webhook.url,
        PRIMERO_PROGRES_PUBLIC_URL="https://bridge.example.org",
        PRIMERO_PROGRES_ALERT_CHECK_SECONDS="0.5",
        PRIMERO_PROGRES_ALERT_PEER_DOWN_MINUTES="0.01",
        PRIMERO_PROGRES_RETRY_MAX_ATTEMPTS="1",
    )
    server = subprocess.Popen(
        [sys.executable, "-m", "primero_progres.cli", "serve"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/readyz").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline and server.poll() is None
            time.sleep(0.2)
        answer = httpx.post(
            f"{base}/api/v1/dtp/messages",
            json=demo_data.referral_message(),
            headers={"Authorization": "Bearer t1"},
        )
        assert answer.status_code == 202
        dead = "dead letter(s) in progres-referral: connection"
        down = "primero is down"
        deadline = time.monotonic() + 60
        while not (webhook.about(dead) and webhook.about(down)):
            assert time.monotonic() < deadline, [p.title for p in webhook.posts]
            time.sleep(0.2)
        samples = {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(httpx.get(f"{base}/metrics").text)
            for s in family.samples
        }
        connection = (("failure", "connection"), ("peer", "primero"))
        errors = ("primero_progres_peer_errors_total", connection)
        assert samples[errors] >= 1
        dead_letters = (
            "primero_progres_dead_letters",
            (("flow", "progres-referral"), ("reason", "connection")),
        )
        assert samples[dead_letters] == 1
    finally:
        server.send_signal(signal.SIGTERM)
        _, stderr = server.communicate(timeout=60)
    assert server.returncode == 0
    assert b'"alert.sent"' in stderr or b"alert.sent" in stderr
    [post] = webhook.about(dead)
    assert "https://bridge.example.org/admin/dead-letters?flow=progres-referral" in post.text


def test_serve_and_worker_refuse_an_unusable_alert_url(tmp_path: Path) -> None:
    for command in ("serve", "worker"):
        result = subprocess.run(
            [sys.executable, "-m", "primero_progres.cli", command],
            cwd=tmp_path,
            env=_env(PRIMERO_PROGRES_ALERT_URLS=f"nosuchservice://{SECRET}@example.org"),
            capture_output=True,
            timeout=60,
        )
        assert result.returncode == 2, command
        assert b"PRIMERO_PROGRES_ALERT_URLS: URL #1 (nosuchservice://)" in result.stderr
        assert SECRET.encode() not in result.stderr + result.stdout
        assert not (tmp_path / "primero-progres.db").exists()
