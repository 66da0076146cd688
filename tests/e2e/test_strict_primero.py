"""The four flows against a Primero as strict as a real one (issue 12): the API role's scope,
explicit writable fields (exactly what the mapping writes), lookups validated.

With a good configuration nothing is duplicated and nothing is dead; with each misconfiguration
the flow stops before it can do harm and leaves a dead letter whose reason tells the operator
what to change in Primero, and which replays to completion once it is changed.
"""

from __future__ import annotations

from typing import Any

from primero_progres import demo_data
from primero_progres.mapping.progres_referral import written_fields
from primero_progres.profiles import load_profile
from primero_progres.sim.primero_config import PrimeroSimConfig
from primero_progres.stack import Stack

GAMBELLA = load_profile("gambella")
FEEDBACK = "ReceiveDecisionOutgoingReferral"
REFERRAL = "ReceiveIncomingReferral"
CHILD = "DEMO-00000001"
FIRST, SECOND = "DEMO-26-PRTITV-0000001", "DEMO-26-PRTITV-0000002"
CASE_ID = "11111111-2222-4333-8444-555555555555"
RECORD_ID = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"


def strict(**changes: Any) -> PrimeroSimConfig:
    """The Gambella instance, with only the fields flow 1 writes on a writable form."""
    base = PrimeroSimConfig.for_profile(GAMBELLA)
    return base.merged({"scope": "all", "writable_fields": list(written_fields()), **changes})


async def configure(stack: Stack, **changes: Any) -> None:
    await stack.sim_call("PATCH", f"{stack.primero.url}/_sim/config", json=changes)


async def dead_reasons(stack: Stack) -> dict[str, str]:
    dead = await stack.store.jobs.list(state="dead")
    return {job.kind: job.dead_reason.reason for job in dead if job.dead_reason is not None}


async def replay_all(stack: Stack) -> None:
    for job in await stack.store.jobs.list(state="dead"):
        assert await stack.store.jobs.replay(job.id)
    await stack.settle()


async def rows_of(stack: Stack, individual: str = CHILD) -> list[list[str | None]]:
    """For each case of the child, the intervention numbers of its service rows."""
    return [
        [row.get("progres_interventionnumber") for row in case.get("services_section") or []]
        for case in await stack.primero_cases()
        if case.get("unhcr_individual_no") == individual
    ]


async def journal_statuses(stack: Stack) -> list[int | None]:
    entries = await stack.sim_call("GET", f"{stack.primero.url}/_sim/journal")
    return [e["status"] for e in entries]


async def referred_case(stack: Stack) -> dict[str, Any]:
    await stack.seed_primero(cases=[demo_data.primero_case(CASE_ID, RECORD_ID)])
    return await stack.caseworker_refers_to_unhcr(RECORD_ID)


async def test_the_four_flows_against_a_strict_primero_duplicate_nothing(tmp_path: Any) -> None:
    async with Stack(tmp_path, primero_options={"config": strict()}) as stack:
        message = demo_data.referral_message(
            demo_data.intervention(FIRST), demo_data.intervention(SECOND)
        )
        await stack.progres_sends_referral(message)
        assert (await stack.progres_sends_referral(message))["status"] == "duplicate"
        changed = demo_data.intervention(FIRST, progres_interventiondescription="<p>more</p>")
        await stack.progres_sends_referral(demo_data.referral_message(changed))
        await stack.settle()
        assert await rows_of(stack) == [[FIRST, SECOND]]

        [case] = await stack.primero_cases()
        row = next(r for r in case["services_section"] if r["progres_interventionnumber"] == FIRST)
        await stack.focal_point_decides(case["id"], row["unique_id"], "accepted")
        await stack.poll("primero-decision")
        await stack.poll("primero-decision")

        referred = await referred_case(stack)
        await stack.poll("primero-referral")
        org_referral_id = f"{CASE_ID}#{referred['service_unique_id'][-12:]}"
        await stack.progres_sends_decision(demo_data.decision_message(org_referral_id))
        await stack.settle()

        assert await rows_of(stack) == [[FIRST, SECOND]]
        bodies = [m["body"] for m in await stack.dtp_messages(FEEDBACK)]
        assert sorted(b["status"] for b in bodies) == [
            "Pending Acknowledgement",
            "Pending Acknowledgement",
            "Pending Acknowledgement",
            "acknowledged",
        ]
        [sent] = await stack.dtp_messages(REFERRAL)
        assert sent["body"]["id"] == org_referral_id
        [referral] = [
            r for r in await stack.primero_referrals() if r["id"] == referred["referral_id"]
        ]
        assert referral["status"] == "accepted"
        assert await stack.store.jobs.list(state="dead") == []
        assert 422 not in await journal_statuses(stack)


