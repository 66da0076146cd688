"""The worker: claim a job, run its step, commit the outcome in one transaction.

A handler does its network calls outside any database transaction and buffers
its writes on the ``StepContext``; the worker commits them together with
"job done". If the handler fails, the buffered writes are discarded and the
job is retried (transient) or dead-lettered (anything else, or retries
exhausted). A job whose worker died is claimed again when its lease expires.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncConnection

from . import FLOWS
from .errors import BridgeError, FailureClass
from .logging import get_logger
from .runtime.metrics import JOBS
from .store import jobs as job_table
from .store.audit import audit_in
from .store.crypto import PayloadUnreadable
from .store.cursors import set_cursor_in
from .store.ledger import record_in, split_ids
from .store.models import DeadReason, Job
from .store.safe import safe_ids

if TYPE_CHECKING:
    from .settings import Settings
    from .store import Store

log = get_logger(__name__)

Op = Callable[[AsyncConnection, datetime], Awaitable[Any]]


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
        ceiling = min(self.cap_seconds, self.base_seconds * 2 ** max(attempts - 1, 0))
        delay = ceiling * self.random()
        if retry_after is not None and retry_after > delay:
            delay = retry_after
        return delay


class StepContext:
    """What a handler sees: the job (payload decrypted) and buffered writes."""

    def __init__(self, store: Store, job: Job, *, worker_id: str = "") -> None:
        self.store = store
        self.job = job
        #: the lease owner of this attempt (``<worker id>/<slot>``), e.g. for store leases
        self.worker_id = worker_id
        self._ops: list[Op] = []
        self._after_commit: list[Callable[[], Awaitable[Any]]] = []

    def after_commit(self, callback: Callable[[], Awaitable[Any]]) -> None:
        """Run ``callback()`` once this step's outcome is committed (not if it fails)."""
        self._after_commit.append(callback)

    def enqueue(
        self,
        kind: str,
        payload: Mapping[str, Any] | None = None,
        *,
        key: str | None = None,
        refs: Mapping[str, Any] | None = None,
        delay: float = 0.0,
        message_id: str | None = None,
    ) -> None:
        """Add a job, created only if this step succeeds; it inherits the message id."""
        safe_refs = safe_ids(refs or {}, what="job refs")
        origin = message_id or self.job.message_id

        async def op(conn: AsyncConnection, _now: datetime) -> None:
            await job_table.enqueue_in(
                conn,
                self.store,
                kind,
                payload,
                key=key,
                refs=safe_refs,
                delay=delay,
                message_id=origin,
            )

        self._ops.append(op)

    def audit(self, event: str, *, flow: str | None = None, **ids: Any) -> None:
        safe = safe_ids(ids, what="audit event")

        async def op(conn: AsyncConnection, now: datetime) -> None:
            await audit_in(conn, now, event, flow, safe)

        self._ops.append(op)

    def ledger_record(
        self,
        flow: str,
        key: str,
        *,
        state: str | None = None,
        event: str | None = None,
        fingerprint: str | None = None,
        direction: str | None = None,
        detail: Mapping[str, Any] | None = None,
        **ids: Any,
    ) -> None:
        """Upsert exchange ``(flow, key)`` and append an event, if the step succeeds.
        Keyword IDs that are not ledger columns are kept in the event detail."""
        id_values, extra = split_ids(ids)
        safe_detail = safe_ids({**extra, **(detail or {})}, what="ledger event detail")

        async def op(conn: AsyncConnection, now: datetime) -> None:
            await record_in(
                conn,
                now,
                flow,
                key,
                state=state,
                event=event,
                direction=direction,
                detail=safe_detail,
                fingerprint=fingerprint,
                ids=id_values,
            )

        self._ops.append(op)

    def set_cursor(self, flow: str, value: str) -> None:
        async def op(conn: AsyncConnection, now: datetime) -> None:
            await set_cursor_in(conn, now, flow, value)

        self._ops.append(op)


Handler = Callable[[StepContext], Awaitable[None]]


