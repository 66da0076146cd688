"""Audit events: what happened, when, to which IDs. Keys are allow-listed IDs only."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from .commands import AuditRecord
from .database import Database
from .models import AuditEntry
from .schema import audit_events
from .vocabulary import AuditEvent, Flow


class AuditLog:
    """``store.audit``: written with the change it records, read for operator views."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def write(self, conn: AsyncConnection, at: datetime, record: AuditRecord) -> None:
        """Add an entry in the caller's transaction (the store's own writes)."""
        flow = Flow(record.flow).value if record.flow is not None else None
        await conn.execute(
            sa.insert(audit_events).values(
                at=at, event=str(record.event), flow=flow, ids=dict(record.ids)
            )
        )

    async def list(
        self, *, event: AuditEvent | str | None = None, limit: int = 100
    ) -> list[AuditEntry]:
        query = sa.select(audit_events).order_by(audit_events.c.id.desc()).limit(limit)
        if event is not None:
            query = query.where(audit_events.c.event == str(event))
        async with self._db.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [AuditEntry(r.id, r.at, r.event, r.flow, dict(r.ids)) for r in rows]
