"""What both simulators share: fault injection per route, and running an app on a loopback port.

Faults are configured at run time through ``/_sim/faults`` so a test can make a
peer fail, stall or time out exactly where it wants, over real HTTP.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import structlog
import uvicorn
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field


class SimulatorConfigError(ValueError):
    """A simulator option or seed file is unusable (the ``simulate`` commands exit 2)."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.message = message
        #: a short machine-readable code, e.g. ``bad_seed``
        self.reason = reason


def foreground_logging(log_level: str) -> dict[str, Any]:
    """Logging for a simulator run in the foreground: its start-up lines and what went wrong
    at ``log_level``, a line per request (uvicorn's access log, the simulators' own) only at
    ``debug``. Sets structlog's level, which by default lets every level through; uvicorn's
    options are returned."""
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[log_level.upper()]
        )
    )
    return {"log_level": log_level, "access_log": log_level.lower() == "debug"}


class FaultRule(BaseModel):
    """One fault: which requests it hits and what it does to them."""

    model_config = ConfigDict(extra="forbid")

    method: str | None = Field(None, description="HTTP method to match; any when absent")
    path: str = Field(..., description="path prefix to match, e.g. /api/v2/cases")
    status: int = Field(503, description="status answered when the fault fires")
    rate: float = Field(
        1.0, ge=0.0, le=1.0, description="probability that a matching request fails"
    )
    times: int | None = Field(
        None, ge=0, description="fire at most this many times; unlimited when absent"
    )
    latency: float = Field(
        0.0, ge=0.0, description="seconds to wait before answering (fault or not)"
    )
    hang: bool = Field(False, description="never answer: the client must time out")
    together: int | None = Field(
        None,
        ge=2,
        description="hold matching requests until this many have arrived, then let them all "
        "go on (later ones are not held): a race made certain; with rate 0 it only holds",
    )
    retry_after: int | None = Field(None, description="value of a Retry-After header on the fault")
    body: Any = Field(None, description="JSON body of the fault response")


class FaultInjector:
    """Holds the active fault rules; thread-safe because tests poke it from another thread."""

    def __init__(self, seed: int | None = None) -> None:
        self._rules: list[FaultRule] = []
        self._fired: list[int] = []
        #: per rule, the requests ``together`` has held, and their release
        self._arrived: list[int] = []
        self._released: list[asyncio.Event] = []
        self._lock = threading.Lock()
        self._random = random.Random(seed)

    def set(self, rules: list[FaultRule]) -> None:
        with self._lock:
            self._rules = list(rules)
            self._fired = [0] * len(rules)
            self._arrived = [0] * len(rules)
            self._released = [asyncio.Event() for _ in rules]

    def clear(self) -> None:
        self.set([])

    def rules(self) -> list[FaultRule]:
        with self._lock:
            return list(self._rules)

    def pick(self, method: str, path: str) -> tuple[float, FaultRule | None]:
        """Latency to add and the fault to answer with, if any, for one request."""
        latency = 0.0
        with self._lock:
            for index, rule in enumerate(self._rules):
                if not _matches(rule, method, path):
                    continue
                latency = max(latency, rule.latency)
                if rule.times is not None and self._fired[index] >= rule.times:
                    continue
                if self._random.random() < rule.rate:
                    self._fired[index] += 1
                    return latency, rule
        return latency, None

    def gate(self, method: str, path: str) -> asyncio.Event | None:
        """What one request waits for before going on: the release of the first ``together``
        rule it matches (set by the request that makes the count), if any. Called on the
        server's event loop, the only one that waits for the events."""
        with self._lock:
            for index, rule in enumerate(self._rules):
                if rule.together is None or not _matches(rule, method, path):
                    continue
                self._arrived[index] += 1
                if self._arrived[index] >= rule.together:
                    self._released[index].set()
                return self._released[index]
        return None


def _matches(rule: FaultRule, method: str, path: str) -> bool:
    if rule.method and rule.method.upper() != method.upper():
        return False
    return path.startswith(rule.path)


