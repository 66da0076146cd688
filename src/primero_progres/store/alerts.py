"""``store.alerts``: the state of each alert condition and the outbox of notifications.

The alert check decides, under the ``alerts`` lease, what to notify and writes the new states
and the notices in one transaction (``commit``); delivery then works through the outbox,
target by target, so a target that is down gets the notice at a later check and the others
do not get it twice. Everything here is IDs, codes and counts: no personal data.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime

import sqlalchemy as sa

from .database import Database
from .dialect import upsert_insert
from .models import AlertNotice, AlertState, OutboxEntry
from .schema import alert_outbox, alert_state


class Alerts:
    """``store.alerts``."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def states(self) -> dict[str, AlertState]:
        async with self._db.read() as conn:
            rows = (await conn.execute(sa.select(alert_state))).all()
        return {
            row.key: AlertState(
                row.key, row.event, bool(row.active), row.since, row.notified_at, dict(row.data)
            )
            for row in rows
        }

    async def commit(
        self,
        states: Sequence[AlertState],
        notices: Sequence[AlertNotice],
        *,
        targets: Collection[str],
    ) -> None:
        """Save ``states`` and queue each notice for every target (by fingerprint), together."""
        async with self._db.write() as conn:
            now = self._db.now()
            for state in states:
                values = {
                    "event": state.event,
                    "active": state.active,
                    "since": state.since,
                    "notified_at": state.notified_at,
                    "data": dict(state.data),
                    "updated_at": now,
                }
                await conn.execute(
                    upsert_insert(conn, alert_state)
                    .values(key=state.key, **values)
                    .on_conflict_do_update(index_elements=["key"], set_=values)
                )
            if notices and targets:
                await conn.execute(
                    sa.insert(alert_outbox),
                    [
                        {
                            "key": notice.key,
                            "event": notice.event,
                            "severity": notice.severity,
                            "title": notice.title,
                            "body": notice.body,
                            "pending": sorted(targets),
                            "attempts": 0,
                            "created_at": now,
                        }
                        for notice in notices
                    ],
                )

    async def outbox(self, *, limit: int = 100) -> list[OutboxEntry]:
        """Notices still pending for some target, oldest first."""
        query = sa.select(alert_outbox).order_by(alert_outbox.c.id).limit(limit)
        async with self._db.read() as conn:
            rows = (await conn.execute(query)).all()
        return [
            OutboxEntry(
                id=row.id,
                notice=AlertNotice(row.key, row.event, row.severity, row.title, row.body),
                pending=list(row.pending),
                attempts=row.attempts,
                created_at=row.created_at,
            )
            for row in rows
        ]

    async def attempted(
        self, entry_id: int, *, pending: Collection[str], at: datetime | None = None
    ) -> None:
        """Record a delivery round: the targets still ``pending`` (none: the entry is done)."""
        async with self._db.write() as conn:
            where = alert_outbox.c.id == entry_id
            if not pending:
                await conn.execute(sa.delete(alert_outbox).where(where))
                return
            await conn.execute(
                sa.update(alert_outbox)
                .where(where)
                .values(
                    pending=sorted(pending),
                    attempts=alert_outbox.c.attempts + 1,
                    attempted_at=at or self._db.now(),
                )
            )
