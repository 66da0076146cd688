"""The fault proxy in front of a real simulator, seen by httpx2 clients over loopback."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx2 as httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import Response

from primero_progres.peers.dtp import DTPClient
from primero_progres.peers.errors import TransientPeerError
from primero_progres.sim.common import ServerThread, serve_in_thread
from primero_progres.sim.dtp import DTPState, create_app
from primero_progres.sim.faultproxy import FAULT_KINDS, FaultPolicy, FaultProxy
from sim_process import simulate

KEY = "proxy-test-key"
HEADERS = {"Ocp-Apim-Subscription-Key": KEY}
DECISION = {"status": "Pending Acknowledgement", "case_id": "c-1"}
ENDPOINT = "/ReceiveDecisionOutgoingReferral"
STATUS_KINDS = ("status_500", "status_502", "status_503", "status_429")


@pytest.fixture
def dtp() -> Iterator[tuple[ServerThread, DTPState]]:
    app = create_app(subscription_key=KEY)
    with serve_in_thread(app) as server:
        yield server, app.state.dtp


@pytest.fixture
def proxy(dtp: tuple[ServerThread, DTPState]) -> Iterator[FaultProxy]:
    with FaultProxy(dtp[0].url) as running:
        yield running


def send(url: str, *, timeout: float = 5.0, body: Any = DECISION) -> httpx.Response:
    return httpx.post(f"{url}{ENDPOINT}", json=body, headers=HEADERS, timeout=timeout)


def reset_by_peer(exc: BaseException) -> bool:
    """Whether a failure was a real TCP reset (ECONNRESET), not a clean close."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ConnectionResetError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


# ---------------------------------------------------------------- each fault, as a client sees it


@pytest.mark.parametrize(("kind", "reached"), [("reset_before", 0), ("reset_after", 1)])
def test_a_reset_is_a_real_one_before_or_after_the_peer_processed_the_request(
    proxy: FaultProxy, dtp: tuple[ServerThread, DTPState], kind: str, reached: int
) -> None:
    proxy.set_policy(FaultPolicy(rates={kind: 1.0}))
    with pytest.raises(httpx.ReadError) as caught:
        send(proxy.url)
    assert reset_by_peer(caught.value)
    assert [m.body for m in dtp[1].messages] == [DECISION] * reached


@pytest.mark.parametrize("kind", STATUS_KINDS)
def test_error_statuses_are_answered_without_forwarding(
    proxy: FaultProxy, dtp: tuple[ServerThread, DTPState], kind: str
) -> None:
    proxy.set_policy(FaultPolicy(rates={kind: 1.0}, retry_after=7))
    response = send(proxy.url)
    assert response.status_code == int(kind.removeprefix("status_"))
    assert response.headers.get("Retry-After") == ("7" if kind == "status_429" else None)
    assert dtp[1].messages == []


@pytest.mark.parametrize(("kind", "reached"), [("hang_before", 0), ("hang_after", 1)])
def test_a_hang_outlasts_the_client_timeout(
    proxy: FaultProxy, dtp: tuple[ServerThread, DTPState], kind: str, reached: int
) -> None:
    proxy.set_policy(FaultPolicy(rates={kind: 1.0}, hang_seconds=120))
    with pytest.raises(httpx.ReadTimeout):
        send(proxy.url, timeout=0.5)
    assert len(dtp[1].messages) == reached


def test_a_hang_ends_by_closing_after_hang_seconds(proxy: FaultProxy) -> None:
    proxy.set_policy(FaultPolicy(rates={"hang_before": 1.0}, hang_seconds=0.2))
    with pytest.raises(httpx.RemoteProtocolError):
        send(proxy.url, timeout=30)


@pytest.mark.parametrize("kind", FAULT_KINDS)
async def test_the_dtp_client_classes_every_fault_as_transient(
    proxy: FaultProxy, kind: str
) -> None:
    proxy.set_policy(FaultPolicy(rates={kind: 1.0}, hang_seconds=120))
    async with DTPClient(proxy.url, subscription_key=KEY, timeout=0.5) as client:
        with pytest.raises(TransientPeerError) as caught:
            await client.send_decision(DECISION)
    expected = {"reset_before": "connection", "reset_after": "connection"}
    expected |= {"hang_before": "timeout", "hang_after": "timeout"}
    assert caught.value.reason == expected.get(kind, f"http_{kind.removeprefix('status_')}")


# ---------------------------------------------------------------- forwarding


