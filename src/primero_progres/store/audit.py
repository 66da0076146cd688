"""Audit events: what happened, when, to which IDs, and which operator account did it. Keys are
allow-listed IDs only."""

from __future__ import annotations

import builtins
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from .commands import AuditRecord
from .database import Database
from .models import AuditEntry
from .schema import audit_events
from .vocabulary import AuditEvent, Flow

#: built once, its values given at execute time (issue 9)
_INSERT = sa.insert(audit_events)


def audit_entry(row: Any) -> AuditEntry:
    return AuditEntry(row.id, row.at, row.event, row.flow, dict(row.ids), row.account, row.job_id)


class AuditLog:
    """``store.audit``: written with the change it records, read for operator views."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def write(
        self,
        conn: AsyncConnection,
        at: datetime,
        record: AuditRecord,
        *,
        job_id: str | None = None,
    ) -> None:
        """Add an entry in the caller's transaction (the store's own writes); ``job_id`` is the
        job whose step wrote it."""
        flow = Flow(record.flow).value if record.flow is not None else None
        entry = {
            "at": at,
            "event": str(record.event),
            "flow": flow,
            "ids": dict(record.ids),
            "account": record.account,
            "job_id": job_id,
        }
        await conn.execute(_INSERT, entry)

    async def list(
        self,
        *,
        event: AuditEvent | str | None = None,
        account: str | None = None,
        flow: Flow | str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[AuditEntry]:
        """Newest first (by id, a stable order), filtered by event, account, flow and time."""
        query = sa.select(audit_events).order_by(audit_events.c.id.desc())
        if event is not None:
            query = query.where(audit_events.c.event == str(event))
        if account is not None:
            query = query.where(audit_events.c.account == account)
        if flow is not None:
            query = query.where(audit_events.c.flow == str(flow))
        if since is not None:
            query = query.where(audit_events.c.at >= since)
        if until is not None:
            query = query.where(audit_events.c.at < until)
        async with self._db.read() as conn:
            rows = (await conn.execute(query.limit(limit).offset(offset))).all()
        return [audit_entry(r) for r in rows]

    async def after(
        self, event: AuditEvent | str, *, after_id: int, until: datetime, limit: int = 1000
    ) -> builtins.list[AuditEntry]:
        """Entries of ``event`` past ``after_id`` written no later than ``until``, oldest first
        (a reader's cursor over the trail, as the alert check reads new dead letters)."""
        query = (
            sa.select(audit_events)
            .where(
                audit_events.c.event == str(event),
                audit_events.c.id > after_id,
                audit_events.c.at <= until,
            )
            .order_by(audit_events.c.id)
            .limit(limit)
        )
        async with self._db.read() as conn:
            rows = (await conn.execute(query)).all()
        return [audit_entry(r) for r in rows]
