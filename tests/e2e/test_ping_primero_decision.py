"""Flow 2, ``primero-decision``, over PING, end to end: a Primero decision on a referral that
came through PING becomes the LP intervention's transfer status, once.

Expected values come from PING.md (§5, §7.2), written by hand.
"""

from __future__ import annotations

from typing import Any

from primero_progres import demo_data
from primero_progres.stack import Stack
from primero_progres.store import Flow

FOCAL_POINT = "progresv4_primero_intake@cpims-gambella.primero.org"
NUMBER = "DEMO-26-PRTITV-0000001"
ACCEPTED, REJECTED = 125080003, 125080004
CASE_ID = "11111111-2222-4333-8444-555555555555"
RECORD_ID = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"


def accepted_service(intervention_number: str) -> dict[str, Any]:
    """A proGres service row the focal point accepted, in a case the bridge never delivered."""
    return {
        "unique_id": "0d3c6a57-8b1e-4f2a-9c5d-7e4b2a1f6c38",
        "progres_interventionnumber": intervention_number,
        "service_type": "alternative_care",
        "service_referral": "external_referral",
        "service_implementing_agency": "UNICEF",
        "unhcr_referral_status": "accepted",
    }


async def delivered(stack: Stack) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """Flow 1 over PING done: the LP intervention id, the case and its proGres service row."""
    [lp_id] = (await stack.seed_ping([demo_data.ping_intervention(NUMBER)]))["interventions"]
    await stack.poll(Flow.PROGRES_REFERRAL)
    [case] = await stack.primero_cases()
    [row] = case["services_section"]
    return lp_id, case, row


async def decision_writes(stack: Stack) -> list[dict[str, str]]:
    """Fields of the ``/data`` items that carry a Primero decision (accepted or rejected)."""
    found = []
    for ingestion in await stack.ping_ingestions("data"):
        for item in ingestion["body"]["Data"]:
            fields = {f["Name"]: f["Value"] for f in item["Fields"]}
            if fields["progres_primerotransferstatus"] in (str(ACCEPTED), str(REJECTED)):
                found.append({**fields, "comment": item["Attachments"][0]["Comment"]})
    return found


async def test_an_accepted_referral_is_written_back_with_the_case_and_caseworker(
    ping_stack: Stack,
) -> None:
    lp_id, case, row = await delivered(ping_stack)
    await ping_stack.focal_point_decides(case["id"], row["unique_id"], "accepted")
    await ping_stack.poll(Flow.PRIMERO_DECISION)

    intervention = await ping_stack.ping_intervention(lp_id)
    assert intervention["transfer_status"] == ACCEPTED
    assert intervention["primero_id"] == case["case_id"]
    assert intervention["primero_caseworker"] == FOCAL_POINT
    assert intervention["comments"] == ["Referral acknowledged by PRIMERO"]
    [write] = await decision_writes(ping_stack)
    assert write["progres_lpinterventionid"] == lp_id
    assert write["progres_businessunit"] == demo_data.PING_BUSINESS_UNIT
    [exchange] = await ping_stack.store.ledger.find(Flow.PRIMERO_DECISION)
    assert (exchange.key, exchange.state) == (f"{row['unique_id']}:accepted", "sent")
    assert exchange.lp_intervention_id == lp_id

    # the decision goes once, however often the case is polled or edited afterwards
    await ping_stack.poll(Flow.PRIMERO_DECISION, full_scan=True)
    await ping_stack.poll(Flow.PRIMERO_DECISION)
    assert len(await decision_writes(ping_stack)) == 1


async def test_a_rejection_carries_primeros_reason(ping_stack: Stack) -> None:
    lp_id, case, row = await delivered(ping_stack)
    await ping_stack.focal_point_decides(
        case["id"], row["unique_id"], "rejected", "The child moved away"
    )
    await ping_stack.poll(Flow.PRIMERO_DECISION)

    intervention = await ping_stack.ping_intervention(lp_id)
    assert intervention["transfer_status"] == REJECTED
    assert intervention["comments"] == ["Referral rejected by PRIMERO: The child moved away"]


async def test_a_transient_failure_is_retried_and_writes_once(ping_stack: Stack) -> None:
    lp_id, case, row = await delivered(ping_stack)
    await ping_stack.focal_point_decides(case["id"], row["unique_id"], "accepted")
    await ping_stack.set_faults("unhcr", [{"path": "/api/ingestion", "status": 503, "times": 2}])
    await ping_stack.poll(Flow.PRIMERO_DECISION)

    journal = await ping_stack.ping_sim("GET", "journal")
    statuses = [e["status"] for e in journal if e["path"].startswith("/api/ingestion")]
    assert statuses == [200, 503, 503, 200]  # flow 1's write-back, then flow 2's
    assert (await ping_stack.ping_intervention(lp_id))["transfer_status"] == ACCEPTED
    assert len(await decision_writes(ping_stack)) == 1


async def test_a_service_openfn_created_is_addressed_by_its_packed_number(
    ping_stack: Stack,
) -> None:
    """OpenFn's PING job stored ``<number>,<lp id>,<business unit>`` in the service row."""
    [lp_id] = (await ping_stack.seed_ping([demo_data.ping_intervention(NUMBER)]))["interventions"]
    packed = f"{NUMBER},{lp_id},{demo_data.PING_BUSINESS_UNIT}"
    service = accepted_service(packed)
    await ping_stack.seed_primero(
        cases=[demo_data.primero_case(CASE_ID, RECORD_ID, services_section=[service])]
    )
    await ping_stack.poll(Flow.PRIMERO_DECISION, full_scan=True)

    intervention = await ping_stack.ping_intervention(lp_id)
    assert intervention["transfer_status"] == ACCEPTED
    assert intervention["primero_id"] == CASE_ID
    assert intervention["primero_caseworker"] == demo_data.PRIMERO_CASEWORKER


async def test_a_decision_no_lp_intervention_is_known_for_is_a_dead_letter(
    ping_stack: Stack,
) -> None:
    service = accepted_service(NUMBER)
    await ping_stack.seed_primero(
        cases=[demo_data.primero_case(CASE_ID, RECORD_ID, services_section=[service])]
    )
    await ping_stack.poll(Flow.PRIMERO_DECISION, full_scan=True)

    [dead] = await ping_stack.store.jobs.list(state="dead")
    assert dead.kind == "primero-decision.send"
    assert dead.dead_reason is not None and dead.dead_reason.reason == "ping_keys_unknown"
    assert await ping_stack.ping_ingestions("data") == []
