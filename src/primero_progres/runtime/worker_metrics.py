"""A ``worker`` process's own GET /metrics (``WORKER_METRICS_PORT``): what that process
counted (jobs, peer calls, alert notifications), for Prometheus to scrape each extra worker
as it scrapes ``serve``.

The standard library's WSGI server in a thread, as prometheus_client's ``start_http_server``:
a scrape never waits behind a step on the worker's event loop, and the server takes no
signal (the worker's SIGTERM handling stays the only one). The gauges read from the database
stay on ``serve``'s /metrics: read here too, each would be one series per process, and each
alert rule on them would fire once per process.

GET /healthz answers from that thread too, so it says whether the worker's event loop still
turns (``LoopBeat``), not only whether the process is there: a loop stuck in a blocking call
claims no job, and ``healthcheck --worker`` (a container's health check) then fails.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from prometheus_client import CollectorRegistry, make_wsgi_app

from ..errors import ConfigurationError
from .metrics import WORKER_SIDE

#: a worker loop that has not run its beat for this long is reported stalled (503): far above
#: what one step holds the loop for (a statement, a mapping), far below a lease
STALLED_AFTER_SECONDS = 30.0


class LoopBeat:
    """When the worker's event loop last ran ``run``'s beat: read from the metrics thread."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._last = clock()

    def age(self) -> float:
        """Seconds since the loop last beat."""
        return self._clock() - self._last

    async def run(self, every: float = 1.0) -> None:
        while True:
            self._last = self._clock()
            await asyncio.sleep(every)


def worker_registry() -> CollectorRegistry:
    """The worker side's counters and histogram, without the inbox's or the database's."""
    registry = CollectorRegistry(auto_describe=True)
    for metric in WORKER_SIDE:
        registry.register(metric)
    return registry


def metrics_app(registry: CollectorRegistry, beat: LoopBeat | None = None) -> WSGIApplication:
    """GET /metrics (Prometheus text), GET /healthz (200 while the loop beats, else 503),
    else 404."""
    exposition: WSGIApplication = make_wsgi_app(registry)

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            return exposition(environ, start_response)
        if path == "/healthz" and environ.get("REQUEST_METHOD") == "GET":
            age = beat.age() if beat is not None else 0.0
            headers = [("Content-Type", "application/json")]
            if age > STALLED_AFTER_SECONDS:
                start_response("503 Service Unavailable", headers)
                return [json.dumps({"status": "stalled", "loop_idle_seconds": int(age)}).encode()]
            start_response("200 OK", headers)
            return [b'{"status":"ok"}']
        start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
        return [b"not found: GET /metrics or /healthz\n"]

    return app


class _Server(ThreadingMixIn, WSGIServer):
    # a scrape's thread never holds the process up at its end
    daemon_threads = True

    def __init__(self, address: tuple[str, int], family: socket.AddressFamily) -> None:
        self.address_family = family  # read when the socket is made, below
        super().__init__(address, _QuietHandler)


class _QuietHandler(WSGIRequestHandler):
    #: a client that connects and sends nothing does not hold its thread for ever
    timeout = 30

    def log_message(self, format: str, *args: Any) -> None:
        """No access log line per scrape."""


class WorkerMetricsServer:
    """Listens as soon as it is made (a port in use: ``ConfigurationError``, exit code 2);
    ``start`` serves in a thread, ``stop`` stops it and frees the port."""

    def __init__(
        self,
        host: str,
        port: int,
        registry: CollectorRegistry | None = None,
        *,
        beat: LoopBeat | None = None,
    ) -> None:
        try:
            found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
            self._server = _Server((host, port), found[0][0])
        except OSError as exc:
            why = exc.strerror or type(exc).__name__
            raise ConfigurationError(
                f"PRIMERO_PROGRES_WORKER_METRICS_PORT: cannot listen on {host}:{port} ({why})",
                reason="worker_metrics_unavailable",
            ) from exc
        registry = worker_registry() if registry is None else registry
        self._server.set_app(metrics_app(registry, beat))
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="worker-metrics", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop serving (a scrape under way ends in its own thread) and close the socket."""
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join()
        self._server.server_close()
