"""The store's typed API on both databases: commands, the waiting-for-decision query, leases,
polls."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from primero_progres.errors import FailureClass
from primero_progres.store import (
    AuditEvent,
    AuditRecord,
    CursorMove,
    DeadReason,
    Enqueue,
    Flow,
    Job,
    LeaseBusy,
    LedgerRecord,
    LedgerState,
    Store,
    decision_key,
)

STATUSES = ("accepted", "rejected")
START = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)


def delivered(
    number: str, record_id: str | None, service: str | None, state: LedgerState
) -> LedgerRecord:
    return LedgerRecord.of(
        Flow.PROGRES_REFERRAL,
        number,
        state=state,
        case_record_id=record_id,
        service_unique_id=service,
    )


def decision(service: str, status: str) -> LedgerRecord:
    return LedgerRecord.of(
        Flow.PRIMERO_DECISION,
        decision_key(service, status),
        state=LedgerState.SENT,
        service_unique_id=service,
    )


async def test_cases_waiting_for_a_decision(store: Store) -> None:
    await store.apply(
        [
            delivered("I-1", "rec-a", "svc-a", LedgerState.FEEDBACK_SENT),  # nothing decided
            delivered("I-2", "rec-b", "svc-b", LedgerState.FEEDBACK_SENT),  # accepted only
            decision("svc-b", "accepted"),
            delivered("I-3", "rec-c", "svc-c", LedgerState.FEEDBACK_SENT),  # both decided
            decision("svc-c", "accepted"),
            decision("svc-c", "rejected"),
            delivered("I-4", "rec-d", "svc-d", LedgerState.REFUSED),
            delivered("I-5", "rec-e", "svc-e", LedgerState.REFUSED_REPORTED),
            delivered("I-6", None, "svc-f", LedgerState.DELIVERED),  # no case known
            delivered("I-7", "rec-a", "svc-g", LedgerState.DELIVERED),  # same case, again
            delivered("I-8", "rec-h", "svc-h", LedgerState.DELIVERED),
            decision("svc-x", "rejected"),  # another service's decision
        ]
    )
    waiting = store.ledger.cases_waiting_for_decision
    assert await waiting(STATUSES, limit=100) == ["rec-a", "rec-b", "rec-h"]
    assert await waiting(["accepted"], limit=100) == ["rec-a", "rec-h"]
    assert await waiting([], limit=100) == []
    assert await waiting(STATUSES, limit=2) == ["rec-a", "rec-b"]
    assert await waiting(STATUSES, after="rec-b", limit=2) == ["rec-h"]
    assert await waiting(STATUSES, after="rec-h", limit=2) == []


async def test_commands_apply_in_one_transaction_or_not_at_all(store: Store) -> None:
    job = Enqueue("toy.step", {"n": 1}, key="k-1")
    with pytest.raises(ValueError):
        await store.apply([job, CursorMove("no-such-flow", "x")])  # type: ignore[arg-type]
    assert await store.jobs.list(kind="toy.step") == []

    await store.apply(
        [
            job,
            CursorMove(Flow.PRIMERO_REFERRAL, "2026-11-29T12:00:00Z"),
            AuditRecord(AuditEvent.POLL_FINISHED, Flow.PRIMERO_REFERRAL, {"count": 1}),
        ]
    )
    assert [j.key for j in await store.jobs.list(kind="toy.step")] == ["k-1"]
    assert await store.cursors.get(Flow.PRIMERO_REFERRAL) == "2026-11-29T12:00:00Z"
    [entry] = await store.audit.list(event=AuditEvent.POLL_FINISHED)
    assert (entry.flow, entry.ids) == ("primero-referral", {"count": 1})


def test_a_ledger_record_refuses_an_unknown_id_column_at_once() -> None:
    with pytest.raises(ValueError, match="unknown ID column"):
        LedgerRecord(Flow.PROGRES_REFERRAL, "I-1", LedgerState.DELIVERED, ids={"name": "x"})


async def test_a_held_lease_is_released_however_the_block_ends(store: Store) -> None:
    async with store.leases.hold("individual:803-1", "a", ttl=60):
        assert await store.leases.holder("individual:803-1") == "a"
        with pytest.raises(LeaseBusy) as caught:
            async with store.leases.hold("individual:803-1", "b", ttl=60):
                pass
        assert caught.value.retryable and caught.value.reason == "busy"
        assert "803-1" not in caught.value.message, "lease names may hold an individual's id"
    assert await store.leases.holder("individual:803-1") is None

    with pytest.raises(RuntimeError):
        async with store.leases.hold("individual:803-1", "b", ttl=60):
            raise RuntimeError("the step failed")
    assert await store.leases.holder("individual:803-1") is None


async def test_a_lease_row_holds_a_hash_of_its_name_whatever_its_length(store: Store) -> None:
    """``leases.name`` is VARCHAR(64): a 60-character individual number used to overflow it on
    PostgreSQL, and the number itself sat in the table (and in every SQL log line)."""
    number = "ZZLEASE-" + "7" * 52
    name = f"individual:{number}"
    async with store.leases.hold(name, "a", ttl=60):
        assert await store.leases.holder(name) == "a"
        assert await store.leases.holder(f"individual:{number[:-1]}") is None
        async with store.leases.hold(f"individual:{number[:-1]}", "b", ttl=60):
            pass
        with pytest.raises(LeaseBusy):
            async with store.leases.hold(name, "b", ttl=60):
                pass
        async with store.engine.connect() as conn:
            rows = (await conn.execute(sa.text("SELECT name, owner FROM leases"))).all()
    assert [owner for _, owner in rows] == ["a"]
    [(key, _)] = rows
    assert key.startswith("individual:") and len(key) <= 64
    assert "ZZLEASE" not in key
    assert await store.leases.holder(name) is None


async def test_keys_and_ids_of_any_length_fit_their_columns(store: Store) -> None:
    """A 300-character intervention number overflowed ``jobs.key`` VARCHAR(255) and the
    ledger's VARCHAR(128) ID columns on PostgreSQL, failing the whole transaction."""
    number = "LONG-" + "9" * 295
    key = f"progres-referral.deliver:{number}:{'f' * 64}"
    first = await store.jobs.enqueue("progres-referral.deliver", {}, key=key)
    again = await store.jobs.enqueue("progres-referral.deliver", {}, key=key)
    other = await store.jobs.enqueue("progres-referral.deliver", {}, key=key[:-1] + "e")
    assert first.created and not again.created and again.id == first.id
    assert other.created and other.id != first.id
    job = await store.jobs.get(first.id)
    assert job is not None and job.key is not None
    assert len(job.key) <= 255 and job.key.startswith("progres-referral.deliver:LONG-999")

    await store.apply(
        [
            LedgerRecord.of(
                Flow.PROGRES_REFERRAL,
                number,
                state=LedgerState.REFUSED,
                progres_interventionnumber=number,
            )
        ]
    )
    exchange = await store.ledger.get(Flow.PROGRES_REFERRAL, number)
    assert exchange is not None and exchange.state == "refused"
    assert exchange.progres_interventionnumber is not None
    assert len(exchange.progres_interventionnumber) <= 128
    found = await store.ledger.find(Flow.PROGRES_REFERRAL, progres_interventionnumber=number)
    assert [e.id for e in found] == [exchange.id]
    assert await store.ledger.get(Flow.PROGRES_REFERRAL, number[:-1]) is None