async def test_under_the_self_scope_flows_1_and_3_stop_then_replay_once_it_is_all(
    tmp_path: Any,
) -> None:
    async with Stack(tmp_path, primero_options={"config": strict(scope="self")}) as stack:
        await stack.progres_sends_referral(demo_data.referral_message())
        await referred_case(stack)
        await stack.settle()
        await stack.poll("primero-referral")

        assert await dead_reasons(stack) == {
            "progres-referral.deliver": "primero_scope_self",
            "primero-referral.poll": "primero_scope_self",
        }
        assert await rows_of(stack) == [] and await stack.dtp_messages() == []
        [dead] = await stack.store.jobs.list(state="dead", kind="progres-referral.deliver")
        assert dead.dead_reason is not None and "'all' scope" in dead.dead_reason.message

        await configure(stack, scope="all")
        await replay_all(stack)
        assert await rows_of(stack) == [[FIRST]]
        assert len(await stack.dtp_messages(REFERRAL)) == 1
        assert len(await stack.dtp_messages(FEEDBACK)) == 1


async def test_without_the_users_permission_flow_1_stops_and_flow_3_uses_the_default_contact(
    tmp_path: Any,
) -> None:
    config = strict(users_permission=False)
    async with Stack(tmp_path, primero_options={"config": config}) as stack:
        await stack.progres_sends_referral(demo_data.referral_message())
        await referred_case(stack)
        await stack.settle()
        await stack.poll("primero-referral")

        assert await dead_reasons(stack) == {"progres-referral.deliver": "primero_users_forbidden"}
        [dead] = await stack.store.jobs.list(state="dead")
        assert dead.dead_reason is not None and "users permission" in dead.dead_reason.message
        assert await rows_of(stack) == []
        [sent] = await stack.dtp_messages(REFERRAL)
        default = GAMBELLA.default_contact
        assert (sent["body"]["email"], sent["body"]["phone"]) == (default.email, default.phone)
        [audited] = await stack.store.audit.list(event="contact_defaulted")
        assert audited.ids["reason"] == "primero_users_forbidden"

        await configure(stack, users_permission=True)
        await replay_all(stack)
        assert await rows_of(stack) == [[FIRST]]
        assert len(await stack.dtp_messages(REFERRAL)) == 1


async def test_a_row_field_primero_drops_stops_the_delivery_before_a_second_row(
    tmp_path: Any,
) -> None:
    """``progres_interventionnumber`` off every writable form: Primero keeps the row without
    it. A retry would append another row each time; the bridge stops at the first."""
    writable = [f for f in written_fields() if f != "services_section.progres_interventionnumber"]
    async with Stack(
        tmp_path, primero_options={"config": strict(writable_fields=writable)}
    ) as stack:
        await stack.progres_sends_referral(demo_data.referral_message())
        await stack.settle()

        [dead] = await stack.store.jobs.list(state="dead")
        assert dead.dead_reason is not None
        assert dead.dead_reason.reason == "primero_fields_not_kept"
        assert "services_section.progres_interventionnumber" in dead.dead_reason.message
        assert await rows_of(stack) == [[None]], "one row, written once, without its number"
        assert await stack.dtp_messages() == []

        # the operator puts the field on the form and gives the row its number, then replays
        await configure(stack, writable_fields=list(written_fields()))
        [case] = await stack.primero_cases()
        [row] = case["services_section"]
        answer = await stack.http.patch(
            f"{stack.primero.url}/api/v2/cases/{case['id']}",
            json={
                "data": {
                    "services_section": [
                        {"unique_id": row["unique_id"], "progres_interventionnumber": FIRST}
                    ]
                }
            },
            auth=(demo_data.API_USER, demo_data.API_PASSWORD),
        )
        assert answer.status_code == 200
        await replay_all(stack)
        assert await rows_of(stack) == [[FIRST]]
        [feedback] = await stack.dtp_messages(FEEDBACK)
        assert feedback["body"]["status"] == "Pending Acknowledgement"


async def test_a_code_missing_from_a_lookup_is_a_delivery_fail_naming_the_field(
    tmp_path: Any,
) -> None:
    """Primero validates select fields against their lookups (422 ``Invalid Record JSON``):
    proGres hears that Primero refused, and the audit trail names the field. The intervention
    waits as a dead letter: once the code is in the lookup, its replay creates the case and
    proGres hears of it."""
    config = strict()
    lookups = {**config.lookups, "lookup-service-type": ["food"]}
    async with Stack(
        tmp_path, primero_options={"config": config.merged({"lookups": lookups})}
    ) as stack:
        await stack.progres_sends_referral(demo_data.referral_message())
        await stack.settle()

        assert await rows_of(stack) == []
        [feedback] = await stack.dtp_messages(FEEDBACK)
        assert feedback["body"]["status"] == "Delivery Fail"
        [refused] = await stack.store.audit.list(event="intervention_refused")
        assert refused.ids["peer_status"] == "http_422"
        assert refused.ids["fields"] == ["/services_section/0/service_type"]
        assert await dead_reasons(stack) == {"progres-referral.deliver": "primero_refused"}

        await configure(stack, lookups=config.lookups)
        await replay_all(stack)
        assert await rows_of(stack) == [[FIRST]]
        statuses = [m["body"]["status"] for m in await stack.dtp_messages(FEEDBACK)]
        assert statuses == ["Delivery Fail", "Pending Acknowledgement"]
        assert await stack.store.jobs.list(state="dead") == []
