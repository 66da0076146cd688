"""``store.peers``: how each peer answered lately, one row per peer, merged from every process.

Each process reports what it saw since its last report (``PeerOutcomes``, written by
``flows.observed``); the row keeps the latest success, the latest failure (its class, reason and
kind), the failures since the latest success and ``failing_since``, the first of them. Merging
by the moments, not by the order the reports arrive in, keeps "every call has failed for ten
minutes" true across several workers. The operator console's peer panel and the peer-down
alert read these rows, so they say the same thing: a peer is failing exactly while
``failing_since`` is set, and then ``consecutive_failures`` is at least one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from .database import Database
from .dialect import upsert_insert
from .models import PeerOutcomes, PeerStatus
from .schema import peer_status

#: the reason code is cut to its column's length
_REASON_LENGTH = 64


def _later(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None or b is None:
        return a or b
    return max(a, b)


def _after(moment: datetime | None, success: datetime | None) -> bool:
    return moment is not None and (success is None or moment > success)


def merge(row: PeerStatus | None, seen: PeerOutcomes) -> dict[str, object]:
    """The row's new values once ``seen`` is added to it."""
    row = row or PeerStatus(seen.peer)
    last_success = _later(row.last_success_at, seen.succeeded_at)
    last_failure = _later(row.last_failure_at, seen.failed_at)
    kind, failure_class, reason = (
        row.last_failure_kind,
        row.last_failure_class,
        row.last_failure_reason,
    )
    if seen.failed_at is not None and seen.failed_at == last_failure:
        kind, failure_class = seen.failure, seen.failure_class
        reason = (seen.reason or "")[:_REASON_LENGTH] or None
    failing_since = None
    consecutive = 0
    if _after(last_failure, last_success):
        # the earliest failure known to come after the latest success (else the latest failure)
        row_run = _after(row.failing_since, last_success)
        seen_run = _after(seen.first_failed_at, last_success)
        after = [
            moment
            for moment, counts in (
                (row.failing_since, row_run),
                (seen.first_failed_at, seen_run),
            )
            if counts and moment is not None
        ]
        failing_since = min(after) if after else last_failure
        # failures a late success cut off are no longer known to be in a row: at least one is
        counted = (row.consecutive_failures if row_run else 0) + (
            max(seen.failures, 1) if seen_run else 0
        )
        consecutive = max(counted, 1)
    return {
        "last_success_at": last_success,
        "last_failure_at": last_failure,
        "last_failure_kind": kind,
        "last_failure_class": failure_class,
        "last_failure_reason": reason,
        "failing_since": failing_since,
        "consecutive_failures": consecutive,
    }


_COLUMNS = [field.name for field in fields(PeerStatus)]


def _status(row: sa.Row[tuple[object, ...]]) -> PeerStatus:
    values = row._mapping
    return PeerStatus(**{name: values[name] for name in _COLUMNS})


class PeerLog:
    """``store.peers``."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def record(self, seen: Sequence[PeerOutcomes]) -> None:
        """Merge what one process saw into each peer's row, in one transaction."""
        if not seen:
            return
        async with self._db.write() as conn:
            now = self._db.now()
            for outcomes in seen:
                row = await self._locked(conn, outcomes.peer, now)
                await conn.execute(
                    sa.update(peer_status)
                    .where(peer_status.c.peer == outcomes.peer)
                    .values(**merge(row, outcomes), updated_at=now)
                )

    async def _locked(self, conn: AsyncConnection, peer: str, now: datetime) -> PeerStatus:
        await conn.execute(
            upsert_insert(conn, peer_status)
            .values(peer=peer, consecutive_failures=0, updated_at=now)
            .on_conflict_do_nothing(index_elements=["peer"])
        )
        query = sa.select(peer_status).where(peer_status.c.peer == peer).with_for_update()
        return _status((await conn.execute(query)).one())

    async def all(self) -> list[PeerStatus]:
        async with self._db.read() as conn:
            rows = (await conn.execute(sa.select(peer_status).order_by(peer_status.c.peer))).all()
        return [_status(row) for row in rows]
