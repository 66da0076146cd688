"""Flow 4, ``progres-decision``, over PING, end to end: a proGres user's decision on a referral
flow 3 created updates the Primero referral, then "synced" is written back.

Expected values come from PING.md (§5, §7.4) and the profile, written by hand.
"""

from __future__ import annotations

from typing import Any

from primero_progres import demo_data
from primero_progres.stack import Stack
from primero_progres.store import Flow

CASE_ID = "11111111-2222-4333-8444-555555555555"
RECORD_ID = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"
ACCEPTED, REJECTED, SYNCED = 125080001, 125080002, 125080003
SYNCED_COMMENT = "Referral decision synced with PRIMERO"


async def created(stack: Stack) -> tuple[dict[str, Any], dict[str, Any]]:
    """Flow 3 over PING done: what Primero's caseworker referred, and PING's referral."""
    await stack.seed_primero(cases=[demo_data.primero_case(CASE_ID, RECORD_ID)])
    sent = await stack.caseworker_refers_to_unhcr(
        RECORD_ID, {"service_type": "basic_psychosocial_support"}
    )
    await stack.poll(Flow.PRIMERO_REFERRAL)
    await stack.settle()
    [referral] = await stack.ping_referrals()
    return sent, referral


async def primero_status(stack: Stack, referral_id: str) -> tuple[str, str | None]:
    [referral] = [r for r in await stack.primero_referrals() if r["id"] == referral_id]
    return referral["status"], referral.get("rejected_reason")


async def referral_patches(stack: Stack) -> list[int | None]:
    journal = await stack.sim_call("GET", f"{stack.primero.url}/_sim/journal")
    return [e["status"] for e in journal if e["method"] == "PATCH" and "/referrals/" in e["path"]]


async def ping_referral(stack: Stack, referral_id: str) -> dict[str, Any]:
    return await stack.ping_sim("GET", f"referrals/{referral_id}")  # type: ignore[no-any-return]


async def test_an_accepted_referral_is_accepted_in_primero_then_synced(
    ping_stack: Stack,
) -> None:
    sent, referral = await created(ping_stack)
    await ping_stack.progres_decides(referral["referral_id"], "accepted")
    await ping_stack.poll(Flow.PROGRES_DECISION)

    assert await primero_status(ping_stack, sent["referral_id"]) == ("accepted", None)
    synced = await ping_referral(ping_stack, referral["referral_id"])
    assert synced["fields"]["progres_interoperabilityreferralstatus"] == SYNCED
    assert synced["fields"]["progres_comments"] == SYNCED_COMMENT
    [exchange] = await ping_stack.store.ledger.find(Flow.PROGRES_DECISION)
    assert (exchange.key, exchange.state) == (sent["service_unique_id"], "synced")
    assert exchange.interoperability_referral_id == referral["referral_id"]
    assert exchange.referral_id == sent["referral_id"]
    events = [e.event for e in await ping_stack.store.ledger.events(exchange.id)]
    assert events == ["referral_patched", "status_written_back"]

    # synced: the next poll pulls nothing
    await ping_stack.poll(Flow.PROGRES_DECISION)
    assert await referral_patches(ping_stack) == [200]


async def test_a_rejection_carries_the_reason_and_the_comment(ping_stack: Stack) -> None:
    sent, referral = await created(ping_stack)
    await ping_stack.progres_decides(
        referral["referral_id"],
        "rejected",
        rejection_reason=125080000,
        rejection_reason_name="Individual not found",
        comment="No such registration",
    )
    await ping_stack.poll(Flow.PROGRES_DECISION)

    assert await primero_status(ping_stack, sent["referral_id"]) == (
        "rejected",
        "Individual not found — No such registration",
    )
    [exchange] = await ping_stack.store.ledger.find(Flow.PROGRES_DECISION)
    assert exchange.state == "synced"


async def test_a_lost_synced_write_back_is_repeated_without_patching_primero_again(
    ping_stack: Stack,
) -> None:
    _, referral = await created(ping_stack)
    await ping_stack.progres_decides(referral["referral_id"], "accepted")
    await ping_stack.set_ping_modes(lost_writebacks=1)
    await ping_stack.poll(Flow.PROGRES_DECISION)
    fields = (await ping_referral(ping_stack, referral["referral_id"]))["fields"]
    assert fields["progres_interoperabilityreferralstatus"] == ACCEPTED  # the write was dropped

    await ping_stack.poll(Flow.PROGRES_DECISION)
    fields = (await ping_referral(ping_stack, referral["referral_id"]))["fields"]
    assert fields["progres_interoperabilityreferralstatus"] == SYNCED
    assert await referral_patches(ping_stack) == [200]
    [exchange] = await ping_stack.store.ledger.find(Flow.PROGRES_DECISION)
    events = [e.event for e in await ping_stack.store.ledger.events(exchange.id)]
    assert events == [
        "referral_patched",
        "status_written_back",
        "redelivered",
        "status_written_back",
    ]


