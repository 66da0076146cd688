"""Every HTTP call of a peer client is reported once, classified at the transport, over real
loopback HTTP; and what a process saw of the peers reaches ``store.peer_health``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx2 as httpx
import pytest

from primero_progres.alerts.health import PeerHealthRecorder
from primero_progres.peers.dtp import DTPClient
from primero_progres.peers.errors import TransientPeerError
from primero_progres.peers.observe import CallFailure, ObservedClient, PeerCall, observing
from primero_progres.peers.primero import PrimeroClient
from primero_progres.sim.common import FaultRule, free_port
from primero_progres.store import Store


@pytest.fixture
def calls() -> Iterator[list[PeerCall]]:
    seen: list[PeerCall] = []
    with observing(seen.append):
        yield seen


def _fault(sim: Any, **rule: Any) -> None:
    sim.app.state.faults.set([FaultRule(path="/api/v2/cases", **rule)])


async def test_each_status_is_one_call_of_its_class(
    primero_sim: Any, calls: list[PeerCall]
) -> None:
    expected = {
        200: None,
        404: CallFailure.CLIENT_ERROR,
        401: CallFailure.UNAUTHORIZED,
        403: CallFailure.FORBIDDEN,
        408: CallFailure.TIMEOUT,
        429: CallFailure.RATE_LIMITED,
        503: CallFailure.SERVER_ERROR,
    }
    auth = (primero_sim.user, primero_sim.password)
    async with ObservedClient("primero", base_url=primero_sim.url, auth=auth) as client:
        for status in expected:
            if status == 200:
                primero_sim.app.state.faults.clear()
            else:
                _fault(primero_sim, status=status)
            await client.get("/api/v2/cases")
    assert [(c.peer, c.failure) for c in calls] == [("primero", f) for f in expected.values()]
    assert all(c.seconds >= 0 for c in calls)
    assert [c.healthy for c in calls] == [True, True, False, False, False, False, False]


async def test_timeouts_refused_connections_and_tls_failures(
    primero_sim: Any, calls: list[PeerCall]
) -> None:
    _fault(primero_sim, hang=True)
    async with ObservedClient("primero", timeout=0.2) as client:
        with pytest.raises(httpx.TimeoutException):
            await client.get(f"{primero_sim.url}/api/v2/cases")
        with pytest.raises(httpx.ConnectError):
            await client.get(f"http://127.0.0.1:{free_port()}/")
        with pytest.raises(httpx.ConnectError):
            # TLS spoken to a plain HTTP server: the handshake fails
            await client.get(primero_sim.url.replace("http://", "https://") + "/api/v2/cases")
    assert [c.failure for c in calls] == [
        CallFailure.TIMEOUT,
        CallFailure.CONNECTION,
        CallFailure.TLS,
    ]


async def test_the_clients_report_under_their_peer_name(
    primero_sim: Any, calls: list[PeerCall]
) -> None:
    async with PrimeroClient(
        primero_sim.url, username=primero_sim.user, password=primero_sim.password
    ) as primero:
        await primero.find_cases("unhcr_individual_no", "DEMO-1")
    dtp = DTPClient(f"http://127.0.0.1:{free_port()}", subscription_key="k")
    try:
        with pytest.raises(TransientPeerError):
            await dtp.send_decision({"status": "x"})
    finally:
        await dtp.aclose()
    assert [(c.peer, c.failure) for c in calls] == [
        ("primero", None),
        ("dtp", CallFailure.CONNECTION),
    ]


def test_a_failing_observer_never_fails_the_call(calls: list[PeerCall]) -> None:
    from primero_progres.peers.observe import report

    def broken(_call: PeerCall) -> None:
        raise RuntimeError("observer bug")

    with observing(broken):
        report(PeerCall("dtp", 0.1, None))
    assert calls == [PeerCall("dtp", 0.1, None)]


async def test_a_failure_cleared_before_the_flush_never_reaches_the_store(store: Store) -> None:
    recorder = PeerHealthRecorder(store)
    recorder(PeerCall("primero", 0.1, CallFailure.UNAUTHORIZED))  # a token renewed after a 401
    recorder(PeerCall("primero", 0.1, None))
    recorder(PeerCall("dtp", 0.1, CallFailure.SERVER_ERROR))
    recorder(PeerCall("dtp", 0.1, CallFailure.TIMEOUT))
    await recorder.flush()
    rows = {row.peer: row for row in await store.peer_health.all()}
    assert rows["primero"].last_failure_at is None and rows["primero"].failing_since is None
    assert rows["dtp"].last_failure == "timeout"
    assert rows["dtp"].failing_since is not None
    assert rows["dtp"].failing_since < rows["dtp"].last_failure_at

    await recorder.flush()  # nothing new: no write
    assert await store.peer_health.all() == list(rows.values())


async def test_a_flush_that_fails_is_kept_for_the_next(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorder = PeerHealthRecorder(store)
    recorder(PeerCall("dtp", 0.1, CallFailure.CONNECTION))

    async def unavailable(_seen: object) -> None:
        raise OSError("database down")

    with monkeypatch.context() as patched:
        patched.setattr(store.peer_health, "record", unavailable)
        await recorder.flush()
    recorder(PeerCall("dtp", 0.1, CallFailure.TIMEOUT))
    await recorder.flush()
    [row] = await store.peer_health.all()
    assert row.last_failure == "timeout"
    assert row.failing_since is not None and row.failing_since < row.last_failure_at
