"""Flow 3, ``primero-referral``, end to end: a Primero referral to UNHCR reaches DTP, once.

Expected messages are written from MAPPING.md (flow 3) by hand.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from primero_progres import demo_data
from primero_progres.stack import Stack

FLOW = "primero-referral"
ENDPOINT = "ReceiveIncomingReferral"
CASE_ID = "11111111-2222-4333-8444-555555555555"
RECORD_ID = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"
OTHER_CASE_ID = "11111111-2222-4333-8444-666666666666"
OTHER_RECORD_ID = "aaaaaaaa-bbbb-4ccc-8ddd-ffffffffffff"


async def referrals_sent(stack: Stack) -> list[dict[str, Any]]:
    return [m["body"] for m in await stack.dtp_messages(ENDPOINT)]


async def journal(stack: Stack) -> list[dict[str, Any]]:
    return await stack.sim_call("GET", f"{stack.primero.url}/_sim/journal")


async def user_lookups(stack: Stack) -> list[str]:
    """Look-ups of referring users (the API user's own, to read its role, are apart)."""
    return [
        e["query"]
        for e in await journal(stack)
        if e["path"] == "/api/v2/users" and f"user_name={demo_data.API_USER}&" not in e["query"]
    ]


async def role_reads(stack: Stack) -> list[str]:
    return [
        e["query"]
        for e in await journal(stack)
        if e["path"] == "/api/v2/users" and f"user_name={demo_data.API_USER}&" in e["query"]
    ]


def org_referral_id(case_id: str, service_unique_id: str) -> str:
    return f"{case_id}#{service_unique_id[-12:]}"


async def test_a_referral_to_unhcr_is_sent_with_the_case_and_the_referring_users_contact(
    stack: Stack,
) -> None:
    await stack.seed_primero(cases=[demo_data.primero_case(CASE_ID, RECORD_ID)])
    referred = await stack.caseworker_refers_to_unhcr(
        RECORD_ID,
        {"service_type": "food", "service_response_day_time": "2026-11-20T08:00:00.000Z"},
    )
    await stack.poll(FLOW)

    [message] = await referrals_sent(stack)
    expected = {
        "request_type": "ReceiveIncomingReferral",
        "primero_user": demo_data.PRIMERO_CASEWORKER,
        "position": "Case Worker",
        "email": "caseworker@example.org",
        "phone": "0100000000",
        "full_name": "Demo Caseworker",
        "service_implementing_agency": "UNICEF",
        "owned_by_agency_id": "UNICEF",
        "service_response_day_time": "2026-11-20T08:00:00.000Z",
        "service_type": "Family Reunification Service",
        "service_type_other": None,
        "service_referral_notes": "Primero referral",
        "unhcr_individual_no": "DEMO-00000002",
        "unhcr_id_no": "DEMO-26-00002",
        "name_first": "Baraka",
        "name_last": "Sample",
        "name_middle": None,
        "name_nickname": None,
        "address_current": "Block 7",
        "date_of_birth": "2014-06-06",
        "sex": "male",
        "telephone_current": None,
        "language": "Nuer",
        "id": org_referral_id(CASE_ID, referred["service_unique_id"]),
    }
    assert {k: message.get(k) for k in expected} == expected
    [exchange] = await stack.store.ledger.find(flow=FLOW)
    assert exchange.state == "sent"
    assert exchange.service_unique_id == referred["service_unique_id"]
    assert exchange.referral_id == referred["referral_id"]
    assert exchange.org_referral_id == expected["id"]


async def test_a_user_without_phone_or_position_gets_the_profiles_default_contact(
    stack: Stack,
) -> None:
    case = demo_data.primero_case(
        CASE_ID,
        RECORD_ID,
        owned_by=demo_data.UNHCR_CASEWORKER,
        associated_user_names=[demo_data.UNHCR_CASEWORKER],
    )
    await stack.seed_primero(cases=[case])
    await stack.caseworker_refers_to_unhcr(RECORD_ID)
    await stack.poll(FLOW)

    [message] = await referrals_sent(stack)
    contact = {k: message[k] for k in ("primero_user", "position", "email", "phone", "full_name")}
    assert contact == {
        "primero_user": demo_data.UNHCR_CASEWORKER,
        "position": "CPIMS+ Administrator",
        "email": "unhcr@example.org",
        "phone": "0000000000",
        "full_name": "Demo UNHCR Caseworker",
    }


async def test_a_referral_is_sent_once_across_repeated_polls(stack: Stack) -> None:
    await stack.seed_primero(cases=[demo_data.primero_case(CASE_ID, RECORD_ID)])
    await stack.caseworker_refers_to_unhcr(RECORD_ID)
    for _ in range(3):
        await stack.poll(FLOW)
    await stack.sim_call(
        "PATCH",
        f"{stack.primero.url}/api/v2/cases/{RECORD_ID}",
        json={"data": {"name_nickname": "Bara"}},
        auth=(demo_data.API_USER, demo_data.API_PASSWORD),
    )
    await stack.poll(FLOW)

    assert len(await referrals_sent(stack)) == 1


async def test_a_second_service_referred_later_is_sent_on_its_own(stack: Stack) -> None:
    await stack.seed_primero(cases=[demo_data.primero_case(CASE_ID, RECORD_ID)])
    first = await stack.caseworker_refers_to_unhcr(RECORD_ID)
    await stack.poll(FLOW)
    second = await stack.caseworker_refers_to_unhcr(RECORD_ID, {"service_type": "legal_support"})
    await stack.poll(FLOW)

    sent = await referrals_sent(stack)
    assert [(m["id"], m["service_type"]) for m in sent] == [
        (org_referral_id(CASE_ID, first["service_unique_id"]), "Alternative Care"),
        (
            org_referral_id(CASE_ID, second["service_unique_id"]),
            "Adolescent and Youth Empowerment",
        ),
    ]


async def test_a_unhcr_service_without_a_referral_is_not_sent(stack: Stack) -> None:
    case = demo_data.primero_case(
        CASE_ID,
        RECORD_ID,
        associated_user_names=[demo_data.PRIMERO_CASEWORKER, demo_data.UNHCR_CASEWORKER],
        services_section=[
            {
                "unique_id": "0e000000-0000-4000-8000-000000000031",
                "service_type": "alternative_care",
                "service_implementing_agency": "UNHCR",
            }
        ],
    )
    await stack.seed_primero(cases=[case])
    await stack.poll(FLOW)

    assert await referrals_sent(stack) == []


async def test_an_unknown_language_code_is_reported_not_sent(stack: Stack) -> None:
    case = demo_data.primero_case(CASE_ID, RECORD_ID, language=["language_unheard_of"])
    await stack.seed_primero(cases=[case])
    referred = await stack.caseworker_refers_to_unhcr(RECORD_ID)
    await stack.poll(FLOW)
    await stack.poll(FLOW)

    assert await referrals_sent(stack) == []
    [exchange] = await stack.store.ledger.find(flow=FLOW)
    assert exchange.state == "unmappable"
    assert exchange.service_unique_id == referred["service_unique_id"]
    [reported] = await stack.store.audit.list(event="referral_not_mappable")
    assert reported.ids["service_unique_id"] == referred["service_unique_id"]
    assert reported.ids["fields"] == ["language"]


async def test_users_are_fetched_once_per_run_by_user_name(stack: Stack) -> None:
    await stack.seed_primero(
        cases=[
            demo_data.primero_case(CASE_ID, RECORD_ID),
            demo_data.primero_case(
                OTHER_CASE_ID, OTHER_RECORD_ID, unhcr_individual_no="DEMO-00000003"
            ),
        ]
    )
    await stack.caseworker_refers_to_unhcr(RECORD_ID)
    await stack.caseworker_refers_to_unhcr(OTHER_RECORD_ID)
    await stack.poll(FLOW)

    assert len(await referrals_sent(stack)) == 2
    lookups = await user_lookups(stack)
    assert len(lookups) == 1
    assert f"user_name={demo_data.PRIMERO_CASEWORKER}" in lookups[0]
    assert len(await role_reads(stack)) == 1, "the role is read once per process"


async def test_a_case_referred_while_a_poll_runs_is_sent_by_the_next_run(tmp_path: Path) -> None:
    """The referral is made after the run read its cases (it is waiting on Primero's users):
    the cursor is the last ``last_updated_at`` the run saw, not the time the run ended."""
    async with Stack(tmp_path, poll_overlap_seconds=0) as bridge:
        await bridge.seed_primero(
            cases=[
                demo_data.primero_case(CASE_ID, RECORD_ID),
                demo_data.primero_case(
                    OTHER_CASE_ID, OTHER_RECORD_ID, unhcr_individual_no="DEMO-00000003"
                ),
            ]
        )
        first = await bridge.caseworker_refers_to_unhcr(RECORD_ID)
        await bridge.set_faults(
            "primero",
            [{"method": "GET", "path": "/api/v2/users", "status": 200, "rate": 0.0, "latency": 1}],
        )
        running = asyncio.create_task(bridge.poll(FLOW))
        referrals_listed = f"/api/v2/cases/{RECORD_ID}/referrals"
        for _ in range(500):
            if any(e["path"] == referrals_listed for e in await journal(bridge)):
                break
            await asyncio.sleep(0.02)
        second = await bridge.caseworker_refers_to_unhcr(OTHER_RECORD_ID)
        await running
        after_first_run = [m["id"] for m in await referrals_sent(bridge)]
        await bridge.set_faults("primero", [])
        await bridge.poll(FLOW)

        assert after_first_run == [org_referral_id(CASE_ID, first["service_unique_id"])]
        assert [m["id"] for m in await referrals_sent(bridge)] == [
            org_referral_id(CASE_ID, first["service_unique_id"]),
            org_referral_id(OTHER_CASE_ID, second["service_unique_id"]),
        ]


async def test_an_ignored_user_filter_fails_the_poll_and_sends_nothing(stack: Stack) -> None:
    """Primero drops ``associated_user_names``: cases of other caseworkers come back. The
    bridge must refuse the run (typed, dead letter), not refer another caseworker's child."""
    not_for_unhcr = demo_data.primero_case(
        OTHER_CASE_ID,
        OTHER_RECORD_ID,
        unhcr_individual_no="DEMO-00000003",
        services_section=[
            {
                "unique_id": "0e000000-0000-4000-8000-000000000041",
                "service_type": "alternative_care",
                "service_implementing_agency": "UNHCR",
            }
        ],
    )
    await stack.seed_primero(
        cases=[not_for_unhcr],
        referrals=[
            {
                "record_id": OTHER_RECORD_ID,
                "service_record_id": "0e000000-0000-4000-8000-000000000041",
                "transitioned_to": "someone_else",
                "transitioned_by": demo_data.PRIMERO_CASEWORKER,
            }
        ],
    )
    readable = ["id", "case_id", "last_updated_at", "owned_by"]
    await stack.sim_call(
        "PUT", f"{stack.primero.url}/_sim/readable-fields", json={"fields": readable}
    )
    await stack.poll(FLOW)

    assert await referrals_sent(stack) == []
    [dead] = await stack.store.jobs.list(state="dead")
    assert dead.kind == f"{FLOW}.poll"
    assert dead.dead_reason is not None
    assert dead.dead_reason.reason == "filter_ignored"
    assert await stack.store.cursors.get(FLOW) is None
