"""One watermark per polling flow, written in the same transaction as the jobs it produced."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from .schema import cursors

if TYPE_CHECKING:
    from .store import Store


async def set_cursor_in(conn: AsyncConnection, now: datetime, flow: str, value: str) -> None:
    insert = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(cursors)
    stmt = insert.values(flow=flow, value=value, updated_at=now)
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["flow"], set_={"value": value, "updated_at": now}
        )
    )


class Cursors:
    """``store.cursors``."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def get(self, flow: str) -> str | None:
        async with self._store.engine.connect() as conn:
            value: str | None = await conn.scalar(
                sa.select(cursors.c.value).where(cursors.c.flow == flow)
            )
        return value

    async def all(self) -> dict[str, str]:
        async with self._store.engine.connect() as conn:
            rows = (await conn.execute(sa.select(cursors.c.flow, cursors.c.value))).all()
        return {flow: value for flow, value in rows}

    async def set(self, flow: str, value: str) -> None:
        """Operator override (e.g. rewind a watermark); flows use ``ctx.set_cursor``."""
        async with self._store.engine.begin() as conn:
            await set_cursor_in(conn, self._store.now(), flow, value)
