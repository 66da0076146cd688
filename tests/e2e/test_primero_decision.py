"""Flow 2, ``primero-decision``, end to end: a focal point's decision goes back to DTP, once.

Expected messages are written from MAPPING.md (flow 2) by hand.
"""

from __future__ import annotations

import asyncio
from typing import Any

from primero_progres import demo_data
from primero_progres.stack import Stack

FOCAL_POINT = "progresv4_primero_intake@cpims-gambella.primero.org"
ENDPOINT = "ReceiveDecisionOutgoingReferral"
NUMBER = "DEMO-26-PRTITV-0000001"
SECOND_NUMBER = "DEMO-26-PRTITV-0000002"


async def deliver(stack: Stack, *interventions: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Flow 1 creates the cases; returns intervention number -> (case, service row)."""
    await stack.progres_sends_referral(demo_data.referral_message(*interventions))
    await stack.settle()
    rows: dict[str, dict[str, Any]] = {}
    for case in await stack.primero_cases():
        for row in case["services_section"]:
            rows[row["progres_interventionnumber"]] = {"case": case, "row": row}
    return rows


async def decisions(stack: Stack) -> list[dict[str, Any]]:
    """Messages of flow 2 (flow 1 feedback shares the endpoint but has no ``request_type`` of
    ``ReceiveDecisionOutgoingReferral``)."""
    bodies = [m["body"] for m in await stack.dtp_messages(ENDPOINT)]
    return [b for b in bodies if b.get("request_type") == ENDPOINT]


def decision(case: dict[str, Any], number: str, status: str, reason: str) -> dict[str, Any]:
    return {
        "case_id": case["case_id"],
        "primero_user": FOCAL_POINT,
        "progres_interventionnumber": number,
        "status": status,
        "closure_reason": reason,
        "request_type": ENDPOINT,
    }


async def edit_case(stack: Stack, record_id: str, data: dict[str, Any]) -> None:
    """A Primero user edits the case (any field): its ``last_updated_at`` moves."""
    response = await stack.http.patch(
        f"{stack.primero.url}/api/v2/cases/{record_id}",
        json={"data": data},
        auth=(demo_data.API_USER, demo_data.API_PASSWORD),
    )
    response.raise_for_status()


async def test_a_rejection_goes_back_with_its_reason(stack: Stack) -> None:
    [item] = (await deliver(stack, demo_data.intervention())).values()
    await stack.focal_point_decides(
        item["case"]["id"], item["row"]["unique_id"], "rejected", "Child not in the camp"
    )
    await stack.poll("primero-decision")

    assert await decisions(stack) == [
        decision(item["case"], NUMBER, "rejected", "Child not in the camp")
    ]
    [sent] = await stack.store.ledger.find(flow="primero-decision")
    assert (sent.state, sent.service_unique_id) == ("sent", item["row"]["unique_id"])


async def test_a_pending_service_sends_nothing(stack: Stack) -> None:
    await deliver(stack, demo_data.intervention())
    await stack.poll("primero-decision")

    assert await decisions(stack) == []
    assert await stack.store.ledger.find(flow="primero-decision") == []


async def test_a_case_edited_after_its_decision_was_sent_sends_no_second_one(
    stack: Stack,
) -> None:
    [item] = (await deliver(stack, demo_data.intervention())).values()
    case, row = item["case"], item["row"]
    await stack.focal_point_decides(case["id"], row["unique_id"], "accepted")
    await stack.poll("primero-decision")
    await edit_case(stack, case["id"], {"name_nickname": "Ami"})
    await stack.focal_point_decides(case["id"], row["unique_id"], "accepted")
    await stack.poll("primero-decision")
    await stack.poll("primero-decision", full_scan=True)

    assert await decisions(stack) == [
        decision(case, NUMBER, "acknowledged", "No reason specified.")
    ]


async def test_accepted_then_rejected_sends_the_rejection_once(stack: Stack) -> None:
    """SPEC: one decision per service per status change, exactly once per (service, status)."""
    [item] = (await deliver(stack, demo_data.intervention())).values()
    case, row = item["case"], item["row"]
    await stack.focal_point_decides(case["id"], row["unique_id"], "accepted")
    await stack.poll("primero-decision")
    await stack.focal_point_decides(case["id"], row["unique_id"], "rejected", "Placed elsewhere")
    await stack.poll("primero-decision")
    await stack.poll("primero-decision")

    assert await decisions(stack) == [
        decision(case, NUMBER, "acknowledged", "No reason specified."),
        decision(case, NUMBER, "rejected", "Placed elsewhere"),
    ]


async def test_a_decision_on_a_partners_referral_goes_back(stack: Stack) -> None:
    """The reference picked services by ``service_request_agency == UNHCR`` and lost these."""
    partner = {
        "Id": "00000000-0000-4000-8000-000000000099",
        "KeyAttributes": [],
        "LogicalName": "progres_partner",
        "Name": "Partner NGO",
        "RowVersion": None,
    }
    [item] = (
        await deliver(stack, demo_data.intervention(**{"user.progres_partner": partner}))
    ).values()
    assert item["row"]["service_request_agency"] == "Partner NGO"
    await stack.focal_point_decides(item["case"]["id"], item["row"]["unique_id"], "accepted")
    await stack.poll("primero-decision")

    assert await decisions(stack) == [
        decision(item["case"], NUMBER, "acknowledged", "No reason specified.")
    ]


async def test_two_services_of_one_case_each_send_their_decision(stack: Stack) -> None:
    items = await deliver(
        stack, demo_data.intervention(NUMBER), demo_data.intervention(SECOND_NUMBER)
    )
    case = items[NUMBER]["case"]
    await stack.focal_point_decides(case["id"], items[NUMBER]["row"]["unique_id"], "accepted")
    await stack.focal_point_decides(
        case["id"], items[SECOND_NUMBER]["row"]["unique_id"], "rejected", "Duplicate"
    )
    await stack.poll("primero-decision")

    sent = sorted(await decisions(stack), key=lambda b: b["progres_interventionnumber"])
    assert sent == [
        decision(case, NUMBER, "acknowledged", "No reason specified."),
        decision(case, SECOND_NUMBER, "rejected", "Duplicate"),
    ]


async def test_a_decision_made_while_a_poll_runs_is_sent_by_the_next_run_at_the_latest(
    stack: Stack,
) -> None:
    other_child = demo_data.intervention(
        SECOND_NUMBER, **{"individuals.progres_id": "DEMO-00000009"}
    )
    items = await deliver(stack, demo_data.intervention(NUMBER), other_child)
    first, second = items[NUMBER], items[SECOND_NUMBER]
    assert first["case"]["id"] != second["case"]["id"]
    await stack.focal_point_decides(first["case"]["id"], first["row"]["unique_id"], "accepted")
    await stack.set_faults(
        "primero",
        [{"method": "GET", "path": "/api/v2/cases", "status": 200, "rate": 0.0, "latency": 0.5}],
    )
    running = asyncio.create_task(stack.poll("primero-decision"))
    await asyncio.sleep(0.25)
    await stack.focal_point_decides(second["case"]["id"], second["row"]["unique_id"], "accepted")
    await running
    await stack.set_faults("primero", [])
    await stack.poll("primero-decision")

    sent = sorted(await decisions(stack), key=lambda b: b["progres_interventionnumber"])
    assert sent == [
        decision(first["case"], NUMBER, "acknowledged", "No reason specified."),
        decision(second["case"], SECOND_NUMBER, "acknowledged", "No reason specified."),
    ]


async def test_a_case_the_ledger_does_not_know_needs_a_full_scan(stack: Stack) -> None:
    """A proGres referral made before the bridge ran: only the operator's full scan finds it."""
    case = demo_data.primero_case(
        "0c000000-0000-4000-8000-000000000021",
        "0d000000-0000-4000-8000-000000000021",
        owned_by=FOCAL_POINT,
        services_section=[
            {
                "unique_id": "0e000000-0000-4000-8000-000000000021",
                "progres_interventionnumber": "DEMO-26-PRTITV-0000021",
                "service_referral": "external_referral",
                "service_type": "alternative_care",
                "unhcr_referral_status": "accepted",
            },
            {
                "unique_id": "0e000000-0000-4000-8000-000000000022",
                "service_referral": "external_referral",
                "service_type": "food",
                "unhcr_referral_status": "accepted",
            },
        ],
    )
    await stack.seed_primero(cases=[case])
    await stack.poll("primero-decision")
    assert await decisions(stack) == []

    await stack.poll("primero-decision", full_scan=True)
    await stack.poll("primero-decision", full_scan=True)
    assert await decisions(stack) == [
        decision(case, "DEMO-26-PRTITV-0000021", "acknowledged", "No reason specified.")
    ]
