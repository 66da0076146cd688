"""The four flows with the peers failing, over real HTTP (issue 5, item 7).

Faults are injected in the simulators (``/_sim/faults``): transient failures
must be retried and end in exactly one delivery, permanent ones must not be
retried and end in a ``Delivery Fail`` feedback or a dead letter (SPEC, "What
the reference gets wrong" 5 and 6). The stack's retry policy is fast (base
0.05 s, cap 0.4 s, 5 attempts), so a Retry-After of 1 s dominates its delay.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from primero_progres import demo_data
from primero_progres.stack import Stack
from primero_progres.store.models import DeadLetterFilter, Job

from .crash import die_after_the_step

NUMBER = "DEMO-26-PRTITV-0000001"
FOCAL_POINT = "progresv4_primero_intake@cpims-gambella.primero.org"
CASES = "/api/v2/cases"
FEEDBACK = "/ReceiveDecisionOutgoingReferral"
REFERRAL = "/ReceiveIncomingReferral"
#: the Gambella profile's closure reason for a permanent refusal by Primero
PRIMERO_REFUSED = (
    "Primero refused the intervention referral. Please contact the UNICEF CPIMS+ administrator."
)
#: a 422 as Primero renders it (PRIMERO-API.md §2.5)
INVALID_RECORD = {
    "errors": [
        {
            "status": 422,
            "resource": "/api/v2/cases",
            "detail": "/services_section/0/unique_id",
            "message": "Invalid Record JSON",
        }
    ]
}
CASE_ID = "11111111-2222-4333-8444-555555555555"
RECORD_ID = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"


# ----------------------------------------------------------------------------- helpers


async def journal(stack: Stack, method: str, path_prefix: str) -> list[int | None]:
    """Statuses of the Primero API requests with this method and path prefix, in order."""
    entries = await stack.sim_call("GET", f"{stack.primero.url}/_sim/journal")
    return [
        e["status"] for e in entries if e["method"] == method and e["path"].startswith(path_prefix)
    ]


async def case_creations(stack: Stack) -> list[int | None]:
    """Statuses of ``POST /api/v2/cases`` (creation, not referrals under a case)."""
    entries = await stack.sim_call("GET", f"{stack.primero.url}/_sim/journal")
    return [e["status"] for e in entries if e["method"] == "POST" and e["path"] == CASES]


async def jobs_of(stack: Stack, kind: str) -> list[Job]:
    return await stack.store.jobs.list(kind=kind)


async def the_job(stack: Stack, kind: str) -> Job:
    [job] = await jobs_of(stack, kind)
    return job


def success_feedback(case_id: str) -> dict[str, Any]:
    """MAPPING.md, flow 1 feedback on success."""
    return {
        "status": "Pending Acknowledgement",
        "primero_user": FOCAL_POINT,
        "case_id": case_id,
        "progres_interventionnumber": NUMBER,
    }


async def deliver_referral(stack: Stack) -> None:
    answer = await stack.progres_sends_referral(demo_data.referral_message())
    assert answer["status"] == "queued"
    await stack.settle()


async def assert_one_case_one_row(stack: Stack) -> dict[str, Any]:
    [case] = await stack.primero_cases()
    [row] = case["services_section"]
    assert row["progres_interventionnumber"] == NUMBER
    assert case["unhcr_individual_no"] == "DEMO-00000001"
    return case


async def decided_case(stack: Stack) -> dict[str, Any]:
    """Flow 1 delivered, its feedback sent, and the focal point accepted the service."""
    await deliver_referral(stack)
    case = await assert_one_case_one_row(stack)
    await stack.focal_point_decides(
        case["id"], case["services_section"][0]["unique_id"], "accepted"
    )
    return case


async def referred_case(stack: Stack) -> dict[str, Any]:
    """A Primero case referred to the UNHCR caseworker (the start of flow 3)."""
    await stack.seed_primero(cases=[demo_data.primero_case(CASE_ID, RECORD_ID)])
    return await stack.caseworker_refers_to_unhcr(RECORD_ID)


# ----------------------------------------------------------------------------- flow 1, Primero


async def test_primero_unavailable_then_error_is_retried_and_the_case_created_once(
    stack: Stack,
) -> None:
    await stack.set_faults(
        "primero",
        [
            {"method": "POST", "path": CASES, "status": 503, "retry_after": 1, "times": 1},
            {"method": "POST", "path": CASES, "status": 500, "times": 1},
        ],
    )
    await deliver_referral(stack)

    assert await case_creations(stack) == [503, 500, 200]
    case = await assert_one_case_one_row(stack)
    assert [m["body"] for m in await stack.dtp_messages()] == [success_feedback(case["case_id"])]
    deliver = await the_job(stack, "progres-referral.deliver")
    assert (deliver.state, deliver.attempts) == ("done", 3)
    assert await stack.store.jobs.list(state="dead") == []
    [exchange] = await stack.store.ledger.find(flow="progres-referral")
    assert exchange.state == "feedback_sent"
    assert exchange.case_id == case["case_id"]


async def test_primero_hanging_times_out_and_is_retried(stack: Stack) -> None:
    """The stack's Primero timeout is 2 s: one hung creation, then a normal one."""
    await stack.set_faults("primero", [{"method": "POST", "path": CASES, "hang": True, "times": 1}])
    await deliver_referral(stack)

    creations = await case_creations(stack)
    assert creations[-1] == 200 and len(creations) == 2
    case = await assert_one_case_one_row(stack)
    assert [m["body"] for m in await stack.dtp_messages()] == [success_feedback(case["case_id"])]
    assert (await the_job(stack, "progres-referral.deliver")).attempts == 2


