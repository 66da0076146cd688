"""The DTP simulator over loopback HTTP: the gateway, the test routes, and proGres's side."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from primero_progres.peers.tls import uvicorn_tls_options
from primero_progres.sim.common import serve_in_thread
from primero_progres.sim.dtp import create_app
from tls_helpers import make_tls_files

KEY = "sim-subscription-key"
REFERRAL = {
    "request_type": "PrimeroOutgoingReferral",
    "interventions": [{"progres_interventionnumber": "811-23-PRTITV-1000095"}],
}
DECISION = {
    "request_type": "PrimeroIncomingReferralDecision",
    "interventions": [
        {
            "progres_orgreferralid": "f59e880e-d58f-4b68-ba6e-e0616a49aefd#eb097be51d89",
            "progres_reviewdecision": "125080000",
        }
    ],
}


@pytest.fixture
def dtp() -> Iterator[tuple[str, Any]]:
    app = create_app(subscription_key=KEY, fault_seed=1)
    with serve_in_thread(app, timeout_graceful_shutdown=1) as server:
        yield server.url, app.state.dtp


class Inbox:
    """A tiny stand-in for the bridge inbox: records requests, answers what the test says."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.answer_status = 202
        self.answer_body: Any = {"message_id": "msg-1", "status": "queued"}
        self.app = FastAPI()

        @self.app.post("/api/v1/dtp/messages")
        async def receive(request: Request) -> JSONResponse:
            self.requests.append(
                {
                    "authorization": request.headers.get("authorization"),
                    "body": await request.json(),
                }
            )
            return JSONResponse(self.answer_body, status_code=self.answer_status)


@pytest.fixture
def inbox() -> Iterator[tuple[str, Inbox]]:
    receiver = Inbox()
    with serve_in_thread(receiver.app) as server:
        yield f"{server.url}/api/v1/dtp/messages", receiver


def post(
    url: str, path: str, body: Any = None, *, key: str | None = KEY, **kw: Any
) -> httpx.Response:
    headers = {"Ocp-Apim-Subscription-Key": key} if key is not None else {}
    return httpx.post(f"{url}{path}", json=body, headers=headers, timeout=5, **kw)


# --- the gateway side ------------------------------------------------------------------------


@pytest.mark.parametrize("endpoint", ["ReceiveIncomingReferral", "ReceiveDecisionOutgoingReferral"])
def test_accepted_message_is_recorded_with_endpoint_time_and_body(
    dtp: tuple[str, Any], endpoint: str
) -> None:
    url, _ = dtp
    response = post(url, f"/{endpoint}", {"status": "Pending Acknowledgement", "case_id": "c-1"})
    assert response.status_code == 200
    answer = response.json()
    assert answer["status"] == "received"
    assert response.headers["apim-request-id"] == answer["request_id"]
    messages = httpx.get(f"{url}/_sim/messages").json()
    assert len(messages) == 1
    assert messages[0]["endpoint"] == endpoint
    assert messages[0]["request_id"] == answer["request_id"]
    assert messages[0]["body"] == {"status": "Pending Acknowledgement", "case_id": "c-1"}
    assert messages[0]["received_at"].endswith("Z")


def test_missing_key_is_401_in_api_management_shape(dtp: tuple[str, Any]) -> None:
    url, state = dtp
    response = post(url, "/ReceiveIncomingReferral", REFERRAL, key=None)
    assert response.status_code == 401
    assert response.json()["statusCode"] == 401
    assert "missing subscription key" in response.json()["message"]
    assert state.messages == []


def test_wrong_key_is_401_and_nothing_recorded(dtp: tuple[str, Any]) -> None:
    url, state = dtp
    response = post(url, "/ReceiveDecisionOutgoingReferral", REFERRAL, key="not-the-key")
    assert response.status_code == 401
    assert "invalid subscription key" in response.json()["message"]
    assert state.messages == []


