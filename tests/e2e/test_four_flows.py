"""The four flows, one after the other, as the demo plays them (on both stores)."""

from __future__ import annotations

import pytest

from primero_progres import demo_data
from primero_progres.stack import Stack

CASE_ID = "11111111-2222-4333-8444-555555555555"
RECORD_ID = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"
FOCAL_POINT = "progresv4_primero_intake@cpims-gambella.primero.org"


async def _play(stack: Stack) -> None:
    number = "DEMO-26-PRTITV-0000001"
    answer = await stack.progres_sends_referral(demo_data.referral_message())
    assert answer["status"] == "queued"
    await stack.settle()

    [case] = await stack.primero_cases()
    [row] = case["services_section"]
    assert case["owned_by"] == FOCAL_POINT
    assert row["progres_interventionnumber"] == number
    assert row["unhcr_referral_status"] == "pending"
    [feedback] = await stack.dtp_messages("ReceiveDecisionOutgoingReferral")
    assert feedback["body"] == {
        "status": "Pending Acknowledgement",
        "primero_user": FOCAL_POINT,
        "case_id": case["case_id"],
        "progres_interventionnumber": number,
    }

    await stack.focal_point_decides(case["id"], row["unique_id"], "accepted")
    await stack.poll("primero-decision")
    decisions = await stack.dtp_messages("ReceiveDecisionOutgoingReferral")
    assert decisions[-1]["body"] == {
        "case_id": case["case_id"],
        "primero_user": FOCAL_POINT,
        "progres_interventionnumber": number,
        "status": "acknowledged",
        "closure_reason": "No reason specified.",
        "request_type": "ReceiveDecisionOutgoingReferral",
    }

    await stack.seed_primero(cases=[demo_data.primero_case(CASE_ID, RECORD_ID)])
    referred = await stack.caseworker_refers_to_unhcr(RECORD_ID)
    await stack.poll("primero-referral")
    [referral] = await stack.dtp_messages("ReceiveIncomingReferral")
    org_referral_id = f"{CASE_ID}#{referred['service_unique_id'][-12:]}"
    assert referral["body"]["id"] == org_referral_id
    assert referral["body"]["primero_user"] == demo_data.PRIMERO_CASEWORKER
    assert referral["body"]["service_type"] == "Alternative Care"

    await stack.progres_sends_decision(demo_data.decision_message(org_referral_id))
    await stack.settle()
    statuses = {r["id"]: r["status"] for r in await stack.primero_referrals()}
    assert statuses[referred["referral_id"]] == "accepted"
    assert await stack.store.jobs.list(state="dead") == []


async def test_four_flows_on_sqlite(stack: Stack) -> None:
    await _play(stack)


@pytest.mark.postgres
async def test_four_flows_on_postgresql(pg_stack: Stack) -> None:
    await _play(pg_stack)