async def test_primero_refusing_the_case_gives_a_delivery_fail_without_retry(
    stack: Stack,
) -> None:
    await stack.set_faults(
        "primero", [{"method": "POST", "path": CASES, "status": 422, "body": INVALID_RECORD}]
    )
    await deliver_referral(stack)

    assert await case_creations(stack) == [422]
    assert await stack.primero_cases() == []
    [feedback] = await stack.dtp_messages(FEEDBACK.lstrip("/"))
    assert feedback["body"] == {
        "status": "Delivery Fail",
        "request_type": "Feedback",
        "case_id": None,
        "primero_user": FOCAL_POINT,
        "progres_interventionnumber": NUMBER,
        "closure_reason": PRIMERO_REFUSED,
    }
    parked, deliver = sorted(
        await jobs_of(stack, "progres-referral.deliver"), key=lambda job: job.state
    )
    assert (deliver.state, deliver.attempts) == ("done", 1)
    # parked for a replay once Primero is fixed: proGres sending it again is a duplicate
    assert (parked.state, parked.attempts) == ("dead", 0)
    assert parked.dead_reason is not None
    assert (parked.dead_reason.failure_class, parked.dead_reason.reason) == (
        "permanent",
        "primero_refused",
    )
    [exchange] = await stack.store.ledger.find(flow="progres-referral")
    assert exchange.state == "refused_reported"
    [refused] = await stack.store.audit.list(event="intervention_refused")
    assert refused.ids["reason"] == "primero_refused"
    assert refused.ids["peer_status"] == "http_422"


async def test_primero_rejecting_the_credentials_is_a_dead_letter_never_a_retry_loop(
    tmp_path: Path,
) -> None:
    """A wrong password answers 401; retrying would only lock the API account (6 failures).

    It is the bridge's own configuration problem, not the referral's: proGres gets no
    ``Delivery Fail`` it could do nothing about; the operator replays the dead letter once
    the password is fixed.
    """
    async with Stack(tmp_path, primero_password="not-the-password") as stack:
        await deliver_referral(stack)
        assert await journal(stack, "GET", CASES) == [401]
        assert await case_creations(stack) == []
        deliver = await the_job(stack, "progres-referral.deliver")
        assert (deliver.state, deliver.attempts) == ("dead", 1)
        assert deliver.dead_reason is not None
        assert (deliver.dead_reason.failure_class, deliver.dead_reason.reason) == (
            "permanent",
            "http_401",
        )
        assert await stack.dtp_messages() == []

        await stack.poll("primero-referral")
        assert await journal(stack, "GET", CASES) == [401, 401]
        poll = await the_job(stack, "primero-referral.poll")
        assert (poll.state, poll.attempts) == ("dead", 1)
        assert poll.dead_reason is not None
        assert (poll.dead_reason.failure_class, poll.dead_reason.reason) == (
            "permanent",
            "http_401",
        )


