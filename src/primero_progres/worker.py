"""The worker: claim a job, run its step, commit the outcome in one transaction.

A handler does its network calls outside any database transaction and buffers
its writes on its ``StepContext``; the worker hands them to
``store.jobs.commit_step`` with "job done". If the handler fails, the buffered
writes are discarded and the job is retried (transient) or dead-lettered
(anything else, or retries exhausted). A job whose worker died is claimed
again when its lease expires. Leases a step holds are released once its
outcome is committed or discarded.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import BridgeError, FailureClass
from .logging import get_logger
from .runtime.metrics import JOBS
from .store import Command, DeadReason, Handler, Job, LeaseBusy, StepBuffer, UnreadableJob

if TYPE_CHECKING:
    from .settings import Settings
    from .store import Store

log = get_logger(__name__)

#: follow-ups a worker slot takes in a row (a step's commit claims the job it queued) before
#: it takes the due job first in line: a chain of jobs that never ended would starve the rest
MAX_FOLLOW_UPS = 8

#: what a flow writes when one of its jobs dies (committed with the dead letter)
DeadFollowUp = Callable[[Job], Sequence[Command]]


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter: ``uniform(0, min(cap, base * 2**(n-1)))``."""

    base_seconds: float = 30.0
    cap_seconds: float = 3600.0
    max_attempts: int = 8
    random: Callable[[], float] = field(default=random.random, compare=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        return cls(
            settings.retry_base_seconds, settings.retry_cap_seconds, settings.retry_max_attempts
        )

    def delay(self, attempts: int, retry_after: float | None = None) -> float:
        """The wait before the next attempt; a peer's ``Retry-After`` lengthens it, but never
        past the cap (a one-year value would otherwise park the job where nobody sees it)."""
        ceiling = min(self.cap_seconds, self.base_seconds * 2 ** max(attempts - 1, 0))
        delay = ceiling * self.random()
        if retry_after is not None and retry_after > delay:
            delay = min(retry_after, self.cap_seconds)
        return delay


class Worker:
    """Runs ``concurrency`` claim loops over the kinds it has handlers for."""

    def __init__(
        self,
        store: Store,
        handlers: Mapping[str, Handler],
        *,
        worker_id: str | None = None,
        concurrency: int = 1,
        retry: RetryPolicy | None = None,
        lease_seconds: float = 120.0,
        poll_interval: float = 1.0,
        shutdown_grace: float = 30.0,
        on_dead: Mapping[str, DeadFollowUp] | None = None,
    ) -> None:
        self.store = store
        self.handlers = dict(handlers)
        # the flows' ``Handlers`` carry their follow-ups; a plain mapping of handlers has none
        self.on_dead = dict(on_dead if on_dead is not None else getattr(handlers, "on_dead", {}))
        self.worker_id = worker_id or f"{socket.gethostname()}:{uuid.uuid4().hex[:8]}"
        self.concurrency = concurrency
        self.retry = retry or RetryPolicy()
        self.lease_seconds = lease_seconds
        self.poll_interval = poll_interval
        self.shutdown_grace = shutdown_grace

    @classmethod
    def from_settings(
        cls, store: Store, handlers: Mapping[str, Handler], settings: Settings, **options: Any
    ) -> Worker:
        """A worker configured from settings; ``options`` override single arguments."""
        configured: dict[str, Any] = {
            "concurrency": settings.worker_concurrency,
            "retry": RetryPolicy.from_settings(settings),
            "lease_seconds": settings.lease_seconds,
            "poll_interval": settings.worker_poll_seconds,
        }
        return cls(store, handlers, **{**configured, **options})

    async def run_once(self, slot: int = 0) -> bool:
        """Claim and process one due job; False when none is due."""
        return await self._run(slot, chain=_never)

    async def _run(self, slot: int, *, chain: Callable[[], bool]) -> bool:
        """Claim and process a due job; while ``chain()`` holds, each commit claims the next
        one in its transaction. False when none was due."""
        if not self.handlers:
            return False
        owner = f"{self.worker_id}/{slot}"
        try:
            job = await self.store.jobs.claim(
                owner, kinds=self.handlers, lease_seconds=self.lease_seconds
            )
        except UnreadableJob as exc:
            await self._dead(exc.job, owner, _reason(exc, exc.failure_class))
            return True
        if job is None:
            return False
        next_job: Job | None = job
        followed = 0
        while next_job is not None:
            done = next_job
            next_job = await self._process(
                done, owner, claim_next=chain(), follow_up=followed < MAX_FOLLOW_UPS
            )
            # a job the step just queued is its follow-up (``commit_step_and_claim``)
            followed = followed + 1 if next_job and next_job.parent_id == done.id else 0
        return True

    async def run_until_idle(self) -> int:
        """Process due jobs until none is left (including ones the steps enqueued)."""
        total = 0
        while True:
            counts = await asyncio.gather(*(self._drain(s) for s in range(self.concurrency)))
            total += sum(counts)
            if sum(counts) == 0:
                return total

    async def _drain(self, slot: int) -> int:
        count = 0
        while await self.run_once(slot):
            count += 1
        return count

    async def run(self, stop: asyncio.Event) -> None:
        """Work until ``stop`` is set, then let current jobs finish (or release them)."""
        log.info("worker.started", worker=self.worker_id, count=self.concurrency)
        tasks = [asyncio.create_task(self._loop(s, stop)) for s in range(self.concurrency)]
        try:
            await stop.wait()
        finally:
            _done, pending = await asyncio.wait(tasks, timeout=self.shutdown_grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            log.info("worker.stopped", worker=self.worker_id)

    async def _loop(self, slot: int, stop: asyncio.Event) -> None:
        def running() -> bool:
            return not stop.is_set()

        while not stop.is_set():
            try:
                worked = await self._run(slot, chain=running)
            except Exception as exc:
                log.warning("worker.claim_failed", worker=self.worker_id, error=type(exc).__name__)
                worked = False
            if not worked and not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=self.poll_interval)

    async def _process(
        self, job: Job, owner: str, *, claim_next: bool = False, follow_up: bool = True
    ) -> Job | None:
        """Run the step, then commit or fail it; the leases it held are released with its
        commit, or after its failure. With ``claim_next``, the next job claimed in the commit
        (with ``follow_up``, the one the step queued first, if due)."""
        held: list[str] = []

        async def hold(lease: str) -> None:
            if lease in held:
                return
            if not await self.store.leases.acquire(lease, owner, ttl=self.lease_seconds):
                kind = lease.partition(":")[0]
                raise LeaseBusy(f"another worker holds the {kind} lease", reason="busy")
            held.append(lease)

        ctx = StepBuffer(job, worker_id=owner, hold=hold)
        heartbeat = asyncio.create_task(self._heartbeat(job, owner))
        failure: BaseException | None = None
        try:
            await self.handlers[job.kind](ctx)
        except asyncio.CancelledError:
            heartbeat.cancel()
            await self._release(job, owner)
            await self._give_back(held, owner)
            raise
        except Exception as exc:
            failure = exc
        finally:
            heartbeat.cancel()
        if failure is None:
            # the leases are held through the after-commit callbacks, if any; else they are
            # given back in the commit itself
            in_commit = [] if ctx.callbacks else held
            committed, claimed = await self._succeed(
                job, owner, ctx, in_commit, claim_next, follow_up
            )
            if not committed or ctx.callbacks:
                await self._give_back(held, owner)
            if isinstance(claimed, UnreadableJob):
                await self._dead(claimed.job, owner, _reason(claimed, claimed.failure_class))
                return None
            return claimed
        await self._fail(job, owner, failure)
        await self._give_back(held, owner)
        return None

    async def _give_back(self, held: list[str], owner: str) -> None:
        """Release the leases of a step not given back in its commit (a crash lets them
        expire)."""
        for lease in held:
            try:
                await self.store.leases.release(lease, owner)
            except Exception as exc:
                log.warning("lease.release_failed", worker=owner, error=type(exc).__name__)

    async def _heartbeat(self, job: Job, owner: str) -> None:
        """Keep the lease while a long step runs, so nobody else takes the job."""
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            try:
                held = await self.store.jobs.renew(job, owner, lease_seconds=self.lease_seconds)
            except Exception as exc:
                log.warning("job.lease_renew_failed", job_id=job.id, error=type(exc).__name__)
                continue
            if not held:
                log.warning("job.lease_lost", job_id=job.id, kind=job.kind)
                return

    async def _succeed(
        self,
        job: Job,
        owner: str,
        ctx: StepBuffer,
        held: list[str],
        claim_next: bool,
        follow_up: bool,
    ) -> tuple[bool, Job | UnreadableJob | None]:
        """Commit the step (and give back its leases, and claim the next job, in the same
        transaction); whether it was committed, and the next job."""
        try:
            if claim_next:
                committed, claimed = await self.store.jobs.commit_step_and_claim(
                    job,
                    owner,
                    ctx.commands,
                    leases=held,
                    kinds=self.handlers,
                    lease_seconds=self.lease_seconds,
                    follow_up=follow_up,
                )
            else:
                committed = await self.store.jobs.commit_step(job, owner, ctx.commands, leases=held)
                claimed = None
        except Exception as exc:
            # The step ran but its outcome could not be committed: run it again later.
            await self._fail(job, owner, exc)
            return False, None
        if not committed:
            JOBS.labels(job.kind, "lost_lease").inc()
            log.warning("job.lease_lost", job_id=job.id, kind=job.kind)
            return False, None
        JOBS.labels(job.kind, "done").inc()
        log.info("job.done", job_id=job.id, kind=job.kind, attempts=job.attempts)
        for callback in ctx.callbacks:
            try:
                await callback()
            except Exception as exc:
                log.warning("job.after_commit_failed", job_id=job.id, error=type(exc).__name__)
        return True, claimed

    async def _fail(self, job: Job, owner: str, exc: BaseException) -> None:
        if isinstance(exc, BridgeError):
            failure_class = exc.failure_class
        else:
            failure_class = FailureClass.TRANSIENT
        reason = _reason(exc, failure_class)
        if failure_class is not FailureClass.TRANSIENT:
            await self._dead(job, owner, reason)
            return
        if job.attempts >= self.retry.max_attempts:
            exhausted = DeadReason(
                reason.failure_class,
                reason.reason,
                f"retries exhausted after {job.attempts} attempts: {reason.message}",
            )
            await self._dead(job, owner, exhausted)
            return
        delay = self.retry.delay(job.attempts, getattr(exc, "retry_after", None))
        held = await self.store.jobs.retry(job, owner, delay=delay)
        JOBS.labels(job.kind, "retry" if held else "lost_lease").inc()
        log.warning(
            "job.retry",
            job_id=job.id,
            kind=job.kind,
            attempts=job.attempts,
            reason=reason.reason,
            retry_in=round(delay, 3),
        )

    async def _dead(self, job: Job, owner: str, reason: DeadReason) -> None:
        held = await self.store.jobs.kill(job, owner, reason, self._follow_ups(job))
        JOBS.labels(job.kind, "dead" if held else "lost_lease").inc()
        log.warning(
            "job.dead",
            job_id=job.id,
            kind=job.kind,
            attempts=job.attempts,
            failure_class=reason.failure_class,
            reason=reason.reason,
        )

    def _follow_ups(self, job: Job) -> Sequence[Command]:
        """The flow's writes for this dead job; a follow-up that fails never keeps it alive."""
        follow_up = self.on_dead.get(job.kind)
        if follow_up is None:
            return ()
        try:
            return follow_up(job)
        except Exception as exc:
            log.warning("job.dead_follow_up_failed", job_id=job.id, error=type(exc).__name__)
            return ()

    async def _release(self, job: Job, owner: str) -> None:
        try:
            await self.store.jobs.release(job, owner)
        except Exception as exc:
            log.warning("job.release_failed", job_id=job.id, error=type(exc).__name__)
            return
        JOBS.labels(job.kind, "released").inc()
        log.info("job.released", job_id=job.id, kind=job.kind)


def _never() -> bool:
    return False


def _reason(exc: BaseException, failure_class: FailureClass) -> DeadReason:
    """A typed reason that is safe to store: our errors' texts are ID-only by contract;
    any other exception is reduced to its type name (its text may carry personal data)."""
    if isinstance(exc, BridgeError):
        return DeadReason(failure_class, exc.reason, exc.message[:500])
    return DeadReason(failure_class, "unexpected", type(exc).__name__)
