"""``primero-progres serve`` starts on the embedded default and its inbox answers; a
``primero-progres worker`` serves its own /metrics when told to."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest

from primero_progres import demo_data
from primero_progres.sim.common import listening_socket
from primero_progres.store import Cipher, Store, generate_key
from sim_process import simulate
from tls_helpers import make_tls_files


def _cli_run(
    *args: str, cwd: Path, env: dict[str, str], timeout: float = 120, check: bool = False
) -> subprocess.CompletedProcess[bytes]:
    """``primero-progres <args>`` to its end, its output captured."""
    return subprocess.run(
        [sys.executable, "-m", "primero_progres.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        timeout=timeout,
        check=check,
    )


def _cli(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "primero_progres.cli", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _logged(log_file: Path, env: dict[str, str], *command: str) -> subprocess.Popen[bytes]:
    """``python <command>`` in the log's folder, its output in ``log_file``."""
    with log_file.open("wb") as log:
        return subprocess.Popen(
            [sys.executable, *command],
            cwd=log_file.parent,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def _peers_env(database_url: str, key: str, primero: str, dtp: str, **more: str) -> dict[str, str]:
    """A bridge process's settings for these simulators: their credentials, no polls, quick
    claims."""
    return _env(
        PRIMERO_PROGRES_DATABASE_URL=database_url,
        PRIMERO_PROGRES_ENCRYPTION_KEY=key,
        PRIMERO_PROGRES_PRIMERO_URL=primero,
        PRIMERO_PROGRES_PRIMERO_USERNAME=demo_data.API_USER,
        PRIMERO_PROGRES_PRIMERO_PASSWORD=demo_data.API_PASSWORD,
        PRIMERO_PROGRES_DTP_URL=dtp,
        PRIMERO_PROGRES_DTP_SUBSCRIPTION_KEY=demo_data.DTP_SUBSCRIPTION_KEY,
        PRIMERO_PROGRES_POLL_INTERVAL_SECONDS="3600",
        PRIMERO_PROGRES_WORKER_POLL_SECONDS="0.2",
        **more,
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
    listing = _cli_run("messages", cwd=tmp_path, env=env, check=True)
    assert b"811-23-PRTITV-1000095" in listing.stdout


def test_serve_on_the_default_sqlite_file(tmp_path: Path, child_port: int) -> None:
    """The worker side runs in a thread of its own here (SQLite)."""
    _inbox_round(tmp_path, _serve_env(child_port), child_port)
    assert (tmp_path / "primero-progres.db").exists()


def test_serve_on_postgresql(tmp_path: Path, postgres_url: str, child_port: int) -> None:
    """On PostgreSQL the worker side is a child process; it starts and stops the same."""
    env = {**_serve_env(child_port), "PRIMERO_PROGRES_DATABASE_URL": postgres_url}
    _inbox_round(tmp_path, env, child_port)
    assert not (tmp_path / "primero-progres.db").exists()


def _worker_processes(serve: subprocess.Popen[bytes]) -> list[int]:
    """The pids of ``serve``'s worker processes (its spawned children), from /proc."""
    found = []
    for pid in _children(serve):
        with contextlib.suppress(FileNotFoundError):  # ended meanwhile
            if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(pid)
    return found


def _children(serve: subprocess.Popen[bytes]) -> list[int]:
    """Every child of ``serve`` not yet reaped (zombies included)."""
    text = Path(f"/proc/{serve.pid}/task/{serve.pid}/children").read_text()
    return [int(pid) for pid in text.split()]


def _gone(pid: int) -> bool:
    """The process has ended (exited, whether or not whoever adopted it has reaped it yet)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "\nState:\tZ" in status


def _niceness(pid: int) -> int:
    # after the name: state is fields[0], nice fields[16]
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[16])


def _wait_until(what: str, check: Any, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, what
        time.sleep(0.1)
    return found


def _one_worker_process(serve: subprocess.Popen[bytes]) -> int:
    [pid] = _wait_until("no worker process", lambda: _worker_processes(serve))
    return pid


@pytest.fixture
def peers() -> Any:
    """The Primero and DTP simulators, as separate processes."""
    with (
        simulate(
            "primero",
            "--user",
            demo_data.API_USER,
            "--password",
            demo_data.API_PASSWORD,
            ready="/_sim/journal",
        ) as primero,
        simulate(
            "dtp", "--subscription-key", demo_data.DTP_SUBSCRIPTION_KEY, ready="/_sim/bridge"
        ) as dtp,
    ):
        yield primero, dtp


def _pg_serve(
    tmp_path: Path, postgres_url: str, primero: str, dtp: str, port: int
) -> tuple[Any, str]:
    env = _peers_env(
        postgres_url,
        generate_key(),
        primero,
        dtp,
        PRIMERO_PROGRES_INBOX_TOKENS=demo_data.INBOX_TOKEN,
        PRIMERO_PROGRES_PORT=str(port),
    )
    server = _serve_logged(tmp_path, env, "-m", "primero_progres.cli", "serve")
    base = f"http://127.0.0.1:{port}"
    _wait_ready(server, f"{base}/readyz")
    return server, base


def _referral_reaches_primero(base: str, primero: str, dtp: str, number: str) -> None:
    """proGres's referral, posted to the inbox, becomes a Primero case, and its feedback
    reaches DTP: the worker process did the work."""
    message = demo_data.referral_message(demo_data.intervention(number))
    answer = httpx.post(
        f"{base}/api/v1/dtp/messages",
        json=message,
        headers={"Authorization": f"Bearer {demo_data.INBOX_TOKEN}"},
    )
    assert answer.status_code == 202, answer.text
    _worked_through(primero, dtp, number)


def _worked_through(primero: str, dtp: str, number: str) -> None:
    """The intervention's referral became a Primero case, and its feedback reached DTP."""

    def feedback() -> bool:
        sent = httpx.get(f"{dtp}/_sim/messages").json()
        return any(number in str(m) for m in sent)

    _wait_until("no feedback at DTP", feedback)
    assert any(number in str(case) for case in httpx.get(f"{primero}/_sim/cases").json())


def _jobs_done(base: str) -> float:
    """The jobs done, by /metrics at ``base``."""
    done = 0.0
    for line in httpx.get(f"{base}/metrics").text.splitlines():
        if line.startswith("primero_progres_jobs_total{") and 'outcome="done"' in line:
            done += float(line.rsplit(" ", 1)[1])
    return done


def test_serve_on_postgresql_runs_its_worker_in_a_child_process(
    tmp_path: Path, postgres_url: str, peers: tuple[str, str], child_port: int
) -> None:
    """The child (its CPU priority below the inbox's) works a referral end to end, its counts
    reach serve's /metrics, and a SIGTERM to serve stops both: no orphan."""
    primero, dtp = peers
    server, base = _pg_serve(tmp_path, postgres_url, primero, dtp, child_port)
    try:
        child = _one_worker_process(server)
        # the kernel gives the CPU to the inbox first
        assert _niceness(child) > _niceness(server.pid)
        _referral_reaches_primero(base, primero, dtp, "811-26-PRTITV-0000001")
        # the jobs the child ran are counted on serve's /metrics (relayed each second)
        _wait_until("no job counted on /metrics", lambda: _jobs_done(base) >= 2)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=90)
    log = (tmp_path / "serve.log").read_text()
    assert server.returncode == 0, log
    assert _gone(child)
    assert "worker.process_stopped" in log and "worker.stopped" in log


def test_a_worker_process_that_dies_is_started_again(
    tmp_path: Path, postgres_url: str, peers: tuple[str, str], child_port: int
) -> None:
    primero, dtp = peers
    server, base = _pg_serve(tmp_path, postgres_url, primero, dtp, child_port)
    try:
        first = _one_worker_process(server)
        counted = _wait_until("no worker count on /metrics", lambda: "jobs_total" in
                              httpx.get(f"{base}/metrics").text)
        assert counted
        os.kill(first, signal.SIGKILL)
        second = _wait_until(
            "no new worker process", lambda: [p for p in _worker_processes(server) if p != first]
        )[0]
        assert first not in _children(server)  # reaped: no zombie
        # the new one works: a referral goes through
        _referral_reaches_primero(base, primero, dtp, "811-26-PRTITV-0000002")
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=90)
    log = (tmp_path / "serve.log").read_text()
    assert server.returncode == 0, log
    assert "worker.process_died" in log
    assert _gone(second)


