"""``store.peer_health``: what the processes saw of each peer, merged in one row per peer.

Each process reports what it saw since its last report (``PeerOutcomes``); the row keeps the
latest success, the latest failure and ``failing_since``, the first failure after the latest
success, so "every call has failed for ten minutes" holds across several workers.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from .database import Database
from .dialect import upsert_insert
from .models import PeerHealth, PeerOutcomes
from .schema import peer_health


def _later(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None or b is None:
        return a or b
    return max(a, b)


def merge(row: PeerHealth | None, seen: PeerOutcomes) -> dict[str, object]:
    """The row's new values once ``seen`` is added to it."""
    last_success = _later(row.last_success_at if row else None, seen.succeeded_at)
    last_failure = _later(row.last_failure_at if row else None, seen.failed_at)
    failure = row.last_failure if row else None
    if seen.failed_at is not None and seen.failed_at == last_failure:
        failure = seen.failure
    failing_since = None
    if last_failure is not None and (last_success is None or last_failure > last_success):
        # the earliest failure known to come after the latest success (else the latest failure)
        after = [
            moment
            for moment in (row.failing_since if row else None, seen.first_failed_at)
            if moment is not None and (last_success is None or moment > last_success)
        ]
        failing_since = min(after) if after else last_failure
    return {
        "last_success_at": last_success,
        "last_failure_at": last_failure,
        "last_failure": failure,
        "failing_since": failing_since,
    }


def _health(row: sa.Row[tuple[object, ...]]) -> PeerHealth:
    mapping = row._mapping
    return PeerHealth(
        peer=mapping["peer"],
        last_success_at=mapping["last_success_at"],
        last_failure_at=mapping["last_failure_at"],
        last_failure=mapping["last_failure"],
        failing_since=mapping["failing_since"],
        updated_at=mapping["updated_at"],
    )


class PeerHealthTable:
    """``store.peer_health``."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def record(self, seen: Sequence[PeerOutcomes]) -> None:
        """Merge what one process saw into each peer's row, in one transaction."""
        if not seen:
            return
        async with self._db.engine.begin() as conn:
            now = self._db.now()
            for outcomes in seen:
                row = await self._locked(conn, outcomes.peer, now)
                await conn.execute(
                    sa.update(peer_health)
                    .where(peer_health.c.peer == outcomes.peer)
                    .values(**merge(row, outcomes), updated_at=now)
                )

    async def _locked(self, conn: AsyncConnection, peer: str, now: datetime) -> PeerHealth:
        await conn.execute(
            upsert_insert(conn, peer_health)
            .values(peer=peer, updated_at=now)
            .on_conflict_do_nothing(index_elements=["peer"])
        )
        query = sa.select(peer_health).where(peer_health.c.peer == peer).with_for_update()
        return _health((await conn.execute(query)).one())

    async def all(self) -> list[PeerHealth]:
        async with self._db.engine.connect() as conn:
            rows = (await conn.execute(sa.select(peer_health).order_by(peer_health.c.peer))).all()
        return [_health(row) for row in rows]
