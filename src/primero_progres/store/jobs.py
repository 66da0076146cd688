"""The job queue: one table, atomic claims, idempotency keys unique forever.

A claim is a single ``UPDATE ... WHERE id = (SELECT ... LIMIT 1 FOR UPDATE SKIP
LOCKED) RETURNING`` (the ``FOR UPDATE`` part is dropped on SQLite, where
``BEGIN IMMEDIATE`` serialises writers). ``attempts`` grows at each claim and
doubles as a fencing token: a worker may only finish a job it still holds.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from .audit import audit_in
from .models import UNFINISHED, DeadReason, EnqueueResult, Job, JobState
from .safe import safe_ids
from .schema import inbound_messages, jobs

if TYPE_CHECKING:
    from .store import Store

PAYLOAD_CONTEXT = "jobs"


def new_id() -> str:
    return str(uuid.uuid4())


def _insert(conn: AsyncConnection) -> Any:
    return (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(jobs)


async def enqueue_in(
    conn: AsyncConnection,
    store: Store,
    kind: str,
    payload: Mapping[str, Any] | None,
    *,
    key: str | None = None,
    refs: Mapping[str, Any] | None = None,
    delay: float = 0.0,
    message_id: str | None = None,
) -> EnqueueResult:
    """Insert a pending job in the caller's transaction; an existing ``key`` is a no-op."""
    now = store.now()
    job_id = new_id()
    sealed = (
        store.cipher.encrypt(dict(payload), context=PAYLOAD_CONTEXT, row_id=job_id)
        if payload is not None
        else None
    )
    stmt = _insert(conn).values(
        id=job_id,
        kind=kind,
        key=key,
        state=JobState.PENDING.value,
        attempts=0,
        next_attempt_at=now + timedelta(seconds=max(delay, 0.0)),
        payload=sealed,
        message_id=message_id,
        refs=safe_ids(refs or {}, what="job refs"),
        created_at=now,
        updated_at=now,
    )
    if key is None:
        await conn.execute(stmt)
        return EnqueueResult(job_id, True)
    result = await conn.execute(
        stmt.on_conflict_do_nothing(index_elements=["key"]).returning(jobs.c.id)
    )
    if result.first() is not None:
        return EnqueueResult(job_id, True)
    existing = await conn.scalar(sa.select(jobs.c.id).where(jobs.c.key == key))
    assert existing is not None
    return EnqueueResult(existing, False)


