"""Running a ``primero-progres simulate ...`` command in a child process for a test."""

from __future__ import annotations

import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx2 as httpx

from primero_progres.sim.common import reserved_port


@contextmanager
def simulate(
    command: str, *args: str, ready: str, verify: ssl.SSLContext | bool = True
) -> Iterator[str]:
    """``simulate <command> --port P <args>``: its URL once ``ready`` (a path) answers.

    P is reserved while the child runs, so a parallel test cannot take it before the child
    binds it.
    """
    with reserved_port() as port:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "primero_progres.cli",
                "simulate",
                command,
                "--port",
                str(port),
                *args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        scheme = "https" if "--tls-cert" in args else "http"
        url = f"{scheme}://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 20
            while True:
                assert process.poll() is None, (
                    process.stderr.read().decode() if process.stderr else ""
                )
                try:
                    httpx.get(f"{url}{ready}", verify=verify, timeout=1)
                    break
                except httpx.TransportError:
                    assert time.monotonic() < deadline, f"simulate {command} did not start"
                    time.sleep(0.1)
            yield url
        finally:
            process.terminate()
            process.wait(10)
