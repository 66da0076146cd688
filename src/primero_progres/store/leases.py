"""Named leases in the database, so one process at a time does a thing (poll a flow, write one
child's case), even with several processes on several machines.

A lease name may hold an ID the database should not (``individual:<unhcr_individual_no>``)
and any length: the row is keyed by ``<kind>:<SHA-256 of the name>``, a fixed 40 hex digits.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from ..errors import TransientError
from .database import Database
from .dialect import upsert_insert
from .schema import leases


class LeaseBusy(TransientError):
    """Someone else holds the lease: try again later."""


def lease_key(name: str) -> str:
    """The row key of a lease: its kind (before the first ``:``) in clear, then a hash."""
    kind = name.partition(":")[0][:20]
    return f"{kind}:{hashlib.sha256(name.encode()).hexdigest()[:40]}"


async def give_back(conn: AsyncConnection, names: Collection[str], owner: str) -> None:
    """Release ``names`` held by ``owner``, in the caller's transaction (a step's commit)."""
    await conn.execute(
        sa.delete(leases).where(
            leases.c.name.in_([lease_key(name) for name in names]), leases.c.owner == owner
        )
    )


class Leases:
    """``store.leases``."""

    def __init__(self, db: Database) -> None:
        self._db = db

    @asynccontextmanager
    async def hold(self, name: str, owner: str, *, ttl: float) -> AsyncIterator[None]:
        """Hold ``name`` for the block, released however the block ends (a crash lets it expire).

        Raises ``LeaseBusy`` when another owner holds it.
        """
        if not await self.acquire(name, owner, ttl=ttl):
            kind = name.partition(":")[0]
            raise LeaseBusy(f"another worker holds the {kind} lease", reason="busy")
        try:
            yield
        finally:
            await self.release(name, owner)

    async def acquire(self, name: str, owner: str, *, ttl: float) -> bool:
        """Take or renew ``name`` for ``ttl`` seconds; False if someone else holds it."""
        async with self._db.write() as conn:
            return await self.take(conn, self._db.now(), name, owner, ttl)

    async def take(
        self, conn: AsyncConnection, now: datetime, name: str, owner: str, ttl: float
    ) -> bool:
        """``acquire`` in the caller's transaction."""
        expires = now + timedelta(seconds=ttl)
        name = lease_key(name)
        updated = await conn.execute(
            sa.update(leases)
            .where(
                leases.c.name == name, sa.or_(leases.c.owner == owner, leases.c.expires_at < now)
            )
            .values(owner=owner, expires_at=expires)
        )
        if updated.rowcount == 1:
            return True
        inserted = await conn.execute(
            upsert_insert(conn, leases)
            .values(name=name, owner=owner, expires_at=expires)
            .on_conflict_do_nothing(index_elements=["name"])
            .returning(leases.c.name)
        )
        return inserted.first() is not None

    async def release(self, name: str, owner: str) -> None:
        async with self._db.write() as conn:
            await conn.execute(
                sa.delete(leases).where(leases.c.name == lease_key(name), leases.c.owner == owner)
            )

    async def holder(self, name: str) -> str | None:
        now = self._db.now()
        async with self._db.read() as conn:
            owner: str | None = await conn.scalar(
                sa.select(leases.c.owner).where(
                    leases.c.name == lease_key(name), leases.c.expires_at >= now
                )
            )
        return owner
