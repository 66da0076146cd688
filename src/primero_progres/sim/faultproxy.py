"""A loopback HTTP reverse proxy that makes a peer unreliable on purpose, for chaos tests.

It sits in front of any simulator (Primero, DTP, PING) and, by a seeded random
policy, does one thing to each request: forward it, or fail it the ways networks
and gateways fail:

* ``reset_before``: the connection is reset (TCP RST) before the request is forwarded;
* ``reset_after``: the request is forwarded, the peer processes it, and the
  connection is reset instead of answering: the client never learns the outcome;
* ``status_500``, ``status_502``, ``status_503``: an error answer, not forwarded;
* ``status_429``: ``Too Many Requests`` with ``Retry-After``, not forwarded;
* ``hang_before`` / ``hang_after``: no answer (before forwarding, or after the peer
  processed it) until the client gives up or ``hang_seconds`` pass.

The proxy parses HTTP itself (h11 over asyncio streams) so that a reset is a real
one: the socket is closed with ``SO_LINGER`` 0, and the client sees
``ECONNRESET``, exactly as from a load balancer that drops a connection.

Control, never faulted or forwarded, under ``/_proxy/``: ``GET``/``PUT``/``PATCH
/_proxy/faults`` (the :class:`FaultPolicy`), ``GET``/``DELETE /_proxy/counts``.
In a test, ``FaultProxy`` is also driven in process: ``set_policy``, ``update``,
``faults_off``, ``counts``. Paths under ``/_sim/`` are forwarded but never faulted.

Decisions come from one ``random.Random(seed)`` in the order requests arrive, so a
run replays the same sequence of faults; which request gets which depends on
arrival order when requests are concurrent.
"""

from __future__ import annotations

import asyncio
import json
import random
import socket
import struct
import threading
from collections import Counter
from contextlib import suppress
from typing import Any, Literal, get_args

import h11
import httpx2 as httpx
import structlog
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .common import listening_socket

log = structlog.get_logger(__name__)

FaultKind = Literal[
    "reset_before",
    "reset_after",
    "status_500",
    "status_502",
    "status_503",
    "status_429",
    "hang_before",
    "hang_after",
]
FAULT_KINDS: tuple[FaultKind, ...] = get_args(FaultKind)
#: what the proxy did to a request, as counted: a fault kind, or one of these
OUTCOMES = (*FAULT_KINDS, "forwarded", "upstream_error")
CONTROL_PREFIX = "/_proxy/"
#: paths forwarded without faults: the simulators' own controls
EXEMPT_PREFIX = "/_sim/"
MAX_BODY = 32 * 1024 * 1024
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    }
)