async def test_a_scheduler_standing_down_hands_its_flow_over_at_once(store: Store) -> None:
    polls = store.polls
    first = await polls.try_trigger(
        Flow.PRIMERO_DECISION, interval=60, owner="m1", lease_seconds=30, start_at=START
    )
    assert first is not None
    assert (
        await polls.try_trigger(Flow.PRIMERO_DECISION, interval=60, owner="m2", lease_seconds=30)
        is None
    )
    await polls.stand_down(Flow.PRIMERO_DECISION, "m1")
    assert (
        await polls.try_trigger(Flow.PRIMERO_DECISION, interval=60, owner="m2", lease_seconds=30)
        is None
    ), "the first poll is still unfinished"
    assert await store.leases.holder("poll:primero-decision") == "m2"


async def test_run_now_queues_a_poll_outside_the_schedule(store: Store) -> None:
    job_id = await store.polls.run_now(Flow.PRIMERO_DECISION, {"full_scan": True}, start_at=START)
    job = await store.jobs.get(job_id, decrypt=True)
    assert job is not None
    assert (job.kind, job.key, job.payload) == ("primero-decision.poll", None, {"full_scan": True})


async def test_a_delivery_failure_written_back_through_ping_is_never_waited_on(
    store: Store,
) -> None:
    await store.apply(
        [
            delivered("I-1", "rec-a", "svc-a", LedgerState.WRITTEN_BACK),
            delivered("I-2", "rec-b", "svc-b", LedgerState.FAILURE_WRITTEN_BACK),
        ]
    )
    assert await store.ledger.cases_waiting_for_decision(STATUSES, limit=10) == ["rec-a"]


