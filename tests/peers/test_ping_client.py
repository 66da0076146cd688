"""PingClient against the PING simulator on loopback: token, paging, ingestion, errors."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest
import structlog

from ping_helpers import PARTNER, SHIPPING, FakeClock, PingSim, ping_client, running_ping_sim
from primero_progres.errors import FailureClass, InvalidInputError
from primero_progres.peers.errors import PermanentPeerError, TransientPeerError
from primero_progres.peers.ping import (
    IngestionReceipt,
    PingAuthenticationError,
    PingPermanentError,
    PingRejectedError,
    PingTransientError,
    PingUnexpectedResponseError,
    ShippingProcesses,
    repair_check_status,
)
from primero_progres.sim.ping import DEFAULT_TOKEN_PATH, RETRIEVE_PATH
from primero_progres.sim.ping_state import (
    MARKER,
    Modes,
    Seed,
    SeedIndividual,
    SeedIntervention,
    SeedReferral,
    synthetic_interventions,
)

DATA_PATH = f"/api/ingestion/v2/{PARTNER}/data"
ASYNC_PATH = f"/api/ingestion/v2/{PARTNER}/asyncdata"
STATUS_PATH = "/primes/ingestion/checkstatus/v1/pingdata"





def seed_interventions(ping_sim: PingSim, count: int) -> list[str]:
    return ping_sim.seed(Seed(interventions=synthetic_interventions(count)))["interventions"]


def token_requests(ping_sim: PingSim) -> int:
    return ping_sim.state.token_requests


def update_item(lp_id: str, unit: str, status: str = "125080002") -> dict[str, Any]:
    return {
        "ExternalId": "ledger-1",
        "Fields": [
            {"Name": "progres_lpinterventionid", "Value": lp_id},
            {"Name": "progres_businessunit", "Value": unit},
            {"Name": "progres_primerotransferstatus", "Value": status},
            {"Name": "progres_primerotransferstatusdate", "Value": "2026-01-31"},
        ],
    }


def referral_item(org_referral_id: str = "svc-unique-id-1") -> dict[str, Any]:
    return {
        "ExternalId": "case-1",
        "ExternalGUID": "case-record-1",
        "Fields": [
            {"Name": "progres_orgreferralid", "Value": org_referral_id},
            {"Name": "progres_offlineid", "Value": "case-1"},
            {"Name": "progres_pocfirstname", "Value": f"{MARKER}First"},
            {"Name": "progres_poclastname", "Value": f"{MARKER}Last"},
            {"Name": "progres_pocsex", "Value": "125080000"},
        ],
    }


# ------------------------------------------------------------------ token


async def test_token_is_fetched_once_and_shared(ping_sim: PingSim) -> None:
    seed_interventions(ping_sim, 2)
    async with ping_client(ping_sim.url) as client:
        rows = [row async for row in client.iter_pending_referrals()]
        await asyncio.gather(*(client.referral_detail(r["progres_lpinterventionid"]) for r in rows))
        await client.retrieve(SHIPPING.decisions_list)
    assert len(rows) == 2
    assert token_requests(ping_sim) == 1
    assert ping_sim.state.token_geos == ["EU"]


async def test_no_geo_cookie_when_not_configured(ping_sim: PingSim) -> None:
    async with ping_client(ping_sim.url, token_geo=None) as client:
        await client.authenticate()
    assert ping_sim.state.token_geos == [None]


async def test_token_renewed_before_it_expires(ping_sim: PingSim) -> None:
    clock = FakeClock()
    ping_sim.state.clock = clock
    ping_sim.state.modes = Modes(token_seconds=600)
    async with ping_client(ping_sim.url, clock=clock, token_margin=120) as client:
        await client.retrieve(SHIPPING.decisions_list)
        clock.now += 479
        await client.retrieve(SHIPPING.decisions_list)
        assert token_requests(ping_sim) == 1
        clock.now += 2  # 481 s: inside the 120 s margin of the 600 s token
        await client.retrieve(SHIPPING.decisions_list)
    assert token_requests(ping_sim) == 2


async def test_revoked_token_is_renewed_once_and_the_call_retried(ping_sim: PingSim) -> None:
    seed_interventions(ping_sim, 1)
    async with ping_client(ping_sim.url) as client:
        await client.retrieve(SHIPPING.referrals_pending)
        assert ping_sim.sim("POST", "tokens/revoke") == {"revoked": 1}
        rows = await client.retrieve(SHIPPING.referrals_pending)
    assert len(rows) == 1
    assert token_requests(ping_sim) == 2
    statuses = [(e["path"], e["status"]) for e in ping_sim.state.journal]
    assert statuses == [
        (DEFAULT_TOKEN_PATH, 200),
        (RETRIEVE_PATH, 200),
        (RETRIEVE_PATH, 401),
        (DEFAULT_TOKEN_PATH, 200),
        (RETRIEVE_PATH, 200),
    ]


async def test_a_second_401_after_renewal_is_permanent(ping_sim: PingSim) -> None:
    async with ping_client(ping_sim.url) as client:
        await client.retrieve(SHIPPING.decisions_list)
        ping_sim.faults({"path": RETRIEVE_PATH, "status": 401, "times": 2,
                    "body": {"statusCode": 401, "message": "Unauthorized."}})
        with pytest.raises(PingAuthenticationError) as caught:
            await client.retrieve(SHIPPING.decisions_list)
    assert caught.value.reason == "http_401"
    assert caught.value.failure_class is FailureClass.PERMANENT
    assert token_requests(ping_sim) == 2
    statuses = [e["status"] for e in ping_sim.state.journal if e["path"] == RETRIEVE_PATH]
    assert statuses == [200, 401, 401]


async def test_401_on_a_fresh_token_is_not_retried(ping_sim: PingSim) -> None:
    ping_sim.faults({"path": RETRIEVE_PATH, "status": 401, "times": 1})
    async with ping_client(ping_sim.url) as client:
        with pytest.raises(PingAuthenticationError):
            await client.retrieve(SHIPPING.decisions_list)
    assert token_requests(ping_sim) == 1


async def test_wrong_subscription_key_is_permanent_without_renewing_the_token(
    ping_sim: PingSim,
) -> None:
    async with ping_client(ping_sim.url) as client:
        await client.retrieve(SHIPPING.decisions_list)
    async with ping_client(ping_sim.url, subscription_key="wrong-key") as client:
        with pytest.raises(PingAuthenticationError) as caught:
            await client.retrieve(SHIPPING.decisions_list)
    assert caught.value.reason == "subscription_key_refused"
    assert caught.value.status_code == 401
    assert token_requests(ping_sim) == 2  # one per client: no renewal for a key problem
    assert "wrong-key" not in str(caught.value)


async def test_bad_credentials_name_the_b2c_error_never_the_password(ping_sim: PingSim) -> None:
    async with ping_client(ping_sim.url, password="not-the-password") as client:
        with pytest.raises(PingAuthenticationError) as caught:
            await client.retrieve(SHIPPING.decisions_list)
    error = caught.value
    assert (error.operation, error.status_code, error.reason) == ("token", 400, "token_refused")
    assert error.details == ("error=invalid_grant",)
    assert "not-the-password" not in str(error)
    assert not [e for e in ping_sim.state.journal if e["path"] == RETRIEVE_PATH]


@pytest.mark.parametrize(
    ("override", "code"),
    [({"client_id": "other"}, "invalid_client"), ({"scope": "https://x/y"}, "invalid_scope")],
)
async def test_wrong_client_or_scope_is_refused(
    ping_sim: PingSim, override: dict[str, str], code: str
) -> None:
    async with ping_client(ping_sim.url, **override) as client:
        with pytest.raises(PingAuthenticationError) as caught:
            await client.authenticate()
    assert caught.value.details == (f"error={code}",)


@pytest.mark.parametrize("status", [429, 500, 503])
async def test_token_endpoint_overload_is_transient(ping_sim: PingSim, status: int) -> None:
    ping_sim.faults({"path": DEFAULT_TOKEN_PATH, "status": status, "retry_after": 9})
    async with ping_client(ping_sim.url) as client:
        with pytest.raises(PingTransientError) as caught:
            await client.retrieve(SHIPPING.decisions_list)
    assert (caught.value.operation, caught.value.status_code) == ("token", status)
    assert caught.value.retry_after == 9.0


@pytest.mark.parametrize(
    ("body", "renewed"),
    [
        ({"access_token": "t-1", "token_type": "Bearer", "expires_in": "600"}, True),
        ({"access_token": "t-1", "token_type": "Bearer"}, False),
    ],
)
async def test_token_answers_b2c_may_give(
    ping_sim: PingSim, body: dict[str, Any], renewed: bool
) -> None:
    """``expires_in`` as a string is a lifetime; absent, the token lives until APIM refuses it."""
    ping_sim.faults({"path": DEFAULT_TOKEN_PATH, "status": 200, "body": body, "times": 1})
    ping_sim.state.tokens["t-1"] = float("inf")
    clock = FakeClock()
    async with ping_client(ping_sim.url, clock=clock) as client:
        await client.retrieve(SHIPPING.decisions_list)
        clock.now += 10_000
        await client.retrieve(SHIPPING.decisions_list)
    assert token_requests(ping_sim) == (1 if renewed else 0)
    assert [e["status"] for e in ping_sim.state.journal if e["path"] == RETRIEVE_PATH] == [200, 200]


async def test_token_answer_without_a_token_is_permanent(ping_sim: PingSim) -> None:
    ping_sim.faults({"path": DEFAULT_TOKEN_PATH, "status": 200, "body": {"token_type": "Bearer"}})
    async with ping_client(ping_sim.url) as client:
        with pytest.raises(PingAuthenticationError) as caught:
            await client.retrieve(SHIPPING.decisions_list)
    assert caught.value.reason == "token_not_issued"


# ------------------------------------------------------------------ retrieve and paging


async def test_pages_are_followed_with_page_number_and_cookie(ping_sim: PingSim) -> None:
    ids = seed_interventions(ping_sim, 5)
    ping_sim.state.modes = Modes(page_size=2)
    async with ping_client(ping_sim.url) as client:
        rows = [row async for row in client.iter_pending_referrals()]
    assert [r["progres_lpinterventionid"] for r in rows] == ids
    queries = ping_sim.sim("GET", "queries")
    assert [(q["page_number"], q["count"]) for q in queries] == [(None, 2), (2, 2), (3, 1)]
    assert queries[0]["paging_cookie"] is None  # page 1 is asked as the reference asks it
    assert queries[1]["paging_cookie"] == '<cookie page="1"><shp>SHP-2747</shp></cookie>'
    assert queries[2]["paging_cookie"] == '<cookie page="2"><shp>SHP-2747</shp></cookie>'


async def test_retrieve_page_reports_the_paging_summary(ping_sim: PingSim) -> None:
    seed_interventions(ping_sim, 3)
    ping_sim.state.modes = Modes(page_size=2)
    async with ping_client(ping_sim.url) as client:
        first = await client.retrieve_page(SHIPPING.referrals_pending)
        second = await client.retrieve_page(
            SHIPPING.referrals_pending, page_number=2, paging_cookie=first.paging_cookie
        )
    assert (len(first.rows), first.more, first.record_count) == (2, True, 2)
    assert (len(second.rows), second.more, second.paging_cookie) == (1, False, None)
    assert first.transaction_id and second.transaction_id
    assert MARKER not in repr(first)


async def test_empty_page_announcing_more_is_an_error_not_a_loop(ping_sim: PingSim) -> None:
    ping_sim.faults({"path": RETRIEVE_PATH, "status": 200, "body": {
        "Data": [], "ErrorMessage": None, "PagingSummary": {
            "PagingCookie": "c", "PageNumber": 1, "IsMoreRecordsAvailable": True}}})
    async with ping_client(ping_sim.url) as client:
        with pytest.raises(PingUnexpectedResponseError) as caught:
            await client.retrieve(SHIPPING.referrals_pending)
    assert caught.value.reason == "paging_stalled"


async def test_paging_beyond_max_pages_is_an_error(ping_sim: PingSim) -> None:
    seed_interventions(ping_sim, 5)
    ping_sim.state.modes = Modes(page_size=1)
    async with ping_client(ping_sim.url, max_pages=3) as client:
        seen = []
        with pytest.raises(PingUnexpectedResponseError) as caught:
            async for row in client.iter_pending_referrals():
                seen.append(row)
    assert caught.value.reason == "paging_runaway"
    assert len(seen) == 3


@pytest.mark.parametrize("as_string", [True, False])
async def test_empty_results_are_empty(ping_sim: PingSim, as_string: bool) -> None:
    ping_sim.state.modes = Modes(empty_as_string=as_string)
    async with ping_client(ping_sim.url) as client:
        assert await client.retrieve(SHIPPING.referrals_pending) == []
        assert await client.decision_detail("no-such-referral") == []
        page = await client.retrieve_page(SHIPPING.decisions_list)
    assert page.record_count == (None if as_string else 0)


@pytest.mark.parametrize(
    "body",
    [
        {"Data": None, "ErrorMessage": None, "RecordCount": None},
        {"Data": "No Data Available", "RecordCount": None, "PagingSummary": None},
        {"Data": None, "ErrorMessage": "No Data Available"},
        {"data": [], "errorMessage": None},
    ],
)
async def test_every_spelling_of_empty_is_empty(ping_sim: PingSim, body: dict[str, Any]) -> None:
    ping_sim.faults({"path": RETRIEVE_PATH, "status": 200, "body": body})
    async with ping_client(ping_sim.url) as client:
        assert await client.retrieve(SHIPPING.referrals_pending) == []


async def test_detail_rows_by_record_id_one_or_several(ping_sim: PingSim) -> None:
    ids = seed_interventions(ping_sim, 3)
    async with ping_client(ping_sim.url) as client:
        one = await client.referral_detail(ids[1])
        several = await client.retrieve(SHIPPING.referral_detail, record_ids=[ids[0], ids[2]])
    # two languages x one specific need: two joined rows per intervention
    assert {r["progres_lpinterventionid"] for r in one} == {ids[1]}
    assert len(one) == 2
    assert {r["progres_lpinterventionid"] for r in several} == {ids[0], ids[2]}
    queries = ping_sim.sim("GET", "queries")
    assert [q["record_ids"] for q in queries] == [[ids[1]], [ids[0], ids[2]]]


async def test_error_message_is_permanent_and_never_copied(ping_sim: PingSim) -> None:
    ping_sim.faults({"path": RETRIEVE_PATH, "status": 200, "body": {
        "Data": None, "ErrorMessage": f"Invalid value {MARKER}Given for field"}})
    async with ping_client(ping_sim.url) as client:
        with pytest.raises(PingRejectedError) as caught:
            await client.retrieve(SHIPPING.referrals_pending)
    assert caught.value.reason == "ping_error_message"
    assert MARKER not in str(caught.value)


async def test_unknown_shipping_process_is_rejected(ping_sim: PingSim) -> None:
    async with ping_client(ping_sim.url) as client:
        with pytest.raises(PingRejectedError):
            await client.retrieve("SHP-0000")


@pytest.mark.parametrize(
    "body", [{"Data": {"progres_lpinterventionid": "x"}}, {"Data": ["row"]}, "not an object"]
)
async def test_answers_that_are_not_rows_are_unexpected(ping_sim: PingSim, body: Any) -> None:
    ping_sim.faults({"path": RETRIEVE_PATH, "status": 200, "body": body})
    async with ping_client(ping_sim.url) as client:
        with pytest.raises(PingUnexpectedResponseError) as caught:
            await client.retrieve(SHIPPING.referrals_pending)
    assert caught.value.reason == "bad_response"


# ------------------------------------------------------------------ HTTP failures


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
async def test_throttling_and_server_errors_are_transient(ping_sim: PingSim, status: int) -> None:
    ping_sim.faults({"path": RETRIEVE_PATH, "status": status, "retry_after": 7})
    async with ping_client(ping_sim.url) as client:
        with pytest.raises(PingTransientError) as caught:
            await client.retrieve(SHIPPING.referrals_pending)
    error = caught.value
    assert isinstance(error, TransientPeerError)
    assert (error.peer, error.status_code, error.retry_after) == ("ping", status, 7.0)
    assert error.retryable


@pytest.mark.parametrize("status", [400, 403, 404, 409, 413, 422])
async def test_client_errors_are_permanent(ping_sim: PingSim, status: int) -> None:
    ping_sim.faults({"path": DATA_PATH, "status": status})
    async with ping_client(ping_sim.url) as client:
        with pytest.raises(PingPermanentError) as caught:
            await client.update_intervention(update_item("x", "y"))
    assert isinstance(caught.value, PermanentPeerError)
    assert (caught.value.status_code, caught.value.reason) == (status, f"http_{status}")
    assert not caught.value.retryable


async def test_apim_quota_403_with_retry_after_is_transient(ping_sim: PingSim) -> None:
    ping_sim.faults({"path": RETRIEVE_PATH, "status": 403, "retry_after": 3600})
    async with ping_client(ping_sim.url) as client:
        with pytest.raises(PingTransientError) as caught:
            await client.retrieve(SHIPPING.referrals_pending)
    assert caught.value.retry_after == 3600.0


async def test_rate_limit_answers_429_with_retry_after(ping_sim: PingSim) -> None:
    ping_sim.state.modes = Modes(rate_limit_calls=2, rate_limit_seconds=60)
    async with ping_client(ping_sim.url) as client:
        await client.retrieve(SHIPPING.decisions_list)
        await client.retrieve(SHIPPING.decisions_list)
        with pytest.raises(PingTransientError) as caught:
            await client.retrieve(SHIPPING.decisions_list)
    assert caught.value.status_code == 429
    assert caught.value.retry_after is not None and 1 <= caught.value.retry_after <= 60


async def test_read_timeout_is_transient_and_may_have_arrived(ping_sim: PingSim) -> None:
    ping_sim.faults({"path": ASYNC_PATH, "hang": True})
    async with ping_client(ping_sim.url, timeout=0.5) as client:
        with pytest.raises(PingTransientError) as caught:
            await client.create_referral(referral_item())
    assert (caught.value.reason, caught.value.request_sent) == ("timeout", True)


async def test_connection_refused_is_transient_and_never_arrived(refused_url: str) -> None:
    async with ping_client(refused_url) as client:
        with pytest.raises(PingTransientError) as caught:
            await client.retrieve(SHIPPING.referrals_pending)
    assert (caught.value.operation, caught.value.reason) == ("token", "connection")
    assert caught.value.request_sent is False


# ------------------------------------------------------------------ ingestion


async def test_update_intervention_writes_the_status(ping_sim: PingSim) -> None:
    [lp_id] = seed_interventions(ping_sim, 1)
    async with ping_client(ping_sim.url) as client:
        receipt = await client.update_intervention(
            update_item(lp_id, "cccccccc-0000-4000-8000-000000000001")
        )
        pending = await client.retrieve(SHIPPING.referrals_pending)
    assert isinstance(receipt, IngestionReceipt)
    assert receipt.record_count == 1 and receipt.transaction_id
    record = ping_sim.sim("GET", f"interventions/{lp_id}")
    assert (record["transfer_status"], record["transfer_status_date"]) == (125080002, "2026-01-31")
    assert pending == []
    [call] = ping_sim.sim("GET", "ingestions")
    assert call["body"]["ShippingProcessId"] == SHIPPING.intervention_update
    assert call["body"]["InteropId"] == "INT-1436"


async def test_ingestion_with_unknown_keys_is_rejected(ping_sim: PingSim) -> None:
    async with ping_client(ping_sim.url) as client:
        with pytest.raises(PingRejectedError) as caught:
            await client.update_intervention(update_item("no-such-id", "no-unit"))
    assert caught.value.operation == "ingest"


async def test_ingest_answer_without_an_envelope_is_tolerated(ping_sim: PingSim) -> None:
    """The reference never reads the /data answer; a bare 2xx counts as applied."""
    ping_sim.faults({"path": DATA_PATH, "status": 200, "body": ["accepted"]})
    async with ping_client(ping_sim.url) as client:
        receipt = await client.update_referral(
            {"Fields": [{"Name": "progres_interoperabilityreferralid", "Value": "r"}]}
        )
    assert receipt == IngestionReceipt(transaction_id=None, record_count=None)


@pytest.mark.parametrize("items", [[], [{"ExternalId": "x"}], ["not an item"]])
async def test_malformed_items_are_invalid_input(ping_sim: PingSim, items: list[Any]) -> None:
    async with ping_client(ping_sim.url) as client:
        with pytest.raises(InvalidInputError):
            await client.ingest(SHIPPING.intervention_update, items)
    assert ping_sim.state.journal == []


async def test_unserialisable_item_is_invalid_input(ping_sim: PingSim) -> None:
    async with ping_client(ping_sim.url) as client:
        with pytest.raises(InvalidInputError):
            await client.update_intervention({"Fields": [{"Name": "x", "Value": object()}]})


async def test_create_referral_then_status_until_succeeded(ping_sim: PingSim) -> None:
    clock = FakeClock()
    ping_sim.state.clock = clock
    ping_sim.state.modes = Modes(async_delay_seconds=10)
    async with ping_client(ping_sim.url) as client:
        receipt = await client.create_referral(referral_item())
        assert receipt.transaction_id is not None
        states = []
        for step in (0, 10, 10):
            clock.now += step
            states.append(await client.referral_create_status(receipt.transaction_id))
    assert [s.state for s in states] == ["queued", "processing", "succeeded"]
    assert all(s.repaired and not s.unreadable for s in states)
    assert [item.status for item in states[-1].items] == ["Succeeded"]
    assert states[-1].items[0].external_id == "case-1"
    [referral] = ping_sim.sim("GET", "referrals")
    assert referral["fields"]["progres_interoperabilityreferralstatus"] == 125080000
    assert referral["fields"]["progres_orgreferralid"] == "svc-unique-id-1"
    [call] = ping_sim.sim("GET", "ingestions")
    assert call["body"]["APIVersion"] == "V2"
    assert call["body"]["InteropID"] == "INT-1436"


async def test_well_formed_status_answer_is_read_without_repair(ping_sim: PingSim) -> None:
    ping_sim.state.modes = Modes(malformed_status=False)
    async with ping_client(ping_sim.url) as client:
        receipt = await client.create_referral(referral_item())
        status = await client.referral_create_status(str(receipt.transaction_id))
    assert (status.state, status.repaired, status.unreadable) == ("succeeded", False, False)


async def test_failed_item_reports_failed_with_its_message_kept_out_of_repr(
    ping_sim: PingSim,
) -> None:
    ping_sim.state.modes = Modes(failing_async_items=1)
    async with ping_client(ping_sim.url) as client:
        receipt = await client.create_referral(referral_item())
        status = await client.referral_create_status(str(receipt.transaction_id))
    assert status.state == "failed"
    assert status.items[0].message == "Processing error"
    assert "Processing error" not in repr(status)
    assert ping_sim.sim("GET", "referrals") == []


async def test_async_answer_without_a_transaction_id_is_unexpected(ping_sim: PingSim) -> None:
    ping_sim.faults({"path": ASYNC_PATH, "status": 200, "body": {"ErrorMessage": None}})
    async with ping_client(ping_sim.url) as client:
        with pytest.raises(PingUnexpectedResponseError) as caught:
            await client.create_referral(referral_item())
    assert caught.value.reason == "no_transaction_id"


async def test_unknown_transaction_is_rejected(ping_sim: PingSim) -> None:
    async with ping_client(ping_sim.url) as client:
        with pytest.raises(PingRejectedError) as caught:
            await client.referral_create_status("00000000-0000-4000-8000-000000000000")
    assert caught.value.operation == "check_status"


@pytest.mark.parametrize(
    ("data", "state"),
    [
        ([{"ExternalId": "a", "Status": "Completed"}], "succeeded"),
        ([{"ExternalId": "a", "Status": "In Progress"}], "processing"),
        ([{"ExternalId": "a", "Status": "Pending"}], "queued"),
        ([{"ExternalId": "a", "Status": "Error", "Message": "x"}], "failed"),
        ([{"ExternalId": "a", "Status": "Succeeded"}, {"ExternalId": "b", "Status": "Queued"}],
         "processing"),
        ([{"ExternalId": "a", "Status": "Weird-Word"}], "unknown"),
        ({"ExternalId": "a", "Status": "Succeeded"}, "succeeded"),
        ("No Data Available", "unknown"),
        ([], "unknown"),
    ],
)
async def test_status_vocabularies_are_tolerated(ping_sim: PingSim, data: Any, state: str) -> None:
    ping_sim.faults({"path": STATUS_PATH, "status": 200, "body": {"Data": data}})
    async with ping_client(ping_sim.url) as client:
        status = await client.check_status(SHIPPING.referral_create, "t-1")
    assert status.state == state


async def test_answer_beyond_repair_is_kept_unread_and_never_logged(ping_sim: PingSim) -> None:
    garbage = '[{"ExternalId":"a","Status":"Succeeded","Data":"{"x":"' + MARKER + '"'
    ping_sim.faults({"path": STATUS_PATH, "status": 200, "body": {"Data": garbage}})
    async with ping_client(ping_sim.url) as client:
        with structlog.testing.capture_logs() as logs:
            status = await client.check_status(SHIPPING.referral_create, "t-1")
    assert (status.state, status.unreadable) == ("unknown", True)
    assert status.raw is not None and MARKER in status.raw
    assert MARKER not in repr(status)
    assert MARKER not in repr(logs)


def test_repair_escapes_embedded_records_anywhere_in_the_item() -> None:
    last = '[{"ExternalId":"a","Status":"Failed","Data":"{"progres_pocsex":"9"}"}]'
    middle = '[{"Data":"{"a":"b","c":{"d":"e"}}","Status":"Succeeded"}]'
    assert json.loads(repair_check_status(last))[0]["Data"] == '{"progres_pocsex":"9"}'
    repaired = json.loads(repair_check_status(middle))[0]
    assert json.loads(repaired["Data"]) == {"a": "b", "c": {"d": "e"}}
    assert repair_check_status('[{"Data":"{\\"ok\\":1}"}]') == '[{"Data":"{\\"ok\\":1}"}]'


# ------------------------------------------------------------------ personal data


async def test_no_personal_data_in_logs_or_errors_on_any_path(
    ping_sim: PingSim, caplog: pytest.LogCaptureFixture
) -> None:
    """Markers in every personal field; every operation and several failures; logs checked."""
    caplog.set_level(logging.DEBUG)
    for library in ("httpx2", "httpcore2", "httpcore"):
        caplog.set_level(logging.DEBUG, logger=library)
    seed = Seed(
        interventions=synthetic_interventions(3),
        referrals=[SeedReferral(fields={"progres_offlineid": "case-1",
                                        "progres_interoperabilityreferralrejectionomment":
                                            f"{MARKER} comment"})],
    )
    ids = ping_sim.seed(seed)
    ping_sim.state.modes = Modes(page_size=2)
    errors: list[Exception] = []
    with structlog.testing.capture_logs() as logs:
        async with ping_client(ping_sim.url) as client:
            pending = [row async for row in client.iter_pending_referrals()]
            for row in pending:
                await client.referral_detail(row["progres_lpinterventionid"])
            await client.decision_detail(ids["referrals"][0])
            receipt = await client.create_referral(referral_item())
            await client.referral_create_status(str(receipt.transaction_id))
            ping_sim.faults({"path": RETRIEVE_PATH, "status": 200,
                        "body": {"Data": None, "ErrorMessage": f"{MARKER} bad"}})
            try:
                await client.referral_detail(ids["interventions"][0])
            except PingPermanentError as exc:
                errors.append(exc)
            ping_sim.faults({"path": DATA_PATH, "status": 422, "body": {"error": MARKER}})
            try:
                await client.update_intervention(update_item("x", f"{MARKER}unit"))
            except PingPermanentError as exc:
                errors.append(exc)
    assert len(pending) == 3
    assert len(errors) == 2
    assert not any(MARKER in str(error) or MARKER in repr(error.args) for error in errors)
    assert logs, "the client logs its calls"
    assert MARKER not in repr(logs)
    assert caplog.records, "the HTTP library logs too"
    assert MARKER not in caplog.text


# ------------------------------------------------------------------ configuration


def test_shipping_processes_are_configuration() -> None:
    custom = ShippingProcesses("A-1", "A-2", "A-3", "A-4", "A-5", "A-6", "A-7")
    client = ping_client("http://127.0.0.1:9", shipping_processes=custom, partner_id="PNR-9")
    assert client.shipping_processes.referral_detail == "A-2"
    assert client.partner_id == "PNR-9"
    asyncio.run(client.aclose())


async def test_configured_shipping_processes_reach_the_gateway() -> None:
    custom = {"referrals_pending": "SHP-1", "referral_detail": "SHP-2",
              "intervention_update": "SHP-3", "referral_create": "SHP-4",
              "decisions_list": "SHP-5", "decision_detail": "SHP-6", "referral_update": "SHP-7"}
    with running_ping_sim(shipping_processes=custom, partner_id="PNR-9",
                          interop_id="INT-9") as other:
        other.seed(Seed(interventions=[SeedIntervention(
            intervention_number="N-1", individual=SeedIndividual(progres_id="I-1"))]))
        async with ping_client(other.url, shipping_processes=ShippingProcesses(**custom),
                               partner_id="PNR-9", interop_id="INT-9") as client:
            rows = await client.retrieve("SHP-1")
            await client.update_intervention(update_item(
                rows[0]["progres_lpinterventionid"], rows[0]["progres_businessunit"]))
        async with ping_client(other.url, partner_id="PNR-1363", interop_id="INT-9",
                               shipping_processes=ShippingProcesses(**custom)) as client:
            with pytest.raises(PingRejectedError):
                await client.retrieve("SHP-1")
            with pytest.raises(PingRejectedError):
                await client.update_intervention(update_item("x", "y"))
    assert [q["shipping_process_id"] for q in other.state.queries] == ["SHP-1"]
    assert [i["shipping_process_id"] for i in other.state.ingestions] == ["SHP-3", "SHP-3"]
    assert other.state.ingestions[1]["answer"]["ErrorMessage"] == "Partner not found"
