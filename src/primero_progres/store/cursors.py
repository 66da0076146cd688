"""One watermark per polling flow, written in the same transaction as the jobs it produced."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from .commands import CursorMove
from .database import Database
from .dialect import upsert_insert
from .schema import cursors
from .vocabulary import Flow


class Cursors:
    """``store.cursors``: read here, moved by a ``CursorMove`` command (a step's, or
    ``store.apply`` for an operator's)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def get(self, flow: Flow) -> str | None:
        async with self._db.read() as conn:
            value: str | None = await conn.scalar(
                sa.select(cursors.c.value).where(cursors.c.flow == str(flow))
            )
        return value

    async def all(self) -> dict[str, str]:
        async with self._db.read() as conn:
            rows = (await conn.execute(sa.select(cursors.c.flow, cursors.c.value))).all()
        return {flow: value for flow, value in rows}

    async def write(self, conn: AsyncConnection, at: datetime, move: CursorMove) -> None:
        flow = Flow(move.flow).value
        stmt = upsert_insert(conn, cursors).values(flow=flow, value=move.value, updated_at=at)
        await conn.execute(
            stmt.on_conflict_do_update(
                index_elements=["flow"], set_={"value": move.value, "updated_at": at}
            )
        )