def test_a_killed_serve_leaves_no_worker_process(
    tmp_path: Path, postgres_url: str, peers: tuple[str, str], child_port: int
) -> None:
    primero, dtp = peers
    server, _base = _pg_serve(tmp_path, postgres_url, primero, dtp, child_port)
    child = _one_worker_process(server)
    server.send_signal(signal.SIGKILL)
    server.wait(timeout=30)
    # the child is now init's (or a subreaper's): it sees serve gone and stops by itself
    _wait_until("the worker process outlived serve", lambda: _gone(child))
    assert "worker.parent_gone" in (tmp_path / "serve.log").read_text()


def test_a_worker_process_that_cannot_start_stops_serve_with_exit_code_2(
    tmp_path: Path, postgres_url: str, child_port: int
) -> None:
    """A setting only the worker side reads (the DTP client certificate) is checked in the
    child; serve stops with the same exit code as when it checks one itself."""
    env = {
        **_serve_env(child_port),
        "PRIMERO_PROGRES_DATABASE_URL": postgres_url,
        "PRIMERO_PROGRES_DTP_CLIENT_CERT": str(tmp_path / "absent.pem"),
    }
    result = _cli_run("serve", cwd=tmp_path, env=env, timeout=120)
    assert result.returncode == 2, result.stderr.decode()
    assert b"configuration error" in result.stderr


