"""The worker: exactly-once processing, backoff, dead letters, replay, leases, shutdown."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from toy_handlers import FakeClock, record_once

from primero_progres.errors import InvalidInputError, PermanentError, TransientError
from primero_progres.store import Cipher, StepContext, Store
from primero_progres.worker import RetryPolicy, Worker


# a thousand claims and commits: 12-18 s alone, 111 s with the suite in parallel at load 12;
# nothing here waits on time, the limit only stops a hang
@pytest.mark.timeout(360)
async def test_four_workers_process_a_thousand_jobs_exactly_once(db_url: str) -> None:
    cipher = Cipher.throwaway()
    stores = [await Store.open(db_url, encryption=cipher) for _ in range(4)]
    await stores[0].upgrade()
    expected = set()
    for n in range(1000):
        result = await stores[0].jobs.enqueue("toy.step", {"n": n})
        expected.add(result.id)
    seen: list[str] = []

    async def handler(ctx: StepContext) -> None:
        seen.append(ctx.job.id)
        await asyncio.sleep(0)
        await record_once(ctx)

    workers = [
        Worker(store, {"toy.step": handler}, worker_id=f"w{i}", lease_seconds=60)
        for i, store in enumerate(stores)
    ]
    counts = await asyncio.gather(*(w.run_until_idle() for w in workers))
    assert sum(counts) == 1000
    assert len(seen) == 1000
    assert set(seen) == expected
    exchanges = await stores[0].ledger.list(flow="progres-referral", limit=2000)
    assert {e.key for e in exchanges} == expected
    assert await stores[0].jobs.counts() == {("toy.step", "done"): 1000}
    for store in stores:
        await store.close()


async def test_transient_failures_back_off_exponentially_up_to_the_cap_then_dead(
    timed_store: Store, clock: FakeClock
) -> None:
    async def flaky(ctx: StepContext) -> None:
        raise TransientError("primero create_case: http 503", reason="http_503")

    retry = RetryPolicy(base_seconds=10, cap_seconds=25, max_attempts=4, random=lambda: 1.0)
    worker = Worker(timed_store, {"toy.step": flaky}, retry=retry)
    job_id = (await timed_store.jobs.enqueue("toy.step", {"n": 1})).id
    start = clock.now
    # attempt 1 at t=0 -> retry at +10; attempt 2 -> +20; attempt 3 -> +25 (cap); 4 -> dead
    for attempt, wait in ((1, 10), (2, 20), (3, 25)):
        assert await worker.run_until_idle() == 1
        job = await timed_store.jobs.get(job_id)
        assert job is not None
        assert (job.state, job.attempts) == ("pending", attempt)
        assert job.next_attempt_at == clock.now + timedelta(seconds=wait)
        clock.advance(wait - 0.001)
        assert await worker.run_until_idle() == 0, "claimed before its time"
        clock.advance(0.001)
    assert clock.now == start + timedelta(seconds=55)
    assert await worker.run_until_idle() == 1
    job = await timed_store.jobs.get(job_id)
    assert job is not None and job.state == "dead"
    assert job.dead_reason is not None
    assert job.dead_reason.failure_class == "transient"
    assert job.dead_reason.reason == "http_503"
    assert job.dead_reason.message.startswith("retries exhausted after 4 attempts")


async def test_full_jitter_and_retry_after(timed_store: Store, clock: FakeClock) -> None:
    async def limited(ctx: StepContext) -> None:
        error = TransientError("dtp send: http 429", reason="http_429")
        error.retry_after = 100.0  # type: ignore[attr-defined]
        raise error

    async def jittery(ctx: StepContext) -> None:
        raise TransientError("dtp send: timeout", reason="timeout")

    retry = RetryPolicy(base_seconds=10, cap_seconds=1000, max_attempts=5, random=lambda: 0.25)
    worker = Worker(timed_store, {"toy.limited": limited, "toy.jittery": jittery}, retry=retry)
    limited_id = (await timed_store.jobs.enqueue("toy.limited", {})).id
    jittery_id = (await timed_store.jobs.enqueue("toy.jittery", {})).id
    await worker.run_until_idle()
    limited_job = await timed_store.jobs.get(limited_id)
    jittery_job = await timed_store.jobs.get(jittery_id)
    assert limited_job is not None and jittery_job is not None
    assert limited_job.next_attempt_at == clock.now + timedelta(seconds=100)
    assert jittery_job.next_attempt_at == clock.now + timedelta(seconds=2.5)


def test_backoff_formula() -> None:
    policy = RetryPolicy(base_seconds=2, cap_seconds=60, max_attempts=10, random=lambda: 0.5)
    assert [policy.delay(n) for n in (1, 2, 3, 4, 5, 6, 7)] == [1, 2, 4, 8, 16, 30, 30]
    assert policy.delay(1, retry_after=7) == 7
    assert policy.delay(6, retry_after=7) == 30


def test_a_peers_retry_after_never_parks_a_job_past_the_cap() -> None:
    policy = RetryPolicy(base_seconds=2, cap_seconds=60, max_attempts=10, random=lambda: 0.5)
    one_year = 365 * 24 * 3600.0
    assert policy.delay(1, retry_after=one_year) == 60
    assert policy.delay(1, retry_after=60.5) == 60
    assert policy.delay(1, retry_after=59) == 59


async def test_a_one_year_retry_after_is_retried_within_the_cap(
    timed_store: Store, clock: FakeClock
) -> None:
    async def throttled(ctx: StepContext) -> None:
        error = TransientError("dtp send: http 429", reason="http_429")
        error.retry_after = 365 * 24 * 3600.0  # type: ignore[attr-defined]
        raise error

    retry = RetryPolicy(base_seconds=10, cap_seconds=600, max_attempts=5, random=lambda: 0.0)
    worker = Worker(timed_store, {"toy.step": throttled}, retry=retry)
    job_id = (await timed_store.jobs.enqueue("toy.step", {})).id
    await worker.run_until_idle()
    job = await timed_store.jobs.get(job_id)
    assert job is not None and job.state == "pending"
    assert job.next_attempt_at == clock.now + timedelta(seconds=600)


async def test_permanent_failure_is_dead_at_once_then_replay_completes(store: Store) -> None:
    calls: list[int] = []

    async def refuses_first(ctx: StepContext) -> None:
        calls.append(ctx.job.attempts)
        assert ctx.job.payload == {"intervention": "811-23-PRTITV-1000095"}
        if len(calls) == 1:
            raise PermanentError("primero create_case: http 422", reason="http_422")
        await record_once(ctx)

    worker = Worker(store, {"toy.step": refuses_first})
    job_id = (
        await store.jobs.enqueue(
            "toy.step",
            {"intervention": "811-23-PRTITV-1000095"},
            refs={"progres_interventionnumber": "811-23-PRTITV-1000095"},
        )
    ).id
    await worker.run_until_idle()
    job = await store.jobs.get(job_id)
    assert job is not None
    assert job.state == "dead" and job.attempts == 1
    assert job.dead_reason is not None
    assert job.dead_reason.as_json() == {
        "failure_class": "permanent",
        "reason": "http_422",
        "message": "primero create_case: http 422",
    }
    assert job.has_payload, "dead letters keep their payload for replay"
    audit = await store.audit.list(event="job.dead")
    assert audit[0].ids["job_id"] == job_id
    assert audit[0].ids["progres_interventionnumber"] == "811-23-PRTITV-1000095"
    assert await worker.run_until_idle() == 0

    assert await store.jobs.replay(job_id) is True
    assert await store.jobs.replay(job_id) is False, "only dead jobs can be replayed"
    replayed = await store.jobs.get(job_id)
    assert replayed is not None and (replayed.state, replayed.attempts) == ("pending", 0)
    assert await worker.run_until_idle() == 1
    done = await store.jobs.get(job_id)
    assert done is not None and done.state == "done" and not done.has_payload
    assert calls == [1, 1]


@pytest.mark.parametrize("error", [InvalidInputError("bad"), PermanentError("no")])
async def test_non_transient_bridge_errors_dead_letter_with_their_class(
    store: Store, error: Exception
) -> None:
    async def fails(ctx: StepContext) -> None:
        raise error

    worker = Worker(store, {"toy.step": fails})
    job_id = (await store.jobs.enqueue("toy.step", {})).id
    await worker.run_until_idle()
    job = await store.jobs.get(job_id)
    assert job is not None and job.state == "dead" and job.dead_reason is not None
    assert job.dead_reason.failure_class == getattr(error, "failure_class").value  # noqa: B009


async def test_unexpected_exception_is_transient_and_its_text_is_never_stored(
    store: Store,
) -> None:
    async def crashes(ctx: StepContext) -> None:
        ctx.enqueue("toy.child", {"x": 1})
        ctx.ledger_record("progres-referral", "I-1", state="delivered")
        raise KeyError("Given MARKERNAME")

    worker = Worker(store, {"toy.step": crashes}, retry=RetryPolicy(0.001, 0.001, 1))
    job_id = (await store.jobs.enqueue("toy.step", {})).id
    await worker.run_until_idle()
    job = await store.jobs.get(job_id)
    assert job is not None and job.dead_reason is not None
    assert job.dead_reason.reason == "unexpected"
    assert "MARKERNAME" not in job.dead_reason.message
    assert "KeyError" in job.dead_reason.message
    assert await store.jobs.list(kind="toy.child") == [], "buffered writes are discarded"
    assert await store.ledger.get("progres-referral", "I-1") is None


async def test_success_commits_children_ledger_audit_and_cursor_together(store: Store) -> None:
    async def poll(ctx: StepContext) -> None:
        ctx.enqueue(
            "primero-decision.deliver",
            {"status": "accepted"},
            key="svc-1:accepted",
            refs={"service_unique_id": "svc-1"},
        )
        ctx.enqueue("primero-decision.deliver", {"status": "accepted"}, key="svc-1:accepted")
        ctx.ledger_record(
            "primero-decision",
            "svc-1:accepted",
            state="found",
            event="decision_found",
            direction="inbound",
            detail={"status": "accepted"},
            case_id="case-9",
            service_unique_id="svc-1",
        )
        ctx.audit("poll.done", flow="primero-decision", count=1)
        ctx.set_cursor("primero-decision", "2026-01-01T00:00:00Z")

    worker = Worker(store, {"primero-decision.poll": poll})
    await store.jobs.enqueue("primero-decision.poll", {})
    await worker.run_until_idle()
    children = await store.jobs.list(kind="primero-decision.deliver")
    assert [(c.key, c.state, c.refs) for c in children] == [
        ("svc-1:accepted", "pending", {"service_unique_id": "svc-1"})
    ]
    exchange = await store.ledger.get("primero-decision", "svc-1:accepted")
    assert exchange is not None
    assert (exchange.state, exchange.case_id, exchange.service_unique_id) == (
        "found",
        "case-9",
        "svc-1",
    )
    assert [e.id for e in await store.ledger.find(case_id="case-9")] == [exchange.id]
    events = await store.ledger.events(exchange.id)
    assert [(e.event, e.direction, e.detail) for e in events] == [
        ("decision_found", "inbound", {"status": "accepted"})
    ]
    assert await store.cursors.get("primero-decision") == "2026-01-01T00:00:00Z"
    assert (await store.audit.list(event="poll.done"))[0].ids == {"count": 1}


async def test_personal_fields_are_redacted_from_refs_audit_and_ledger(store: Store) -> None:
    released: list[str] = []

    async def careless(ctx: StepContext) -> None:
        assert ctx.worker_id == "w/0"
        ctx.audit("x", given_name="Anna", case_id="c-1")
        ctx.enqueue("toy.child", {}, refs={"family_name": "E", "index": 2})
        ctx.ledger_record(
            "progres-referral",
            "k",
            state="delivered",
            date_of_birth="2020-01-01",
            case_id="c-1",
            dtp_request_id="r-9",
        )

        async def release() -> None:
            released.append(ctx.job.id)

        ctx.after_commit(release)

    job_id = (await store.jobs.enqueue("toy.step", {})).id
    await Worker(store, {"toy.step": careless}, worker_id="w").run_until_idle()
    assert released == [job_id]
    assert (await store.audit.list(event="x"))[0].ids == {
        "given_name": "[redacted]",
        "case_id": "c-1",
    }
    assert (await store.jobs.list(kind="toy.child"))[0].refs == {
        "family_name": "[redacted]",
        "index": 2,
    }
    exchange = await store.ledger.get("progres-referral", "k")
    assert exchange is not None and exchange.case_id == "c-1"
    events = await store.ledger.events(exchange.id)
    assert events[0].detail == {"date_of_birth": "[redacted]", "dtp_request_id": "r-9"}


async def test_after_commit_callbacks_do_not_run_when_the_step_fails(store: Store) -> None:
    called: list[int] = []

    async def fails(ctx: StepContext) -> None:
        async def callback() -> None:
            called.append(1)

        ctx.after_commit(callback)
        raise PermanentError("nope")

    await store.jobs.enqueue("toy.step", {})
    await Worker(store, {"toy.step": fails}).run_until_idle()
    assert called == []


async def test_a_worker_that_lost_its_lease_cannot_commit(
    timed_store: Store, clock: FakeClock
) -> None:
    """Worker A stalls past its lease; B reclaims and finishes; A's outcome is discarded."""
    finished_by: list[str] = []

    async def by_b(ctx: StepContext) -> None:
        finished_by.append("b")
        ctx.ledger_record("progres-referral", "I-7", state="delivered", event="by_b")

    b = Worker(timed_store, {"toy.step": by_b}, worker_id="b", lease_seconds=30)

    async def stalls(ctx: StepContext) -> None:
        clock.advance(31)
        assert await b.run_once() is True
        finished_by.append("a")
        ctx.ledger_record("progres-referral", "I-7", state="delivered", event="by_a")

    a = Worker(timed_store, {"toy.step": stalls}, worker_id="a", lease_seconds=30)
    job_id = (await timed_store.jobs.enqueue("toy.step", {})).id
    assert await a.run_once() is True
    assert finished_by == ["b", "a"]
    job = await timed_store.jobs.get(job_id)
    assert job is not None and (job.state, job.attempts) == ("done", 2)
    exchange = await timed_store.ledger.get("progres-referral", "I-7")
    assert exchange is not None
    assert [e.event for e in await timed_store.ledger.events(exchange.id)] == ["by_b"]