async def test_a_stale_list_patches_nothing_twice(ping_stack: Stack) -> None:
    _, referral = await created(ping_stack)
    await ping_stack.progres_decides(referral["referral_id"], "accepted")
    await ping_stack.poll(Flow.PROGRES_DECISION)
    await ping_stack.set_ping_modes(duplicate_deliveries=1)
    await ping_stack.poll(Flow.PROGRES_DECISION)

    assert await referral_patches(ping_stack) == [200]
    assert len(await ping_stack.store.jobs.list(kind="progres-decision.pull")) == 2
    assert len(await ping_stack.store.jobs.list(kind="progres-decision.write_back")) == 1


async def test_an_unknown_decision_code_is_an_error_never_an_acceptance(ping_stack: Stack) -> None:
    sent, referral = await created(ping_stack)
    fields = {
        **referral["fields"],
        "progres_interoperabilityreferralstatus": ACCEPTED,
        "progres_reviewdecision": 125089999,
    }
    odd_status = {**referral["fields"], "progres_interoperabilityreferralstatus": 125089999}
    await ping_stack.seed_ping(
        referrals=[
            {"referral_id": referral["referral_id"], "fields": fields},
            {"referral_id": "cccccccc-0000-4000-8000-00000000000c", "fields": odd_status},
        ]
    )
    await ping_stack.poll(Flow.PROGRES_DECISION)

    assert await primero_status(ping_stack, sent["referral_id"]) == ("in_progress", None)
    assert await referral_patches(ping_stack) == []
    [dead] = await ping_stack.store.jobs.list(state="dead")
    assert dead.kind == "progres-decision.pull"
    assert dead.dead_reason is not None and dead.dead_reason.reason == "unknown_code"
    # an unknown status in the list is audited, and not pulled
    [audited] = await ping_stack.store.audit.list(event="decision_not_mappable")
    assert audited.ids == {
        "interoperability_referral_id": "cccccccc-0000-4000-8000-00000000000c",
        "reason": "unknown_code",
        "status_code": 125089999,
    }
    assert len(await ping_stack.store.jobs.list(kind="progres-decision.pull")) == 1
    # nothing was synced: both stay in PING's queue for a person to look at
    fields_now = (await ping_referral(ping_stack, referral["referral_id"]))["fields"]
    assert fields_now["progres_interoperabilityreferralstatus"] == ACCEPTED

    # polled again, the same undecidable referral does not pile up dead letters
    await ping_stack.poll(Flow.PROGRES_DECISION)
    assert len(await ping_stack.store.jobs.list(state="dead")) == 1


async def test_a_decision_on_an_unknown_case_is_a_visible_dead_letter(ping_stack: Stack) -> None:
    await ping_stack.seed_ping(
        referrals=[
            {
                "referral_id": "dddddddd-0000-4000-8000-00000000000d",
                "fields": {
                    "progres_interoperabilityreferralstatus": ACCEPTED,
                    "progres_reviewdecision": 125080000,
                    "progres_offlineid": "99999999-9999-4999-8999-999999999999",
                    "progres_orgreferralid": "99999999-9999-4999-8999-000000000000",
                },
            }
        ]
    )
    await ping_stack.poll(Flow.PROGRES_DECISION)

    [dead] = await ping_stack.store.jobs.list(state="dead")
    assert dead.dead_reason is not None and dead.dead_reason.reason == "unknown_case"
    assert await ping_stack.store.ledger.find(Flow.PROGRES_DECISION) == []


async def test_transient_failures_are_retried(ping_stack: Stack) -> None:
    sent, referral = await created(ping_stack)
    await ping_stack.progres_decides(referral["referral_id"], "accepted")
    await ping_stack.set_faults("unhcr", [{"path": "/primes/fetch", "status": 504, "times": 2}])
    await ping_stack.set_faults(
        "primero", [{"method": "PATCH", "path": "/api/v2/cases", "status": 503, "times": 1}]
    )
    await ping_stack.poll(Flow.PROGRES_DECISION)

    assert await referral_patches(ping_stack) == [503, 200]
    assert await primero_status(ping_stack, sent["referral_id"]) == ("accepted", None)
    fields = (await ping_referral(ping_stack, referral["referral_id"]))["fields"]
    assert fields["progres_interoperabilityreferralstatus"] == SYNCED
    assert await ping_stack.store.jobs.list(state="dead") == []