async def test_the_ledger_finds_an_exchange_by_its_ping_ids(store: Store) -> None:
    await store.apply(
        [
            LedgerRecord.of(
                Flow.PROGRES_REFERRAL,
                "I-1",
                state=LedgerState.DELIVERED,
                lp_intervention_id="lp-1",
                business_unit_id="bu-1",
            ),
            LedgerRecord.of(
                Flow.PROGRES_DECISION,
                "svc-1",
                state=LedgerState.ACCEPTED,
                interoperability_referral_id="iop-1",
            ),
        ]
    )
    [exchange] = await store.ledger.find(lp_intervention_id="lp-1")
    assert (exchange.key, exchange.business_unit_id) == ("I-1", "bu-1")
    [decided] = await store.ledger.find(Flow.PROGRES_DECISION, interoperability_referral_id="iop-1")
    assert decided.key == "svc-1"
    assert await store.ledger.find(lp_intervention_id="lp-2") == []


async def test_a_job_added_as_a_dead_letter_waits_for_a_replay(store: Store) -> None:
    from primero_progres.errors import FailureClass
    from primero_progres.store import DeadReason

    reason = DeadReason(FailureClass.PERMANENT, "ingestion_failed", "transaction t-1 failed")
    dead = Enqueue("toy.step", {"n": 1}, key="k-dead", refs={"case_id": "c-1"}, dead_reason=reason)
    await store.apply([dead])
    [job] = await store.jobs.list(kind="toy.step")
    assert (job.state, job.dead_reason, job.attempts) == ("dead", reason, 0)
    [entry] = await store.audit.list(event=AuditEvent.JOB_DEAD)
    assert entry.ids == {
        "case_id": "c-1",
        "job_id": job.id,
        "kind": "toy.step",
        "attempts": 0,
        "failure_class": "permanent",
        "reason": "ingestion_failed",
    }
    # the key is taken: the same dead letter again is a no-op
    await store.apply([dead])
    assert len(await store.jobs.list(kind="toy.step")) == 1
    assert len(await store.audit.list(event=AuditEvent.JOB_DEAD)) == 1
    assert await store.jobs.replay(job.id)
    claimed = await store.jobs.claim("w/0", kinds=["toy.step"], lease_seconds=30)
    assert claimed is not None and claimed.payload == {"n": 1} and claimed.attempts == 1


async def test_a_job_is_outstanding_while_unfinished_or_dead(store: Store) -> None:
    from primero_progres.worker import RetryPolicy, Worker

    kind = "toy.pull"

    async def fail(_ctx: object) -> None:
        raise ValueError("boom")  # not a bridge error: transient, then dead when exhausted

    await store.jobs.enqueue(kind, key=f"{kind}:item-1:round-1")
    assert await store.jobs.outstanding(kind, f"{kind}:item-1:")
    assert not await store.jobs.outstanding(kind, f"{kind}:item-2:")
    assert not await store.jobs.outstanding("other.kind", f"{kind}:item-1:")
    assert not await store.jobs.outstanding(kind, f"{kind}:ITEM-1:")  # exact, whatever LIKE does
    assert not await store.jobs.outstanding(kind, f"{kind}:item_")  # no wildcard

    async def done(_ctx: object) -> None:
        return None

    await Worker(store, {kind: done}).run_until_idle()
    assert not await store.jobs.outstanding(kind, f"{kind}:item-1:")

    await store.jobs.enqueue(kind, key=f"{kind}:item-1:round-2")
    await Worker(store, {kind: fail}, retry=RetryPolicy(max_attempts=1)).run_until_idle()
    [dead] = await store.jobs.list(kind=kind, state="dead")
    assert await store.jobs.outstanding(kind, f"{kind}:item-1:")
    assert dead.key == f"{kind}:item-1:round-2"


