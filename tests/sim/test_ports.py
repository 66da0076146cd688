"""Loopback ports under parallel test processes: a server's port is its own from the moment it
is chosen, so another process cannot take it before the server listens."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import httpx2 as httpx
import pytest
from fastapi import FastAPI

from primero_progres.sim.common import ServerThread, reserved_port
from primero_progres.sim.faultproxy import FaultProxy
from sim_process import simulate


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def test_a_server_thread_holds_its_port_before_it_starts() -> None:
    app = FastAPI()

    @app.get("/")
    def root() -> dict[str, str]:
        return {"status": "ok"}

    server = ServerThread(app)
    assert not _bindable(server.port)
    server.start()
    try:
        assert httpx.get(server.url).json() == {"status": "ok"}
    finally:
        server.stop()
    assert _bindable(server.port)


def test_a_server_thread_never_started_gives_its_port_back() -> None:
    server = ServerThread(FastAPI())
    server.stop()
    assert _bindable(server.port)


def test_a_fault_proxy_holds_its_port_before_it_starts(refused_url: str) -> None:
    proxy = FaultProxy(refused_url)
    assert not _bindable(proxy.port)
    with proxy:
        assert httpx.get(f"{proxy.url}/x").status_code == 502
    assert _bindable(proxy.port)


def test_a_reserved_port_refuses_connections_and_no_one_else_binds_it() -> None:
    with reserved_port() as port:
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
        assert not _bindable(port)
    assert _bindable(port)


def test_a_child_process_listens_on_its_reserved_port() -> None:
    with simulate("primero", "--user", "u", "--password", "p", ready="/_sim/journal") as url:
        assert httpx.get(f"{url}/_sim/journal").status_code == 200


def test_the_proxy_command_prints_the_port_it_bound(refused_url: str) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "primero_progres.cli", "simulate", "proxy",
         "--upstream", refused_url, "--port", "0", "--rate", "0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        assert process.stderr is not None
        line = process.stderr.readline().decode()
        url = line.split()[3]
        assert line.startswith("fault proxy on http://127.0.0.1:") and not url.endswith(":0")
        # printed once bound, before it listens; no fault (--rate 0): the upstream's refusal
        # is the proxy's 502, never one of its own 5xx or hangs
        deadline = time.monotonic() + 20
        while True:
            try:
                assert httpx.get(f"{url}/x").status_code == 502
                break
            except httpx.ConnectError:
                assert time.monotonic() < deadline and process.poll() is None
                time.sleep(0.1)
    finally:
        process.terminate()
        process.wait(10)
