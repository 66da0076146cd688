"""Audit events: what happened, when, to which IDs. Keys are allow-listed IDs only."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from .models import AuditEvent
from .safe import safe_ids
from .schema import audit_events

if TYPE_CHECKING:
    from .store import Store


async def audit_in(
    conn: AsyncConnection, at: datetime, event: str, flow: str | None, ids: Mapping[str, Any]
) -> None:
    await conn.execute(
        sa.insert(audit_events).values(
            at=at, event=event, flow=flow, ids=safe_ids(ids, what="audit event")
        )
    )


class AuditLog:
    """``store.audit``: write outside a job, read for operator views."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def record(self, event: str, *, flow: str | None = None, **ids: Any) -> None:
        async with self._store.engine.begin() as conn:
            await audit_in(conn, self._store.now(), event, flow, ids)

    async def list(self, *, event: str | None = None, limit: int = 100) -> list[AuditEvent]:
        query = sa.select(audit_events).order_by(audit_events.c.id.desc()).limit(limit)
        if event is not None:
            query = query.where(audit_events.c.event == event)
        async with self._store.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [AuditEvent(r.id, r.at, r.event, r.flow, dict(r.ids)) for r in rows]
