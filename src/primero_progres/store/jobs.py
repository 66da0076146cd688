"""The job queue: one table, atomic claims, idempotency keys unique forever.

A claim is a single ``UPDATE ... WHERE id = COALESCE((SELECT <expired lease> LIMIT 1 FOR
UPDATE SKIP LOCKED), (SELECT <pending, due> ...)) RETURNING`` (the ``FOR UPDATE`` part is
dropped on SQLite, where ``BEGIN IMMEDIATE`` serialises writers). A worker that commits a
step may claim its next job in the same transaction (``commit_step_and_claim``).
``attempts`` grows at each claim and doubles as a fencing token: a worker may only finish a
job it still holds.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from .audit import AuditLog
from .commands import AuditRecord, Command, Enqueue
from .crypto import PayloadUnreadable
from .database import Database
from .dialect import upsert_for
from .leases import give_back
from .models import (
    UNFINISHED,
    DeadLetterFilter,
    DeadReason,
    EnqueueResult,
    Job,
    JobState,
    WaitingJobs,
)
from .schema import inbound_messages, jobs
from .vocabulary import AuditEvent, Flow, flow_of

PAYLOAD_CONTEXT = jobs.name

#: a job a step's commands queued: the command and what its insert did
Queued = tuple[Enqueue, EnqueueResult]

#: applies a step's commands in the caller's transaction, the step's job id last (``Store``);
#: the jobs they queued, in order
CommandWriter = Callable[
    [AsyncConnection, datetime, Sequence[Command], str | None], Awaitable[Sequence[Queued]]
]


class UnreadableJob(PayloadUnreadable):
    """A job was claimed but its payload does not decrypt; ``job`` is held by the claimer."""

    def __init__(self, job: Job, cause: PayloadUnreadable) -> None:
        super().__init__(cause.message, reason=cause.reason)
        self.job = job


def job_from_row(row: Any, payload: dict[str, Any] | None = None) -> Job:
    reason = row.dead_reason
    return Job(
        id=row.id,
        kind=row.kind,
        key=row.key,
        state=JobState(row.state),
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at,
        lease_owner=row.lease_owner,
        lease_expires_at=row.lease_expires_at,
        dead_reason=DeadReason.from_json(reason) if reason else None,
        message_id=row.message_id,
        refs=dict(row.refs or {}),
        created_at=row.created_at,
        updated_at=row.updated_at,
        has_payload=row.payload is not None,
        payload=payload,
        parent_id=row.parent_id,
        first_failed_at=row.first_failed_at,
    )


def _dead_matching(where: DeadLetterFilter) -> list[sa.ColumnElement[bool]]:
    conditions = [jobs.c.state == JobState.DEAD.value]
    if where.flow:
        conditions.append(jobs.c.kind.startswith(f"{where.flow}.", autoescape=True))
    if where.reason:
        conditions.append(jobs.c.dead_reason["reason"].as_string() == where.reason)
    if where.since is not None:
        conditions.append(jobs.c.updated_at >= where.since)
    if where.until is not None:
        conditions.append(jobs.c.updated_at < where.until)
    return conditions


def _first_failure(now: datetime) -> sa.ColumnElement[Any]:
    return sa.func.coalesce(jobs.c.first_failed_at, now)


def _unleased(now: datetime | sa.BindParameter[Any]) -> dict[str, Any]:
    """The columns every way out of RUNNING clears."""
    return {"lease_owner": None, "lease_expires_at": None, "updated_at": now}


# The hot path's statements are built once and given their values at execute time: building
# one per call (``.values(dict)``) made SQLAlchemy walk it for its cache key each time, which
# cost more CPU than running it (issue 9).
_NOW = sa.bindparam("now", type_=jobs.c.updated_at.type)


@functools.cache
def _insert_job(dialect: str, keyed: bool) -> Any:
    """The INSERT of a job; ``keyed``: a key already used makes it a no-op (RETURNING id)."""
    insert = upsert_for(dialect, jobs)
    if not keyed:
        return insert
    return insert.on_conflict_do_nothing(index_elements=["key"]).returning(jobs.c.id)


_JOB_BY_KEY = sa.select(jobs.c.id).where(jobs.c.key == sa.bindparam("job_key"))

#: the fencing token: a write out of RUNNING applies only while its worker still holds this
#: attempt (values: ``_held_by``)
_HELD = sa.and_(
    jobs.c.id == sa.bindparam("job_id"),
    jobs.c.state == JobState.RUNNING.value,
    jobs.c.lease_owner == sa.bindparam("held_by"),
    jobs.c.attempts == sa.bindparam("attempt"),
)


def _held_by(job: Job, owner: str) -> dict[str, Any]:
    return {"job_id": job.id, "held_by": owner, "attempt": job.attempts}


#: a held job done, its payload dropped
_DONE = (
    sa.update(jobs).where(_HELD).values(state=JobState.DONE.value, payload=None, **_unleased(_NOW))
)

#: an inbox message's payload dropped once the job the inbox queued for it is done
_MESSAGE_READ = (
    sa.update(inbound_messages)
    .where(inbound_messages.c.id == sa.bindparam("message_id"))
    .values(payload=None)
)

_RUNNING = {
    "state": JobState.RUNNING.value,
    "lease_owner": sa.bindparam("owner"),
    "lease_expires_at": sa.bindparam("expires", type_=jobs.c.lease_expires_at.type),
    "attempts": jobs.c.attempts + 1,
    "updated_at": _NOW,
}


@functools.lru_cache(maxsize=16)
def _take_statement(kinds: tuple[str, ...] | None) -> Any:
    """The claim's one statement for the worker's ``kinds`` (see ``JobQueue._take``)."""
    kind = [jobs.c.kind.in_(kinds)] if kinds is not None else []
    order = (jobs.c.next_attempt_at, jobs.c.created_at)
    expired = (
        sa.select(jobs.c.id)
        .where(jobs.c.state == JobState.RUNNING.value, jobs.c.lease_expires_at < _NOW, *kind)
        .order_by(*order)
        .limit(1)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    due = (
        sa.select(jobs.c.id)
        .where(jobs.c.state == JobState.PENDING.value, jobs.c.next_attempt_at <= _NOW, *kind)
        .order_by(*order)
        .limit(1)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    pick = sa.func.coalesce(expired, due)
    return sa.update(jobs).where(jobs.c.id == pick).values(**_RUNNING).returning(*jobs.c)


#: the claim of one named pending job: the follow-up a step has just queued
_TAKE_THIS = (
    sa.update(jobs)
    .where(jobs.c.id == sa.bindparam("job_id"), jobs.c.state == JobState.PENDING.value)
    .values(**_RUNNING)
    .returning(*jobs.c)
)


def _follow_up(queued: Sequence[Queued], kinds: Collection[str] | None) -> str | None:
    """The first job of ``queued`` that is new, pending, due now and of ``kinds``."""
    for command, result in queued:
        if (
            result.created
            and command.dead_reason is None
            and command.delay <= 0
            and (kinds is None or command.kind in kinds)
        ):
            return result.id
    return None


def _kinds(kinds: Collection[str] | None) -> tuple[str, ...] | None:
    return tuple(sorted(kinds)) if kinds is not None else None


async def waiting_by_kind(conn: AsyncConnection) -> dict[str, WaitingJobs]:
    """kind -> its unfinished jobs (count, oldest queued), in the caller's connection."""
    query = (
        sa.select(jobs.c.kind, sa.func.count(), sa.func.min(jobs.c.created_at))
        .where(jobs.c.state.in_([s.value for s in UNFINISHED]))
        .group_by(jobs.c.kind)
    )
    rows = (await conn.execute(query)).all()
    return {kind: WaitingJobs(count, oldest) for kind, count, oldest in rows}