async def claim_in(
    conn: AsyncConnection,
    *,
    owner: str,
    now: datetime,
    lease_seconds: float,
    kinds: list[str] | None,
) -> sa.Row[Any] | None:
    """Take one due job (pending and due, or running with an expired lease)."""
    due = sa.or_(
        sa.and_(jobs.c.state == JobState.PENDING.value, jobs.c.next_attempt_at <= now),
        sa.and_(jobs.c.state == JobState.RUNNING.value, jobs.c.lease_expires_at < now),
    )
    if kinds is not None:
        due = sa.and_(due, jobs.c.kind.in_(kinds))
    pick = (
        sa.select(jobs.c.id)
        .where(due)
        .order_by(jobs.c.next_attempt_at, jobs.c.created_at)
        .limit(1)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    stmt = (
        sa.update(jobs)
        .where(jobs.c.id == pick)
        .values(
            state=JobState.RUNNING.value,
            lease_owner=owner,
            lease_expires_at=now + timedelta(seconds=lease_seconds),
            attempts=jobs.c.attempts + 1,
            updated_at=now,
        )
        .returning(*jobs.c)
    )
    result = await conn.execute(stmt)
    return result.first()


def _held(job_id: str, owner: str, attempts: int) -> Any:
    return sa.and_(
        jobs.c.id == job_id,
        jobs.c.state == JobState.RUNNING.value,
        jobs.c.lease_owner == owner,
        jobs.c.attempts == attempts,
    )


async def _update_held(conn: AsyncConnection, job: Job, owner: str, **values: Any) -> bool:
    """Write ``values`` only while ``owner`` still holds this attempt (the fencing token)."""
    result = await conn.execute(
        sa.update(jobs).where(_held(job.id, owner, job.attempts)).values(**values)
    )
    return result.rowcount == 1


def _unleased(now: datetime) -> dict[str, Any]:
    """The columns every way out of RUNNING clears."""
    return {"lease_owner": None, "lease_expires_at": None, "updated_at": now}


async def finish_in(conn: AsyncConnection, job: Job, *, owner: str, now: datetime) -> bool:
    """Mark a held job done and drop its payload (and its inbound message's payload)."""
    if not await _update_held(
        conn, job, owner, state=JobState.DONE.value, payload=None, **_unleased(now)
    ):
        return False
    if job.message_id is not None:
        await conn.execute(
            sa.update(inbound_messages)
            .where(inbound_messages.c.id == job.message_id)
            .values(payload=None)
        )
    return True


async def retry_in(
    conn: AsyncConnection, job: Job, *, owner: str, now: datetime, delay: float
) -> bool:
    return await _update_held(
        conn,
        job,
        owner,
        state=JobState.PENDING.value,
        next_attempt_at=now + timedelta(seconds=delay),
        **_unleased(now),
    )


async def release_in(conn: AsyncConnection, job: Job, *, owner: str, now: datetime) -> bool:
    """Give a job back untouched (graceful shutdown): the attempt does not count."""
    return await _update_held(
        conn,
        job,
        owner,
        state=JobState.PENDING.value,
        attempts=jobs.c.attempts - 1,
        **_unleased(now),
    )


async def kill_in(
    conn: AsyncConnection, job: Job, *, owner: str, now: datetime, reason: DeadReason
) -> bool:
    return await _update_held(
        conn,
        job,
        owner,
        state=JobState.DEAD.value,
        dead_reason=reason.as_json(),
        **_unleased(now),
    )


async def renew_in(
    conn: AsyncConnection, job: Job, *, owner: str, now: datetime, lease_seconds: float
) -> bool:
    return await _update_held(
        conn, job, owner, lease_expires_at=now + timedelta(seconds=lease_seconds)
    )


def row_to_job(row: Any, payload: dict[str, Any] | None = None) -> Job:
    reason = row.dead_reason
    return Job(
        id=row.id,
        kind=row.kind,
        key=row.key,
        state=row.state,
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at,
        lease_owner=row.lease_owner,
        lease_expires_at=row.lease_expires_at,
        dead_reason=DeadReason(**reason) if reason else None,
        message_id=row.message_id,
        refs=dict(row.refs or {}),
        created_at=row.created_at,
        updated_at=row.updated_at,
        has_payload=row.payload is not None,
        payload=payload,
    )


class JobQueue:
    """Read API and operator actions on the queue (``store.jobs``)."""

    def __init__(self, store: Store) -> None:
        self._store = store

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
        async with self._store.engine.begin() as conn:
            return await enqueue_in(
                conn,
                self._store,
                kind,
                payload,
                key=key,
                refs=refs,
                delay=delay,
                message_id=message_id,
            )

    async def get(self, job_id: str, *, decrypt: bool = False) -> Job | None:
        async with self._store.engine.connect() as conn:
            row = (await conn.execute(sa.select(jobs).where(jobs.c.id == job_id))).first()
        if row is None:
            return None
        return row_to_job(row, self.decrypt(row) if decrypt else None)

    def decrypt(self, row: Any) -> dict[str, Any] | None:
        if row.payload is None:
            return None
        payload: dict[str, Any] = self._store.cipher.decrypt(
            row.payload, context=PAYLOAD_CONTEXT, row_id=row.id
        )
        return payload

    async def list(
        self,
        *,
        state: str | None = None,
        kind: str | None = None,
        message_id: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[Job]:
        query = sa.select(jobs).order_by(jobs.c.created_at.desc(), jobs.c.id)
        if state is not None:
            query = query.where(jobs.c.state == state)
        if kind is not None:
            query = query.where(jobs.c.kind == kind)
        if message_id is not None:
            query = query.where(jobs.c.message_id == message_id)
        async with self._store.engine.connect() as conn:
            rows = (await conn.execute(query.limit(limit).offset(offset))).all()
        return [row_to_job(row) for row in rows]

    async def has_unfinished(self, kind: str) -> bool:
        async with self._store.engine.connect() as conn:
            found = await conn.scalar(
                sa.select(jobs.c.id)
                .where(jobs.c.kind == kind, jobs.c.state.in_(UNFINISHED))
                .limit(1)
            )
        return found is not None

    async def counts(self) -> dict[tuple[str, str], int]:
        """(kind, state) -> number of jobs; for metrics and operator views."""
        query = sa.select(jobs.c.kind, jobs.c.state, sa.func.count()).group_by(
            jobs.c.kind, jobs.c.state
        )
        async with self._store.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return {(kind, state): count for kind, state, count in rows}

    async def replay(self, job_id: str) -> bool:
        """Send a dead job back to the queue: attempts reset, payload kept."""
        now = self._store.now()
        async with self._store.engine.begin() as conn:
            result = await conn.execute(
                sa.update(jobs)
                .where(jobs.c.id == job_id, jobs.c.state == JobState.DEAD.value)
                .values(
                    state=JobState.PENDING.value,
                    attempts=0,
                    next_attempt_at=now,
                    dead_reason=None,
                    updated_at=now,
                )
            )
            if result.rowcount == 1:
                await audit_in(conn, now, "job.replayed", None, {"job_id": job_id})
        return result.rowcount == 1