class FaultPolicy(BaseModel):
    """What the proxy does: the probability of each fault (their sum at most 1)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="false: forward every request unchanged")
    rates: dict[FaultKind, float] = Field(
        default_factory=dict,
        description="probability of each fault per request; a kind left out never happens",
    )
    seed: int | None = Field(
        None, description="seed of the decisions; setting it restarts the sequence"
    )
    retry_after: int = Field(1, ge=0, description="Retry-After of a 429, in seconds")
    hang_seconds: float = Field(
        300.0, gt=0, description="how long a hang holds before the connection is closed"
    )
    paths: list[str] | None = Field(
        None, description="path prefixes that may be faulted; null: every path"
    )

    @model_validator(mode="after")
    def _rates_are_probabilities(self) -> FaultPolicy:
        if any(not 0.0 <= rate <= 1.0 for rate in self.rates.values()):
            raise ValueError("every rate is a probability between 0 and 1")
        if sum(self.rates.values()) > 1.0 + 1e-9:
            raise ValueError("the rates add up to more than 1")
        return self

    @classmethod
    def uniform(
        cls, rate: float, *, kinds: tuple[FaultKind, ...] = FAULT_KINDS, **options: Any
    ) -> FaultPolicy:
        """``rate`` of all requests faulted, spread evenly over ``kinds``."""
        return cls(rates={kind: rate / len(kinds) for kind in kinds}, **options)


class _Faults:
    """The policy, its random sequence and the counts; shared by the proxy's loop and tests."""

    def __init__(self, policy: FaultPolicy) -> None:
        self._lock = threading.Lock()
        self._policy = policy
        self._random = random.Random(policy.seed)
        self._counts: Counter[str] = Counter()

    @property
    def policy(self) -> FaultPolicy:
        with self._lock:
            return self._policy

    def set(self, policy: FaultPolicy, *, reseed: bool) -> FaultPolicy:
        with self._lock:
            self._policy = policy
            if reseed:
                self._random = random.Random(policy.seed)
            return policy

    def update(self, changes: dict[str, Any]) -> FaultPolicy:
        """Some keys of the policy replaced; the sequence restarts only if ``seed`` is given."""
        with self._lock:
            policy = FaultPolicy.model_validate({**self._policy.model_dump(), **changes})
        return self.set(policy, reseed="seed" in changes)

    def decide(self, path: str) -> FaultKind | None:
        with self._lock:
            policy = self._policy
            if not policy.enabled or path.startswith(EXEMPT_PREFIX):
                return None
            if policy.paths is not None and not any(path.startswith(p) for p in policy.paths):
                return None
            draw = self._random.random()
            for kind in FAULT_KINDS:
                draw -= policy.rates.get(kind, 0.0)
                if draw < 0:
                    return kind
            return None

    def count(self, outcome: str) -> None:
        with self._lock:
            self._counts[outcome] += 1

    def counts(self) -> dict[str, int]:
        with self._lock:
            return {outcome: self._counts[outcome] for outcome in OUTCOMES}

    def clear_counts(self) -> None:
        with self._lock:
            self._counts.clear()


class _Exchange:
    """One request as the proxy read it."""

    def __init__(self, request: h11.Request, body: bytes) -> None:
        self.method = request.method.decode("ascii")
        self.target = request.target.decode("ascii")
        self.path = self.target.partition("?")[0]
        self.headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers]
        self.body = body


