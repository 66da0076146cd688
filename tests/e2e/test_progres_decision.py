"""Flow 4, ``progres-decision``, end to end: proGres accepts or rejects a referral flow 3 sent.

Expected statuses and ``rejected_reason`` texts are written from MAPPING.md (flow 4) by hand.
"""

from __future__ import annotations

from typing import Any

from primero_progres import demo_data
from primero_progres.stack import Stack

CASE_ID = "11111111-2222-4333-8444-555555555555"
RECORD_ID = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"
SERVICE = "0e000000-0000-4000-8000-000000000051"
#: two services whose ids end with the same 12 characters: the wire key cannot tell them apart
COLLIDING = ("0e000000-0000-4000-8000-123456789abc", "0f000000-0000-4000-8000-123456789abc")
ACCEPT, REJECT = "125080000", "125080001"


def org_referral_id(case_id: str, service_unique_id: str) -> str:
    return f"{case_id}#{service_unique_id[-12:]}"


async def seed_referred_case(
    stack: Stack,
    services: dict[str, str],
    *,
    case_id: str = CASE_ID,
    record_id: str = RECORD_ID,
    unhcr_individual_no: str = "DEMO-00000002",
) -> dict[str, str]:
    """A case already in Primero with referrals made before the bridge ran (the ledger knows
    nothing of them). ``services``: service unique_id -> referral status; returns
    service unique_id -> referral id."""
    referral_ids = {
        service: f"0a000000-0000-4000-8000-{service[-12:-1]}{index}"
        for index, service in enumerate(services)
    }
    case = demo_data.primero_case(
        case_id,
        record_id,
        unhcr_individual_no=unhcr_individual_no,
        services_section=[
            {
                "unique_id": s,
                "service_type": "alternative_care",
                "service_implementing_agency": "UNHCR",
            }
            for s in services
        ],
    )
    referrals = [
        {
            "id": referral_ids[service],
            "record_id": record_id,
            "service_record_id": service,
            "transitioned_to": demo_data.UNHCR_CASEWORKER,
            "transitioned_by": demo_data.PRIMERO_CASEWORKER,
            "status": status,
        }
        for service, status in services.items()
    ]
    await stack.seed_primero(cases=[case], referrals=referrals)
    return referral_ids


async def referrals(stack: Stack) -> dict[str, dict[str, Any]]:
    return {r["id"]: r for r in await stack.primero_referrals()}


async def referral_patches(stack: Stack) -> list[dict[str, Any]]:
    journal = await stack.sim_call("GET", f"{stack.primero.url}/_sim/journal")
    return [e for e in journal if e["method"] == "PATCH" and "/referrals/" in e["path"]]


async def dead_reasons(stack: Stack) -> list[str]:
    return [
        job.dead_reason.reason
        for job in await stack.store.jobs.list(state="dead")
        if job.dead_reason is not None
    ]


async def test_a_decision_the_ledger_does_not_know_is_resolved_through_primero(
    stack: Stack,
) -> None:
    ids = await seed_referred_case(stack, {SERVICE: "in_progress"})
    await stack.progres_sends_decision(
        demo_data.decision_message(org_referral_id(CASE_ID, SERVICE))
    )
    await stack.settle()

    assert (await referrals(stack))[ids[SERVICE]]["status"] == "accepted"
    [exchange] = await stack.store.ledger.find(flow="progres-decision")
    assert exchange.state == "accepted"
    assert (exchange.case_record_id, exchange.referral_id) == (RECORD_ID, ids[SERVICE])
    assert await dead_reasons(stack) == []