async def _queue_referral(database_url: str, key: str, number: str) -> None:
    """The referral in the queue, as the inbox of ``serve`` would have put it."""
    store = await Store.open(database_url, encryption=Cipher.from_config(key))
    try:
        await store.upgrade()
        await store.messages.receive(
            request_type="PrimeroOutgoingReferral",
            flow="progres-referral",
            message=demo_data.referral_message(demo_data.intervention(number)),
            intervention_numbers=[number],
        )
    finally:
        await store.close()


def test_a_worker_serves_its_own_metrics(
    tmp_path: Path, postgres_url: str, peers: tuple[str, str], child_port: int
) -> None:
    """An extra ``worker`` with WORKER_METRICS_PORT: its /metrics counts the jobs and peer
    calls it made (no serve runs here), not the database's gauges; SIGTERM stops both."""
    primero, dtp = peers
    key = generate_key()
    number = "811-26-PRTITV-0000003"
    asyncio.run(_queue_referral(postgres_url, key, number))
    env = _peers_env(
        postgres_url, key, primero, dtp, PRIMERO_PROGRES_WORKER_METRICS_PORT=str(child_port)
    )
    worker = _logged(tmp_path / "worker.log", env, "-m", "primero_progres.cli", "worker")
    base = f"http://127.0.0.1:{child_port}"
    try:
        _wait_ready(worker, f"{base}/healthz")
        _worked_through(primero, dtp, number)
        # the referral's jobs: the Primero case, then the feedback to DTP
        _wait_until("no job counted on the worker's /metrics", lambda: _jobs_done(base) >= 2)
        text = httpx.get(f"{base}/metrics").text
        calls = 'primero_progres_peer_request_duration_seconds_count{peer="primero"}'
        assert any(line.startswith(calls) and float(line.split()[1]) > 0
                   for line in text.splitlines())
        assert "primero_progres_alert_notifications_total" in text
        # serve's: the inbox's counters, and the gauges read from the database
        assert "primero_progres_inbound_messages" not in text
        assert "primero_progres_queue_jobs" not in text
        assert httpx.get(f"{base}/readyz").status_code == 404
        # the container health check a worker can have: its loop turns
        assert _cli_run("healthcheck", "--worker", cwd=tmp_path, env=env).returncode == 0
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=60)
    log_text = (tmp_path / "worker.log").read_text()
    assert worker.returncode == 0, log_text
    assert _cli_run("healthcheck", "--worker", cwd=tmp_path, env=env).returncode == 1
    assert "worker.metrics_started" in log_text and "worker.stopped" in log_text
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{base}/healthz")