def test_non_json_body_is_400_and_nothing_recorded(dtp: tuple[str, Any]) -> None:
    url, state = dtp
    response = httpx.post(
        f"{url}/ReceiveIncomingReferral",
        content=b"{not json",
        headers={"Ocp-Apim-Subscription-Key": KEY, "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert state.messages == []


def test_key_is_checked_before_the_body(dtp: tuple[str, Any]) -> None:
    url, _ = dtp
    response = httpx.post(f"{url}/ReceiveIncomingReferral", content=b"{not json")
    assert response.status_code == 401


def test_messages_filter_by_endpoint(dtp: tuple[str, Any]) -> None:
    url, _ = dtp
    post(url, "/ReceiveIncomingReferral", {"n": 1})
    post(url, "/ReceiveDecisionOutgoingReferral", {"n": 2})
    post(url, "/ReceiveIncomingReferral", {"n": 3})
    only = httpx.get(f"{url}/_sim/messages", params={"endpoint": "ReceiveIncomingReferral"}).json()
    assert [m["body"]["n"] for m in only] == [1, 3]
    assert [m["sequence"] for m in httpx.get(f"{url}/_sim/messages").json()] == [1, 2, 3]
    unknown = httpx.get(f"{url}/_sim/messages", params={"endpoint": "Nope"})
    assert unknown.status_code == 400


def test_messages_are_counted_by_endpoint(dtp: tuple[str, Any]) -> None:
    url, _ = dtp
    post(url, "/ReceiveIncomingReferral", {"n": 1})
    post(url, "/ReceiveDecisionOutgoingReferral", {"n": 2})
    post(url, "/ReceiveIncomingReferral", {"n": 3})
    count = f"{url}/_sim/messages/count"
    assert httpx.get(count, params={"endpoint": "ReceiveIncomingReferral"}).json() == {"count": 2}
    assert httpx.get(count).json() == {"count": 3}
    assert httpx.get(count, params={"endpoint": "Nope"}).status_code == 400


def test_reset_forgets_messages_and_faults(dtp: tuple[str, Any]) -> None:
    url, _ = dtp
    post(url, "/ReceiveIncomingReferral", {"n": 1})
    httpx.put(f"{url}/_sim/faults", json=[{"path": "/ReceiveIncomingReferral", "status": 503}])
    assert httpx.post(f"{url}/_sim/reset").json() == {"status": "reset"}
    assert httpx.get(f"{url}/_sim/messages").json() == []
    assert httpx.get(f"{url}/_sim/faults").json() == []
    assert post(url, "/ReceiveIncomingReferral", {"n": 2}).status_code == 200


def test_fault_hits_its_route_only_and_the_message_is_not_recorded(dtp: tuple[str, Any]) -> None:
    url, state = dtp
    rules = [{"path": "/ReceiveIncomingReferral", "status": 503, "retry_after": 9, "times": 1}]
    assert httpx.put(f"{url}/_sim/faults", json=rules).status_code == 200
    failed = post(url, "/ReceiveIncomingReferral", {"n": 1})
    assert failed.status_code == 503
    assert failed.headers["Retry-After"] == "9"
    assert post(url, "/ReceiveDecisionOutgoingReferral", {"n": 2}).status_code == 200
    assert post(url, "/ReceiveIncomingReferral", {"n": 3}).status_code == 200  # times=1 used up
    assert [m.body["n"] for m in state.messages] == [2, 3]


def test_fault_rate_zero_never_fires(dtp: tuple[str, Any]) -> None:
    url, _ = dtp
    httpx.put(f"{url}/_sim/faults", json=[{"path": "/Receive", "status": 500, "rate": 0.0}])
    assert post(url, "/ReceiveIncomingReferral", {"n": 1}).status_code == 200


def test_create_app_needs_a_subscription_key() -> None:
    with pytest.raises(ValueError):
        create_app(subscription_key="")


# --- proGres's side: sending to the bridge inbox -----------------------------------------------


def configure_bridge(url: str, inbox_url: str, token: str | None = "inbox-token") -> None:
    response = httpx.put(f"{url}/_sim/bridge", json={"inbox_url": inbox_url, "token": token})
    assert response.status_code == 200


@pytest.fixture
def bridged(dtp: tuple[str, Any], inbox: tuple[str, Inbox]) -> tuple[str, Inbox]:
    """The simulator's URL, already sending to the inbox with the usual token, and the inbox."""
    url, _ = dtp
    inbox_url, receiver = inbox
    configure_bridge(url, inbox_url)
    return url, receiver


def test_send_referral_forwards_with_bearer_token_and_returns_bridge_answer(
    bridged: tuple[str, Inbox],
) -> None:
    url, receiver = bridged
    response = httpx.post(f"{url}/_sim/send-referral", json=REFERRAL)
    assert response.status_code == 202
    assert response.json() == {"message_id": "msg-1", "status": "queued"}
    assert receiver.requests == [{"authorization": "Bearer inbox-token", "body": REFERRAL}]
    forwarded = httpx.get(f"{url}/_sim/forwarded").json()
    assert [(f["request_type"], f["status_code"]) for f in forwarded] == [
        ("PrimeroOutgoingReferral", 202)
    ]


def test_send_decision_forwards_and_passes_the_bridge_status_through(
    bridged: tuple[str, Inbox],
) -> None:
    url, receiver = bridged
    receiver.answer_status = 200
    receiver.answer_body = {"status": "duplicate", "message_id": "msg-0"}
    response = httpx.post(f"{url}/_sim/send-decision", json=DECISION)
    assert response.status_code == 200
    assert response.json() == {"status": "duplicate", "message_id": "msg-0"}
    assert receiver.requests[0]["body"] == DECISION


def test_bridge_refusal_is_passed_through(dtp: tuple[str, Any], inbox: tuple[str, Inbox]) -> None:
    url, _ = dtp
    inbox_url, receiver = inbox
    configure_bridge(url, inbox_url, token="stale-token")
    receiver.answer_status = 401
    receiver.answer_body = {"detail": "invalid token"}
    response = httpx.post(f"{url}/_sim/send-referral", json=REFERRAL)
    assert response.status_code == 401
    assert response.json() == {"detail": "invalid token"}
    assert receiver.requests[0]["authorization"] == "Bearer stale-token"


def test_wrapped_message_is_forwarded_unchanged(bridged: tuple[str, Inbox]) -> None:
    url, receiver = bridged
    wrapped = {"data": REFERRAL, "__query_params": {}}
    assert httpx.post(f"{url}/_sim/send-referral", json=wrapped).status_code == 202
    assert receiver.requests[0]["body"] == wrapped


def test_bridge_configured_at_creation(inbox: tuple[str, Inbox]) -> None:
    inbox_url, receiver = inbox
    app = create_app(subscription_key=KEY, bridge_inbox_url=inbox_url, bridge_token="t0")
    with serve_in_thread(app) as server:
        assert httpx.get(f"{server.url}/_sim/bridge").json() == {
            "inbox_url": inbox_url,
            "token_set": True,
        }
        assert httpx.post(f"{server.url}/_sim/send-decision", json=DECISION).status_code == 202
    assert receiver.requests[0]["authorization"] == "Bearer t0"


@pytest.mark.parametrize(
    ("route", "message"),
    [
        ("send-referral", DECISION),
        ("send-decision", REFERRAL),
        ("send-referral", {"request_type": "PrimeroOutgoingReferral", "interventions": {}}),
        ("send-referral", ["not", "an", "object"]),
    ],
)
def test_send_rejects_a_message_of_the_wrong_kind(
    bridged: tuple[str, Inbox], route: str, message: Any
) -> None:
    url, receiver = bridged
    assert httpx.post(f"{url}/_sim/{route}", json=message).status_code == 422
    assert receiver.requests == []


def test_send_rejects_non_json(dtp: tuple[str, Any]) -> None:
    url, _ = dtp
    assert httpx.post(f"{url}/_sim/send-referral", content=b"<xml/>").status_code == 400


def test_send_without_bridge_is_409(dtp: tuple[str, Any]) -> None:
    url, _ = dtp
    assert httpx.post(f"{url}/_sim/send-referral", json=REFERRAL).status_code == 409


def test_send_to_unreachable_bridge_is_502(dtp: tuple[str, Any], refused_url: str) -> None:
    url, _ = dtp
    configure_bridge(url, f"{refused_url}/api/v1/dtp/messages")
    response = httpx.post(f"{url}/_sim/send-referral", json=REFERRAL)
    assert response.status_code == 502
    assert response.json()["error"] == "bridge unreachable"


def test_bridge_settings_do_not_echo_the_token(dtp: tuple[str, Any]) -> None:
    url, _ = dtp
    response = httpx.put(
        f"{url}/_sim/bridge", json={"inbox_url": "http://127.0.0.1:1/x", "token": "s3cret"}
    )
    assert "s3cret" not in response.text
    assert response.json() == {"inbox_url": "http://127.0.0.1:1/x", "token_set": True}


# --- mutual TLS ------------------------------------------------------------------------------


def test_mtls_refuses_a_client_without_certificate_and_accepts_one_with(tmp_path: Path) -> None:
    files = make_tls_files(tmp_path)
    app = create_app(subscription_key=KEY)
    options = uvicorn_tls_options(cert=files.server, client_ca=files.ca)
    with serve_in_thread(app, **options) as server:
        assert server.url.startswith("https://")
        anonymous = ssl.create_default_context(cafile=str(files.ca))
        with pytest.raises(httpx.TransportError):
            post(server.url, "/ReceiveIncomingReferral", REFERRAL, verify=anonymous)
        identified = ssl.create_default_context(cafile=str(files.ca))
        identified.load_cert_chain(str(files.client_cert), str(files.client_key))
        response = post(server.url, "/ReceiveIncomingReferral", REFERRAL, verify=identified)
        assert response.status_code == 200
    assert len(app.state.dtp.messages) == 1


# --- Idempotency-Key ---------------------------------------------------------------------------


def keyed(
    url: str,
    key: str | None,
    body: Any = DECISION,
    endpoint: str = "ReceiveDecisionOutgoingReferral",
) -> httpx.Response:
    headers = {"Ocp-Apim-Subscription-Key": KEY}
    if key is not None:
        headers["Idempotency-Key"] = key
    return httpx.post(f"{url}/{endpoint}", json=body, headers=headers, timeout=5)


def test_the_key_is_recorded_and_repeats_are_recorded_too_without_dedupe(
    dtp: tuple[str, Any],
) -> None:
    url, _ = dtp
    answers = [keyed(url, "k-1"), keyed(url, "k-1"), keyed(url, None)]
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert len({a.json()["request_id"] for a in answers}) == 3
    messages = httpx.get(f"{url}/_sim/messages").json()
    assert [(m["idempotency_key"], m["repeats"]) for m in messages] == [
        ("k-1", 0),
        ("k-1", 0),
        (None, 0),
    ]


def test_with_dedupe_a_repeated_key_gets_the_first_receipt_and_is_not_recorded() -> None:
    app = create_app(subscription_key=KEY, dedupe=True)
    with serve_in_thread(app) as server:
        first = keyed(server.url, "k-1")
        again = keyed(server.url, "k-1")
        unkeyed = [keyed(server.url, None), keyed(server.url, None)]
        messages = httpx.get(f"{server.url}/_sim/messages").json()
    assert again.status_code == 200
    assert again.json() == first.json()
    assert again.headers["apim-request-id"] == first.headers["apim-request-id"]
    assert [(m["idempotency_key"], m["repeats"]) for m in messages] == [
        ("k-1", 1),
        (None, 0),
        (None, 0),
    ]
    assert unkeyed[0].json() != unkeyed[1].json()


def test_with_dedupe_keys_are_per_endpoint() -> None:
    app = create_app(subscription_key=KEY, dedupe=True)
    with serve_in_thread(app) as server:
        keyed(server.url, "k-1", DECISION, "ReceiveDecisionOutgoingReferral")
        keyed(server.url, "k-1", REFERRAL, "ReceiveIncomingReferral")
        endpoints = [m["endpoint"] for m in httpx.get(f"{server.url}/_sim/messages").json()]
    assert endpoints == ["ReceiveDecisionOutgoingReferral", "ReceiveIncomingReferral"]


def test_with_dedupe_a_key_reused_for_another_message_is_422_and_not_recorded() -> None:
    app = create_app(subscription_key=KEY, dedupe=True)
    with serve_in_thread(app) as server:
        keyed(server.url, "k-1", DECISION)
        reused = keyed(server.url, "k-1", {**DECISION, "request_type": "other"})
        messages = httpx.get(f"{server.url}/_sim/messages").json()
    assert reused.status_code == 422
    assert reused.json()["statusCode"] == 422
    assert [(m["body"], m["repeats"]) for m in messages] == [(DECISION, 0)]


def test_dedupe_is_switched_at_run_time_and_survives_reset(dtp: tuple[str, Any]) -> None:
    url, _ = dtp
    assert httpx.get(f"{url}/_sim/dedupe").json() == {"enabled": False}
    switched = httpx.put(f"{url}/_sim/dedupe", json={"enabled": True})
    assert switched.json() == {"enabled": True}
    keyed(url, "k-1")
    keyed(url, "k-1")
    assert len(httpx.get(f"{url}/_sim/messages").json()) == 1
    httpx.post(f"{url}/_sim/reset")
    assert httpx.get(f"{url}/_sim/dedupe").json() == {"enabled": True}
    keyed(url, "k-1")  # the keys were forgotten with the messages
    assert [m["repeats"] for m in httpx.get(f"{url}/_sim/messages").json()] == [0]


@pytest.mark.parametrize("body", [{}, {"enabled": "maybe"}, {"enabled": True, "x": 1}])
def test_dedupe_switch_refuses_a_bad_body(dtp: tuple[str, Any], body: dict[str, Any]) -> None:
    url, _ = dtp
    assert httpx.put(f"{url}/_sim/dedupe", json=body).status_code == 422
    assert httpx.get(f"{url}/_sim/dedupe").json() == {"enabled": False}
