"""Regressions of issue 10 ("exactly once under crashes"), each played deterministically over
real loopback HTTP: a crash-recovered or re-sent delivery and the focal point's decision,
IDs too long for the database, on both stores."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from primero_progres import demo_data
from primero_progres.stack import Stack

from .crash import die_after_the_step

FEEDBACK = "ReceiveDecisionOutgoingReferral"
ID_TOO_LONG = (
    "Intervention referral has an identifier longer than 128 characters (intervention "
    "number, individual number or Primero case id). Please review the identifiers and "
    "re-send the request."
)


@pytest.fixture(params=["sqlite", "postgresql"])
async def any_stack(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Stack]:
    """The stack on each database (PostgreSQL is where long IDs used to break)."""
    url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else None
    async with Stack(tmp_path, database_url=url) as running:
        yield running


async def decisions_sent(stack: Stack) -> list[dict[str, Any]]:
    return [
        m["body"]
        for m in await stack.dtp_messages(FEEDBACK)
        if m["body"].get("status") in ("acknowledged", "rejected")
    ]


async def the_row(stack: Stack) -> tuple[dict[str, Any], dict[str, Any]]:
    [case] = await stack.primero_cases()
    [row] = case["services_section"]
    return case, row


async def test_a_crash_recovered_delivery_never_reverts_the_focal_points_decision(
    tmp_path: Path,
) -> None:
    """The worker dies after its Primero write, the focal point accepts, the job runs again
    when its lease expires: the PATCH must not put ``pending`` back, and flow 2 must still
    send the decision."""
    async with Stack(tmp_path, lease_seconds=0.5) as stack:
        await stack.progres_sends_referral(demo_data.referral_message())
        assert await stack.worker.run_once() is True  # the fan-out
        await die_after_the_step(stack, "progres-referral.deliver")
        case, row = await the_row(stack)
        assert row["unhcr_referral_status"] == "pending"
        await stack.focal_point_decides(case["id"], row["unique_id"], "accepted")

        await stack.settle()

        case, row = await the_row(stack)
        assert row["unhcr_referral_status"] == "accepted"
        deliver = (await stack.store.jobs.list(kind="progres-referral.deliver"))[0]
        assert (deliver.state, deliver.attempts) == ("done", 2)
        await stack.poll("primero-decision")
        [decision] = await decisions_sent(stack)
        assert decision["status"] == "acknowledged"
        assert decision["case_id"] == case["case_id"]
        case, row = await the_row(stack)
        assert row["unhcr_referral_status"] == "accepted"


async def test_a_changed_intervention_sent_again_keeps_the_decision(stack: Stack) -> None:
    await stack.progres_sends_referral(demo_data.referral_message())
    await stack.settle()
    case, row = await the_row(stack)
    await stack.focal_point_decides(case["id"], row["unique_id"], "rejected", "no capacity")
    await stack.poll("primero-decision")

    changed = demo_data.intervention(progres_interventiondescription="<p>updated</p>")
    assert (await stack.progres_sends_referral(demo_data.referral_message(changed)))[
        "status"
    ] == "queued"
    await stack.settle()
    await stack.poll("primero-decision")

    case, row = await the_row(stack)
    assert row["unhcr_referral_status"] == "rejected"
    assert row["unhcr_referral_rejection_reason"] == "no capacity"
    assert "updated" in row["service_referral_notes"], "the rest of the row was updated"
    assert [d["status"] for d in await decisions_sent(stack)] == ["rejected"]


async def test_long_ids_refuse_their_intervention_only_on_both_databases(
    any_stack: Stack,
) -> None:
    """A 300-character intervention number overflowed ``jobs.key`` and killed the message's
    receive job on PostgreSQL, so its valid neighbour was never delivered; a 60-character
    ``unhcr_individual_no`` overflowed ``leases.name``."""
    stack = any_stack
    long_number = "DEMO-26-PRTITV-" + "7" * 285
    long_individual = "DEMO-" + "1" * 55
    message = demo_data.referral_message(
        demo_data.intervention(long_number),
        demo_data.intervention(
            "DEMO-26-PRTITV-0000002", **{"individuals.progres_id": long_individual}
        ),
    )
    assert (await stack.progres_sends_referral(message))["status"] == "queued"
    await stack.settle()

    # the refused one parked for a replay, its key fitted to the column like the others
    [dead] = await stack.store.jobs.list(state="dead")
    assert dead.kind == "progres-referral.deliver" and dead.dead_reason is not None
    assert dead.dead_reason.reason == "id_too_long"
    [case] = await stack.primero_cases()
    assert case["unhcr_individual_no"] == long_individual
    assert [r["progres_interventionnumber"] for r in case["services_section"]] == [
        "DEMO-26-PRTITV-0000002"
    ]
    feedbacks = {
        m["body"]["progres_interventionnumber"]: m["body"]
        for m in await stack.dtp_messages(FEEDBACK)
    }
    assert feedbacks[long_number]["status"] == "Delivery Fail"
    assert feedbacks[long_number]["closure_reason"] == ID_TOO_LONG
    assert feedbacks["DEMO-26-PRTITV-0000002"]["status"] == "Pending Acknowledgement"
    refused = await stack.store.ledger.find(
        "progres-referral", progres_interventionnumber=long_number
    )
    assert [e.state for e in refused] == ["refused_reported"]


@pytest.mark.parametrize("dedupe", [False, True])
async def test_a_feedback_sent_again_after_a_crash_carries_the_same_idempotency_key(
    tmp_path: Path, dedupe: bool
) -> None:
    """The worker dies after DTP took the feedback, before its commit: the job runs again and
    DTP receives the message twice, with one key; a DTP that deduplicates keeps one."""
    async with Stack(tmp_path, lease_seconds=0.5) as stack:
        await stack.sim_call("PUT", f"{stack.dtp.url}/_sim/dedupe", json={"enabled": dedupe})
        await stack.progres_sends_referral(demo_data.referral_message())
        assert await stack.worker.run_once() is True  # the fan-out
        assert await stack.worker.run_once() is True  # the delivery to Primero
        await die_after_the_step(stack, "progres-referral.feedback")
        await stack.settle()

        received = await stack.dtp_messages(FEEDBACK)
        keys = {m["idempotency_key"] for m in received}
        assert len(keys) == 1 and None not in keys
        if dedupe:
            [message] = received
            assert message["repeats"] == 1
        else:
            assert len(received) == 2
            assert received[0]["body"] == received[1]["body"]
        [feedback] = await stack.store.jobs.list(kind="progres-referral.feedback")
        assert (feedback.state, feedback.attempts) == ("done", 2)


def _ids(n: int) -> tuple[str, str]:
    return (f"1111111{n}-2222-4333-8444-555555555555", f"aaaaaaa{n}-bbbb-4ccc-8ddd-eeeeeeeeeeee")


async def test_a_poll_goes_page_by_page_and_a_failing_case_delays_only_itself(
    tmp_path: Path,
) -> None:
    """Flow 3 used to be one job: any error discarded the whole poll and its retry read a
    window grown since. Now each page commits its own work and each case is its own job."""
    async with Stack(tmp_path, primero_options={"max_per": 2}) as stack:
        cases = [
            demo_data.primero_case(*_ids(n), unhcr_individual_no=f"DEMO-0000001{n}")
            for n in range(5)
        ]
        await stack.seed_primero(cases=cases)
        for case in cases:
            await stack.caseworker_refers_to_unhcr(case["id"])
        broken = cases[2]["id"]
        await stack.set_faults(
            "primero", [{"path": f"/api/v2/cases/{broken}/referrals", "status": 500}]
        )
        await stack.poll("primero-referral")

        sent = await stack.dtp_messages("ReceiveIncomingReferral")
        assert sorted(m["body"]["id"].split("#")[0] for m in sent) == sorted(
            c["case_id"] for c in cases if c["id"] != broken
        )
        pages = await stack.store.jobs.list(kind="primero-referral.poll")
        # pages of 2 (a page restarts at the second it reached, so there may be one more)
        assert len(pages) >= 3 and {p.state for p in pages} == {"done"}
        [dead] = await stack.store.jobs.list(state="dead")
        assert (dead.kind, dead.refs["case_record_id"]) == ("primero-referral.case", broken)
        assert await stack.store.cursors.get("primero-referral") is not None
        [finished] = await stack.store.audit.list(event="poll_finished")
        assert (finished.ids["count"], finished.ids["total"]) == (5, 5)

        await stack.set_faults("primero", [])
        assert await stack.store.jobs.replay(dead.id)
        await stack.settle()
        await stack.poll("primero-referral")
        sent = await stack.dtp_messages("ReceiveIncomingReferral")
        assert len(sent) == 5 and len({m["body"]["id"] for m in sent}) == 5