async def test_a_coalesced_job_is_queued_once_while_one_is_pending(store: Store) -> None:
    """Primero's webhooks: however many hints, one pending check per case; a new one once
    it is claimed (it may have read the case before the latest change)."""
    import asyncio

    kind, prefix = "toy.check", "toy.check:case-1:"
    results = await asyncio.gather(
        *(store.jobs.enqueue_coalesced(kind, prefix, {"n": n}) for n in range(20))
    )
    assert sum(r.created for r in results) == 1
    assert {r.id for r in results} == {results[0].id}
    assert (await store.jobs.enqueue_coalesced(kind, "toy.check:case-10:")).created
    assert (await store.jobs.enqueue_coalesced(kind, "toy.check:CASE-1:")).created

    claimed = await store.jobs.claim("w/0", kinds=[kind], lease_seconds=30)
    assert claimed is not None and claimed.id == results[0].id
    again = await store.jobs.enqueue_coalesced(kind, prefix)
    assert again.created and again.id != claimed.id
    assert not (await store.jobs.enqueue_coalesced(kind, prefix)).created
    assert await store.jobs.commit_step(claimed, "w/0", [])
    assert not (await store.jobs.enqueue_coalesced(kind, prefix)).created  # #1 still waits
    keys = sorted(j.key or "" for j in await store.jobs.list(kind=kind, limit=100))
    assert [k for k in keys if k.startswith(prefix)] == [f"{prefix}0", f"{prefix}1"]


async def test_a_dead_job_commits_its_flows_follow_ups_with_it(store: Store) -> None:
    from primero_progres.worker import RetryPolicy, Worker

    async def fail(_ctx: object) -> None:
        raise ValueError("boom")

    def follow_up(job: Job) -> list[Enqueue]:
        return [Enqueue("toy.mark", {"of": job.id}, f"toy.mark:{job.id}:failed")]

    def broken(_job: Job) -> list[Enqueue]:
        raise RuntimeError("follow-up bug")

    first = await store.jobs.enqueue("toy.send", key="toy.send:1")
    worker = Worker(
        store,
        {"toy.send": fail},
        retry=RetryPolicy(max_attempts=1),
        on_dead={"toy.send": follow_up},
    )
    await worker.run_until_idle()
    [mark] = await store.jobs.list(kind="toy.mark")
    assert (mark.key, mark.state) == (f"toy.mark:{first.id}:failed", "pending")
    assert mark.parent_id == first.id

    await store.jobs.enqueue("toy.send", key="toy.send:2")
    worker.on_dead = {"toy.send": broken}
    await worker.run_until_idle()
    assert len(await store.jobs.list(kind="toy.send", state="dead")) == 2
    assert len(await store.jobs.list(kind="toy.mark")) == 1