async def test_a_decision_is_resolved_through_the_ledger_despite_a_colliding_service_key(
    stack: Stack,
) -> None:
    """Flow 3 sent the first service's referral; another service shares its last 12 characters.
    The ledger recorded the full id, so the right referral is accepted, the other untouched."""
    sent, other = COLLIDING
    case = demo_data.primero_case(
        CASE_ID,
        RECORD_ID,
        services_section=[{"unique_id": other, "service_type": "food"}],
    )
    await stack.seed_primero(
        cases=[case],
        referrals=[
            {
                "id": "0a000000-0000-4000-8000-0000000000ff",
                "record_id": RECORD_ID,
                "service_record_id": other,
                "transitioned_to": demo_data.PRIMERO_CASEWORKER,
                "status": "in_progress",
            }
        ],
    )
    referred = await stack.caseworker_refers_to_unhcr(
        RECORD_ID, {"unique_id": sent, "service_type": "alternative_care"}
    )
    assert referred["service_unique_id"] == sent
    await stack.poll("primero-referral")
    [message] = await stack.dtp_messages("ReceiveIncomingReferral")
    assert message["body"]["id"] == org_referral_id(CASE_ID, sent)

    await stack.progres_sends_decision(demo_data.decision_message(org_referral_id(CASE_ID, sent)))
    await stack.settle()

    statuses = {r["id"]: r["status"] for r in (await referrals(stack)).values()}
    assert statuses == {
        referred["referral_id"]: "accepted",
        "0a000000-0000-4000-8000-0000000000ff": "in_progress",
    }
    assert await dead_reasons(stack) == []


async def test_a_colliding_service_key_unknown_to_the_ledger_is_a_dead_letter(
    stack: Stack,
) -> None:
    ids = await seed_referred_case(stack, dict.fromkeys(COLLIDING, "in_progress"))
    await stack.progres_sends_decision(
        demo_data.decision_message(org_referral_id(CASE_ID, COLLIDING[0]))
    )
    await stack.settle()

    assert {r["status"] for r in (await referrals(stack)).values()} == {"in_progress"}
    assert set(ids.values()) == set(await referrals(stack))
    assert await referral_patches(stack) == []
    assert await dead_reasons(stack) == ["ambiguous_referral"]


async def test_a_decision_for_an_unknown_case_is_a_dead_letter(stack: Stack) -> None:
    unknown = org_referral_id("99999999-2222-4333-8444-555555555555", SERVICE)
    await stack.progres_sends_decision(demo_data.decision_message(unknown))
    await stack.settle()

    [dead] = await stack.store.jobs.list(state="dead")
    assert dead.kind == "progres-decision.apply"
    assert dead.dead_reason is not None
    assert dead.dead_reason.reason == "unknown_case"
    assert dead.refs["org_referral_id"] == unknown


async def test_a_decision_for_an_unknown_referral_of_a_known_case_is_a_dead_letter(
    stack: Stack,
) -> None:
    await seed_referred_case(stack, {SERVICE: "in_progress"})
    await stack.progres_sends_decision(
        demo_data.decision_message(org_referral_id(CASE_ID, "0e000000-0000-4000-8000-00000000beef"))
    )
    await stack.settle()

    assert await referral_patches(stack) == []
    assert await dead_reasons(stack) == ["unknown_referral"]