def test_a_worker_health_check_without_the_metrics_port_is_a_configuration_error(
    tmp_path: Path,
) -> None:
    """Without WORKER_METRICS_PORT no worker answers: the check says why (exit 2), instead of
    reporting every worker unhealthy (exit 1)."""
    result = _cli_run("healthcheck", "--worker", cwd=tmp_path, env=_serve_env(9), timeout=60)
    assert result.returncode == 2
    assert b"PRIMERO_PROGRES_WORKER_METRICS_PORT" in result.stderr


def test_a_worker_whose_metrics_port_is_taken_exits_with_code_2(tmp_path: Path) -> None:
    with listening_socket() as taken:
        taken.listen()
        port = taken.getsockname()[1]
        # serve's settings (a worker reads no PORT), and a metrics port another process holds
        env = {**_serve_env(9), "PRIMERO_PROGRES_WORKER_METRICS_PORT": str(port)}
        result = _cli_run("worker", cwd=tmp_path, env=env, timeout=60)
    assert result.returncode == 2, result.stderr.decode()
    assert b"configuration error: PRIMERO_PROGRES_WORKER_METRICS_PORT" in result.stderr
    assert f"127.0.0.1:{port}".encode() in result.stderr
    assert b"worker.started" not in result.stderr


#: ``serve``, sent SIGTERM while it starts: after its own signal handlers are set, before
#: uvicorn takes the signals over (it builds the app in between)
SIGNAL_WHILE_STARTING = """
import os, signal, sys
from primero_progres import web
from primero_progres.cli import main

built = web.create_app

def create_app(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGTERM)
    return built(*args, **kwargs)

web.create_app = create_app
sys.argv = ["primero-progres", "serve"]
main()
"""


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_a_signal_while_serve_starts_stops_it(
    tmp_path: Path, database: str, request: pytest.FixtureRequest, child_port: int
) -> None:
    """It used to be taken for the worker side only: the HTTP side then served on."""
    env = _serve_env(child_port)
    if database == "postgresql":
        env["PRIMERO_PROGRES_DATABASE_URL"] = request.getfixturevalue("postgres_url")
    result = subprocess.run(
        [sys.executable, "-c", SIGNAL_WHILE_STARTING],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        timeout=90,
    )
    assert result.returncode == 0, result.stderr.decode()
    assert b"serve.stopped" in result.stderr


#: ``serve`` with the drain of running requests on stop cut to one second
SERVE_WITH_A_SHORT_DRAIN = """
import sys
from primero_progres.cli import main, service

service.HTTP_SHUTDOWN_SECONDS = 1
sys.argv = ["primero-progres", "serve"]
main()
"""

INBOX_MESSAGE = (
    b'{"request_type": "PrimeroOutgoingReferral",'
    b' "interventions": [{"progres_interventionnumber": "811-23-PRTITV-1000096"}]}'
)


def _serve_logged(tmp_path: Path, env: dict[str, str], *command: str) -> subprocess.Popen[bytes]:
    """``serve`` (or ``python -c`` a script that runs it), its output in ``serve.log``."""
    return _logged(tmp_path / "serve.log", env, *command)