async def test_a_commit_claims_the_job_its_step_queued_before_older_due_jobs(
    store: Store,
) -> None:
    """Under a backlog, a step's commit continues its own chain (issue 9): the job it queued,
    due now and of the worker's kinds, is claimed before the jobs that waited longer."""
    kinds = ["toy.receive", "toy.deliver"]
    backlog = [(await store.jobs.enqueue("toy.receive", {"n": n})).id for n in range(3)]
    first = await store.jobs.claim("w/0", kinds=kinds, lease_seconds=30)
    assert first is not None and first.id == backlog[0]

    deliver = Enqueue("toy.deliver", {"n": 0}, key="toy.deliver:0")
    committed, claimed = await store.jobs.commit_step_and_claim(
        first, "w/0", [deliver], kinds=kinds, lease_seconds=30
    )
    assert committed and isinstance(claimed, Job)
    assert (claimed.kind, claimed.parent_id, claimed.payload) == ("toy.deliver", first.id, {"n": 0})
    assert (claimed.state, claimed.lease_owner, claimed.attempts) == ("running", "w/0", 1)

    # not followed: a job queued with a delay, of a kind the worker does not run, one whose
    # key was already taken, a dead letter; then the due job first in line is claimed
    from primero_progres.errors import FailureClass
    from primero_progres.store import DeadReason

    reason = DeadReason(FailureClass.PERMANENT, "refused", "refused")
    not_followed = [
        Enqueue("toy.deliver", {"n": 1}, key="toy.deliver:1", delay=60),
        Enqueue("toy.other", {"n": 2}),
        deliver,
        Enqueue("toy.deliver", {"n": 3}, key="toy.deliver:3", dead_reason=reason),
    ]
    committed, claimed = await store.jobs.commit_step_and_claim(
        claimed, "w/0", not_followed, kinds=kinds, lease_seconds=30
    )
    assert committed and isinstance(claimed, Job) and claimed.id == backlog[1]

    # without ``follow_up``, the due job first in line
    committed, claimed = await store.jobs.commit_step_and_claim(
        claimed,
        "w/0",
        [Enqueue("toy.deliver", {"n": 4})],
        kinds=kinds,
        lease_seconds=30,
        follow_up=False,
    )
    assert committed and isinstance(claimed, Job) and claimed.id == backlog[2]


async def test_a_lease_is_taken_when_free_renewed_by_its_owner_and_taken_over_once_expired(
    store: Store,
) -> None:
    assert await store.leases.acquire("individual:X", "w/0", ttl=30)
    assert await store.leases.acquire("individual:X", "w/0", ttl=30), "its owner renews it"
    assert not await store.leases.acquire("individual:X", "w/1", ttl=30)
    assert await store.leases.holder("individual:X") == "w/0"
    assert await store.leases.acquire("individual:X", "w/0", ttl=-1), "renewed, as expired"
    assert await store.leases.acquire("individual:X", "w/1", ttl=30), "expired: taken over"
    assert await store.leases.holder("individual:X") == "w/1"
    assert not await store.leases.acquire("individual:X", "w/0", ttl=30)


async def test_a_ledger_record_of_a_known_exchange_updates_its_row_and_keeps_the_rest(
    store: Store,
) -> None:
    await store.apply([delivered("I-7", "rec-7", None, LedgerState.DELIVERED)])
    [first] = await store.ledger.find(progres_interventionnumber=None, case_record_id="rec-7")
    await store.apply([delivered("I-7", None, "svc-7", LedgerState.FEEDBACK_SENT)])
    [again] = await store.ledger.find(case_record_id="rec-7")
    assert (again.id, again.created_at, again.key) == (first.id, first.created_at, "I-7")
    assert (again.state, again.service_unique_id) == ("feedback_sent", "svc-7")
    assert len(await store.ledger.events(first.id)) == 2


async def test_the_overview_receives_a_parked_copy_of_an_item_once(store: Store) -> None:
    """A refused intervention parked by its own step for a replay (and parked again by that
    replay) is one intervention received, not two or three."""
    deliver = "progres-referral.deliver"
    reason = DeadReason(FailureClass.PERMANENT, "primero_refused", "refused")
    await store.jobs.enqueue(deliver, {"n": 1}, key=f"{deliver}:N-1:fp")
    for attempt in range(2):
        claimed = await store.jobs.claim("w/0", kinds=[deliver], lease_seconds=30)
        assert claimed is not None
        parked = Enqueue(
            deliver, {"n": 1}, f"{deliver}:N-1:fp:refused:{claimed.id}", {}, 0.0, None, reason
        )
        assert await store.jobs.commit_step(claimed, "w/0", [parked])
        if attempt == 0:
            [dead] = await store.jobs.list(state="dead", kind=deliver)
            assert await store.jobs.replay(dead.id)

    figures = {f.flow: f for f in await store.reports.overview()}
    week = figures["progres-referral"].week
    assert (week.received, week.dead) == (1, 1)