async def test_rejections_carry_reason_and_comment_as_rejected_reason(stack: Stack) -> None:
    services = {
        "0e000000-0000-4000-8000-000000000061": "in_progress",
        "0e000000-0000-4000-8000-000000000062": "in_progress",
        "0e000000-0000-4000-8000-000000000063": "in_progress",
        "0e000000-0000-4000-8000-000000000064": "in_progress",
    }
    ids = await seed_referred_case(stack, services)
    s1, s2, s3, s4 = services
    message = {
        "request_type": "PrimeroIncomingReferralDecision",
        "interventions": [
            {
                "progres_orgreferralid": org_referral_id(CASE_ID, s1),
                "progres_reviewdecision": REJECT,
                "progres_interoperabiltyreferralrejectionreason": "125080001",
                "progres_interoperabilityreferralrejectionomment": "Wrong registration group",
            },
            {
                "progres_orgreferralid": org_referral_id(CASE_ID, s2),
                "progres_reviewdecision": REJECT,
                "progres_interoperabiltyreferralrejectionreason": "125080000",
                "progres_interoperabilityreferralrejectioncomment": "Not in the database",
            },
            {
                "progres_orgreferralid": org_referral_id(CASE_ID, s3),
                "progres_reviewdecision": "rejected",
                "progres_interoperabiltyreferralrejectionreason": "125080002",
            },
            {
                "progres_orgreferralid": org_referral_id(CASE_ID, s4),
                "progres_reviewdecision": REJECT,
                "progres_interoperabiltyreferralrejectionreason": "Moved to another camp",
            },
        ],
    }
    await stack.progres_sends_decision(message)
    await stack.settle()

    found = await referrals(stack)
    assert {s: (found[ids[s]]["status"], found[ids[s]].get("rejected_reason")) for s in ids} == {
        s1: ("rejected", "Individual Not Match UNHCR ID: Wrong registration group"),
        s2: ("rejected", "Individual Not Found: Not in the database"),
        s3: ("rejected", "Not applicable"),
        s4: ("rejected", "Moved to another camp"),
    }
    assert await dead_reasons(stack) == []


async def test_a_decision_primero_answers_without_changing_anything_is_a_dead_letter(
    stack: Stack,
) -> None:
    """The referral was already rejected; accepting it is no legal transition: Primero answers
    200 and keeps ``rejected``. The bridge must notice, not record an acceptance."""
    ids = await seed_referred_case(stack, {SERVICE: "rejected"})
    await stack.progres_sends_decision(
        demo_data.decision_message(org_referral_id(CASE_ID, SERVICE), ACCEPT)
    )
    await stack.settle()

    assert (await referrals(stack))[ids[SERVICE]]["status"] == "rejected"
    assert [e["status"] for e in await referral_patches(stack)] == [200]
    assert await dead_reasons(stack) == ["referral_not_updated"]
    assert await stack.store.ledger.find(flow="progres-decision") == []


async def test_an_invalid_decision_code_patches_nothing_while_valid_ones_apply(
    stack: Stack,
) -> None:
    valid, invalid = "0e000000-0000-4000-8000-000000000071", "0e000000-0000-4000-8000-000000000072"
    ids = await seed_referred_case(stack, {valid: "in_progress", invalid: "in_progress"})
    message = demo_data.decision_message(org_referral_id(CASE_ID, valid))
    message["interventions"].append(
        {
            "progres_orgreferralid": org_referral_id(CASE_ID, invalid),
            "progres_reviewdecision": "125089999",
        }
    )
    await stack.progres_sends_decision(message)
    await stack.settle()

    found = await referrals(stack)
    assert found[ids[valid]]["status"] == "accepted"
    assert found[ids[invalid]]["status"] == "in_progress"
    assert len(await referral_patches(stack)) == 1
    assert await dead_reasons(stack) == ["invalid_data"]


async def test_the_same_decision_again_is_applied_once(stack: Stack) -> None:
    second = "0e000000-0000-4000-8000-000000000081"
    ids = await seed_referred_case(stack, {SERVICE: "in_progress", second: "in_progress"})
    message = demo_data.decision_message(org_referral_id(CASE_ID, SERVICE))
    first = await stack.progres_sends_decision(message)
    await stack.settle()
    again = await stack.progres_sends_decision(message)
    # the same decision inside a different message, next to a new one
    other = demo_data.decision_message(org_referral_id(CASE_ID, SERVICE))
    other["interventions"] += demo_data.decision_message(org_referral_id(CASE_ID, second))[
        "interventions"
    ]
    third = await stack.progres_sends_decision(other)
    await stack.settle()

    assert again == {"status": "duplicate", "message_id": first["message_id"]}
    assert third["status"] == "queued"
    found = await referrals(stack)
    assert (found[ids[SERVICE]]["status"], found[ids[second]]["status"]) == ("accepted", "accepted")
    assert len(await referral_patches(stack)) == 2
    assert await dead_reasons(stack) == []
