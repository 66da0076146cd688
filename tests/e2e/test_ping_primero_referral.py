"""Flow 3, ``primero-referral``, over PING, end to end: a Primero referral to UNHCR becomes an
interoperability referral through PING's asynchronous ingestion, once.

PING keeps no duplicate guard, so the bridge never posts an item twice by itself: the
tests count the ``/asyncdata`` calls PING received. Expected fields are PING.md §7.3 and
the profile's ``ping`` section, written by hand.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from primero_progres import demo_data
from primero_progres.stack import Stack
from primero_progres.store import Flow

CASE_ID = "11111111-2222-4333-8444-555555555555"
RECORD_ID = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"
SERVICE = {"service_type": "basic_psychosocial_support"}
ASYNC = "/api/ingestion/v2/PNR-1363/asyncdata"
RETRIEVE = "/primes/fetch/paging/v3/retrievedatawithpaging"


async def referred(stack: Stack) -> dict[str, Any]:
    await stack.seed_primero(cases=[demo_data.primero_case(CASE_ID, RECORD_ID)])
    return await stack.caseworker_refers_to_unhcr(RECORD_ID, SERVICE)


async def posted(stack: Stack) -> list[int | None]:
    """Statuses of the ``/asyncdata`` calls PING received (faulted ones included)."""
    journal = await stack.ping_sim("GET", "journal")
    return [e["status"] for e in journal if e["path"] == ASYNC]


async def exchange_state(stack: Stack) -> str:
    [exchange] = await stack.store.ledger.find(Flow.PRIMERO_REFERRAL)
    return exchange.state


async def test_a_referral_to_unhcr_becomes_an_interoperability_referral(
    ping_stack: Stack,
) -> None:
    sent = await referred(ping_stack)
    await ping_stack.poll(Flow.PRIMERO_REFERRAL)
    await ping_stack.settle()

    [referral] = await ping_stack.ping_referrals()
    [primero_referral] = await ping_stack.primero_referrals()
    fields = dict(referral["fields"])
    assert fields.pop("progres_interoperabilityreferralid") == referral["referral_id"]
    assert fields == {
        "progres_interoperabilityreferralstatus": 125080000,
        "progres_externalguid": RECORD_ID,
        "progres_externalid": CASE_ID,
        "progres_offlineid": CASE_ID,
        "progres_businessunit": "577ccdf6-86de-e811-80d8-001dd8b71fe3",
        "progres_organizationfrom": "c00582a6-d8f6-f011-8406-6045bd8ea5fb",
        "progres_orgreferredby": "Primero CP",
        "progres_orgposition": "Case Worker",
        "progres_orgemail": "caseworker@example.org",
        "progres_orgphonenumber": "0100000000",
        "progres_orgreferralid": sent["service_unique_id"],
        "progres_referraldate": primero_referral["created_at"][:10],
        "progres_requestedservice": "3408e901-0406-e611-80d9-00155d34051a",
        "progres_reasonforreferral": "Primero referral",
        "progres_pocfirstname": "Baraka",
        "progres_poclastname": "Sample",
        "progres_pocdateofbirth": "2014-06-06",
        "progres_pocsex": "125080001",
        "progres_pocaddress": "Block 7",
        "progres_pocotheridnumber": "DEMO-26-00002",
        "progres_unhcrid": "DEMO-00000002",
    }
    [ingestion] = await ping_stack.ping_ingestions("asyncdata")
    [item] = ingestion["body"]["Data"]
    assert (item["ExternalId"], item["ExternalGUID"]) == (CASE_ID, RECORD_ID)
    [exchange] = await ping_stack.store.ledger.find(Flow.PRIMERO_REFERRAL)
    assert exchange.state == "sent"
    assert exchange.org_referral_id == sent["service_unique_id"]
    events = [e.event for e in await ping_stack.store.ledger.events(exchange.id)]
    assert events == ["referral_queued", "referral_ingested", "referral_sent"]

    # polled again: nothing is posted twice
    await ping_stack.poll(Flow.PRIMERO_REFERRAL)
    assert await posted(ping_stack) == [200]


async def test_check_status_is_asked_until_the_ingestion_is_processed(tmp_path: Path) -> None:
    # PING takes 0.6 s (queued, then processing); the bridge asks every 0.25 s at least
    async with Stack(tmp_path, gateway="ping", ping_status_check_seconds=0.25) as stack:
        await stack.set_ping_modes(async_delay_seconds=0.3)
        await referred(stack)
        await stack.poll(Flow.PRIMERO_REFERRAL)
        await stack.settle()

        assert len(await stack.ping_referrals()) == 1
        assert await posted(stack) == [200]
        [check] = await stack.store.jobs.list(kind="primero-referral.check")
        assert (check.state, check.attempts > 1) == ("done", True)
        assert await exchange_state(stack) == "sent"


async def test_a_failed_ingestion_is_a_dead_letter_that_replays_as_a_new_post(
    ping_stack: Stack,
) -> None:
    await ping_stack.set_ping_modes(failing_async_items=1)
    await referred(ping_stack)
    await ping_stack.poll(Flow.PRIMERO_REFERRAL)
    await ping_stack.settle()

    assert await ping_stack.ping_referrals() == []
    assert await exchange_state(ping_stack) == "ingestion_failed"
    [dead] = await ping_stack.store.jobs.list(state="dead")
    assert dead.kind == "primero-referral.ingest"
    assert dead.dead_reason is not None and dead.dead_reason.reason == "ingestion_failed"
    [failed] = await ping_stack.store.audit.list(event="referral_ingestion_failed")
    assert failed.ids["ping_status"] == "Failed"

    assert await ping_stack.store.jobs.replay(dead.id)
    await ping_stack.settle()
    assert len(await ping_stack.ping_referrals()) == 1
    assert await posted(ping_stack) == [200, 200]
    assert await exchange_state(ping_stack) == "sent"


async def test_a_post_ping_may_have_received_is_never_repeated_blindly(ping_stack: Stack) -> None:
    await referred(ping_stack)
    await ping_stack.set_faults("unhcr", [{"path": ASYNC, "status": 502, "times": 1}])
    await ping_stack.poll(Flow.PRIMERO_REFERRAL)
    await ping_stack.settle()

    assert await posted(ping_stack) == [502]
    [dead] = await ping_stack.store.jobs.list(state="dead")
    assert dead.dead_reason is not None
    assert dead.dead_reason.reason == "ingestion_outcome_unknown"
    assert await exchange_state(ping_stack) == "queued"

    # the operator looked in proGres: not there, so they replay
    assert await ping_stack.store.jobs.replay(dead.id)
    await ping_stack.settle()
    assert await posted(ping_stack) == [502, 200]
    assert len(await ping_stack.ping_referrals()) == 1
    assert await exchange_state(ping_stack) == "sent"


async def test_a_post_whose_answer_was_lost_is_found_in_ping_and_never_repeated(
    tmp_path: Path,
) -> None:
    """PING queued the referral but its answer was lost: the bridge looks for it (at first
    PING is still processing it) instead of posting again or waiting for an operator."""
    async with Stack(tmp_path, gateway="ping", ping_status_check_seconds=0.25) as stack:
        await stack.set_ping_modes(async_delay_seconds=0.3, lost_async_answers=1)
        sent = await referred(stack)
        await stack.poll(Flow.PRIMERO_REFERRAL)
        await stack.settle()

        assert await posted(stack) == [504]
        [referral] = await stack.ping_referrals()
        created = [w for w in await stack.ping_sim("GET", "writes")
                   if w["table"] == "referral_created"]
        assert len(created) == 1, "one referral, none posted twice"
        [exchange] = await stack.store.ledger.find(Flow.PRIMERO_REFERRAL)
        assert exchange.state == "sent"
        assert exchange.interoperability_referral_id == referral["referral_id"]
        assert exchange.org_referral_id == sent["service_unique_id"]
        events = [e.event for e in await stack.store.ledger.events(exchange.id)]
        assert events == ["referral_queued", "referral_sent"]
        assert await stack.store.jobs.list(state="dead") == []
        lookups = await stack.store.jobs.list(kind="primero-referral.resolve")
        assert lookups and all(job.state == "done" for job in lookups)

        await stack.poll(Flow.PRIMERO_REFERRAL)
        await stack.settle()
        assert await posted(stack) == [504]


async def test_a_look_up_ping_refuses_credentials_for_waits_to_be_replayed_not_reposted(
    tmp_path: Path,
) -> None:
    """PING queued the referral, its answer was lost, and APIM refuses the subscription key
    when the bridge looks for it: the look-up is the dead letter (no ``ingest`` to replay,
    which would post); replayed once the key is fixed, it finds the referral."""
    async with Stack(tmp_path, gateway="ping", ping_status_check_seconds=0.25) as stack:
        await stack.set_ping_modes(lost_async_answers=1)
        await referred(stack)
        refused = {"statusCode": 401, "message": "Access denied due to invalid subscription "
                   "key. Make sure to provide a valid key for an active subscription."}
        await stack.set_faults("unhcr", [{"path": RETRIEVE, "status": 401, "body": refused}])
        await stack.poll(Flow.PRIMERO_REFERRAL)
        await stack.settle()

        assert await posted(stack) == [504]
        [dead] = await stack.store.jobs.list(state="dead")
        assert dead.kind == "primero-referral.resolve"
        assert dead.dead_reason is not None
        assert dead.dead_reason.reason == "subscription_key_refused"
        assert await exchange_state(stack) == "queued"

        # the operator fixes the key and replays the look-up
        await stack.set_faults("unhcr", [])
        assert await stack.store.jobs.replay(dead.id)
        await stack.settle()

        assert await posted(stack) == [504]
        created = [w for w in await stack.ping_sim("GET", "writes")
                   if w["table"] == "referral_created"]
        assert len(created) == 1, "one referral, none posted twice"
        [referral] = await stack.ping_referrals()
        [exchange] = await stack.store.ledger.find(Flow.PRIMERO_REFERRAL)
        assert exchange.state == "sent"
        assert exchange.interoperability_referral_id == referral["referral_id"]
        assert await stack.store.jobs.list(state="dead") == []


async def test_a_post_that_never_reached_ping_is_looked_for_then_left_to_an_operator(
    ping_stack: Stack,
) -> None:
    await referred(ping_stack)
    await ping_stack.set_faults("unhcr", [{"path": ASYNC, "status": 502, "times": 1}])
    await ping_stack.poll(Flow.PRIMERO_REFERRAL)
    await ping_stack.settle()

    assert await posted(ping_stack) == [502]
    [dead] = await ping_stack.store.jobs.list(state="dead")
    assert dead.kind == "primero-referral.ingest"
    assert dead.dead_reason is not None
    assert dead.dead_reason.reason == "ingestion_outcome_unknown"
    assert "look-ups" in dead.dead_reason.message
    lookups = await ping_stack.store.jobs.list(kind="primero-referral.resolve")
    assert len(lookups) == ping_stack.settings.retry_max_attempts
    assert await exchange_state(ping_stack) == "queued"


async def test_a_post_ping_cannot_have_received_is_retried(ping_stack: Stack) -> None:
    """APIM's rate limit answers before PING sees the request: safe to post again."""
    await referred(ping_stack)
    await ping_stack.set_faults(
        "unhcr", [{"path": ASYNC, "status": 429, "times": 2, "retry_after": 1}]
    )
    await ping_stack.poll(Flow.PRIMERO_REFERRAL)
    await ping_stack.settle()

    assert await posted(ping_stack) == [429, 429, 200]
    assert len(await ping_stack.ping_referrals()) == 1
    assert await ping_stack.store.jobs.list(state="dead") == []
    assert await exchange_state(ping_stack) == "sent"


async def test_check_status_failures_are_retried(ping_stack: Stack) -> None:
    await referred(ping_stack)
    await ping_stack.set_faults(
        "unhcr", [{"path": "/primes/ingestion/checkstatus", "status": 503, "times": 2}]
    )
    await ping_stack.poll(Flow.PRIMERO_REFERRAL)
    await ping_stack.settle()

    assert await posted(ping_stack) == [200]
    assert len(await ping_stack.ping_referrals()) == 1
    assert await exchange_state(ping_stack) == "sent"
