"""Every HTTP call a peer client makes, reported to whoever listens: metrics, peer health.

The clients build their connection pool as an :class:`ObservedClient` named after the peer;
each request it sends is timed and classified once, at the transport, whatever the client
then makes of the answer. Listeners (``add_observer``) get a :class:`PeerCall` holding the
peer's name, the duration and a failure class: never a URL, a header or a body. The peers
stay free of the store and the metrics: those register themselves here.
"""

from __future__ import annotations

import contextlib
import ssl
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import httpx2 as httpx

from .._compat import Peer
from ..logging import get_logger

log = get_logger(__name__)


class CallFailure(StrEnum):
    """Why a call to a peer did not succeed; a bounded set, safe as a metric label."""

    TIMEOUT = "timeout"
    CONNECTION = "connection"
    #: the TLS handshake failed (server certificate untrusted, our certificate refused)
    TLS = "tls"
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    RATE_LIMITED = "rate_limited"
    SERVER_ERROR = "server_error"
    #: any other 4xx: the peer answered and refused this one request
    CLIENT_ERROR = "client_error"


#: the peer refused the bridge itself (credentials, permissions, certificate): worth an alert
#: at the first occurrence
REFUSALS = frozenset({CallFailure.UNAUTHORIZED, CallFailure.FORBIDDEN, CallFailure.TLS})
#: failures that say nothing about the peer's health: it answered, about this request only
ANSWERED = frozenset({CallFailure.CLIENT_ERROR})


@dataclass(frozen=True, slots=True)
class PeerCall:
    """One HTTP exchange with a peer: who, how long, and how it failed (None: it worked)."""

    peer: Peer
    seconds: float
    failure: CallFailure | None

    @property
    def healthy(self) -> bool:
        """Whether the peer did its part (answered, even if it refused this one request)."""
        return self.failure is None or self.failure in ANSWERED


Observer = Callable[[PeerCall], None]
_observers: list[Observer] = []


def add_observer(observer: Observer) -> None:
    if observer not in _observers:
        _observers.append(observer)


def remove_observer(observer: Observer) -> None:
    with contextlib.suppress(ValueError):
        _observers.remove(observer)


@contextlib.contextmanager
def observing(observer: Observer) -> Iterator[Observer]:
    """Listen for the duration of a block (a service's lifetime, a test)."""
    add_observer(observer)
    try:
        yield observer
    finally:
        remove_observer(observer)


def report(call: PeerCall) -> None:
    """Hand ``call`` to every observer; a failing observer never fails the peer call."""
    for observer in list(_observers):
        try:
            observer(call)
        except Exception as exc:
            log.warning("peer_observer.failed", peer=call.peer, error=type(exc).__name__)


def status_failure(status_code: int) -> CallFailure | None:
    """The failure class of an HTTP status (None for 1xx-3xx)."""
    if status_code < 400:
        return None
    if status_code == 401:
        return CallFailure.UNAUTHORIZED
    if status_code == 403:
        return CallFailure.FORBIDDEN
    if status_code == 408:
        return CallFailure.TIMEOUT
    if status_code == 429:
        return CallFailure.RATE_LIMITED
    if status_code >= 500:
        return CallFailure.SERVER_ERROR
    return CallFailure.CLIENT_ERROR


def tls_failure(exc: BaseException) -> bool:
    """Whether a connection failure was the TLS handshake (certificate, protocol)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ssl.SSLError):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def transport_failure(exc: BaseException) -> CallFailure:
    if isinstance(exc, httpx.TimeoutException):
        return CallFailure.TIMEOUT
    return CallFailure.TLS if tls_failure(exc) else CallFailure.CONNECTION


class ObservedClient(httpx.AsyncClient):
    """An ``httpx2.AsyncClient`` that reports each request it sends as a :class:`PeerCall`."""

    def __init__(self, peer: Peer, **options: Any) -> None:
        super().__init__(**options)
        self.peer: Peer = peer

    async def send(self, request: httpx.Request, **options: Any) -> httpx.Response:
        started = time.monotonic()
        try:
            response = await super().send(request, **options)
        except httpx.HTTPError as exc:
            report(PeerCall(self.peer, time.monotonic() - started, transport_failure(exc)))
            raise
        failure = status_failure(response.status_code)
        report(PeerCall(self.peer, time.monotonic() - started, failure))
        return response