class FaultProxy:
    """The proxy on a loopback port, in its own thread and event loop.

    ``with FaultProxy(upstream_url, policy=FaultPolicy.uniform(0.3, seed=7)) as proxy:``
    then point the client at ``proxy.url``. Its own loop keeps it independent of the
    test's: a client in any thread or loop can use it, and it can use a peer served in
    any thread.
    """

    def __init__(
        self,
        upstream: str,
        *,
        policy: FaultPolicy | None = None,
        host: str = "127.0.0.1",
        port: int | None = None,
        upstream_timeout: float = 60.0,
    ) -> None:
        self.upstream = upstream.rstrip("/")
        self.host = host
        # bound now: the port is known, and ours, before the proxy starts
        self._socket = listening_socket(host, port or 0)
        self.port = int(self._socket.getsockname()[1])
        self.url = f"http://{host}:{self.port}"
        self.upstream_timeout = upstream_timeout
        self._faults = _Faults(policy or FaultPolicy(enabled=False))
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------ in-process control

    @property
    def policy(self) -> FaultPolicy:
        return self._faults.policy

    def set_policy(self, policy: FaultPolicy) -> FaultPolicy:
        """A new policy; its seed restarts the random sequence."""
        return self._faults.set(policy, reseed=True)

    def update(self, **changes: Any) -> FaultPolicy:
        """Some keys changed, e.g. ``update(enabled=False)`` or ``update(rates={...})``."""
        return self._faults.update(changes)

    def faults_off(self) -> FaultPolicy:
        return self.update(enabled=False)

    def faults_on(self) -> FaultPolicy:
        return self.update(enabled=True)

    def counts(self) -> dict[str, int]:
        """How many requests got each outcome (every fault kind, ``forwarded``,
        ``upstream_error``) since the start or the last ``clear_counts``."""
        return self._faults.counts()

    def clear_counts(self) -> None:
        self._faults.clear_counts()

    # ------------------------------------------------------------ running

    def start(self, timeout: float = 10.0) -> FaultProxy:
        self._thread = threading.Thread(
            target=self.run, name=f"fault-proxy-{self.port}", daemon=True
        )
        self._thread.start()
        if not self._started.wait(timeout) or self._error is not None:
            raise RuntimeError(f"fault proxy on port {self.port} did not start") from self._error
        return self

    def stop(self, timeout: float = 10.0) -> None:
        loop, stopping = self._loop, self._stopping
        if loop is not None and stopping is not None:
            with suppress(RuntimeError):  # the loop already ended
                loop.call_soon_threadsafe(stopping.set)
        if self._thread is not None:
            self._thread.join(timeout)
        # the server closes it when it stops; not when it never started
        self._socket.close()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def run(self) -> None:
        """Serve in the calling thread until :meth:`stop` (the ``simulate proxy`` command)."""
        try:
            asyncio.run(self._serve())
        except BaseException as exc:
            self._error = exc
            self._started.set()
            raise

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        connections: set[asyncio.Task[Any]] = set()
        async with httpx.AsyncClient(
            timeout=self.upstream_timeout, trust_env=False, follow_redirects=False
        ) as client:

            async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
                task = asyncio.current_task()
                if task is not None:
                    connections.add(task)
                try:
                    await self._connection(client, reader, writer)
                except asyncio.CancelledError:
                    # stopping; ending normally keeps Python 3.11's stream callback quiet
                    writer.transport.abort()
                finally:
                    if task is not None:
                        connections.discard(task)

            server = await asyncio.start_server(accept, sock=self._socket)
            self._started.set()
            log.info("fault_proxy_started", port=self.port)
            async with server:
                await self._stopping.wait()
                server.close()
                for task in list(connections):
                    task.cancel()
                await asyncio.gather(*connections, return_exceptions=True)

    # ------------------------------------------------------------ one connection

    async def _connection(
        self,
        client: httpx.AsyncClient,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        conn = h11.Connection(h11.SERVER)
        try:
            while True:
                exchange = await self._read_request(conn, reader)
                if exchange is None:
                    return
                if not await self._handle(client, conn, exchange, reader, writer):
                    return
                if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                    return
                conn.start_next_cycle()
        except (ConnectionError, h11.ProtocolError, asyncio.IncompleteReadError):
            return
        finally:
            if not writer.transport.is_closing():
                writer.close()

    async def _read_request(
        self, conn: h11.Connection, reader: asyncio.StreamReader
    ) -> _Exchange | None:
        request: h11.Request | None = None
        body = bytearray()
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await reader.read(65536))
            elif isinstance(event, h11.Request):
                request = event
            elif isinstance(event, h11.Data):
                body += event.data
                if len(body) > MAX_BODY:
                    raise h11.RemoteProtocolError("request body too large")
            elif isinstance(event, h11.EndOfMessage) and request is not None:
                return _Exchange(request, bytes(body))
            else:  # ConnectionClosed, PAUSED
                return None

    async def _handle(
        self,
        client: httpx.AsyncClient,
        conn: h11.Connection,
        exchange: _Exchange,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> bool:
        """Answer one request; False when the connection is gone (reset or hung up)."""
        if exchange.path.startswith(CONTROL_PREFIX):
            status, payload = self._control(exchange)
            await _respond(conn, writer, status, [("content-type", "application/json")], payload)
            return True
        fault = self._faults.decide(exchange.path)
        outcome: str = fault or "forwarded"
        if fault == "reset_before":
            self._count(outcome, exchange)
            _reset(writer)
            return False
        if fault == "hang_before":
            self._count(outcome, exchange)
            await self._hang(reader)
            return False
        if fault in ("status_500", "status_502", "status_503", "status_429"):
            self._count(outcome, exchange)
            status = int(fault.removeprefix("status_"))
            headers = [("content-type", "application/json")]
            if status == 429:
                headers.append(("retry-after", str(self.policy.retry_after)))
            injected = {"error": "injected by the fault proxy", "status": status}
            await _respond(conn, writer, status, headers, json.dumps(injected).encode())
            return True
        request = client.build_request(
            exchange.method,
            self.upstream + exchange.target,
            headers=[(k, v) for k, v in exchange.headers if k.lower() not in _HOP_BY_HOP],
            content=exchange.body,
        )
        try:
            response = await client.send(request, stream=True)
            try:  # raw: a compressed answer goes back as it came
                content = b"".join([chunk async for chunk in response.aiter_raw()])
            finally:
                await response.aclose()
        except httpx.HTTPError as exc:
            self._count("upstream_error", exchange)
            log.warning("fault_proxy_upstream_error", error=type(exc).__name__)
            failure = {"error": "upstream unreachable", "detail": type(exc).__name__}
            await _respond(
                conn,
                writer,
                502,
                [("content-type", "application/json")],
                json.dumps(failure).encode(),
            )
            return True
        self._count(outcome, exchange)
        if fault == "reset_after":
            _reset(writer)
            return False
        if fault == "hang_after":
            await self._hang(reader)
            return False
        headers = [
            (k, v) for k, v in response.headers.multi_items() if k.lower() not in _HOP_BY_HOP
        ]
        await _respond(conn, writer, response.status_code, headers, content)
        return True

    def _count(self, outcome: str, exchange: _Exchange) -> None:
        self._faults.count(outcome)
        if outcome != "forwarded":
            log.debug(
                "fault_proxy_fault", outcome=outcome, method=exchange.method, path=exchange.path
            )

    async def _hang(self, reader: asyncio.StreamReader) -> None:
        """Say nothing until the client hangs up or ``hang_seconds`` pass."""
        with suppress(TimeoutError, ConnectionError):
            async with asyncio.timeout(self.policy.hang_seconds):
                while await reader.read(65536):
                    pass

    def _control(self, exchange: _Exchange) -> tuple[int, bytes]:
        route = (exchange.method, exchange.path.rstrip("/"))
        try:
            if route == ("GET", "/_proxy/faults"):
                return 200, self.policy.model_dump_json().encode()
            if route in (("PUT", "/_proxy/faults"), ("PATCH", "/_proxy/faults")):
                document = json.loads(exchange.body or b"null")
                if not isinstance(document, dict):
                    return 422, _error("the body must be a JSON object")
                if exchange.method == "PUT":
                    policy = self.set_policy(FaultPolicy.model_validate(document))
                else:
                    policy = self._faults.update(document)
                return 200, policy.model_dump_json().encode()
            if route == ("GET", "/_proxy/counts"):
                return 200, json.dumps(self.counts()).encode()
            if route == ("DELETE", "/_proxy/counts"):
                self.clear_counts()
                return 200, json.dumps(self.counts()).encode()
        except ValueError as exc:  # JSONDecodeError, ValidationError
            if isinstance(exc, ValidationError):
                errors = exc.errors(include_url=False, include_context=False, include_input=False)
                return 422, json.dumps({"detail": errors}).encode()
            return 422, _error("the body is not valid JSON")
        return 404, _error("unknown control route")


def _error(message: str) -> bytes:
    return json.dumps({"error": message}).encode()


async def _respond(
    conn: h11.Connection,
    writer: asyncio.StreamWriter,
    status: int,
    headers: list[tuple[str, str]],
    body: bytes,
) -> None:
    head = [*headers, ("content-length", str(len(body)))]
    if conn.their_state is not h11.DONE:
        head.append(("connection", "close"))
    writer.write(conn.send(h11.Response(status_code=status, headers=head)) or b"")
    writer.write(conn.send(h11.Data(data=body)) or b"")
    writer.write(conn.send(h11.EndOfMessage()) or b"")
    await writer.drain()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with ``SO_LINGER`` 0: the kernel sends RST, the client reads ``ECONNRESET``."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