async def test_a_refused_intervention_frees_its_child_for_the_next_one(stack: Stack) -> None:
    """After a ``Delivery Fail`` the per-child lease is released at once, so another
    intervention for the same child is delivered without waiting for the lease to expire."""
    await stack.set_faults(
        "primero",
        [{"method": "POST", "path": CASES, "status": 422, "body": INVALID_RECORD, "times": 1}],
    )
    await deliver_referral(stack)
    await stack.progres_sends_referral(
        demo_data.referral_message(demo_data.intervention("DEMO-26-PRTITV-0000002"))
    )
    await stack.settle(timeout=5.0)

    assert await case_creations(stack) == [422, 200]
    deliveries = await stack.store.jobs.list(kind="progres-referral.deliver", state="done")
    assert sorted(job.attempts for job in deliveries) == [1, 1]
    statuses = [m["body"]["status"] for m in await stack.dtp_messages()]
    assert statuses == ["Delivery Fail", "Pending Acknowledgement"]


@pytest.fixture(params=["sqlite", "postgresql"])
async def any_stack(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Stack]:
    """The stack on each database."""
    url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else None
    async with Stack(tmp_path, database_url=url) as running:
        yield running


async def feedback_statuses(stack: Stack) -> list[str]:
    return [m["body"]["status"] for m in await stack.dtp_messages(FEEDBACK.lstrip("/"))]


async def test_a_refused_intervention_is_delivered_by_replaying_its_dead_letter_once_fixed(
    any_stack: Stack,
) -> None:
    """proGres sending a refused intervention again is a duplicate message (the same bytes),
    dropped: without the dead letter the child would never get the service. A replay refused
    again tells proGres nothing new and parks a new dead letter; once Primero is fixed, the
    next replay creates the case once and DTP hears of it."""
    stack = any_stack
    await stack.set_faults(
        "primero", [{"method": "POST", "path": CASES, "status": 422, "body": INVALID_RECORD}]
    )
    await deliver_referral(stack)
    assert await feedback_statuses(stack) == ["Delivery Fail"]
    [first] = await stack.store.jobs.list(state="dead")
    assert first.kind == "progres-referral.deliver"
    assert first.dead_reason is not None and first.dead_reason.reason == "primero_refused"
    answer = await stack.progres_sends_referral(demo_data.referral_message())
    assert answer["status"] == "duplicate"

    # replayed before the cause is fixed: refused again
    assert await stack.store.jobs.replay(first.id)
    await stack.settle()
    assert await case_creations(stack) == [422, 422]
    assert await feedback_statuses(stack) == ["Delivery Fail"], "no second Delivery Fail"
    [second] = await stack.store.jobs.list(state="dead")
    assert second.id != first.id and second.kind == "progres-referral.deliver"
    assert (await stack.store.jobs.get(first.id)).state == "done"  # type: ignore[union-attr]
    [exchange] = await stack.store.ledger.find(flow="progres-referral")
    assert exchange.state == "refused_reported"

    # fixed: the replay delivers
    await stack.set_faults("primero", [])
    assert await stack.store.jobs.replay(second.id)
    await stack.settle()
    case = await assert_one_case_one_row(stack)
    assert await case_creations(stack) == [422, 422, 200]
    assert await feedback_statuses(stack) == ["Delivery Fail", "Pending Acknowledgement"]
    assert (await stack.dtp_messages(FEEDBACK.lstrip("/")))[-1]["body"] == success_feedback(
        case["case_id"]
    )
    assert await stack.store.jobs.list(state="dead") == []
    [exchange] = await stack.store.ledger.find(flow="progres-referral")
    assert (exchange.state, exchange.case_id) == ("feedback_sent", case["case_id"])
    events = [e.event for e in await stack.store.ledger.events(exchange.id)]
    assert events.count("case_created") == 1 and events[-1] == "feedback_sent"