def _inbox_request_in_progress(port: int) -> socket.socket:
    """A connection whose inbox request serve has begun and whose body it waits for: the
    inbox asked for it (``100 Continue``), so the request is running in serve."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(
        b"POST /api/v1/dtp/messages HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Authorization: Bearer t1\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\nExpect: 100-continue\r\n\r\n" % len(INBOX_MESSAGE)
    )
    interim = b""
    while not interim.endswith(b"\r\n\r\n"):
        received = sock.recv(1)
        assert received, "serve closed the connection"
        interim += received
    assert interim.startswith(b"HTTP/1.1 100 "), interim
    return sock


def _refuses_connections(port: int) -> bool:
    """serve has begun to stop: it no longer listens."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    except ConnectionRefusedError:
        return True
    return False


def _until_closed(sock: socket.socket) -> bytes:
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


@contextlib.contextmanager
def _ended(server: subprocess.Popen[bytes]) -> Iterator[None]:
    """Kill ``server`` if the block leaves it running (a failed test)."""
    try:
        yield
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


def test_a_request_in_progress_when_serve_is_told_to_stop_gets_its_answer(
    tmp_path: Path, child_port: int
) -> None:
    """A SIGTERM lets a running inbox request finish (within ``HTTP_SHUTDOWN_SECONDS``): its
    sender is answered and the message is kept, while new connections are refused."""
    env = _serve_env(child_port)
    server = _serve_logged(tmp_path, env, "-m", "primero_progres.cli", "serve")
    with _ended(server):
        _wait_ready(server, f"http://127.0.0.1:{child_port}/readyz")
        with _inbox_request_in_progress(child_port) as request:
            server.send_signal(signal.SIGTERM)
            _wait_until("serve still listens", lambda: _refuses_connections(child_port))
            request.sendall(INBOX_MESSAGE)
            answer = _until_closed(request)
        server.wait(timeout=30)
    assert answer.startswith(b"HTTP/1.1 202 "), answer
    assert b'"status":"queued"' in answer
    assert server.returncode == 0, (tmp_path / "serve.log").read_text()
    listing = _cli_run("messages", cwd=tmp_path, env=env, check=True)
    assert b"811-23-PRTITV-1000096" in listing.stdout


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_a_request_that_never_finishes_does_not_hold_serve_beyond_the_drain(
    tmp_path: Path, database: str, request: pytest.FixtureRequest, child_port: int
) -> None:
    """A sender that never sends its body is cut off once the drain (1 s here, patched in
    the child) has passed; serve then stops its worker side and exits as usual."""
    env = _serve_env(child_port)
    if database == "postgresql":
        env["PRIMERO_PROGRES_DATABASE_URL"] = request.getfixturevalue("postgres_url")
    server = _serve_logged(tmp_path, env, "-c", SERVE_WITH_A_SHORT_DRAIN)
    with _ended(server):
        _wait_ready(server, f"http://127.0.0.1:{child_port}/readyz")
        with _inbox_request_in_progress(child_port) as stalled:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)
            answer = _until_closed(stalled)
    # a 5xx: the sender sends again (an inbox write is one transaction: none was made)
    assert answer.startswith(b"HTTP/1.1 500 "), answer
    log = (tmp_path / "serve.log").read_text()
    assert server.returncode == 0, log
    assert "timeout graceful shutdown exceeded" in log
    assert "serve.stopped" in log


def test_serve_refuses_to_start_without_a_key(tmp_path: Path) -> None:
    result = _cli_run("serve", cwd=tmp_path, env=_env(), timeout=60)
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
    env = _env(PRIMERO_PROGRES_ENCRYPTION_KEY=generate_key(), **settings)
    result = _cli_run("serve", cwd=tmp_path, env=env, timeout=60)
    assert result.returncode == 2
    assert named in result.stderr
    assert not (tmp_path / "primero-progres.db").exists()