def install_faults(app: FastAPI, injector: FaultInjector) -> None:
    """Add the fault middleware and the ``/_sim/faults`` routes to a simulator app."""

    @app.middleware("http")
    async def _inject(request: Request, call_next: Any) -> Response:
        if request.url.path.startswith("/_sim/"):
            return await call_next(request)
        gate = injector.gate(request.method, request.url.path)
        if gate is not None:
            await gate.wait()
        latency, rule = injector.pick(request.method, request.url.path)
        if latency:
            await asyncio.sleep(latency)
        if rule is None:
            return await call_next(request)
        if rule.hang:
            await asyncio.sleep(3600)
        headers = {"Retry-After": str(rule.retry_after)} if rule.retry_after is not None else None
        body = (
            rule.body
            if rule.body is not None
            else {"error": "injected fault", "status": rule.status}
        )
        return JSONResponse(body, status_code=rule.status, headers=headers)

    router = APIRouter(prefix="/_sim", tags=["simulator"])

    @router.get("/faults")
    async def list_faults() -> list[FaultRule]:
        return injector.rules()

    @router.put("/faults")
    async def set_faults(rules: list[FaultRule]) -> list[FaultRule]:
        injector.set(rules)
        return injector.rules()

    @router.delete("/faults")
    async def clear_faults() -> dict[str, str]:
        injector.clear()
        return {"status": "cleared"}

    app.include_router(router)


def listening_socket(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A socket bound to ``host:port`` (port 0: one the system picks), for a server to listen on.

    Binding here and handing the socket to the server, rather than picking a free port and
    letting the server bind it later, leaves no moment where another process (a parallel test
    worker) can take the port first.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        # as asyncio's create_server does: a port in TIME_WAIT from a stopped server is reusable
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


@contextmanager
def reserved_port(host: str = "127.0.0.1") -> Iterator[int]:
    """A port held for the block, for a child process told to listen on it (``--port``,
    ``PRIMERO_PROGRES_PORT``), or as a peer that refuses connections.

    Held by a bound socket with SO_REUSEADDR that never listens: connections are refused
    until the child listens; the system gives the port to no other process (neither to a
    bind on port 0 nor as a connection's source port), while the child, binding with
    SO_REUSEADDR as uvicorn does, still can. A port merely found free could be taken by a
    parallel test before the child binds it.
    """
    with listening_socket(host) as sock:
        yield int(sock.getsockname()[1])


class ServerThread:
    """Runs an ASGI app under uvicorn in a daemon thread on a loopback port."""

    def __init__(
        self, app: Any, *, host: str = "127.0.0.1", port: int | None = None, **uvicorn_options: Any
    ) -> None:
        self.host = host
        self._socket = listening_socket(host, port or 0)
        self.port = int(self._socket.getsockname()[1])
        scheme = "https" if uvicorn_options.get("ssl_certfile") else "http"
        self.url = f"{scheme}://{host}:{self.port}"
        # a hung request (the ``hang`` fault) must not hold the shutdown for long
        uvicorn_options.setdefault("timeout_graceful_shutdown", 1)
        config = uvicorn.Config(
            app, host=host, port=self.port, log_level="warning", lifespan="on", **uvicorn_options
        )
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self.server.run,
            kwargs={"sockets": [self._socket]},
            name=f"server-{self.port}",
            daemon=True,
        )

    def start(self, timeout: float = 10.0) -> ServerThread:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"server on port {self.port} did not start")
            time.sleep(0.01)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self.server.should_exit = True
        if self._thread.ident is not None:
            self._thread.join(timeout)
        # uvicorn closes it on shutdown; not when it never started
        self._socket.close()


@contextmanager
def serve_in_thread(app: Any, **options: Any) -> Iterator[ServerThread]:
    """``with serve_in_thread(app) as server: ... server.url ...``"""
    server = ServerThread(app, **options).start()
    try:
        yield server
    finally:
        server.stop()