async def test_graceful_stop_finishes_the_current_job(store: Store) -> None:
    started, release = asyncio.Event(), asyncio.Event()

    async def slow(ctx: StepContext) -> None:
        started.set()
        await release.wait()
        await record_once(ctx)

    worker = Worker(store, {"toy.step": slow}, poll_interval=0.05, shutdown_grace=30)
    job_id = (await store.jobs.enqueue("toy.step", {})).id
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop))
    await started.wait()
    stop.set()
    release.set()
    await running
    job = await store.jobs.get(job_id)
    assert job is not None and job.state == "done"


async def test_stop_past_the_grace_period_releases_the_job(store: Store) -> None:
    started = asyncio.Event()

    async def stuck(ctx: StepContext) -> None:
        started.set()
        await asyncio.Event().wait()

    worker = Worker(store, {"toy.step": stuck}, poll_interval=0.05, shutdown_grace=0.05)
    job_id = (await store.jobs.enqueue("toy.step", {"n": 1})).id
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop))
    await started.wait()
    stop.set()
    await running
    job = await store.jobs.get(job_id, decrypt=True)
    assert job is not None
    assert (job.state, job.attempts, job.lease_owner) == ("pending", 0, None)
    assert job.payload == {"n": 1}


async def test_only_kinds_with_a_handler_are_claimed(store: Store) -> None:
    await store.jobs.enqueue("other.step", {})
    assert await Worker(store, {"toy.step": record_once}).run_until_idle() == 0
    assert await Worker(store, {}).run_until_idle() == 0
    assert await store.jobs.counts() == {("other.step", "pending"): 1}


