"""DTPClient against the real DTP simulator on loopback: both endpoints, every error class."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import structlog
import time_machine

from primero_progres.errors import FailureClass, InvalidInputError
from primero_progres.peers.dtp import DTPClient, DTPReceipt, idempotency_key_for
from primero_progres.peers.errors import PermanentPeerError, TransientPeerError, parse_retry_after
from primero_progres.sim.common import FaultRule, ServerThread, serve_in_thread
from primero_progres.sim.dtp import DTPState, create_app

KEY = "client-test-key"
# A DTP referral as flow 3 builds it: it carries names and a date of birth.
REFERRAL = {
    "id": "f59e880e-d58f-4b68-ba6e-e0616a49aefd#eb097be51d89",
    "progres_givenname": "Given E",
    "progres_familyname": "Family E",
    "progres_dateofbirth": "2020-01-01",
}
DECISION = {
    "status": "Pending Acknowledgement",
    "primero_user": "unhcr_cw",
    "case_id": "b30cba6b-8d97-4524-b77f-a8f50cfcc974",
    "progres_interventionnumber": "NAI-20-PRTITV-0000006",
}
PERSONAL = ("Given E", "Family E", "2020-01-01")


@pytest.fixture
def dtp() -> Iterator[tuple[ServerThread, DTPState]]:
    app = create_app(subscription_key=KEY, fault_seed=7)
    with serve_in_thread(app, timeout_graceful_shutdown=1) as server:
        yield server, app.state.dtp


def faults(state: DTPState, **rule: Any) -> None:
    state.faults.set([FaultRule(**rule)])


async def test_send_referral_reaches_receive_incoming_referral(
    dtp: tuple[ServerThread, DTPState],
) -> None:
    server, state = dtp
    async with DTPClient(server.url, subscription_key=KEY) as client:
        receipt = await client.send_referral(REFERRAL)
    assert isinstance(receipt, DTPReceipt)
    assert receipt.status_code == 200
    [message] = state.messages
    assert message.endpoint == "ReceiveIncomingReferral"
    assert message.body == REFERRAL
    assert receipt.request_id == message.request_id


async def test_send_decision_reaches_receive_decision_outgoing_referral(
    dtp: tuple[ServerThread, DTPState],
) -> None:
    server, state = dtp
    async with DTPClient(server.url + "/", subscription_key=KEY) as client:
        receipt = await client.send_decision(DECISION)
    assert receipt.status_code == 200
    assert [(m.endpoint, m.body) for m in state.messages] == [
        ("ReceiveDecisionOutgoingReferral", DECISION)
    ]


async def test_wrong_subscription_key_is_permanent_401(dtp: tuple[ServerThread, DTPState]) -> None:
    server, state = dtp
    async with DTPClient(server.url, subscription_key="wrong") as client:
        with pytest.raises(PermanentPeerError) as caught:
            await client.send_decision(DECISION)
    error = caught.value
    assert (error.peer, error.operation, error.status_code) == ("dtp", "send_decision", 401)
    assert error.reason == "http_401"
    assert error.failure_class is FailureClass.PERMANENT
    assert state.messages == []


async def test_empty_subscription_key_is_refused_as_missing(
    dtp: tuple[ServerThread, DTPState],
) -> None:
    server, _ = dtp
    async with DTPClient(server.url, subscription_key="") as client:
        with pytest.raises(PermanentPeerError) as caught:
            await client.send_referral(REFERRAL)
    assert caught.value.status_code == 401


async def test_unknown_endpoint_path_is_permanent_404(dtp: tuple[ServerThread, DTPState]) -> None:
    server, _ = dtp
    async with DTPClient(server.url, subscription_key=KEY, referral_path="NoSuchApi") as client:
        with pytest.raises(PermanentPeerError) as caught:
            await client.send_referral(REFERRAL)
    assert caught.value.status_code == 404


async def test_configured_paths_are_used(dtp: tuple[ServerThread, DTPState]) -> None:
    server, state = dtp
    async with DTPClient(
        server.url,
        subscription_key=KEY,
        referral_path="/ReceiveDecisionOutgoingReferral",
        decision_path="ReceiveIncomingReferral",
    ) as client:
        await client.send_referral(REFERRAL)
        await client.send_decision(DECISION)
    assert [m.endpoint for m in state.messages] == [
        "ReceiveDecisionOutgoingReferral",
        "ReceiveIncomingReferral",
    ]


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 413, 422])
async def test_client_errors_are_permanent(dtp: tuple[ServerThread, DTPState], status: int) -> None:
    server, state = dtp
    faults(state, path="/ReceiveIncomingReferral", status=status)
    async with DTPClient(server.url, subscription_key=KEY) as client:
        with pytest.raises(PermanentPeerError) as caught:
            await client.send_referral(REFERRAL)
    assert caught.value.status_code == status
    assert caught.value.reason == f"http_{status}"
    assert not caught.value.retryable


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
async def test_throttling_and_server_errors_are_transient(
    dtp: tuple[ServerThread, DTPState], status: int
) -> None:
    server, state = dtp
    faults(state, path="/ReceiveDecisionOutgoingReferral", status=status)
    async with DTPClient(server.url, subscription_key=KEY) as client:
        with pytest.raises(TransientPeerError) as caught:
            await client.send_decision(DECISION)
    assert caught.value.status_code == status
    assert caught.value.retryable
    assert caught.value.retry_after is None


@pytest.mark.parametrize("status", [429, 503])
async def test_retry_after_is_carried_on_the_error(
    dtp: tuple[ServerThread, DTPState], status: int
) -> None:
    server, state = dtp
    faults(state, path="/ReceiveIncomingReferral", status=status, retry_after=17)
    async with DTPClient(server.url, subscription_key=KEY) as client:
        with pytest.raises(TransientPeerError) as caught:
            await client.send_referral(REFERRAL)
    assert caught.value.retry_after == 17.0


async def test_a_failure_then_success_on_retry(dtp: tuple[ServerThread, DTPState]) -> None:
    server, state = dtp
    faults(state, path="/ReceiveIncomingReferral", status=503, times=1)
    async with DTPClient(server.url, subscription_key=KEY) as client:
        with pytest.raises(TransientPeerError):
            await client.send_referral(REFERRAL)
        receipt = await client.send_referral(REFERRAL)
    assert receipt.status_code == 200
    assert len(state.messages) == 1


async def test_timeout_is_transient(dtp: tuple[ServerThread, DTPState]) -> None:
    server, state = dtp
    faults(state, path="/ReceiveIncomingReferral", hang=True)
    async with DTPClient(server.url, subscription_key=KEY, timeout=0.3) as client:
        with pytest.raises(TransientPeerError) as caught:
            await client.send_referral(REFERRAL)
    assert caught.value.reason == "timeout"
    assert caught.value.status_code is None


async def test_connection_refused_is_transient(refused_url: str) -> None:
    async with DTPClient(refused_url, subscription_key=KEY) as client:
        with pytest.raises(TransientPeerError) as caught:
            await client.send_decision(DECISION)
    assert caught.value.reason == "connection"
    assert caught.value.peer == "dtp"


async def test_unserialisable_message_is_invalid_input(dtp: tuple[ServerThread, DTPState]) -> None:
    server, state = dtp
    async with DTPClient(server.url, subscription_key=KEY) as client:
        with pytest.raises(InvalidInputError):
            await client.send_referral({"when": datetime(2024, 1, 1, tzinfo=UTC)})
    assert state.messages == []


async def test_errors_and_logs_carry_no_message_content(dtp: tuple[ServerThread, DTPState]) -> None:
    server, state = dtp
    async with DTPClient(server.url, subscription_key=KEY) as client:
        with structlog.testing.capture_logs() as logs:
            await client.send_referral(REFERRAL)
            for status in (422, 503):
                faults(state, path="/ReceiveIncomingReferral", status=status, body=REFERRAL)
                with pytest.raises((PermanentPeerError, TransientPeerError)) as caught:
                    await client.send_referral(REFERRAL)
                assert not any(value in str(caught.value) for value in PERSONAL)
    client_events = [e["event"] for e in logs if not e["event"].startswith("dtp_sim")]
    assert client_events == ["dtp_sent", "dtp_refused", "dtp_refused"]
    assert not any(value in repr(logs) for value in PERSONAL)


def test_retry_after_in_http_date_form() -> None:
    with time_machine.travel(datetime(2026, 11, 29, 12, 0, 0, tzinfo=UTC), tick=False):
        assert parse_retry_after("Sun, 29 Nov 2026 12:00:30 GMT") == 30.0
        assert parse_retry_after("Sun, 29 Nov 2026 11:59:00 GMT") == 0.0
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after("-5") is None
    assert parse_retry_after("²") is None  # a digit to str.isdigit, not to float()
    assert parse_retry_after(None) is None


# ---------------------------------------------------------------- Idempotency-Key


def test_idempotency_key_is_a_stable_uuid_per_job_key() -> None:
    job_key = "deliver:flow2:f59e880e#eb097be51d89"
    first = idempotency_key_for(job_key)
    assert first != idempotency_key_for(job_key + "a")
    # the namespace is part of the contract: a new one would make every retry after an
    # upgrade look new to DTP
    namespace = uuid.UUID("0b6f3c1e-5d0a-4f8e-9a51-6c1f2b7d4e90")
    assert first == str(uuid.uuid5(namespace, job_key))


@pytest.mark.parametrize("send", ["send_referral", "send_decision"])
async def test_the_idempotency_key_travels_as_a_header(
    dtp: tuple[ServerThread, DTPState], send: str
) -> None:
    server, state = dtp
    async with DTPClient(server.url, subscription_key=KEY) as client:
        await getattr(client, send)(DECISION, idempotency_key="key-1")
        await getattr(client, send)(DECISION)
    assert [m.idempotency_key for m in state.messages] == ["key-1", None]


async def test_a_retry_with_the_same_key_gets_the_first_receipt_when_dtp_dedupes() -> None:
    app = create_app(subscription_key=KEY, dedupe=True)
    state: DTPState = app.state.dtp
    key = idempotency_key_for("job-1")
    with serve_in_thread(app) as server:
        async with DTPClient(server.url, subscription_key=KEY) as client:
            first = await client.send_decision(DECISION, idempotency_key=key)
            again = await client.send_decision(DECISION, idempotency_key=key)
            other = await client.send_decision(DECISION, idempotency_key=idempotency_key_for("2"))
    assert again == first
    assert other.request_id != first.request_id
    assert [(m.idempotency_key, m.repeats) for m in state.messages] == [
        (key, 1),
        (idempotency_key_for("2"), 0),
    ]


async def test_a_key_reused_for_another_message_is_permanent_422() -> None:
    app = create_app(subscription_key=KEY, dedupe=True)
    with serve_in_thread(app) as server:
        async with DTPClient(server.url, subscription_key=KEY) as client:
            await client.send_decision(DECISION, idempotency_key="k")
            with pytest.raises(PermanentPeerError) as caught:
                await client.send_decision({**DECISION, "status": "Accepted"}, idempotency_key="k")
    assert caught.value.status_code == 422
    assert len(app.state.dtp.messages) == 1


@pytest.mark.parametrize("key", ["", "a b", 'x"y', "line\nbreak", "é", "k" * 256])
async def test_a_malformed_idempotency_key_is_invalid_input_and_nothing_is_sent(
    dtp: tuple[ServerThread, DTPState], key: str
) -> None:
    server, state = dtp
    async with DTPClient(server.url, subscription_key=KEY) as client:
        with pytest.raises(InvalidInputError) as caught:
            await client.send_referral(REFERRAL, idempotency_key=key)
    assert caught.value.reason == "bad_idempotency_key"
    assert state.messages == []
