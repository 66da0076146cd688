"""Named leases in the database, so one process at a time does a thing (e.g. poll a flow),
even with several processes on several machines."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from .schema import leases

if TYPE_CHECKING:
    from .store import Store


async def acquire_in(
    conn: AsyncConnection, store: Store, name: str, owner: str, seconds: float
) -> bool:
    """Take or renew ``name`` for ``owner`` unless someone else holds an unexpired lease."""
    now = store.now()
    expires = now + timedelta(seconds=seconds)
    updated = await conn.execute(
        sa.update(leases)
        .where(leases.c.name == name, sa.or_(leases.c.owner == owner, leases.c.expires_at < now))
        .values(owner=owner, expires_at=expires)
    )
    if updated.rowcount == 1:
        return True
    insert = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(leases)
    inserted = await conn.execute(
        insert.values(name=name, owner=owner, expires_at=expires)
        .on_conflict_do_nothing(index_elements=["name"])
        .returning(leases.c.name)
    )
    return inserted.first() is not None


class Leases:
    """``store.leases``."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def acquire(self, name: str, owner: str, ttl: float) -> bool:
        """Take or renew ``name`` for ``ttl`` seconds; False if someone else holds it."""
        async with self._store.engine.begin() as conn:
            return await acquire_in(conn, self._store, name, owner, ttl)

    async def release(self, name: str, owner: str) -> None:
        async with self._store.engine.begin() as conn:
            await conn.execute(
                sa.delete(leases).where(leases.c.name == name, leases.c.owner == owner)
            )

    async def holder(self, name: str) -> str | None:
        now = self._store.now()
        async with self._store.engine.connect() as conn:
            owner: str | None = await conn.scalar(
                sa.select(leases.c.owner).where(leases.c.name == name, leases.c.expires_at >= now)
            )
        return owner