async def test_a_refused_copy_replayed_after_a_changed_version_was_delivered_writes_nothing(
    stack: Stack,
) -> None:
    """proGres corrected the intervention and sent it again (new content, delivered); an
    operator then replays the old refused copy: written, its old content would overwrite the
    newer in Primero. It writes nothing, and proGres hears nothing more."""
    await stack.set_faults(
        "primero",
        [{"method": "POST", "path": CASES, "status": 422, "body": INVALID_RECORD, "times": 1}],
    )
    await deliver_referral(stack)
    [parked] = await stack.store.jobs.list(state="dead")
    corrected = demo_data.intervention(progres_interventiondescription="<p>corrected</p>")
    answer = await stack.progres_sends_referral(demo_data.referral_message(corrected))
    assert answer["status"] == "queued"
    await stack.settle()
    case = await assert_one_case_one_row(stack)
    journal_before = await stack.sim_call("GET", f"{stack.primero.url}/_sim/journal")

    assert await stack.store.jobs.replay(parked.id)
    await stack.settle()

    writes = [
        e
        for e in await stack.sim_call("GET", f"{stack.primero.url}/_sim/journal")
        if e["method"] in ("POST", "PATCH")
    ]
    assert writes == [e for e in journal_before if e["method"] in ("POST", "PATCH")]
    assert await case_creations(stack) == [422, 200]
    assert await feedback_statuses(stack) == ["Delivery Fail", "Pending Acknowledgement"]
    assert (await stack.store.jobs.get(parked.id)).state == "done"  # type: ignore[union-attr]
    assert await stack.store.jobs.list(state="dead") == []
    [exchange] = await stack.store.ledger.find(flow="progres-referral")
    assert (exchange.state, exchange.case_id) == ("feedback_sent", case["case_id"])


async def test_a_refusal_replayed_together_with_its_unsent_delivery_fail_ends_delivered(
    stack: Stack,
) -> None:
    """DTP was down too: the ``Delivery Fail`` is a dead letter next to the refused
    intervention. Replayed together once both are fixed, proGres hears only the success."""
    await stack.set_faults(
        "primero", [{"method": "POST", "path": CASES, "status": 422, "body": INVALID_RECORD}]
    )
    await stack.set_faults("dtp", [{"path": FEEDBACK, "status": 500}])
    await deliver_referral(stack)
    dead = await stack.store.jobs.list(state="dead")
    assert sorted(job.kind for job in dead) == [
        "progres-referral.deliver",
        "progres-referral.feedback",
    ]

    await stack.set_faults("primero", [])
    await stack.set_faults("dtp", [])
    deliver = next(job for job in dead if job.kind == "progres-referral.deliver")
    assert await stack.store.jobs.replay(deliver.id)
    await stack.settle()
    assert await stack.store.jobs.replay_matching(DeadLetterFilter(flow="progres-referral"))
    await stack.settle()

    case = await assert_one_case_one_row(stack)
    assert [m["body"] for m in await stack.dtp_messages()] == [success_feedback(case["case_id"])]
    assert await stack.store.jobs.list(state="dead") == []
    [exchange] = await stack.store.ledger.find(flow="progres-referral")
    assert exchange.state == "feedback_sent"