async def test_unreadable_payload_is_dead_lettered(db_url: str) -> None:
    writer = await Store.open(db_url, encryption=Cipher.throwaway())
    await writer.upgrade()
    job_id = (await writer.jobs.enqueue("toy.step", {"n": 1})).id
    await writer.close()
    reader = await Store.open(db_url, encryption=Cipher.throwaway())
    await Worker(reader, {"toy.step": record_once}).run_until_idle()
    job = await reader.jobs.get(job_id)
    assert job is not None and job.state == "dead" and job.dead_reason is not None
    assert job.dead_reason.reason == "payload_unreadable"
    await reader.close()


def test_a_worker_from_settings_takes_them_unless_overridden() -> None:
    from primero_progres.settings import Settings

    settings = Settings.for_tests(
        worker_concurrency=3, lease_seconds=42.0, worker_poll_seconds=0.5, retry_max_attempts=2
    )
    worker = Worker.from_settings(None, {}, settings, concurrency=1)  # type: ignore[arg-type]
    assert (worker.concurrency, worker.lease_seconds, worker.poll_interval) == (1, 42.0, 0.5)
    assert worker.retry.max_attempts == 2


async def test_a_lease_a_step_holds_is_released_after_its_outcome_is_committed(
    store: Store,
) -> None:
    seen_during: list[str | None] = []

    async def holds(ctx: StepContext) -> None:
        await ctx.hold("individual:803-1")
        seen_during.append(await store.leases.holder("individual:803-1"))

        async def after() -> None:
            seen_during.append(await store.leases.holder("individual:803-1"))

        ctx.after_commit(after)

    await store.jobs.enqueue("toy.step", {})
    await Worker(store, {"toy.step": holds}, worker_id="w").run_until_idle()
    assert seen_during == ["w/0", "w/0"], "held until the commit and its callbacks"
    assert await store.leases.holder("individual:803-1") is None