def by_flow(waiting: Mapping[str, WaitingJobs]) -> dict[Flow, WaitingJobs]:
    """Unfinished jobs per kind, summed per flow (kinds of no flow are left out)."""
    flows: dict[Flow, WaitingJobs] = {}
    for kind, found in waiting.items():
        flow = flow_of(kind)
        if flow is None:
            continue
        known = flows.get(flow)
        if known is not None:
            found = WaitingJobs(
                known.count + found.count, min(known.oldest_created_at, found.oldest_created_at)
            )
        flows[flow] = found
    return flows


class JobQueue:
    """``store.jobs``: enqueue, the worker's claim/commit/retry/kill/release, operator views."""

    def __init__(self, db: Database, audit: AuditLog, write_commands: CommandWriter) -> None:
        self._db = db
        self._audit = audit
        self._write_commands = write_commands

    # ------------------------------------------------------------------ queue

    async def enqueue(
        self,
        kind: str,
        payload: Mapping[str, Any] | None = None,
        *,
        key: str | None = None,
        refs: Mapping[str, Any] | None = None,
        delay: float = 0.0,
        message_id: str | None = None,
    ) -> EnqueueResult:
        """Add a job now, outside any step; an existing ``key`` is a no-op."""
        command = Enqueue(kind, payload, key, refs or {}, delay, message_id)
        async with self._db.write() as conn:
            return await self.insert(conn, self._db.now(), command)

    async def enqueue_coalesced(
        self,
        kind: str,
        key_prefix: str,
        payload: Mapping[str, Any] | None = None,
        *,
        refs: Mapping[str, Any] | None = None,
    ) -> EnqueueResult:
        """Add a job keyed ``<key_prefix><n>`` unless one of ``kind`` under ``key_prefix`` is
        still pending (not yet claimed): then that one is answered, ``created`` False.

        For hints that may arrive in floods (Primero's webhooks): while one job waits, the
        next hints would find what it will find. ``n`` is one more than the largest sequence
        number under the prefix, so callers racing on either database compute the same key
        and the unique index keeps one; once the job is claimed, the next hint queues anew.
        """
        async with self._db.write() as conn:
            query = sa.select(jobs.c.id, jobs.c.key, jobs.c.state).where(
                jobs.c.kind == kind, jobs.c.key.startswith(key_prefix, autoescape=True)
            )
            sequence = -1
            for row in (await conn.execute(query)).all():
                if row.key is None or not row.key.startswith(key_prefix):
                    continue  # LIKE ignores letter case on SQLite
                if row.state == JobState.PENDING.value:
                    return EnqueueResult(row.id, False)
                suffix = row.key[len(key_prefix) :]
                if suffix.isdigit():
                    sequence = max(sequence, int(suffix))
            command = Enqueue(kind, payload, f"{key_prefix}{sequence + 1}", refs or {})
            return await self.insert(conn, self._db.now(), command)

    async def insert(
        self,
        conn: AsyncConnection,
        now: datetime,
        command: Enqueue,
        *,
        parent_id: str | None = None,
    ) -> EnqueueResult:
        """``enqueue`` in the caller's transaction; ``parent_id``: the job whose step queues it."""
        job_id = str(uuid.uuid4())
        sealed = (
            self._db.cipher.encrypt(dict(command.payload), context=PAYLOAD_CONTEXT, row_id=job_id)
            if command.payload is not None
            else None
        )
        dead = command.dead_reason
        row = {
            "id": job_id,
            "kind": command.kind,
            "key": command.key,
            "state": (JobState.DEAD if dead else JobState.PENDING).value,
            "attempts": 0,
            "next_attempt_at": now + timedelta(seconds=max(command.delay, 0.0)),
            "dead_reason": dead.as_json() if dead else None,
            "payload": sealed,
            "message_id": command.message_id,
            "refs": dict(command.refs),
            "created_at": now,
            "updated_at": now,
            "parent_id": parent_id,
        }
        dialect = conn.dialect.name
        if command.key is None:
            await conn.execute(_insert_job(dialect, False), row)
            created = True
        else:
            result = await conn.execute(_insert_job(dialect, True), row)
            created = result.first() is not None
        if created:
            if dead is not None:
                await self._audit_dead(conn, now, job_id, command.kind, command.refs, 0, dead)
            return EnqueueResult(job_id, True)
        existing = await conn.scalar(_JOB_BY_KEY, {"job_key": command.key})
        assert existing is not None
        return EnqueueResult(existing, False)

    # ------------------------------------------------------------------ the worker's side

    async def claim(
        self, owner: str, *, kinds: Collection[str] | None, lease_seconds: float
    ) -> Job | None:
        """Take one due job (pending and due, or running with an expired lease), its payload
        decrypted. Raises ``UnreadableJob`` (holding the claimed job) if it does not decrypt."""
        now = self._db.now()
        async with self._db.write() as conn:
            row = await self._take(conn, now, owner, kinds, lease_seconds)
        claimed = self._claimed(row)
        if isinstance(claimed, UnreadableJob):
            raise claimed
        return claimed

    async def _take(
        self,
        conn: AsyncConnection,
        now: datetime,
        owner: str,
        kinds: Collection[str] | None,
        lease_seconds: float,
    ) -> Any:
        """The claim's one statement, in the caller's transaction: the claimed row or None.

        A job whose lease expired (its worker died) first, else the pending job due first:
        two lookups that each walk an index in order (``state``, ``next_attempt_at``) and stop
        at the first match, where one over both states would read and sort every due job.
        """
        running = {"now": now, "owner": owner, "expires": now + timedelta(seconds=lease_seconds)}
        return (await conn.execute(_take_statement(_kinds(kinds)), running)).first()

    def _claimed(self, row: Any) -> Job | UnreadableJob | None:
        if row is None:
            return None
        try:
            return job_from_row(row, self._decrypt(row))
        except PayloadUnreadable as exc:
            return UnreadableJob(job_from_row(row), exc)

    async def commit_step(
        self, job: Job, owner: str, commands: Sequence[Command], *, leases: Collection[str] = ()
    ) -> bool:
        """Mark a held job done, drop its payloads, apply the step's ``commands`` and give back
        the ``leases`` it held, in one transaction. False (and nothing written) if ``owner`` no
        longer holds the job."""
        committed, _next = await self._commit(job, owner, commands, leases, None)
        return committed

    async def commit_step_and_claim(
        self,
        job: Job,
        owner: str,
        commands: Sequence[Command],
        *,
        leases: Collection[str] = (),
        kinds: Collection[str] | None,
        lease_seconds: float,
        follow_up: bool = True,
    ) -> tuple[bool, Job | UnreadableJob | None]:
        """``commit_step``, then ``claim`` for ``owner`` in the same transaction: a busy worker
        commits once per job instead of twice. The next job (an ``UnreadableJob`` if its
        payload does not decrypt) is None when none is due or the step was not committed.

        With ``follow_up``, the next job is the first one the step queued that is due now and
        of ``kinds``, if any: a referral's chain (receive, deliver, feedback) runs to its end
        before the worker takes the next due job, so under a backlog of inbox messages the
        first referral's feedback leaves after its own steps, not after every message's
        ``receive``. Nothing starves: a chain ends, and then the due job first in line is
        taken (the worker bounds how many follow-ups it takes in a row).
        """
        return await self._commit(job, owner, commands, leases, (kinds, lease_seconds, follow_up))

    async def _commit(
        self,
        job: Job,
        owner: str,
        commands: Sequence[Command],
        leases: Collection[str],
        claim: tuple[Collection[str] | None, float, bool] | None,
    ) -> tuple[bool, Job | UnreadableJob | None]:
        row = None
        async with self._db.write() as conn:
            now = self._db.now()
            if (await conn.execute(_DONE, {**_held_by(job, owner), "now": now})).rowcount != 1:
                return False, None
            if job.message_id is not None and job.parent_id is None:
                # the job the inbox queued for its message (a step's jobs inherit the message
                # id, but the message was read, and its payload dropped, before they existed)
                await conn.execute(_MESSAGE_READ, {"message_id": job.message_id})
            queued = await self._write_commands(conn, now, commands, job.id)
            if leases:
                await give_back(conn, leases, owner)
            if claim is not None:
                kinds, lease_seconds, follow_up = claim
                nxt = _follow_up(queued, kinds) if follow_up else None
                if nxt is not None:
                    expires = now + timedelta(seconds=lease_seconds)
                    running = {"job_id": nxt, "now": now, "owner": owner, "expires": expires}
                    row = (await conn.execute(_TAKE_THIS, running)).first()
                if row is None:
                    row = await self._take(conn, now, owner, kinds, lease_seconds)
        return True, self._claimed(row)

    async def retry(self, job: Job, owner: str, *, delay: float) -> bool:
        now = self._db.now()
        async with self._db.write() as conn:
            return await self._update_held(
                conn,
                job,
                owner,
                state=JobState.PENDING.value,
                next_attempt_at=now + timedelta(seconds=delay),
                first_failed_at=_first_failure(now),
                **_unleased(now),
            )

    async def kill(
        self, job: Job, owner: str, reason: DeadReason, commands: Sequence[Command] = ()
    ) -> bool:
        """Dead-letter a held job (payload kept for replay), with a ``job.dead`` audit entry and
        ``commands`` (what a flow does when one of its jobs dies), in one transaction."""
        async with self._db.write() as conn:
            now = self._db.now()
            held = await self._update_held(
                conn,
                job,
                owner,
                state=JobState.DEAD.value,
                dead_reason=reason.as_json(),
                first_failed_at=_first_failure(now),
                **_unleased(now),
            )
            if held:
                await self._audit_dead(conn, now, job.id, job.kind, job.refs, job.attempts, reason)
                await self._write_commands(conn, now, commands, job.id)
        return held

    async def _audit_dead(
        self,
        conn: AsyncConnection,
        now: datetime,
        job_id: str,
        kind: str,
        refs: Mapping[str, Any],
        attempts: int,
        reason: DeadReason,
    ) -> None:
        ids = {
            **refs,
            "job_id": job_id,
            "kind": kind,
            "attempts": attempts,
            "failure_class": reason.failure_class.value,
            "reason": reason.reason,
        }
        await self._audit.write(conn, now, AuditRecord(AuditEvent.JOB_DEAD, flow_of(kind), ids))

    async def release(self, job: Job, owner: str) -> bool:
        """Give a job back untouched (graceful shutdown): the attempt does not count."""
        now = self._db.now()
        async with self._db.write() as conn:
            return await self._update_held(
                conn,
                job,
                owner,
                state=JobState.PENDING.value,
                attempts=jobs.c.attempts - 1,
                **_unleased(now),
            )

    async def renew(self, job: Job, owner: str, *, lease_seconds: float) -> bool:
        now = self._db.now()
        async with self._db.write() as conn:
            return await self._update_held(
                conn, job, owner, lease_expires_at=now + timedelta(seconds=lease_seconds)
            )

    async def _update_held(
        self, conn: AsyncConnection, job: Job, owner: str, **values: Any
    ) -> bool:
        """Write ``values`` only while ``owner`` still holds this attempt (the fencing token)."""
        stmt = sa.update(jobs).where(_HELD).values(**values)
        result = await conn.execute(stmt, _held_by(job, owner))
        return result.rowcount == 1

    def _decrypt(self, row: Any) -> dict[str, Any] | None:
        if row.payload is None:
            return None
        payload: dict[str, Any] = self._db.cipher.decrypt(
            row.payload, context=PAYLOAD_CONTEXT, row_id=row.id
        )
        return payload

    # ------------------------------------------------------------------ operators

    async def get(self, job_id: str, *, decrypt: bool = False) -> Job | None:
        async with self._db.read() as conn:
            row = (await conn.execute(sa.select(jobs).where(jobs.c.id == job_id))).first()
        if row is None:
            return None
        return job_from_row(row, self._decrypt(row) if decrypt else None)

    async def outstanding(self, kind: str, key_prefix: str) -> bool:
        """Whether a job of ``kind`` whose key starts with ``key_prefix`` is pending, running,
        or dead (waiting for an operator): the flows that poll a queue queue an item once."""
        query = sa.select(jobs.c.key).where(
            jobs.c.kind == kind,
            jobs.c.state.in_([s.value for s in (*UNFINISHED, JobState.DEAD)]),
            jobs.c.key.startswith(key_prefix, autoescape=True),
        )
        async with self._db.read() as conn:
            keys = (await conn.scalars(query)).all()
        # LIKE ignores letter case on SQLite: compare exactly here
        return any(key.startswith(key_prefix) for key in keys if key is not None)

    async def counts(self) -> dict[tuple[str, str], int]:
        """(kind, state) -> number of jobs; for metrics and operator views."""
        query = sa.select(jobs.c.kind, jobs.c.state, sa.func.count()).group_by(
            jobs.c.kind, jobs.c.state
        )
        async with self._db.read() as conn:
            rows = (await conn.execute(query)).all()
        return {(kind, state): count for kind, state, count in rows}

    async def waiting(self) -> dict[str, WaitingJobs]:
        """kind -> its unfinished (pending or running) jobs: how many, and the oldest's age."""
        async with self._db.read() as conn:
            return await waiting_by_kind(conn)

    async def waiting_by_flow(self) -> dict[Flow, WaitingJobs]:
        """The same per flow: what the backlog alert, its metric and the console's overview
        ("in flight", "oldest waiting") count."""
        return by_flow(await self.waiting())

    async def dead_counts(self) -> dict[tuple[str, str], int]:
        """(kind, reason) -> number of dead letters; for metrics."""
        reason = jobs.c.dead_reason["reason"].as_string()
        query = (
            sa.select(jobs.c.kind, reason, sa.func.count())
            .where(jobs.c.state == JobState.DEAD.value)
            .group_by(jobs.c.kind, reason)
        )
        async with self._db.read() as conn:
            rows = (await conn.execute(query)).all()
        return {(kind, code or "unknown"): count for kind, code, count in rows}

    async def dead_letters(
        self, where: DeadLetterFilter | None = None, *, limit: int = 100, offset: int = 0
    ) -> list[Job]:
        """Dead jobs matching ``where``, last failure first (ties by id: a stable order)."""
        query = (
            sa.select(jobs)
            .where(*_dead_matching(where or DeadLetterFilter()))
            .order_by(jobs.c.updated_at.desc(), jobs.c.id)
        )
        async with self._db.read() as conn:
            rows = (await conn.execute(query.limit(limit).offset(offset))).all()
        return [job_from_row(row) for row in rows]

    async def dead_reasons(self) -> list[str]:
        """The typed reasons of the dead letters there are now, for a filter's choices."""
        reason = jobs.c.dead_reason["reason"].as_string()
        query = (
            sa.select(reason).where(jobs.c.state == JobState.DEAD.value).distinct().order_by(reason)
        )
        async with self._db.read() as conn:
            return [r for r in (await conn.scalars(query)).all() if r]

    async def replay(
        self, job_id: str, *, account: str | None = None, reason: str | None = None
    ) -> bool:
        """Send a dead job back to the queue: attempts reset, payload kept. Safe to repeat: the
        ledger drops what was already delivered."""
        return bool(await self._replay([jobs.c.id == job_id], account=account, reason=reason))

    async def replay_matching(
        self, where: DeadLetterFilter, *, account: str | None = None, reason: str | None = None
    ) -> list[str]:
        """Replay every dead letter matching ``where``, in one transaction; their ids."""
        return await self._replay(_dead_matching(where), account=account, reason=reason)

    async def _replay(
        self,
        conditions: Sequence[sa.ColumnElement[bool]],
        *,
        account: str | None,
        reason: str | None,
    ) -> list[str]:
        now = self._db.now()
        dead = [jobs.c.state == JobState.DEAD.value, *conditions]
        async with self._db.write() as conn:
            rows = (await conn.execute(sa.select(jobs.c.id, jobs.c.kind).where(*dead))).all()
            if not rows:
                return []
            ids = [row.id for row in rows]
            await conn.execute(
                sa.update(jobs)
                .where(jobs.c.id.in_(ids), jobs.c.state == JobState.DEAD.value)
                .values(
                    state=JobState.PENDING.value,
                    attempts=0,
                    next_attempt_at=now,
                    dead_reason=None,
                    updated_at=now,
                )
            )
            for row in rows:
                audit: dict[str, Any] = {"job_id": row.id, "kind": row.kind}
                if reason:
                    audit["reason"] = reason
                record = AuditRecord(AuditEvent.JOB_REPLAYED, flow_of(row.kind), audit, account)
                await self._audit.write(conn, now, record)
        return ids

    async def discard(self, job_id: str, *, account: str | None, reason: str) -> bool:
        """Give up on a dead letter: its payload is purged, the row (with its dead reason) and
        the operator's reason stay. False if ``job_id`` is not a dead letter."""
        now = self._db.now()
        async with self._db.write() as conn:
            kind = await conn.scalar(
                sa.update(jobs)
                .where(jobs.c.id == job_id, jobs.c.state == JobState.DEAD.value)
                .values(state=JobState.DISCARDED.value, payload=None, updated_at=now)
                .returning(jobs.c.kind)
            )
            if kind is None:
                return False
            ids = {"job_id": job_id, "kind": kind, "reason": reason}
            record = AuditRecord(AuditEvent.JOB_DISCARDED, flow_of(kind), ids, account)
            await self._audit.write(conn, now, record)
        return True

    async def purge_payloads(self, conn: AsyncConnection, cutoff: datetime) -> int:
        """Drop the payloads of done jobs, and of dead letters last touched before ``cutoff``."""
        done = await conn.execute(
            sa.update(jobs)
            .where(jobs.c.state == JobState.DONE.value, jobs.c.payload.is_not(None))
            .values(payload=None)
        )
        dead = await conn.execute(
            sa.update(jobs)
            .where(
                jobs.c.state == JobState.DEAD.value,
                jobs.c.payload.is_not(None),
                jobs.c.updated_at <= cutoff,
            )
            .values(payload=None)
        )
        return done.rowcount + dead.rowcount

    # last: a method named ``list`` would shadow the builtin in the annotations above it
    async def list(
        self,
        *,
        state: JobState | str | None = None,
        kind: str | None = None,
        message_id: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[Job]:
        query = sa.select(jobs).order_by(jobs.c.created_at.desc(), jobs.c.id)
        if state is not None:
            query = query.where(jobs.c.state == str(state))
        if kind is not None:
            query = query.where(jobs.c.kind == kind)
        if message_id is not None:
            query = query.where(jobs.c.message_id == message_id)
        async with self._db.read() as conn:
            rows = (await conn.execute(query.limit(limit).offset(offset))).all()
        return [job_from_row(row) for row in rows]
