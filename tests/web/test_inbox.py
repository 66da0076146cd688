"""The DTP inbox: authentication, size and type limits, validation, duplicates, durability."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest

from primero_progres.errors import TransientError
from primero_progres.settings import Settings
from primero_progres.sim.common import serve_in_thread
from primero_progres.store import StepContext, Store
from primero_progres.web import create_app
from primero_progres.web.inbox import MAX_DEPTH, InboxRejection, _depth, load_json
from primero_progres.worker import RetryPolicy, Worker


def _later() -> datetime:
    """A minute on: the retry is due."""
    return datetime.now(UTC) + timedelta(seconds=61)


TOKENS = "current-token,previous-token"
URL = "/api/v1/dtp/messages"
BEARER = {"Authorization": "Bearer current-token"}


def referral(number: str = "811-23-PRTITV-1000095", **extra: Any) -> dict[str, Any]:
    return {
        "request_type": "PrimeroOutgoingReferral",
        "interventions": [
            {
                "progres_interventionnumber": number,
                "individuals.progres_givenname": "Given E",
                **extra,
            }
        ],
    }


@pytest.fixture
async def client(store: Store) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings.for_tests(inbox_tokens=TOKENS, inbox_max_bytes=4096)
    app = create_app(settings, store)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bridge") as http:
        yield http


async def test_accepts_a_referral_and_queues_one_receive_job(
    client: httpx.AsyncClient, store: Store
) -> None:
    response = await client.post(URL, json=referral(), headers=BEARER)
    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "queued"
    message = await store.messages.get(body["message_id"])
    assert message is not None
    assert (message.flow, message.intervention_numbers) == (
        "progres-referral",
        ["811-23-PRTITV-1000095"],
    )
    jobs = await store.jobs.list(message_id=body["message_id"])
    assert [(j.kind, j.state) for j in jobs] == [("progres-referral.receive", "pending")]
    assert jobs[0].refs["intervention_numbers"] == ["811-23-PRTITV-1000095"]
    assert await store.messages.payload(body["message_id"]) == referral()


async def test_decisions_route_to_flow_4_and_the_data_wrapper_is_accepted(
    client: httpx.AsyncClient, store: Store
) -> None:
    decision = {
        "request_type": "PrimeroIncomingReferralDecision",
        "interventions": [{"progres_orgreferralid": "case-1#abcdef123456"}],
    }
    response = await client.post(
        URL, json={"data": decision, "__query_params": {}}, headers={"X-API-Key": "previous-token"}
    )
    assert response.status_code == 202
    message = await store.messages.get(response.json()["message_id"])
    assert message is not None
    assert (message.flow, message.org_referral_ids) == ("progres-decision", ["case-1#abcdef123456"])
    jobs = await store.jobs.list(message_id=message.id)
    assert [j.kind for j in jobs] == ["progres-decision.receive"]


async def test_the_reference_sample_is_accepted(
    client: httpx.AsyncClient, samples_dir: Path
) -> None:
    body = (samples_dir / "flow1__PrimeroOutgoingReferral.json").read_bytes()
    response = await client.post(
        URL, content=body, headers={**BEARER, "Content-Type": "application/json"}
    )
    assert response.status_code == 202


async def test_same_message_again_is_a_duplicate_with_the_first_id(
    client: httpx.AsyncClient, store: Store
) -> None:
    first = await client.post(URL, json=referral(), headers=BEARER)
    again = await client.post(
        URL, json={"data": referral(), "__query_params": {}}, headers={"X-API-Key": "current-token"}
    )
    assert again.status_code == 200
    assert again.json() == {"status": "duplicate", "message_id": first.json()["message_id"]}
    assert len(await store.jobs.list()) == 1
    changed = await client.post(URL, json=referral(extra="changed"), headers=BEARER)
    assert changed.status_code == 202
    assert changed.json()["message_id"] != first.json()["message_id"]


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": "Basic current-token"},
        {"X-API-Key": "current-token-but-longer"},
        {"Authorization": "Bearer "},
    ],
)
async def test_missing_or_wrong_token_is_401(
    client: httpx.AsyncClient, store: Store, headers: dict[str, str]
) -> None:
    response = await client.post(URL, json=referral(), headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"
    assert await store.jobs.list() == []


async def test_no_configured_token_refuses_everything(store: Store) -> None:
    app = create_app(Settings.for_tests(), store)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://bridge"
    ) as http:
        response = await http.post(URL, json=referral(), headers={"Authorization": "Bearer "})
    assert response.status_code == 401


async def test_over_the_size_limit_is_413_by_header_and_by_stream(
    client: httpx.AsyncClient, store: Store
) -> None:
    big = json.dumps(referral(note="x" * 5000)).encode()
    declared = await client.post(
        URL, content=big, headers={**BEARER, "Content-Type": "application/json"}
    )
    assert declared.status_code == 413
    assert declared.json()["error"]["code"] == "too_large"

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(big), 1000):
            yield big[start : start + 1000]

    streamed = await client.post(
        URL, content=chunks(), headers={**BEARER, "Content-Type": "application/json"}
    )
    assert streamed.status_code == 413
    assert await store.jobs.list() == []


@pytest.mark.parametrize("content_type", ["text/plain", "application/xml", None])
async def test_non_json_content_type_is_415(
    client: httpx.AsyncClient, content_type: str | None
) -> None:
    headers = dict(BEARER)
    if content_type:
        headers["Content-Type"] = content_type
    response = await client.post(URL, content=json.dumps(referral()).encode(), headers=headers)
    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_media_type"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b'{"request_type": "PrimeroOutgoingReferral", "interventions": [', "malformed_json"),
        (b"\xff\xfe", "malformed_json"),
        (b"[1, 2]", "not_an_object"),
        (b'{"interventions": []}', "missing_request_type"),
        (b'{"request_type": "decision", "interventions": []}', "unknown_request_type"),
        (b'{"request_type": 5, "interventions": []}', "unknown_request_type"),
        (b'{"request_type": "PrimeroOutgoingReferral"}', "missing_interventions"),
        (
            b'{"request_type": "PrimeroOutgoingReferral", "interventions": {}}',
            "missing_interventions",
        ),
        (
            b'{"request_type": "PrimeroOutgoingReferral", "interventions": ["x"]}',
            "invalid_intervention",
        ),
    ],
)
async def test_bad_bodies_are_400_naming_the_problem(
    client: httpx.AsyncClient, store: Store, body: bytes, code: str
) -> None:
    response = await client.post(
        URL, content=body, headers={**BEARER, "Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == code
    assert await store.jobs.list() == []


@pytest.fixture
async def roomy_client(store: Store) -> AsyncIterator[httpx.AsyncClient]:
    """The inbox with its default size limit and a small intervention cap."""
    settings = Settings.for_tests(inbox_tokens=TOKENS, inbox_max_interventions=3)
    transport = httpx.ASGITransport(app=create_app(settings, store))
    async with httpx.AsyncClient(transport=transport, base_url="http://bridge") as http:
        yield http


def _nested(depth: int) -> bytes:
    inner = "[" * depth + "]" * depth
    return (
        b'{"request_type": "PrimeroOutgoingReferral", "interventions": [{"deep": '
        + inner.encode()
        + b"}]}"
    )


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (_nested(10_000), "too_deep"),
        (_nested(40), "too_deep"),
        (
            b'{"request_type": "PrimeroOutgoingReferral", "interventions": [{"n": NaN}]}',
            "malformed_json",
        ),
        (
            b'{"request_type": "PrimeroOutgoingReferral", "interventions": [{"n": Infinity}]}',
            "malformed_json",
        ),
        (
            b'{"request_type": "PrimeroOutgoingReferral", "interventions": [{"n": -Infinity}]}',
            "malformed_json",
        ),
        (
            b'{"request_type": "PrimeroOutgoingReferral", "interventions": [{"n": 1e999999}]}',
            "malformed_json",
        ),
        (
            b'{"request_type": "PrimeroOutgoingReferral", "interventions": [{"n": '
            + b"9" * 5000
            + b"}]}",
            "malformed_json",
        ),
    ],
)
async def test_deep_nesting_and_numbers_json_has_not_are_400_not_500(
    roomy_client: httpx.AsyncClient, store: Store, body: bytes, code: str
) -> None:
    response = await roomy_client.post(
        URL, content=body, headers={**BEARER, "Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == code
    assert await store.jobs.list() == []


async def test_nesting_as_deep_as_real_messages_is_accepted(
    roomy_client: httpx.AsyncClient,
) -> None:
    response = await roomy_client.post(
        URL, content=_nested(20), headers={**BEARER, "Content-Type": "application/json"}
    )
    assert response.status_code == 202


async def test_more_interventions_than_the_cap_is_413_naming_it(
    roomy_client: httpx.AsyncClient, store: Store
) -> None:
    message = referral()
    message["interventions"] = [{"progres_interventionnumber": f"N-{n}"} for n in range(4)]
    response = await roomy_client.post(URL, json=message, headers=BEARER)
    assert response.status_code == 413
    error = response.json()["error"]
    assert error["code"] == "too_many_interventions"
    assert "at most 3 interventions" in error["message"] and "has 4" in error["message"]
    assert await store.jobs.list() == []
    message["interventions"] = message["interventions"][:3]
    assert (await roomy_client.post(URL, json=message, headers=BEARER)).status_code == 202


def test_the_intervention_cap_defaults_to_500() -> None:
    assert Settings.for_tests().inbox_max_interventions == 500


async def test_a_client_leaving_mid_body_is_one_quiet_info_line(
    store: Store, capfd: pytest.CaptureFixture[str]
) -> None:
    """uvicorn used to log an ERROR with a traceback (``ClientDisconnect``)."""
    settings = Settings.for_tests(inbox_tokens=TOKENS)
    capfd.readouterr()
    with serve_in_thread(create_app(settings, store)) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(
                b"POST /api/v1/dtp/messages HTTP/1.1\r\nHost: bridge\r\n"
                b"Authorization: Bearer current-token\r\nContent-Type: application/json\r\n"
                b"Content-Length: 1000\r\n\r\n"
                b'{"request_type": "PrimeroOutgoingReferral", "interv'
            )
            time.sleep(0.2)
        deadline = time.monotonic() + 20
        logged = ""
        while "inbox.client_disconnected" not in logged and time.monotonic() < deadline:
            time.sleep(0.05)
            out, err = capfd.readouterr()
            logged += out + err
    out, err = capfd.readouterr()
    logged += out + err
    assert logged.count("inbox.client_disconnected") == 1
    assert "Traceback" not in logged and "ERROR" not in logged and '"error"' not in logged
    assert await store.jobs.list() == []


async def test_error_bodies_never_echo_the_request(client: httpx.AsyncClient) -> None:
    body = b'{"request_type": "Given MARKERNAME", "interventions": []}'
    response = await client.post(
        URL, content=body, headers={**BEARER, "Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert "MARKERNAME" not in response.text


async def test_a_failure_after_202_loses_nothing(
    client: httpx.AsyncClient, store: Store, db_url: str
) -> None:
    response = await client.post(URL, json=referral(), headers=BEARER)
    message_id = response.json()["message_id"]

    async def peer_down(ctx: StepContext) -> None:
        raise TransientError("primero create_case: connection", reason="connection")

    retry = RetryPolicy(60, 60, 5, random=lambda: 1.0)
    worker = Worker(store, {"progres-referral.receive": peer_down}, retry=retry)
    await worker.run_until_idle()
    job = (await store.jobs.list(message_id=message_id))[0]
    assert (job.state, job.attempts) == ("pending", 1)
    assert await store.messages.payload(message_id) == referral()

    # the process restarts; the message is still there and its fan-out runs once
    async def receive(ctx: StepContext) -> None:
        assert ctx.job.message_id == message_id
        message = await reopened.messages.payload(message_id)
        assert message is not None
        for item in message["interventions"]:
            number = item["progres_interventionnumber"]
            ctx.enqueue(
                "progres-referral.deliver",
                item,
                key=number,
                refs={"progres_interventionnumber": number},
            )

    reopened = await Store.open(db_url, encryption=store.cipher, clock=_later)
    await Worker(reopened, {"progres-referral.receive": receive}).run_until_idle()
    delivers = await reopened.jobs.list(kind="progres-referral.deliver")
    assert [(d.key, d.message_id, d.has_payload) for d in delivers] == [
        ("811-23-PRTITV-1000095", message_id, True)
    ]
    assert await reopened.messages.payload(message_id) is None, "purged once received"
    await reopened.close()


async def test_openapi_lists_every_status(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    inbox = spec["paths"][URL]["post"]["responses"]
    assert set(inbox) == {"200", "202", "400", "401", "413", "415", "503"}
    body = spec["paths"][URL]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body["required"] == ["request_type", "interventions"]
    assert body["properties"]["interventions"]["maxItems"] == 500
    schemes = spec["components"]["securitySchemes"]
    assert {(s["type"], s.get("scheme"), s.get("name")) for s in schemes.values()} == {
        ("http", "bearer", None),
        ("apiKey", None, "X-API-Key"),
    }
    assert set(spec["paths"]["/readyz"]["get"]["responses"]) == {"200", "503"}


async def test_health_readiness_and_metrics(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    assert (await client.get("/readyz")).json() == {"status": "ready"}
    await client.post(URL, json=referral("I-METRIC"), headers=BEARER)
    metrics = (await client.get("/metrics")).text
    assert (
        'primero_progres_inbound_messages_total{flow="progres-referral",outcome="queued"}'
        in metrics
    )
    assert (
        'primero_progres_queue_jobs{kind="progres-referral.receive",state="pending"} 1.0' in metrics
    )
    assert "I-METRIC" not in metrics


async def test_over_ping_there_is_no_inbox_to_call(store: Store) -> None:
    """PING never calls the bridge; a stray DTP call must not queue work nothing would run."""
    settings = Settings.for_tests(inbox_tokens=TOKENS, unhcr_gateway="ping")
    transport = httpx.ASGITransport(app=create_app(settings, store))
    async with httpx.AsyncClient(transport=transport, base_url="http://bridge") as http:
        response = await http.post(URL, json=referral(), headers=BEARER)
        assert response.status_code == 404
        assert (await http.get("/healthz")).status_code == 200
    assert await store.jobs.list() == []
    assert await store.messages.list() == []


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        ("1", 0),
        ('"x"', 0),
        ("[]", 1),
        ('{"a": [1, {"b": "c"}], "d": []}', 3),
        ("[" * MAX_DEPTH + "]" * MAX_DEPTH, MAX_DEPTH),
        ('{"a": ' * MAX_DEPTH + "1" + "}" * MAX_DEPTH, MAX_DEPTH),
    ],
)
def test_a_body_at_most_max_depth_deep_is_taken(text: str, depth: int) -> None:
    assert _depth(load_json(text.encode())) == depth


@pytest.mark.parametrize(
    "text",
    [
        "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1),
        '[1, {"a": ' * (MAX_DEPTH // 2 + 1) + "2" + "}]" * (MAX_DEPTH // 2 + 1),
    ],
)
def test_one_level_deeper_is_too_deep(text: str) -> None:
    with pytest.raises(InboxRejection) as refused:
        load_json(text.encode())
    assert (refused.value.status, refused.value.code) == (400, "too_deep")