async def test_a_success_status_with_a_body_not_primeros_is_a_dead_letter_not_a_refusal(
    stack: Stack,
) -> None:
    """A 200 whose body is not Primero's (a proxy's page) after a create: the case may have
    been written, so a ``Delivery Fail`` ("Primero refused") would be false. The operator
    looks, and replays: the search finds a case written meanwhile, else creates it."""
    await stack.set_faults(
        "primero",
        [{"method": "POST", "path": CASES, "status": 200, "body": "<html>proxy</html>",
          "times": 1}],
    )
    await deliver_referral(stack)

    assert await stack.dtp_messages() == []
    assert await stack.store.audit.list(event="intervention_refused") == []
    [dead] = await stack.store.jobs.list(state="dead")
    assert (dead.kind, dead.attempts) == ("progres-referral.deliver", 1)
    assert dead.dead_reason is not None
    assert (dead.dead_reason.failure_class, dead.dead_reason.reason) == (
        "permanent",
        "bad_response",
    )

    assert await stack.store.jobs.replay(dead.id)
    await stack.settle()
    case = await assert_one_case_one_row(stack)
    assert [m["body"] for m in await stack.dtp_messages()] == [success_feedback(case["case_id"])]


# ----------------------------------------------------------------------------- flow 1, DTP


async def test_dtp_failing_the_feedback_is_retried_without_redoing_the_primero_step(
    stack: Stack,
) -> None:
    await stack.set_faults("dtp", [{"path": FEEDBACK, "status": 500, "times": 2}])
    await deliver_referral(stack)

    case = await assert_one_case_one_row(stack)
    assert await case_creations(stack) == [200]
    assert await journal(stack, "PATCH", CASES) == []
    assert [m["body"] for m in await stack.dtp_messages()] == [success_feedback(case["case_id"])]
    assert (await the_job(stack, "progres-referral.deliver")).attempts == 1
    feedback = await the_job(stack, "progres-referral.feedback")
    assert (feedback.state, feedback.attempts) == ("done", 3)


async def test_dtp_down_dead_letters_the_feedback_and_replay_delivers_it_once(
    stack: Stack,
) -> None:
    await stack.set_faults("dtp", [{"path": FEEDBACK, "status": 500}])
    await deliver_referral(stack)

    case = await assert_one_case_one_row(stack)
    assert await stack.dtp_messages() == []
    [dead] = await stack.store.jobs.list(state="dead")
    assert dead.kind == "progres-referral.feedback"
    assert dead.attempts == 5  # the stack's retry_max_attempts
    assert dead.dead_reason is not None
    assert dead.dead_reason.failure_class == "transient"
    assert dead.dead_reason.reason == "http_500"
    assert dead.dead_reason.message.startswith("retries exhausted after 5 attempts")
    [audit] = await stack.store.audit.list(event="job.dead")
    assert audit.ids["job_id"] == dead.id
    [exchange] = await stack.store.ledger.find(flow="progres-referral")
    assert exchange.state == "delivered"

    await stack.set_faults("dtp", [])
    assert await stack.store.jobs.replay(dead.id) is True
    await stack.settle()
    assert [m["body"] for m in await stack.dtp_messages()] == [success_feedback(case["case_id"])]
    assert (await stack.store.jobs.get(dead.id)).state == "done"  # type: ignore[union-attr]
    assert await stack.store.jobs.replay(dead.id) is False
    await stack.settle()
    assert len(await stack.dtp_messages()) == 1
    assert await case_creations(stack) == [200]
    [exchange] = await stack.store.ledger.find(flow="progres-referral")
    assert exchange.state == "feedback_sent"


