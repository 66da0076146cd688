"""Every call a flow makes to a peer is observed once, classified by how it failed, over real
loopback HTTP (``flows.observed``); and what a process saw of the peers reaches
``store.peers``, the row the console's peer panel and the peer-down alert both read."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from ping_helpers import SHIPPING, PingSim, ping_client
from primero_progres.flows.observed import (
    CallObserver,
    ObservedGateway,
    ObservedPing,
    ObservedPrimero,
    PeerCall,
    PeerObserver,
)
from primero_progres.peers.dtp import DTPClient
from primero_progres.peers.errors import CallFailure, TransientPeerError
from primero_progres.peers.ping import PingAuthenticationError, PingTransientError
from primero_progres.peers.primero import PrimeroClient
from primero_progres.sim.common import FaultRule
from primero_progres.sim.ping import RETRIEVE_PATH
from primero_progres.store import Store


@dataclass
class Calls:
    """An observer that keeps every call it is shown."""

    seen: list[PeerCall]

    async def observe(self, call: PeerCall) -> None:
        self.seen.append(call)


@pytest.fixture
def calls() -> Calls:
    return Calls([])


def _fault(sim: Any, **rule: Any) -> None:
    sim.app.state.faults.set([FaultRule(path="/api/v2/cases", **rule)])


def _primero(sim: Any, observer: CallObserver, **options: Any) -> ObservedPrimero:
    client = PrimeroClient(sim.url, username=sim.user, password=sim.password, **options)
    return ObservedPrimero(client, observer)


async def test_each_status_is_one_call_of_its_class(primero_sim: Any, calls: Calls) -> None:
    expected = {
        200: None,
        404: CallFailure.CLIENT_ERROR,
        401: CallFailure.UNAUTHORIZED,
        403: CallFailure.FORBIDDEN,
        408: CallFailure.TIMEOUT,
        429: CallFailure.RATE_LIMITED,
        503: CallFailure.SERVER_ERROR,
    }
    primero = _primero(primero_sim, calls)
    try:
        for status in expected:
            if status == 200:
                primero_sim.app.state.faults.clear()
            else:
                _fault(primero_sim, status=status)
            try:
                await primero.find_cases("unhcr_individual_no", "DEMO-1")
            except Exception as exc:
                assert status != 200, exc
    finally:
        await primero.aclose()
    assert [(c.peer, c.failure) for c in calls.seen] == [
        ("primero", f) for f in expected.values()
    ]
    assert all(c.seconds >= 0 for c in calls.seen)
    assert [c.healthy for c in calls.seen] == [True, True, False, False, False, False, False]
    assert [(c.failure_class, c.reason) for c in calls.seen[4:]] == [
        ("transient", "http_408"),
        ("transient", "http_429"),
        ("transient", "http_503"),
    ]


async def test_timeouts_refused_connections_and_tls_failures(
    primero_sim: Any, calls: Calls, refused_url: str
) -> None:
    _fault(primero_sim, hang=True)
    # a short timeout only against the hanging server: a refusal or a failed handshake must
    # not pass for a timeout on a loaded machine
    for url, timeout in (
        (primero_sim.url, 0.2),
        (refused_url, 30.0),
        # TLS spoken to a plain HTTP server: the handshake fails
        (primero_sim.url.replace("http://", "https://"), 30.0),
    ):
        client = PrimeroClient(
            url, username=primero_sim.user, password=primero_sim.password, timeout=timeout
        )
        primero = ObservedPrimero(client, calls)
        try:
            with pytest.raises(TransientPeerError):
                await primero.find_cases("unhcr_individual_no", "DEMO-1")
        finally:
            await primero.aclose()
    assert [c.failure for c in calls.seen] == [
        CallFailure.TIMEOUT,
        CallFailure.CONNECTION,
        CallFailure.TLS,
    ]


async def test_the_ports_report_under_their_peer_name(
    primero_sim: Any, calls: Calls, refused_url: str
) -> None:
    primero = _primero(primero_sim, calls)
    try:
        await primero.find_cases("unhcr_individual_no", "DEMO-1")
        assert [case async for case in primero.iter_cases(ids=["no-such-case"])] == []
    finally:
        await primero.aclose()
    dtp = ObservedGateway(
        DTPClient(refused_url, subscription_key="k"), calls, peer="dtp"
    )
    try:
        with pytest.raises(TransientPeerError):
            await dtp.send_decision({"status": "x"})
    finally:
        await dtp.aclose()
    assert [(c.peer, c.failure) for c in calls.seen] == [
        ("primero", None),
        ("primero", None),
        ("dtp", CallFailure.CONNECTION),
    ]


async def test_ping_calls_are_observed_and_a_refused_password_is_unauthorized(
    ping_sim: PingSim, calls: Calls
) -> None:
    """B2C answers a wrong password with 400: the peer refusing the bridge, not one request."""
    ping = ObservedPing(ping_client(ping_sim.url), calls)
    try:
        await ping.retrieve_page(SHIPPING.decisions_list)
        ping_sim.faults({"path": RETRIEVE_PATH, "status": 503})
        with pytest.raises(PingTransientError):
            await ping.retrieve_page(SHIPPING.decisions_list)
    finally:
        await ping.aclose()
    refused = ObservedPing(ping_client(ping_sim.url, password="not-the-password"), calls)
    try:
        with pytest.raises(PingAuthenticationError):
            await refused.decision_detail("referral-1")
    finally:
        await refused.aclose()
    assert [(c.peer, c.failure, c.reason) for c in calls.seen] == [
        ("ping", None, None),
        ("ping", CallFailure.SERVER_ERROR, "http_503"),
        ("ping", CallFailure.UNAUTHORIZED, "token_refused"),
    ]
    assert [c.healthy for c in calls.seen] == [True, False, False]


async def test_a_failing_observer_never_fails_the_call(primero_sim: Any) -> None:
    class Broken:
        async def observe(self, call: PeerCall) -> None:
            raise RuntimeError("observer bug")

    primero = ObservedPrimero(
        PrimeroClient(primero_sim.url, username=primero_sim.user, password=primero_sim.password),
        Broken(),
    )
    try:
        assert await primero.find_cases("unhcr_individual_no", "DEMO-1") == []
    finally:
        await primero.aclose()


async def test_a_token_renewed_after_a_401_never_reaches_the_store(
    store: Store, primero_sim: Any
) -> None:
    observer = PeerObserver(store.peers, clock=store.now)
    primero = _primero(primero_sim, observer, auth="token")
    try:
        await primero.find_cases("unhcr_individual_no", "DEMO-1")
        primero_sim.app.state.auth.expire_tokens()  # the next request answers 401, once
        await primero.find_cases("unhcr_individual_no", "DEMO-1")
    finally:
        await primero.aclose()
    await observer.observe(PeerCall("dtp", 0.1, CallFailure.SERVER_ERROR, "transient", "http_503"))
    await observer.observe(PeerCall("dtp", 0.1, CallFailure.TIMEOUT, "transient", "timeout"))
    rows = {row.peer: row for row in await store.peers.all()}
    assert rows["primero"].last_failure_at is None and rows["primero"].failing_since is None
    assert rows["dtp"].last_failure_kind == "timeout"
    assert (rows["dtp"].last_failure_class, rows["dtp"].last_failure_reason) == (
        "transient",
        "timeout",
    )
    assert rows["dtp"].consecutive_failures == 2
    assert rows["dtp"].failing_since is not None
    assert rows["dtp"].last_failure_at is not None
    assert rows["dtp"].failing_since < rows["dtp"].last_failure_at

    # another success within SUCCESS_EVERY of the last written one: no write
    await observer.observe(PeerCall("primero", 0.1))
    assert await store.peers.all() == list(rows.values())


async def test_a_refusal_of_one_request_is_the_peer_answering(store: Store) -> None:
    observer = PeerObserver(store.peers, clock=store.now)
    await observer.observe(PeerCall("dtp", 0.1, CallFailure.CONNECTION, "transient", "connection"))
    await observer.observe(PeerCall("dtp", 0.1, CallFailure.CLIENT_ERROR, "permanent", "http_422"))
    [row] = await store.peers.all()
    assert (row.failing_since, row.consecutive_failures) == (None, 0)
    assert row.last_success_at is not None and row.last_failure_at is not None
    assert row.last_success_at >= row.last_failure_at
    assert row.last_failure_kind == "connection", "the last time the peer did not answer"


async def test_a_record_that_fails_is_kept_for_the_next(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    observer = PeerObserver(store.peers, clock=store.now)

    async def unavailable(_seen: object) -> None:
        raise OSError("database down")

    with monkeypatch.context() as patched:
        patched.setattr(store.peers, "record", unavailable)
        await observer.observe(
            PeerCall("dtp", 0.1, CallFailure.CONNECTION, "transient", "connection")
        )
    await observer.observe(PeerCall("dtp", 0.1, CallFailure.TIMEOUT, "transient", "timeout"))
    [row] = await store.peers.all()
    assert row.last_failure_kind == "timeout"
    assert row.consecutive_failures == 2
    assert row.failing_since is not None and row.last_failure_at is not None
    assert row.failing_since < row.last_failure_at
