"""Flow 1, ``progres-referral``, end to end: interventions in, Primero cases, feedback to DTP.

Expected values come from MAPPING.md (flow 1) and SPEC.md, written by hand.
"""

from __future__ import annotations

from typing import Any

import pytest

from primero_progres import demo_data
from primero_progres.stack import Stack

FOCAL_POINT = "progresv4_primero_intake@cpims-gambella.primero.org"
FEEDBACK = "ReceiveDecisionOutgoingReferral"
CHILD = "DEMO-00000001"
OTHER_CHILD = "DEMO-00000009"
NUMBER = "DEMO-26-PRTITV-0000001"
SECOND_NUMBER = "DEMO-26-PRTITV-0000002"

INVALID_DATA = (
    "Intervention referral has provided invalid data. Please review the data values shared "
    "and re-send the request."
)
MISSING_FIELDS = (
    "Intervention referral is missing fields required for sending to Primero. Please include "
    "missing fields and re-send the request."
)
SERVICE_TYPE = (
    "Intervention type value shared is not one of the accepted interagency referral service "
    "types. Please see the mapping specifications."
)


async def post_inbox(stack: Stack, message: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """DTP calling the bridge inbox directly, to see the HTTP status it answers."""
    response = await stack.http.post(
        stack.inbox_url,
        json=message,
        headers={"Authorization": f"Bearer {demo_data.INBOX_TOKEN}"},
    )
    return response.status_code, response.json()


async def feedbacks(stack: Stack, number: str | None = None) -> list[dict[str, Any]]:
    bodies = [m["body"] for m in await stack.dtp_messages(FEEDBACK)]
    return [b for b in bodies if number is None or b.get("progres_interventionnumber") == number]


async def case_writes(stack: Stack) -> list[dict[str, Any]]:
    """Primero requests that create or change a case."""
    journal = await stack.sim_call("GET", f"{stack.primero.url}/_sim/journal")
    return [
        e
        for e in journal
        if e["method"] in ("POST", "PATCH") and e["path"].startswith("/api/v2/cases")
    ]


def success(case: dict[str, Any], number: str) -> dict[str, Any]:
    return {
        "status": "Pending Acknowledgement",
        "primero_user": FOCAL_POINT,
        "case_id": case["case_id"],
        "progres_interventionnumber": number,
    }


def delivery_fail(number: str, reason: str) -> dict[str, Any]:
    return {
        "status": "Delivery Fail",
        "request_type": "Feedback",
        "case_id": None,
        "primero_user": FOCAL_POINT,
        "progres_interventionnumber": number,
        "closure_reason": reason,
    }


async def test_an_intervention_becomes_a_case_with_one_service_row(stack: Stack) -> None:
    status, answer = await post_inbox(stack, demo_data.referral_message())
    assert (status, answer["status"]) == (202, "queued")
    await stack.settle()

    [case] = await stack.primero_cases()
    assert case["unhcr_individual_no"] == CHILD
    assert case["unhcr_id_no"] == "DEMO-26-00001"
    assert (case["name_first"], case["name_last"]) == ("Amani", "Example")
    assert case["date_of_birth"] == "2015-03-01"
    assert case["sex"] == "female"
    assert case["language"] == ["language2"]
    assert case["address_current"] == "Gambela"
    assert case["telephone_current"] == "+000000000"
    assert case["owned_by"] == FOCAL_POINT
    assert case["module_id"] == "primeromodule-cp"
    [row] = case["services_section"]
    assert row["progres_interventionnumber"] == NUMBER
    assert row["service_type"] == "alternative_care"
    assert row["service_implementing_agency"] == "UNICEF"
    assert row["service_request_agency"] == "UNHCR"
    assert row["service_referral"] == "external_referral"
    assert row["service_response_type"] == "service_provision"
    assert row["service_request_external"] is True
    assert row["service_referral_notes"] == "Invented demo referral"
    assert row["service_request_title"] == "Protection Officer"
    assert row["service_request_email"] == "officer@example.org"
    assert row["service_request_phone"] == "0000000001"
    assert row["unhcr_referral_status"] == "pending"
    assert await feedbacks(stack) == [success(case, NUMBER)]
    [exchange] = await stack.store.ledger.find(flow="progres-referral")
    assert exchange.state == "feedback_sent"
    assert (exchange.case_id, exchange.service_unique_id) == (case["case_id"], row["unique_id"])


async def test_the_same_message_again_is_a_duplicate_and_changes_nothing(stack: Stack) -> None:
    message = demo_data.referral_message()
    first_status, first = await post_inbox(stack, message)
    await stack.settle()
    again_status, again = await post_inbox(stack, message)
    await stack.settle()

    assert first_status == 202
    assert again_status == 200
    assert again == {"status": "duplicate", "message_id": first["message_id"]}
    [case] = await stack.primero_cases()
    assert len(case["services_section"]) == 1
    assert len(await case_writes(stack)) == 1
    assert await feedbacks(stack) == [success(case, NUMBER)]


async def test_the_same_intervention_in_another_message_is_not_delivered_twice(
    stack: Stack,
) -> None:
    await stack.progres_sends_referral(demo_data.referral_message(demo_data.intervention()))
    await stack.settle()
    writes_before = len(await case_writes(stack))
    other_child = demo_data.intervention(SECOND_NUMBER, **{"individuals.progres_id": OTHER_CHILD})
    answer = await stack.progres_sends_referral(
        demo_data.referral_message(demo_data.intervention(), other_child)
    )
    assert answer["status"] == "queued"
    await stack.settle()

    cases = {c["unhcr_individual_no"]: c for c in await stack.primero_cases()}
    assert sorted(cases) == [CHILD, OTHER_CHILD]
    assert len(cases[CHILD]["services_section"]) == 1
    # only the new child's case was written
    assert len(await case_writes(stack)) == writes_before + 1
    assert await feedbacks(stack, NUMBER) == [success(cases[CHILD], NUMBER)]
    assert await feedbacks(stack, SECOND_NUMBER) == [success(cases[OTHER_CHILD], SECOND_NUMBER)]


async def test_a_changed_intervention_updates_its_service_row_and_is_acknowledged_again(
    stack: Stack,
) -> None:
    await stack.progres_sends_referral(demo_data.referral_message())
    await stack.settle()
    [before] = await stack.primero_cases()
    [row_before] = before["services_section"]

    changed = demo_data.intervention(progres_interventiondescription="<p>Updated plan</p>")
    await stack.progres_sends_referral(demo_data.referral_message(changed))
    await stack.settle()

    [after] = await stack.primero_cases()
    assert after["id"] == before["id"]
    [row_after] = after["services_section"]
    assert row_after["unique_id"] == row_before["unique_id"]
    assert row_after["service_referral_notes"] == "Updated plan"
    assert await feedbacks(stack) == [success(after, NUMBER), success(after, NUMBER)]


async def test_two_interventions_for_one_child_in_one_message_make_one_case(stack: Stack) -> None:
    first = demo_data.intervention(NUMBER)
    second = demo_data.intervention(
        SECOND_NUMBER, **{"interventiontype.progres_description": "BID"}
    )
    await stack.progres_sends_referral(demo_data.referral_message(first, second))
    await stack.settle()

    [case] = await stack.primero_cases()
    rows = {r["progres_interventionnumber"]: r for r in case["services_section"]}
    assert sorted(rows) == [NUMBER, SECOND_NUMBER]
    assert rows[NUMBER]["service_type"] == "alternative_care"
    assert rows[SECOND_NUMBER]["service_type"] == "focuses_non_specialized_mhpss_care"
    sent = await feedbacks(stack)
    assert sorted(sent, key=lambda b: b["progres_interventionnumber"]) == [
        success(case, NUMBER),
        success(case, SECOND_NUMBER),
    ]


async def test_an_existing_case_of_the_child_is_patched_not_duplicated(stack: Stack) -> None:
    existing = demo_data.primero_case(
        "0c000000-0000-4000-8000-000000000001",
        "0d000000-0000-4000-8000-000000000001",
        unhcr_individual_no=CHILD,
        services_section=[
            {"unique_id": "0e000000-0000-4000-8000-000000000001", "service_type": "food"}
        ],
    )
    await stack.seed_primero(cases=[existing])
    await stack.progres_sends_referral(demo_data.referral_message())
    await stack.settle()

    [case] = await stack.primero_cases()
    assert case["id"] == existing["id"]
    assert case["case_id"] == existing["case_id"]
    # the proGres referral goes to the focal point, who then owns the case (MAPPING: owned_by)
    assert case["owned_by"] == FOCAL_POINT
    numbers = [r.get("progres_interventionnumber") for r in case["services_section"]]
    assert numbers == [None, NUMBER]
    assert [e["method"] for e in await case_writes(stack)] == ["PATCH"]
    assert await feedbacks(stack) == [success(case, NUMBER)]


async def test_several_cases_of_one_child_the_one_holding_the_intervention_is_updated(
    stack: Stack,
) -> None:
    holding = demo_data.primero_case(
        "0c000000-0000-4000-8000-00000000000a",
        "0d000000-0000-4000-8000-00000000000a",
        unhcr_individual_no=CHILD,
        owned_by=FOCAL_POINT,
        last_updated_at="2026-01-01T00:00:00.000Z",
        services_section=[
            {
                "unique_id": "0e000000-0000-4000-8000-00000000000a",
                "progres_interventionnumber": NUMBER,
                "service_type": "alternative_care",
            }
        ],
    )
    newer = demo_data.primero_case(
        "0c000000-0000-4000-8000-00000000000b",
        "0d000000-0000-4000-8000-00000000000b",
        unhcr_individual_no=CHILD,
        owned_by=FOCAL_POINT,
        last_updated_at="2026-06-01T00:00:00.000Z",
        services_section=[],
    )
    await stack.seed_primero(cases=[holding, newer])
    await stack.progres_sends_referral(demo_data.referral_message())
    await stack.settle()

    cases = {c["id"]: c for c in await stack.primero_cases()}
    [row] = cases[holding["id"]]["services_section"]
    assert row["unique_id"] == "0e000000-0000-4000-8000-00000000000a"
    assert row["unhcr_referral_status"] == "pending"
    assert cases[newer["id"]]["services_section"] == []
    assert await feedbacks(stack) == [success(cases[holding["id"]], NUMBER)]
    [ambiguity] = await stack.store.audit.list(event="several_cases_matched")
    assert ambiguity.flow == "progres-referral"
    assert ambiguity.ids["progres_interventionnumber"] == NUMBER
    assert ambiguity.ids["case_record_id"] == holding["id"]
    assert sorted(ambiguity.ids["candidate_ids"]) == sorted([holding["id"], newer["id"]])


async def test_valid_and_invalid_interventions_in_one_message_each_get_their_outcome(
    stack: Stack,
) -> None:
    valid = demo_data.intervention("DEMO-26-PRTITV-0000010")
    missing = demo_data.intervention(
        "DEMO-26-PRTITV-0000011", **{"individuals.progres_id": "DEMO-00000011"}
    )
    del missing["individuals.progres_givenname"]
    unknown_service = demo_data.intervention(
        "DEMO-26-PRTITV-0000012",
        **{
            "individuals.progres_id": "DEMO-00000012",
            "interventiontype.progres_description": "Swimming lessons",
        },
    )
    bad_sex = demo_data.intervention(
        "DEMO-26-PRTITV-0000013",
        **{"individuals.progres_id": "DEMO-00000013", "individuals.progres_sex": "999"},
    )
    await stack.progres_sends_referral(
        demo_data.referral_message(valid, missing, unknown_service, bad_sex)
    )
    await stack.settle()

    [case] = await stack.primero_cases()
    assert case["unhcr_individual_no"] == CHILD
    assert [r["progres_interventionnumber"] for r in case["services_section"]] == [
        "DEMO-26-PRTITV-0000010"
    ]
    by_number = {b["progres_interventionnumber"]: b for b in await feedbacks(stack)}
    assert by_number == {
        "DEMO-26-PRTITV-0000010": success(case, "DEMO-26-PRTITV-0000010"),
        "DEMO-26-PRTITV-0000011": delivery_fail(
            "DEMO-26-PRTITV-0000011",
            f"{MISSING_FIELDS} Missing fields: individuals.progres_givenname",
        ),
        "DEMO-26-PRTITV-0000012": delivery_fail("DEMO-26-PRTITV-0000012", SERVICE_TYPE),
        "DEMO-26-PRTITV-0000013": delivery_fail("DEMO-26-PRTITV-0000013", INVALID_DATA),
    }
    states = {e.key: e.state for e in await stack.store.ledger.find(flow="progres-referral")}
    assert states == {
        "DEMO-26-PRTITV-0000010": "feedback_sent",
        "DEMO-26-PRTITV-0000011": "refused_reported",
        "DEMO-26-PRTITV-0000012": "refused_reported",
        "DEMO-26-PRTITV-0000013": "refused_reported",
    }
    # each refusal parked for a replay, should the cause be the profile's (a service type
    # missing from its table), not proGres's data
    dead = {
        job.refs["progres_interventionnumber"]: (
            job.kind,
            job.dead_reason.failure_class if job.dead_reason else None,
            job.dead_reason.reason if job.dead_reason else None,
        )
        for job in await stack.store.jobs.list(state="dead")
    }
    assert dead == {
        "DEMO-26-PRTITV-0000011": ("progres-referral.deliver", "mapping", "missing_fields"),
        "DEMO-26-PRTITV-0000012": ("progres-referral.deliver", "mapping", "service_type"),
        "DEMO-26-PRTITV-0000013": ("progres-referral.deliver", "mapping", "invalid_data"),
    }


async def test_an_ignored_individual_filter_never_touches_another_child(stack: Stack) -> None:
    """Primero drops the ``unhcr_individual_no`` filter: every case comes back, the wrong child's
    among them. The bridge must notice and refuse, not patch that child or create a duplicate."""
    other = demo_data.primero_case(
        "0c000000-0000-4000-8000-0000000000cc",
        "0d000000-0000-4000-8000-0000000000cc",
        unhcr_individual_no=OTHER_CHILD,
    )
    await stack.seed_primero(cases=[other])
    readable = ["id", "case_id", "last_updated_at", "associated_user_names", "owned_by"]
    await stack.sim_call(
        "PUT", f"{stack.primero.url}/_sim/readable-fields", json={"fields": readable}
    )
    await stack.progres_sends_referral(demo_data.referral_message())
    await stack.settle()

    [case] = await stack.primero_cases()
    assert case["id"] == other["id"]
    assert case["services_section"] == []
    assert await case_writes(stack) == []
    # the API user's role is the bridge's problem, not proGres's: a dead letter, no feedback
    [dead] = await stack.store.jobs.list(state="dead")
    assert dead.kind == "progres-referral.deliver"
    assert dead.dead_reason is not None
    assert dead.dead_reason.reason == "filter_ignored"
    assert await feedbacks(stack) == []

    # once the role is fixed, the operator's replay delivers it to the right child, once
    await stack.sim_call(
        "PUT",
        f"{stack.primero.url}/_sim/readable-fields",
        # the role also reads the services, or the bridge cannot check its row was kept
        json={"fields": [*readable, "unhcr_individual_no", "services_section"]},
    )
    assert await stack.store.jobs.replay(dead.id)
    await stack.settle()
    mine = [c for c in await stack.primero_cases() if c.get("unhcr_individual_no") != OTHER_CHILD]
    assert len(mine) == 1
    [sent] = await feedbacks(stack)
    assert sent["status"] == "Pending Acknowledgement"
    assert sent["progres_interventionnumber"] == NUMBER


@pytest.mark.postgres
async def test_an_intervention_becomes_a_case_on_postgresql(pg_stack: Stack) -> None:
    await pg_stack.progres_sends_referral(demo_data.referral_message())
    await pg_stack.settle()
    again = await pg_stack.progres_sends_referral(demo_data.referral_message())
    await pg_stack.settle()

    assert again["status"] == "duplicate"
    [case] = await pg_stack.primero_cases()
    assert [r["progres_interventionnumber"] for r in case["services_section"]] == [NUMBER]
    assert await feedbacks(pg_stack) == [success(case, NUMBER)]
    [exchange] = await pg_stack.store.ledger.find(flow="progres-referral")
    assert exchange.state == "feedback_sent"