async def test_a_worker_dying_after_the_primero_write_leaves_one_case_and_one_row(
    tmp_path: Path,
) -> None:
    """The case is created, the worker dies before committing: another worker runs the step
    again, finds the case by ``unhcr_individual_no`` and patches its row instead."""
    async with Stack(tmp_path, lease_seconds=0.5) as stack:
        await stack.progres_sends_referral(demo_data.referral_message())
        assert await stack.worker.run_once() is True  # the fan-out into one deliver job
        await die_after_the_step(stack, "progres-referral.deliver")
        assert await case_creations(stack) == [200]
        assert await jobs_of(stack, "progres-referral.feedback") == []

        await stack.settle()

        case = await assert_one_case_one_row(stack)
        assert await case_creations(stack) == [200]
        assert await journal(stack, "PATCH", CASES) == [200]
        assert [m["body"] for m in await stack.dtp_messages()] == [
            success_feedback(case["case_id"])
        ]
        deliver = await the_job(stack, "progres-referral.deliver")
        assert (deliver.state, deliver.attempts) == ("done", 2)
        [exchange] = await stack.store.ledger.find(flow="progres-referral")
        assert exchange.state == "feedback_sent"


async def test_a_worker_dying_after_the_referral_patch_applies_the_decision_once(
    tmp_path: Path,
) -> None:
    """Flow 4 run again after the PATCH went through: Primero answers the repeated
    ``accepted`` unchanged (PRIMERO-API.md §3.5), which is the status asked for."""
    async with Stack(tmp_path, lease_seconds=0.5) as stack:
        referred = await referred_case(stack)
        await stack.poll("primero-referral")
        org_referral_id = f"{CASE_ID}#{referred['service_unique_id'][-12:]}"
        await stack.progres_sends_decision(demo_data.decision_message(org_referral_id))
        assert await stack.worker.run_once() is True  # the fan-out into one apply job
        await die_after_the_step(stack, "progres-decision.apply")

        await stack.settle()

        assert await journal(stack, "PATCH", CASES) == [200, 200]
        [referral] = [
            r for r in await stack.primero_referrals() if r["id"] == referred["referral_id"]
        ]
        assert referral["status"] == "accepted"
        apply = await the_job(stack, "progres-decision.apply")
        assert (apply.state, apply.attempts) == ("done", 2)
        [exchange] = await stack.store.ledger.find(flow="progres-decision")
        assert exchange.state == "accepted"
        assert await stack.store.jobs.list(state="dead") == []


# ----------------------------------------------------------------------------- flows 2, 3, 4


async def test_flow2_decision_reaches_dtp_once_through_transient_failures(stack: Stack) -> None:
    case = await decided_case(stack)
    await stack.set_faults("dtp", [{"path": FEEDBACK, "status": 503, "retry_after": 0, "times": 2}])
    await stack.poll("primero-decision")
    await stack.poll("primero-decision")

    decisions = [
        m["body"] for m in await stack.dtp_messages() if m["body"]["status"] == "acknowledged"
    ]
    assert decisions == [
        {
            "case_id": case["case_id"],
            "primero_user": FOCAL_POINT,
            "progres_interventionnumber": NUMBER,
            "status": "acknowledged",
            "closure_reason": "No reason specified.",
            "request_type": "ReceiveDecisionOutgoingReferral",
        }
    ]
    send = await the_job(stack, "primero-decision.send")
    assert (send.state, send.attempts) == ("done", 3)


async def test_flow3_referral_reaches_dtp_once_through_transient_failures(stack: Stack) -> None:
    referred = await referred_case(stack)
    await stack.set_faults("dtp", [{"path": REFERRAL, "status": 502, "times": 2}])
    await stack.poll("primero-referral")
    await stack.poll("primero-referral")

    [referral] = await stack.dtp_messages(REFERRAL.lstrip("/"))
    assert referral["body"]["id"] == f"{CASE_ID}#{referred['service_unique_id'][-12:]}"
    send = await the_job(stack, "primero-referral.send")
    assert (send.state, send.attempts) == ("done", 3)
    [exchange] = await stack.store.ledger.find(flow="primero-referral")
    assert exchange.state == "sent"