class _LostLease(Exception):
    """Another worker took the job (our lease expired): roll our outcome back."""


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
    ) -> None:
        self.store = store
        self.handlers = dict(handlers)
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
        if not self.handlers:
            return False
        owner = f"{self.worker_id}/{slot}"
        async with self.store.engine.begin() as conn:
            row = await job_table.claim_in(
                conn,
                owner=owner,
                now=self.store.now(),
                lease_seconds=self.lease_seconds,
                kinds=sorted(self.handlers),
            )
        if row is None:
            return False
        await self._process(row, owner)
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
        while not stop.is_set():
            try:
                worked = await self.run_once(slot)
            except Exception as exc:
                log.warning("worker.claim_failed", worker=self.worker_id, error=type(exc).__name__)
                worked = False
            if not worked and not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=self.poll_interval)

    async def _process(self, row: Any, owner: str) -> None:
        job = job_table.row_to_job(row)
        try:
            payload = self.store.jobs.decrypt(row)
        except PayloadUnreadable as exc:
            await self._dead(job, owner, _reason(exc, exc.failure_class))
            return
        job = job_table.row_to_job(row, payload)
        ctx = StepContext(self.store, job, worker_id=owner)
        handler = self.handlers[job.kind]
        heartbeat = asyncio.create_task(self._heartbeat(job, owner))
        failure: BaseException | None = None
        try:
            await handler(ctx)
        except asyncio.CancelledError:
            heartbeat.cancel()
            await self._release(job, owner)
            raise
        except Exception as exc:
            failure = exc
        finally:
            heartbeat.cancel()
        if failure is None:
            await self._succeed(job, owner, ctx)
        else:
            await self._fail(job, owner, failure)

    async def _heartbeat(self, job: Job, owner: str) -> None:
        """Keep the lease while a long step runs, so nobody else takes the job."""
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            try:
                async with self.store.engine.begin() as conn:
                    held = await job_table.renew_in(
                        conn,
                        job,
                        owner=owner,
                        now=self.store.now(),
                        lease_seconds=self.lease_seconds,
                    )
            except Exception as exc:
                log.warning("job.lease_renew_failed", job_id=job.id, error=type(exc).__name__)
                continue
            if not held:
                log.warning("job.lease_lost", job_id=job.id, kind=job.kind)
                return

    async def _succeed(self, job: Job, owner: str, ctx: StepContext) -> None:
        try:
            async with self.store.engine.begin() as conn:
                now = self.store.now()
                if not await job_table.finish_in(conn, job, owner=owner, now=now):
                    raise _LostLease
                for op in ctx._ops:
                    await op(conn, now)
        except _LostLease:
            JOBS.labels(job.kind, "lost_lease").inc()
            log.warning("job.lease_lost", job_id=job.id, kind=job.kind)
            return
        except Exception as exc:
            # The step ran but its outcome could not be committed: run it again later.
            await self._fail(job, owner, exc)
            return
        JOBS.labels(job.kind, "done").inc()
        log.info("job.done", job_id=job.id, kind=job.kind, attempts=job.attempts)
        for callback in ctx._after_commit:
            try:
                await callback()
            except Exception as exc:
                log.warning("job.after_commit_failed", job_id=job.id, error=type(exc).__name__)

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
        async with self.store.engine.begin() as conn:
            held = await job_table.retry_in(
                conn, job, owner=owner, now=self.store.now(), delay=delay
            )
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
        async with self.store.engine.begin() as conn:
            now = self.store.now()
            held = await job_table.kill_in(conn, job, owner=owner, now=now, reason=reason)
            if held:
                ids = dict(job.refs)
                ids.update(
                    job_id=job.id,
                    kind=job.kind,
                    attempts=job.attempts,
                    failure_class=reason.failure_class,
                    reason=reason.reason,
                )
                await audit_in(conn, now, "job.dead", _flow_of(job.kind), ids)
        JOBS.labels(job.kind, "dead" if held else "lost_lease").inc()
        log.warning(
            "job.dead",
            job_id=job.id,
            kind=job.kind,
            attempts=job.attempts,
            failure_class=reason.failure_class,
            reason=reason.reason,
        )

    async def _release(self, job: Job, owner: str) -> None:
        try:
            async with self.store.engine.begin() as conn:
                await job_table.release_in(conn, job, owner=owner, now=self.store.now())
        except Exception as exc:
            log.warning("job.release_failed", job_id=job.id, error=type(exc).__name__)
            return
        JOBS.labels(job.kind, "released").inc()
        log.info("job.released", job_id=job.id, kind=job.kind)


def _reason(exc: BaseException, failure_class: FailureClass) -> DeadReason:
    """A typed reason that is safe to store: our errors' texts are ID-only by contract;
    any other exception is reduced to its type name (its text may carry personal data)."""
    if isinstance(exc, BridgeError):
        return DeadReason(failure_class.value, exc.reason, exc.message[:500])
    return DeadReason(failure_class.value, "unexpected", type(exc).__name__)


def _flow_of(kind: str) -> str | None:
    flow = kind.split(".", 1)[0]
    return flow if flow in FLOWS else None