@pytest.mark.parametrize("error", [PermanentError("no"), TransientError("later")])
async def test_a_lease_a_failed_step_held_is_released(store: Store, error: Exception) -> None:
    async def fails(ctx: StepContext) -> None:
        await ctx.hold("individual:803-1")
        raise error

    await store.jobs.enqueue("toy.step", {})
    await Worker(store, {"toy.step": fails}, retry=RetryPolicy(60, 60, 5)).run_until_idle()
    assert await store.leases.holder("individual:803-1") is None


async def test_a_step_whose_lease_is_held_elsewhere_is_retried(
    timed_store: Store, clock: FakeClock
) -> None:
    async def holds(ctx: StepContext) -> None:
        await ctx.hold("individual:803-1")
        await record_once(ctx)

    assert await timed_store.leases.acquire("individual:803-1", "other/0", ttl=30)
    retry = RetryPolicy(base_seconds=10, cap_seconds=10, max_attempts=5, random=lambda: 1.0)
    worker = Worker(timed_store, {"toy.step": holds}, retry=retry)
    job_id = (await timed_store.jobs.enqueue("toy.step", {})).id
    await worker.run_until_idle()
    job = await timed_store.jobs.get(job_id)
    assert job is not None and (job.state, job.attempts) == ("pending", 1)
    assert await timed_store.leases.holder("individual:803-1") == "other/0"
    clock.advance(31)
    assert await worker.run_until_idle() == 1
    done = await timed_store.jobs.get(job_id)
    assert done is not None and done.state == "done"


