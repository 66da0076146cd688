"""The chaos report's count of the PING look-ups (``lookup_counts``), read from a real store
after the runs ``tests/e2e/test_ping_primero_referral.py`` checks end to end: it links the
jobs and audit entries the way the store does (``parent_id``, ``job_id``). Not a chaos run:
it runs with the other tests."""

from __future__ import annotations

from pathlib import Path

from chaos_harness import lookup_counts

from primero_progres import demo_data
from primero_progres.stack import Stack
from primero_progres.store import Flow

ASYNC = "/api/ingestion/v2/PNR-1363/asyncdata"


async def referred(stack: Stack) -> None:
    record_id = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"
    await stack.seed_primero(
        cases=[demo_data.primero_case("11111111-2222-4333-8444-555555555555", record_id)]
    )
    await stack.caseworker_refers_to_unhcr(
        record_id, {"service_type": "basic_psychosocial_support"}
    )


async def test_a_lost_answer_found_by_a_look_up_is_counted_found(tmp_path: Path) -> None:
    async with Stack(tmp_path, gateway="ping", ping_status_check_seconds=0.25) as stack:
        await stack.set_ping_modes(async_delay_seconds=0.3, lost_async_answers=1)
        await referred(stack)
        await stack.poll(Flow.PRIMERO_REFERRAL)
        await stack.settle()

        figures = await lookup_counts(stack.store)
        assert (figures["outcome_unknown"], figures["found"], figures["parked"]) == (1, 1, {})
        assert set(figures["resolve"]) == {"done"}


async def test_a_post_never_found_is_counted_parked_then_discarded(ping_stack: Stack) -> None:
    await referred(ping_stack)
    await ping_stack.set_faults("unhcr", [{"path": ASYNC, "status": 502, "times": 1}])
    await ping_stack.poll(Flow.PRIMERO_REFERRAL)
    await ping_stack.settle()

    lookups = ping_stack.settings.retry_max_attempts
    assert await lookup_counts(ping_stack.store) == {
        "outcome_unknown": 1, "resolve": {"done": lookups}, "found": 0, "parked": {"dead": 1},
    }
    [dead] = await ping_stack.store.jobs.list(state="dead")
    assert await ping_stack.store.jobs.discard(dead.id, account=None, reason="found in proGres")
    figures = await lookup_counts(ping_stack.store)
    assert figures["parked"] == {"discarded": 1}