async def test_flow4_decision_applied_once_through_transient_primero_failures(
    stack: Stack,
) -> None:
    referred = await referred_case(stack)
    await stack.poll("primero-referral")
    org_referral_id = f"{CASE_ID}#{referred['service_unique_id'][-12:]}"
    await stack.set_faults(
        "primero", [{"method": "PATCH", "path": CASES, "status": 503, "times": 2}]
    )
    await stack.progres_sends_decision(demo_data.decision_message(org_referral_id))
    await stack.settle()

    assert await journal(stack, "PATCH", CASES) == [503, 503, 200]
    statuses = {r["id"]: r["status"] for r in await stack.primero_referrals()}
    assert statuses[referred["referral_id"]] == "accepted"
    apply = await the_job(stack, "progres-decision.apply")
    assert (apply.state, apply.attempts) == ("done", 3)
    [exchange] = await stack.store.ledger.find(flow="progres-decision")
    assert (exchange.state, exchange.referral_id) == ("accepted", referred["referral_id"])
    assert await stack.store.jobs.list(state="dead") == []


async def test_primero_failing_during_a_poll_is_retried_and_the_decision_sent_once(
    stack: Stack,
) -> None:
    case = await decided_case(stack)
    await stack.set_faults("primero", [{"method": "GET", "path": CASES, "status": 503, "times": 2}])
    await stack.poll("primero-decision")

    poll = await the_job(stack, "primero-decision.poll")
    assert (poll.state, poll.attempts) == ("done", 3)
    decisions = [
        m["body"] for m in await stack.dtp_messages() if m["body"]["status"] == "acknowledged"
    ]
    assert [d["case_id"] for d in decisions] == [case["case_id"]]
    assert await stack.store.cursors.get("primero-decision") is not None


async def test_dtp_refusing_a_referral_dead_letters_it_at_once_and_a_new_poll_does_not_resend(
    stack: Stack,
) -> None:
    """A 400 is permanent: no retry. The (case, service) stays known, so the next poll does
    not queue it again; the operator's replay, once DTP accepts it, sends it once."""
    referred = await referred_case(stack)
    await stack.set_faults("dtp", [{"path": REFERRAL, "status": 400}])
    await stack.poll("primero-referral")

    [dead] = await stack.store.jobs.list(state="dead")
    assert (dead.kind, dead.attempts) == ("primero-referral.send", 1)
    assert dead.dead_reason is not None
    assert (dead.dead_reason.failure_class, dead.dead_reason.reason) == ("permanent", "http_400")
    assert await stack.dtp_messages(REFERRAL.lstrip("/")) == []

    await stack.set_faults("dtp", [])
    await stack.poll("primero-referral")
    assert len(await jobs_of(stack, "primero-referral.send")) == 1
    assert await stack.dtp_messages(REFERRAL.lstrip("/")) == []

    assert await stack.store.jobs.replay(dead.id)
    await stack.settle()
    [referral] = await stack.dtp_messages(REFERRAL.lstrip("/"))
    assert referral["body"]["id"] == f"{CASE_ID}#{referred['service_unique_id'][-12:]}"


async def test_primero_down_for_good_dead_letters_the_delivery_and_replay_creates_once(
    stack: Stack,
) -> None:
    """Exhausted retries are not a refusal: no ``Delivery Fail`` goes to proGres, the
    intervention waits in the dead-letter list until the operator replays it."""
    await stack.set_faults("primero", [{"method": "POST", "path": CASES, "status": 503}])
    await deliver_referral(stack)

    [dead] = await stack.store.jobs.list(state="dead")
    assert (dead.kind, dead.attempts) == ("progres-referral.deliver", 5)
    assert dead.dead_reason is not None
    assert (dead.dead_reason.failure_class, dead.dead_reason.reason) == ("transient", "http_503")
    assert await case_creations(stack) == [503] * 5
    assert await stack.primero_cases() == []
    assert await stack.dtp_messages() == []
    assert await stack.store.ledger.find(flow="progres-referral") == []

    await stack.set_faults("primero", [])
    assert await stack.store.jobs.replay(dead.id)
    await stack.settle()
    case = await assert_one_case_one_row(stack)
    assert await case_creations(stack) == [503] * 5 + [200]
    assert [m["body"] for m in await stack.dtp_messages()] == [success_feedback(case["case_id"])]
