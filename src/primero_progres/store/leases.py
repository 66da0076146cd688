"""Named leases in the database, so one process at a time does a thing (poll a flow, write one
child's case), even with several processes on several machines.

A lease name may hold an ID the database should not (``individual:<unhcr_individual_no>``)
and any length: the row is keyed by ``<kind>:<SHA-256 of the name>``, a fixed 40 hex digits.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from ..errors import TransientError
from .database import Database
from .dialect import upsert_for
from .schema import leases


class LeaseBusy(TransientError):
    """Someone else holds the lease: try again later."""


def lease_key(name: str) -> str:
    """The row key of a lease: its kind (before the first ``:``) in clear, then a hash."""
    kind = name.partition(":")[0][:20]
    return f"{kind}:{hashlib.sha256(name.encode()).hexdigest()[:40]}"


_GIVE_BACK = sa.delete(leases).where(
    leases.c.name.in_(sa.bindparam("names", expanding=True)),
    leases.c.owner == sa.bindparam("holder"),
)


@functools.cache
def _take_statement(dialect: str) -> Any:
    """Take a lease in one statement: insert it, or take it over if ``owner`` holds it or it
    expired; RETURNING a row only if taken. Built once (issue 9: a step's lease was two
    statements, each built per call)."""
    insert = upsert_for(dialect, leases)
    mine_or_expired = sa.or_(
        leases.c.owner == insert.excluded.owner,
        leases.c.expires_at < sa.bindparam("now", type_=leases.c.expires_at.type),
    )
    return insert.on_conflict_do_update(
        index_elements=["name"],
        set_={"owner": insert.excluded.owner, "expires_at": insert.excluded.expires_at},
        where=mine_or_expired,
    ).returning(leases.c.name)


async def give_back(conn: AsyncConnection, names: Collection[str], owner: str) -> None:
    """Release ``names`` held by ``owner``, in the caller's transaction (a step's commit)."""
    await conn.execute(_GIVE_BACK, {"names": [lease_key(name) for name in names], "holder": owner})


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
        row = {
            "name": lease_key(name),
            "owner": owner,
            "expires_at": now + timedelta(seconds=ttl),
            "now": now,
        }
        taken = await conn.execute(_take_statement(conn.dialect.name), row)
        return taken.first() is not None

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