async def _run_until_done(worker: Worker, store: Store) -> None:
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop))
    while any(state in ("pending", "running") for _kind, state in await store.jobs.counts()):
        await asyncio.sleep(0.01)
    stop.set()
    await running


async def test_under_a_backlog_a_referrals_chain_runs_before_the_next_message(
    store: Store,
) -> None:
    """Issue 9: with first-due-first claims every ``receive`` of an inbox backlog ran before
    any delivery, so no feedback left until the backlog was drained. A step's commit now
    claims the job it queued: the first referral's feedback goes before the next receive."""
    ran: list[str] = []

    async def receive(ctx: StepContext) -> None:
        ran.append(f"receive {ctx.job.payload}")
        ctx.enqueue("toy.deliver", ctx.job.payload)

    async def deliver(ctx: StepContext) -> None:
        ran.append(f"deliver {ctx.job.payload}")
        ctx.enqueue("toy.feedback", ctx.job.payload)

    async def feedback(ctx: StepContext) -> None:
        ran.append(f"feedback {ctx.job.payload}")

    for n in range(5):
        await store.jobs.enqueue("toy.receive", {"n": n})
    handlers = {"toy.receive": receive, "toy.deliver": deliver, "toy.feedback": feedback}
    await _run_until_done(Worker(store, handlers, poll_interval=0.01), store)
    assert ran.index("feedback {'n': 0}") < ran.index("receive {'n': 1}")
    steps = ("receive", "deliver", "feedback")
    assert ran == [f"{step} {{'n': {n}}}" for n in range(5) for step in steps]


async def test_a_chain_that_never_ends_does_not_starve_the_jobs_waiting(store: Store) -> None:
    """A worker takes at most ``MAX_FOLLOW_UPS`` follow-ups in a row, then the due job first
    in line."""
    from primero_progres.worker import MAX_FOLLOW_UPS

    ran: list[str] = []

    async def again(ctx: StepContext) -> None:
        n = (ctx.job.payload or {})["n"]
        ran.append(f"again {n}")
        if n < 3 * MAX_FOLLOW_UPS:
            ctx.enqueue("toy.again", {"n": n + 1})

    async def other(ctx: StepContext) -> None:
        ran.append("other")

    await store.jobs.enqueue("toy.again", {"n": 0})
    await store.jobs.enqueue("toy.other", {})
    worker = Worker(store, {"toy.again": again, "toy.other": other}, poll_interval=0.01)
    await _run_until_done(worker, store)
    assert ran.index("other") <= MAX_FOLLOW_UPS + 1
    assert len(ran) == 3 * MAX_FOLLOW_UPS + 2