def test_forwarding_is_transparent_for_methods_query_headers_and_bodies() -> None:
    seen: list[dict[str, Any]] = []
    echo = FastAPI()

    @echo.api_route("/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    async def anything(path: str, request: Request) -> Response:
        seen.append(
            {
                "method": request.method,
                "target": request.url.path + "?" + request.url.query,
                "header": request.headers.get("x-custom"),
                "body": await request.body(),
            }
        )
        return Response(b"\x00\xffbinary", status_code=207, headers={"x-answer": "yes"})

    with (
        serve_in_thread(echo) as upstream,
        FaultProxy(upstream.url) as proxy,
        httpx.Client(base_url=proxy.url) as client,
    ):
        answers = [
            client.request(
                method, f"/a/b?q={method}&x=1", content=b"\x01body", headers={"x-custom": "c"}
            )
            for method in ("GET", "POST", "PUT", "PATCH", "DELETE")
        ]
        chunked = client.post("/c", content=iter([b"chunk-1,", b"chunk-2"]))
    assert [a.status_code for a in answers] == [207] * 5
    assert {a.content for a in answers} == {b"\x00\xffbinary"}
    assert {a.headers["x-answer"] for a in answers} == {"yes"}
    assert [s["method"] for s in seen[:5]] == ["GET", "POST", "PUT", "PATCH", "DELETE"]
    assert seen[1] == {
        "method": "POST",
        "target": "/a/b?q=POST&x=1",
        "header": "c",
        "body": b"\x01body",
    }
    assert chunked.status_code == 207
    assert seen[-1]["body"] == b"chunk-1,chunk-2"
    assert proxy.counts()["forwarded"] == 6


def test_faults_are_off_by_default_and_switched_at_run_time(
    proxy: FaultProxy, dtp: tuple[ServerThread, DTPState]
) -> None:
    assert send(proxy.url).status_code == 200
    proxy.set_policy(FaultPolicy(rates={"status_503": 1.0}))
    assert send(proxy.url).status_code == 503
    proxy.faults_off()
    assert send(proxy.url).status_code == 200
    proxy.faults_on()
    assert send(proxy.url).status_code == 503
    assert len(dtp[1].messages) == 2
    assert proxy.policy.rates == {"status_503": 1.0}


def test_simulator_controls_and_other_paths_are_never_faulted(
    proxy: FaultProxy, dtp: tuple[ServerThread, DTPState]
) -> None:
    proxy.set_policy(FaultPolicy(rates={"reset_before": 1.0}, paths=["/ReceiveIncomingReferral"]))
    assert send(proxy.url).status_code == 200  # another path
    assert httpx.get(f"{proxy.url}/_sim/messages").status_code == 200
    proxy.update(paths=None)
    assert httpx.get(f"{proxy.url}/_sim/messages").status_code == 200
    with pytest.raises(httpx.ReadError):
        send(proxy.url)


def test_an_unreachable_upstream_is_502_and_counted(refused_url: str) -> None:
    with FaultProxy(refused_url) as proxy:
        response = send(proxy.url)
    assert response.status_code == 502
    assert response.json()["error"] == "upstream unreachable"
    assert proxy.counts()["upstream_error"] == 1


# ---------------------------------------------------------------- seed, rates and counts


def outcomes(proxy: FaultProxy, count: int) -> list[int]:
    with httpx.Client(timeout=5) as client:
        return [
            client.post(f"{proxy.url}{ENDPOINT}", json=DECISION, headers=HEADERS).status_code
            for _ in range(count)
        ]


def test_the_same_seed_replays_the_same_faults(dtp: tuple[ServerThread, DTPState]) -> None:
    policy = FaultPolicy.uniform(0.5, kinds=STATUS_KINDS, seed=42)
    with FaultProxy(dtp[0].url, policy=policy) as first:
        run = outcomes(first, 40)
        first.set_policy(policy)  # setting the seed again restarts the sequence
        assert outcomes(first, 40) == run
    with FaultProxy(dtp[0].url, policy=policy.model_copy(update={"seed": 43})) as other:
        assert outcomes(other, 40) != run
    assert len(set(run)) == 5  # 200 and each of the four statuses


def test_rates_are_followed_and_counts_add_up(dtp: tuple[ServerThread, DTPState]) -> None:
    policy = FaultPolicy(rates={"status_503": 0.2, "status_429": 0.1}, seed=5)
    with FaultProxy(dtp[0].url, policy=policy) as proxy:
        seen = outcomes(proxy, 400)
        counts = proxy.counts()
    assert counts["status_503"] == seen.count(503)
    assert counts["status_429"] == seen.count(429)
    assert counts["forwarded"] == seen.count(200) == len(dtp[1].messages)
    assert sum(counts.values()) == 400
    assert 0.14 < seen.count(503) / 400 < 0.26
    assert 0.05 < seen.count(429) / 400 < 0.15


def test_uniform_spreads_the_rate_over_the_kinds() -> None:
    policy = FaultPolicy.uniform(0.3)
    assert set(policy.rates) == set(FAULT_KINDS)
    assert sum(policy.rates.values()) == pytest.approx(0.3)
    assert len(set(policy.rates.values())) == 1


@pytest.mark.parametrize(
    "rates",
    [{"status_503": 0.7, "reset_before": 0.4}, {"status_503": -0.1}, {"status_503": 1.5}],
)
def test_rates_must_be_probabilities_adding_up_to_at_most_one(rates: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        FaultPolicy.model_validate({"rates": rates})


# ---------------------------------------------------------------- the HTTP control


def test_policy_and_counts_over_http(proxy: FaultProxy) -> None:
    control = f"{proxy.url}/_proxy"
    assert httpx.get(f"{control}/faults").json()["enabled"] is False
    put = httpx.put(f"{control}/faults", json={"rates": {"status_502": 1.0}, "seed": 3})
    assert put.status_code == 200
    assert put.json()["rates"] == {"status_502": 1.0}
    assert send(proxy.url).status_code == 502
    patched = httpx.patch(f"{control}/faults", json={"enabled": False})
    assert patched.json()["enabled"] is False
    assert patched.json()["rates"] == {"status_502": 1.0}
    assert send(proxy.url).status_code == 200
    counts = httpx.get(f"{control}/counts").json()
    assert counts["status_502"] == 1 and counts["forwarded"] == 1
    assert set(counts) == {*FAULT_KINDS, "forwarded", "upstream_error"}
    cleared = httpx.delete(f"{control}/counts").json()
    assert set(cleared.values()) == {0}


def test_control_routes_are_never_faulted(proxy: FaultProxy) -> None:
    proxy.set_policy(FaultPolicy(rates={"reset_before": 1.0}))
    assert httpx.get(f"{proxy.url}/_proxy/faults").status_code == 200
    assert httpx.patch(f"{proxy.url}/_proxy/faults", json={"enabled": False}).status_code == 200
    assert proxy.counts()["reset_before"] == 0


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[1, 2]",
        b'{"rates": {"status_999": 0.5}}',
        b'{"rates": {"status_503": 0.8, "status_500": 0.8}}',
        b'{"unknown": true}',
        b'{"hang_seconds": 0}',
    ],
)
def test_a_bad_policy_is_422_and_the_old_one_stays(proxy: FaultProxy, body: bytes) -> None:
    proxy.set_policy(FaultPolicy(rates={"status_503": 0.5}, seed=1))
    for method in ("PUT", "PATCH"):
        response = httpx.request(method, f"{proxy.url}/_proxy/faults", content=body)
        assert response.status_code == 422, (method, body)
    assert proxy.policy == FaultPolicy(rates={"status_503": 0.5}, seed=1)


