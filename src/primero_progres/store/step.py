"""What a flow step sees of the store: typed reads, and a context that buffers typed writes.

A step (one job's handler) reads through ``FlowStore`` and records its writes on a
``StepContext``; the worker hands the buffered commands to ``store.jobs.commit_step``, which
applies them with "job done" in one transaction, or drops them if the step fails. Both are
``Protocol``s, so the flows can be tested against in-memory fakes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from .commands import AuditRecord, Command, CursorMove, Enqueue, LedgerRecord
from .models import DeadReason, Exchange, Job, PeerOutcomes
from .vocabulary import AuditEvent, Flow, LedgerEvent, LedgerState

AfterCommit = Callable[[], Awaitable[object]]


class StepContext(Protocol):
    """A step's view of its job, and its buffered writes (applied only if the step succeeds)."""

    @property
    def job(self) -> Job:
        """The job, its payload decrypted."""
        ...

    @property
    def worker_id(self) -> str:
        """The owner of this attempt (``<worker id>/<slot>``)."""
        ...

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
        """Add a job; it inherits this job's message id unless ``message_id`` is given."""
        ...

    def dead_letter(
        self,
        kind: str,
        payload: Mapping[str, Any] | None,
        *,
        key: str,
        reason: DeadReason,
        refs: Mapping[str, Any] | None = None,
    ) -> None:
        """Add a job as a dead letter: work an operator replays once the cause is fixed.

        For an outcome the step records (its ledger state commits) whose follow-up must wait
        for a person, e.g. a PING ingestion that failed: replaying posts it again.
        """
        ...

    def ledger_record(
        self,
        flow: Flow,
        key: str,
        *,
        state: LedgerState,
        event: LedgerEvent | None = None,
        fingerprint: str | None = None,
        direction: str | None = None,
        detail: Mapping[str, Any] | None = None,
        **ids: object,
    ) -> None:
        """Upsert exchange ``(flow, key)`` and append an event. Keyword IDs that are not ledger
        columns are kept in the event detail."""
        ...

    def audit(self, event: AuditEvent, *, flow: Flow | None = None, **ids: object) -> None: ...

    def set_cursor(self, flow: Flow, value: str) -> None: ...

    async def hold(self, lease: str) -> None:
        """Hold the named lease until this step's outcome is committed or discarded.

        Raises ``LeaseBusy`` (transient: the job is retried) when another worker holds it.
        """
        ...

    def after_commit(self, callback: AfterCommit) -> None:
        """Run ``callback()`` once this step's outcome is committed (not if it fails)."""
        ...


class LedgerView(Protocol):
    async def get(self, flow: Flow, key: str) -> Exchange | None: ...

    async def find(self, flow: Flow | None = None, **ids: Any) -> list[Exchange]: ...

    async def cases_waiting_for_decision(
        self, statuses: Collection[str], *, after: str | None = None, limit: int
    ) -> list[str]: ...


class JobView(Protocol):
    async def outstanding(self, kind: str, key_prefix: str) -> bool: ...


class CursorView(Protocol):
    async def get(self, flow: Flow) -> str | None: ...


class MessageView(Protocol):
    async def payload(self, message_id: str) -> dict[str, Any] | None: ...


class PeerRecorder(Protocol):
    async def record(self, seen: Sequence[PeerOutcomes]) -> None:
        """Merge what this process saw of the peers into their rows (``store.peers``)."""
        ...


class FlowStore(Protocol):
    """The reads a flow step may make (``Store`` is one; tests use an in-memory fake)."""

    @property
    def ledger(self) -> LedgerView: ...

    @property
    def cursors(self) -> CursorView: ...

    @property
    def jobs(self) -> JobView: ...

    @property
    def messages(self) -> MessageView: ...

    @property
    def peers(self) -> PeerRecorder: ...

    async def fingerprint(self, obj: object) -> str:
        """Keyed content hash: equal content, equal fingerprint; not guessable from the data."""
        ...

    def now(self) -> datetime:
        """The store's clock (the moments it records are compared with it)."""
        ...


Hold = Callable[[str], Awaitable[None]]


async def _no_leases(lease: str) -> None:
    raise RuntimeError(f"this step context cannot hold leases ({lease.partition(':')[0]})")


class StepBuffer:
    """The ``StepContext`` the worker gives a step: it builds the commands, in order."""

    def __init__(self, job: Job, *, worker_id: str = "", hold: Hold = _no_leases) -> None:
        self._job = job
        self._worker_id = worker_id
        self._hold = hold
        self.commands: list[Command] = []
        self.callbacks: list[AfterCommit] = []

    @property
    def job(self) -> Job:
        return self._job

    @property
    def worker_id(self) -> str:
        return self._worker_id

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
        origin = message_id or self._job.message_id
        self.commands.append(Enqueue(kind, payload, key, refs or {}, delay, origin))

    def dead_letter(
        self,
        kind: str,
        payload: Mapping[str, Any] | None,
        *,
        key: str,
        reason: DeadReason,
        refs: Mapping[str, Any] | None = None,
    ) -> None:
        self.commands.append(
            Enqueue(kind, payload, key, refs or {}, 0.0, self._job.message_id, reason)
        )

    def ledger_record(
        self,
        flow: Flow,
        key: str,
        *,
        state: LedgerState,
        event: LedgerEvent | None = None,
        fingerprint: str | None = None,
        direction: str | None = None,
        detail: Mapping[str, Any] | None = None,
        **ids: object,
    ) -> None:
        self.commands.append(
            LedgerRecord.of(
                flow,
                key,
                state=state,
                event=event,
                fingerprint=fingerprint,
                direction=direction,
                detail=detail,
                **ids,
            )
        )

    def audit(self, event: AuditEvent, *, flow: Flow | None = None, **ids: object) -> None:
        self.commands.append(AuditRecord(event, flow, ids))

    def set_cursor(self, flow: Flow, value: str) -> None:
        self.commands.append(CursorMove(flow, value))

    async def hold(self, lease: str) -> None:
        await self._hold(lease)

    def after_commit(self, callback: AfterCommit) -> None:
        self.callbacks.append(callback)


Handler = Callable[[StepContext], Awaitable[None]]
