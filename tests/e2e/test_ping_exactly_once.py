"""Regressions of the defects the chaos test found over PING (issue 16), one each.

PING's ingestion writes are unconditional and it keeps no duplicate guard, so a write-back
that is late (retried, replayed) or whose answer was lost could undo what happened since,
or be applied twice. Counted at the PING simulator's write journal (``/_sim/writes``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from primero_progres import demo_data
from primero_progres.stack import Stack
from primero_progres.store import Flow

NUMBER = "DEMO-26-PRTITV-0000001"
PENDING_ACKNOWLEDGEMENT, ACCEPTED = 125080002, 125080003
SYNCED = 125080003
CASE_ID = "11111111-2222-4333-8444-555555555555"
RECORD_ID = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"


async def statuses_written(stack: Stack, record_id: str) -> list[int | None]:
    """The statuses the bridge's ``/data`` writes applied to one row, in order."""
    writes = await stack.ping_sim("GET", "writes")
    return [
        w["status"]
        for w in writes
        if w["record_id"] == record_id and w["table"] in ("intervention", "referral")
    ]


async def delivered(stack: Stack) -> tuple[str, dict[str, Any], dict[str, Any]]:
    [lp_id] = (await stack.seed_ping([demo_data.ping_intervention(NUMBER)]))["interventions"]
    await stack.poll(Flow.PROGRES_REFERRAL)
    [case] = await stack.primero_cases()
    [row] = case["services_section"]
    return lp_id, case, row


async def test_a_late_write_back_never_reverts_the_decision_sent_since(
    ping_stack: Stack,
) -> None:
    [lp_id] = (await ping_stack.seed_ping([demo_data.ping_intervention(NUMBER)]))[
        "interventions"
    ]
    await ping_stack.set_faults("unhcr", [{"path": "/api/ingestion", "status": 400, "times": 1}])
    await ping_stack.poll(Flow.PROGRES_REFERRAL)
    [dead] = await ping_stack.store.jobs.list(state="dead")
    assert dead.kind == "progres-referral.write_back"
    # the focal point decides before the acknowledgement reached PING; flow 2 sends it
    [case] = await ping_stack.primero_cases()
    [row] = case["services_section"]
    await ping_stack.focal_point_decides(case["id"], row["unique_id"], "accepted")
    await ping_stack.poll(Flow.PRIMERO_DECISION)
    assert await statuses_written(ping_stack, lp_id) == [ACCEPTED]

    assert await ping_stack.store.jobs.replay(dead.id)
    await ping_stack.settle()

    assert (await ping_stack.ping_intervention(lp_id))["transfer_status"] == ACCEPTED
    assert await statuses_written(ping_stack, lp_id) == [ACCEPTED]  # never reverted
    assert await ping_stack.store.jobs.list(state="dead") == []


async def test_a_write_back_whose_answer_was_lost_is_applied_once(ping_stack: Stack) -> None:
    await ping_stack.set_ping_modes(lost_answers=1)
    lp_id, _, _ = await delivered(ping_stack)

    assert await statuses_written(ping_stack, lp_id) == [PENDING_ACKNOWLEDGEMENT]
    [exchange] = await ping_stack.store.ledger.find(Flow.PROGRES_REFERRAL)
    assert exchange.state == "written_back"
    assert await ping_stack.store.jobs.list(state="dead") == []


async def test_a_decision_whose_answer_was_lost_is_applied_once(ping_stack: Stack) -> None:
    lp_id, case, row = await delivered(ping_stack)
    await ping_stack.focal_point_decides(case["id"], row["unique_id"], "accepted")
    await ping_stack.set_ping_modes(lost_answers=1)
    await ping_stack.poll(Flow.PRIMERO_DECISION)

    assert await statuses_written(ping_stack, lp_id) == [PENDING_ACKNOWLEDGEMENT, ACCEPTED]
    [sent] = await ping_stack.store.ledger.find(Flow.PRIMERO_DECISION)
    assert sent.state == "sent"


async def test_a_synced_write_back_whose_answer_was_lost_is_applied_once(
    ping_stack: Stack,
) -> None:
    await ping_stack.seed_primero(cases=[demo_data.primero_case(CASE_ID, RECORD_ID)])
    await ping_stack.caseworker_refers_to_unhcr(
        RECORD_ID, {"service_type": "basic_psychosocial_support"}
    )
    await ping_stack.poll(Flow.PRIMERO_REFERRAL)
    [referral] = await ping_stack.ping_referrals()
    await ping_stack.progres_decides(referral["referral_id"], "accepted")
    await ping_stack.set_ping_modes(lost_answers=1)
    await ping_stack.poll(Flow.PROGRES_DECISION)

    assert await statuses_written(ping_stack, referral["referral_id"]) == [SYNCED]
    [primero_referral] = await ping_stack.primero_referrals()
    assert primero_referral["status"] == "accepted"


async def test_a_write_back_retried_after_an_edit_leaves_the_edit_to_be_delivered(
    tmp_path: Path,
) -> None:
    async with Stack(tmp_path, gateway="ping", retry_max_attempts=1) as stack:
        # the acknowledgement is applied but its answer lost: with one attempt, a dead letter
        await stack.set_ping_modes(lost_answers=1)
        lp_id, _, _ = await delivered(stack)
        [dead] = await stack.store.jobs.list(state="dead")
        assert dead.kind == "progres-referral.write_back"
        # a proGres user edits the intervention and queues it again; then the replay
        edited = demo_data.ping_intervention(
            NUMBER, lp_intervention_id=lp_id, description="<p>Edited in proGres</p>"
        )
        await stack.seed_ping([edited])
        await stack.progres_flags(lp_id)
        assert await stack.store.jobs.replay(dead.id)
        await stack.settle()
        assert await statuses_written(stack, lp_id) == [PENDING_ACKNOWLEDGEMENT]  # left queued

        await stack.poll(Flow.PROGRES_REFERRAL)
        [case] = await stack.primero_cases()
        [row] = case["services_section"]
        assert "Edited in proGres" in str(row)
        assert await statuses_written(stack, lp_id) == [PENDING_ACKNOWLEDGEMENT] * 2
        assert (await stack.ping_intervention(lp_id))["transfer_status"] == (
            PENDING_ACKNOWLEDGEMENT
        )