def test_unknown_control_route_is_404(proxy: FaultProxy) -> None:
    assert httpx.get(f"{proxy.url}/_proxy/nothing").status_code == 404
    assert httpx.post(f"{proxy.url}/_proxy/counts").status_code == 404


# ---------------------------------------------------------------- the command


def test_simulate_proxy_command(dtp: tuple[ServerThread, DTPState]) -> None:
    args = ["--upstream", dtp[0].url, "--seed", "9", "--rate", "1", "--kind", "status_503"]
    with simulate("proxy", *args, "--retry-after", "4", ready="/_proxy/faults") as url:
        policy = httpx.get(f"{url}/_proxy/faults").json()
        assert policy["rates"] == {"status_503": 1.0}
        assert policy["seed"] == 9 and policy["retry_after"] == 4
        assert send(url).status_code == 503
        httpx.patch(f"{url}/_proxy/faults", json={"enabled": False})
        assert send(url).status_code == 200


def test_simulate_proxy_refuses_an_unknown_kind() -> None:
    from typer.testing import CliRunner

    from primero_progres.cli import app as cli_app

    result = CliRunner().invoke(
        cli_app, ["simulate", "proxy", "--upstream", "http://127.0.0.1:1", "--kind", "explode"]
    )
    assert result.exit_code == 2
