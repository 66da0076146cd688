"""Flow 1, ``progres-referral``, over PING, end to end: the bridge pulls queued LP interventions,
writes the Primero case, then writes the transfer status back.

Expected values come from PING.md (§5, §7.1) and MAPPING.md (flow 1), written by hand.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from primero_progres import demo_data
from primero_progres.stack import Stack
from primero_progres.store import Flow

FOCAL_POINT = "progresv4_primero_intake@cpims-gambella.primero.org"
NUMBER = "DEMO-26-PRTITV-0000001"
BUSINESS_UNIT = demo_data.PING_BUSINESS_UNIT
READY, DELIVERY_FAILED, PENDING_ACKNOWLEDGEMENT = 125080000, 125080001, 125080002
ACCEPTED = 125080003
INVALID_DATA = (
    "Intervention referral has provided invalid data. Please review the data values shared "
    "and re-send the request."
)
PRIMERO_REFUSED = (
    "Primero refused the intervention referral. Please contact the UNICEF CPIMS+ administrator."
)
INVALID_RECORD = {
    "errors": [{"status": 422, "resource": "/api/v2/cases", "message": "Invalid Record JSON"}]
}


def invalid_sex(item: dict[str, Any]) -> dict[str, Any]:
    """The intervention with a sex code the profile does not know (invalid data)."""
    item["individual"]["sex"] = 999
    return item


def today() -> str:
    return datetime.now(UTC).date().isoformat()


async def seed(stack: Stack, *interventions: dict[str, Any]) -> list[str]:
    ids = await stack.seed_ping(list(interventions) or [demo_data.ping_intervention()])
    return ids["interventions"]


async def case_writes(stack: Stack) -> list[tuple[str, int | None]]:
    """Primero requests that create or change a case: (method, status)."""
    journal = await stack.sim_call("GET", f"{stack.primero.url}/_sim/journal")
    return [
        (e["method"], e["status"])
        for e in journal
        if e["method"] in ("POST", "PATCH") and e["path"].startswith("/api/v2/cases")
    ]


async def write_backs(stack: Stack) -> list[dict[str, Any]]:
    """The items of every ``/data`` call on the intervention-update shipping process."""
    return [
        item
        for ingestion in await stack.ping_ingestions("data")
        if ingestion["shipping_process_id"] == "SHP-2748"
        for item in ingestion["body"]["Data"]
    ]


def fields(item: dict[str, Any]) -> dict[str, str]:
    return {f["Name"]: f["Value"] for f in item["Fields"]}


async def test_a_queued_intervention_becomes_a_case_then_pending_acknowledgement(
    ping_stack: Stack,
) -> None:
    [lp_id] = await seed(ping_stack)
    await ping_stack.poll(Flow.PROGRES_REFERRAL)

    [case] = await ping_stack.primero_cases()
    assert case["unhcr_individual_no"] == "DEMO-00000001"
    assert case["unhcr_id_no"] == "DEMO-26-00001"
    assert (case["name_first"], case["name_last"]) == ("Amani", "Example")
    assert case["date_of_birth"] == "2015-03-01"
    assert case["sex"] == "female"
    assert case["language"] == ["language2"]
    assert case["address_current"] == "Gambela"
    assert case["owned_by"] == FOCAL_POINT
    [row] = case["services_section"]
    assert row["progres_interventionnumber"] == NUMBER
    assert row["service_type"] == "alternative_care"
    assert row["service_request_title"] == "Protection Officer"
    assert row["service_request_email"] == "officer@example.org"
    assert row["service_referral_notes"] == "Invented demo referral"

    intervention = await ping_stack.ping_intervention(lp_id)
    assert intervention["transfer_status"] == PENDING_ACKNOWLEDGEMENT
    assert intervention["transfer_status_date"] == today()
    assert intervention["primero_id"] == case["case_id"]
    [item] = await write_backs(ping_stack)
    assert item["ExternalId"] == f"progres-referral:{NUMBER}"
    assert fields(item) == {
        "progres_lpinterventionid": lp_id,
        "progres_businessunit": BUSINESS_UNIT,
        "progres_primerotransferstatus": str(PENDING_ACKNOWLEDGEMENT),
        "progres_primerotransferstatusdate": today(),
        "progres_primeroid": case["case_id"],
    }
    [exchange] = await ping_stack.store.ledger.find(Flow.PROGRES_REFERRAL)
    assert (exchange.key, exchange.state) == (NUMBER, "written_back")
    assert (exchange.lp_intervention_id, exchange.business_unit_id) == (lp_id, BUSINESS_UNIT)
    assert (exchange.case_id, exchange.service_unique_id) == (case["case_id"], row["unique_id"])
    assert await ping_stack.store.jobs.list(state="dead") == []
    # the console's peer status knows PING answered
    statuses = {status.peer: status for status in await ping_stack.store.peers.all()}
    assert statuses["ping"].last_success_at is not None
    assert statuses["ping"].consecutive_failures == 0

    # the next poll finds the queue empty: nothing is written anywhere
    await ping_stack.poll(Flow.PROGRES_REFERRAL)
    assert len(await case_writes(ping_stack)) == 1
    assert len(await write_backs(ping_stack)) == 1


async def test_a_lost_write_back_is_repeated_without_writing_primero_again(
    ping_stack: Stack,
) -> None:
    [lp_id] = await seed(ping_stack)
    await ping_stack.set_ping_modes(lost_writebacks=1)
    await ping_stack.poll(Flow.PROGRES_REFERRAL)
    assert (await ping_stack.ping_intervention(lp_id))["transfer_status"] is None  # dropped

    await ping_stack.poll(Flow.PROGRES_REFERRAL)  # PING lists it again
    assert (await ping_stack.ping_intervention(lp_id))["transfer_status"] == (
        PENDING_ACKNOWLEDGEMENT
    )
    assert await case_writes(ping_stack) == [("POST", 200)]
    assert len(await ping_stack.primero_cases()) == 1
    assert [fields(i)["progres_primerotransferstatus"] for i in await write_backs(ping_stack)] == [
        str(PENDING_ACKNOWLEDGEMENT)
    ] * 2
    [exchange] = await ping_stack.store.ledger.find(Flow.PROGRES_REFERRAL)
    events = [e.event for e in await ping_stack.store.ledger.events(exchange.id)]
    assert events == [
        "case_created",
        "status_written_back",
        "redelivered",
        "status_written_back",
    ]


async def test_a_stale_list_delivers_nothing_twice(ping_stack: Stack) -> None:
    [lp_id] = await seed(ping_stack)
    await ping_stack.poll(Flow.PROGRES_REFERRAL)
    await ping_stack.set_ping_modes(duplicate_deliveries=1)  # the list misses the write-back
    await ping_stack.poll(Flow.PROGRES_REFERRAL)

    assert len(await case_writes(ping_stack)) == 1
    assert len(await write_backs(ping_stack)) == 1
    assert len(await ping_stack.store.jobs.list(kind="progres-referral.pull")) == 2
    [exchange] = await ping_stack.store.ledger.find(Flow.PROGRES_REFERRAL)
    assert exchange.state == "written_back"
    events = [e.event for e in await ping_stack.store.ledger.events(exchange.id)]
    assert events == ["case_created", "status_written_back"]  # a stale list leaves no trace
    assert (await ping_stack.ping_intervention(lp_id))["transfer_status"] == (
        PENDING_ACKNOWLEDGEMENT
    )


async def test_one_bad_record_never_blocks_the_others(ping_stack: Stack) -> None:
    good, invalid, keyless, other = await seed(
        ping_stack,
        demo_data.ping_intervention(NUMBER, "DEMO-00000001"),
        invalid_sex(demo_data.ping_intervention("DEMO-26-PRTITV-0000002", "DEMO-00000002")),
        demo_data.ping_intervention("DEMO-26-PRTITV-0000003", "DEMO-00000003", business_unit=""),
        demo_data.ping_intervention("DEMO-26-PRTITV-0000004", "DEMO-00000004"),
    )
    await ping_stack.poll(Flow.PROGRES_REFERRAL)

    cases = await ping_stack.primero_cases()
    assert sorted(c["unhcr_individual_no"] for c in cases) == ["DEMO-00000001", "DEMO-00000004"]
    assert (await ping_stack.ping_intervention(good))["transfer_status"] == (
        PENDING_ACKNOWLEDGEMENT
    )
    assert (await ping_stack.ping_intervention(other))["transfer_status"] == (
        PENDING_ACKNOWLEDGEMENT
    )
    refused = await ping_stack.ping_intervention(invalid)
    assert refused["transfer_status"] == DELIVERY_FAILED
    assert refused["comments"] == [INVALID_DATA]
    assert refused["primero_id"] is None
    # a row without its business unit cannot be written back: audited, left in the queue
    assert (await ping_stack.ping_intervention(keyless))["transfer_status"] is None
    [unreadable] = await ping_stack.store.audit.list(event="ping_row_unreadable")
    assert unreadable.ids == {
        "reason": "missing_fields",
        "fields": ["progres_businessunit"],
    }
    states = {e.key: e.state for e in await ping_stack.store.ledger.find(Flow.PROGRES_REFERRAL)}
    assert states == {
        NUMBER: "written_back",
        "DEMO-26-PRTITV-0000002": "failure_written_back",
        "DEMO-26-PRTITV-0000004": "written_back",
    }
    assert await ping_stack.store.jobs.list(state="dead") == []


async def test_a_refused_intervention_fixed_and_flagged_again_is_delivered(
    ping_stack: Stack,
) -> None:
    [lp_id] = await seed(ping_stack, invalid_sex(demo_data.ping_intervention()))
    await ping_stack.poll(Flow.PROGRES_REFERRAL)
    assert (await ping_stack.ping_intervention(lp_id))["transfer_status"] == DELIVERY_FAILED

    # a proGres user corrects the record and queues it again
    await seed(ping_stack, demo_data.ping_intervention(lp_intervention_id=lp_id))
    await ping_stack.progres_flags(lp_id)
    await ping_stack.poll(Flow.PROGRES_REFERRAL)
    [case] = await ping_stack.primero_cases()
    intervention = await ping_stack.ping_intervention(lp_id)
    assert intervention["transfer_status"] == PENDING_ACKNOWLEDGEMENT
    assert intervention["primero_id"] == case["case_id"]
    [exchange] = await ping_stack.store.ledger.find(Flow.PROGRES_REFERRAL)
    assert exchange.state == "written_back"


async def test_the_pending_list_is_read_page_by_page(ping_stack: Stack) -> None:
    interventions = [
        demo_data.ping_intervention(f"DEMO-26-PRTITV-{n:07d}", f"DEMO-{n:08d}") for n in range(1, 6)
    ]
    await seed(ping_stack, *interventions)
    await ping_stack.set_ping_modes(page_size=2)
    await ping_stack.poll(Flow.PROGRES_REFERRAL)

    queries = await ping_stack.ping_sim("GET", "queries")
    pages = [(q["page_number"], q["paging_cookie"]) for q in queries
             if q["shipping_process_id"] == "SHP-2747"]
    # page 1 asked as the reference asks it; each next one with its number and PING's cookie
    assert pages[0] == (None, None)
    assert [number for number, _ in pages[1:]] == list(range(2, len(pages) + 1))
    assert all(cookie for _, cookie in pages[1:])
    assert len(await ping_stack.store.jobs.list(kind="progres-referral.poll")) == len(pages)
    # Rows written back while the list is paged shift the simulator's offset pages: what a
    # round skips is still queued, and the next round takes it.
    await ping_stack.poll(Flow.PROGRES_REFERRAL)
    assert len(await ping_stack.primero_cases()) == 5
    assert len(await case_writes(ping_stack)) == 5
    states = [e.state for e in await ping_stack.store.ledger.find(Flow.PROGRES_REFERRAL)]
    assert states == ["written_back"] * 5


async def test_transient_faults_are_retried_and_deliver_once(ping_stack: Stack) -> None:
    [lp_id] = await seed(ping_stack)
    await ping_stack.set_faults(
        "unhcr",
        [
            {"path": "/primes/fetch", "status": 503, "times": 2},
            {"path": "/api/ingestion", "status": 429, "times": 1, "retry_after": 1},
        ],
    )
    await ping_stack.set_faults("primero", [{"method": "POST", "path": "/api/v2/cases",
                                             "status": 502, "times": 1}])
    await ping_stack.poll(Flow.PROGRES_REFERRAL)

    assert await case_writes(ping_stack) == [("POST", 502), ("POST", 200)]
    assert len(await ping_stack.primero_cases()) == 1
    assert (await ping_stack.ping_intervention(lp_id))["transfer_status"] == (
        PENDING_ACKNOWLEDGEMENT
    )
    assert len(await write_backs(ping_stack)) == 1  # the 429 never reached PING
    assert await ping_stack.store.jobs.list(state="dead") == []


async def test_a_primero_refusal_is_written_back_as_delivery_failed(ping_stack: Stack) -> None:
    [lp_id] = await seed(ping_stack)
    await ping_stack.set_faults(
        "primero", [{"method": "POST", "path": "/api/v2/cases", "status": 422,
                     "body": INVALID_RECORD}]
    )
    await ping_stack.poll(Flow.PROGRES_REFERRAL)

    intervention = await ping_stack.ping_intervention(lp_id)
    assert intervention["transfer_status"] == DELIVERY_FAILED
    assert intervention["comments"] == [PRIMERO_REFUSED]
    assert await ping_stack.primero_cases() == []
    [exchange] = await ping_stack.store.ledger.find(Flow.PROGRES_REFERRAL)
    assert exchange.state == "failure_written_back"


async def test_a_write_back_ping_refuses_is_a_dead_letter_and_replays(ping_stack: Stack) -> None:
    [lp_id] = await seed(ping_stack)
    await ping_stack.set_faults("unhcr", [{"path": "/api/ingestion", "status": 400}])
    await ping_stack.poll(Flow.PROGRES_REFERRAL)

    [dead] = await ping_stack.store.jobs.list(state="dead")
    assert dead.kind == "progres-referral.write_back"
    assert dead.dead_reason is not None and dead.dead_reason.reason == "http_400"
    [exchange] = await ping_stack.store.ledger.find(Flow.PROGRES_REFERRAL)
    assert exchange.state == "delivered"  # in Primero, not acknowledged in PING
    assert (await ping_stack.ping_intervention(lp_id))["transfer_status"] is None

    await ping_stack.set_faults("unhcr", [])
    assert await ping_stack.store.jobs.replay(dead.id)
    await ping_stack.settle()
    assert (await ping_stack.ping_intervention(lp_id))["transfer_status"] == (
        PENDING_ACKNOWLEDGEMENT
    )
    assert len(await case_writes(ping_stack)) == 1
    [exchange] = await ping_stack.store.ledger.find(Flow.PROGRES_REFERRAL)
    assert exchange.state == "written_back"


async def test_an_acknowledgement_the_decision_overtook_is_recorded_as_superseded(
    ping_stack: Stack,
) -> None:
    """The focal point decides while the acknowledgement is parked: flow 2's status stands in
    PING, and the ledger says so instead of "delivered, never acknowledged" for ever."""
    [lp_id] = await seed(ping_stack)
    await ping_stack.set_faults("unhcr", [{"path": "/api/ingestion", "status": 400, "times": 1}])
    await ping_stack.poll(Flow.PROGRES_REFERRAL)
    [dead] = await ping_stack.store.jobs.list(state="dead")
    [case] = await ping_stack.primero_cases()
    [row] = case["services_section"]
    await ping_stack.focal_point_decides(case["id"], row["unique_id"], "accepted")
    await ping_stack.poll(Flow.PRIMERO_DECISION)

    assert await ping_stack.store.jobs.replay(dead.id)
    await ping_stack.settle()

    assert (await ping_stack.ping_intervention(lp_id))["transfer_status"] == ACCEPTED
    written = [fields(i)["progres_primerotransferstatus"] for i in await write_backs(ping_stack)]
    assert written == [str(ACCEPTED)], "the acknowledgement never written over the decision"
    [exchange] = await ping_stack.store.ledger.find(Flow.PROGRES_REFERRAL)
    assert exchange.state == "superseded_by_decision"
    events = [e.event for e in await ping_stack.store.ledger.events(exchange.id)]
    assert events == ["case_created", "acknowledgement_superseded"]
    assert await ping_stack.store.jobs.list(state="dead") == []
    assert await ping_stack.store.ledger.cases_waiting_for_decision(
        ("accepted", "rejected"), limit=10
    ) == [case["id"]], "a later rejection is still watched for"


async def test_two_interventions_for_one_child_make_one_case(ping_stack: Stack) -> None:
    await seed(
        ping_stack,
        demo_data.ping_intervention(NUMBER, "DEMO-00000001"),
        demo_data.ping_intervention("DEMO-26-PRTITV-0000002", "DEMO-00000001"),
    )
    await ping_stack.poll(Flow.PROGRES_REFERRAL)
    [case] = await ping_stack.primero_cases()
    assert sorted(r["progres_interventionnumber"] for r in case["services_section"]) == [
        NUMBER,
        "DEMO-26-PRTITV-0000002",
    ]
