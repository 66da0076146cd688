"""Inbound messages from DTP: stored encrypted and turned into one job, in one transaction."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from .audit import AuditLog
from .commands import AuditRecord, Enqueue
from .database import Database
from .dialect import upsert_for
from .jobs import JobQueue
from .keys import Keys
from .models import UNFINISHED, InboundMessage
from .schema import inbound_messages, jobs
from .vocabulary import AuditEvent, Flow, job_kind

PAYLOAD_CONTEXT = inbound_messages.name


@functools.cache
def _insert_statement(dialect: str) -> Any:
    """Store a message unless its content is already stored; RETURNING its id if stored. Built
    once, its values given at execute time (issue 9)."""
    insert = upsert_for(dialect, inbound_messages)
    return insert.on_conflict_do_nothing(index_elements=["fingerprint"]).returning(
        inbound_messages.c.id
    )


_BY_FINGERPRINT = sa.select(inbound_messages.c.id).where(
    inbound_messages.c.fingerprint == sa.bindparam("message_fingerprint")
)


@dataclass(frozen=True)
class Receipt:
    message_id: str
    duplicate: bool
    job_id: str | None


def message_from_row(row: Any) -> InboundMessage:
    return InboundMessage(
        id=row.id,
        request_type=row.request_type,
        flow=row.flow,
        fingerprint=row.fingerprint,
        intervention_numbers=list(row.intervention_numbers),
        org_referral_ids=list(row.org_referral_ids),
        received_at=row.received_at,
        has_payload=row.payload is not None,
    )


class Messages:
    """``store.messages``: the inbox's durable side."""

    def __init__(self, db: Database, queue: JobQueue, audit: AuditLog, keys: Keys) -> None:
        self._db = db
        self._jobs = queue
        self._audit = audit
        self._keys = keys

    async def receive(
        self,
        *,
        request_type: str,
        flow: Flow,
        message: Mapping[str, Any],
        intervention_numbers: Sequence[str] = (),
        org_referral_ids: Sequence[str] = (),
    ) -> Receipt:
        """Store ``message`` and enqueue ``<flow>.receive``; the same content twice is a
        duplicate answered with the first message's id and no new work."""
        now = self._db.now()
        message_id = str(uuid.uuid4())
        fingerprint = await self._keys.fingerprint(message)
        # the peer waits for this answer: it goes before the worker's writes waiting (SQLite)
        row = {
            "id": message_id,
            "request_type": request_type,
            "flow": Flow(flow).value,
            "fingerprint": fingerprint,
            "intervention_numbers": list(intervention_numbers),
            "org_referral_ids": list(org_referral_ids),
            "received_at": now,
            "payload": self._db.cipher.encrypt(
                dict(message), context=PAYLOAD_CONTEXT, row_id=message_id
            ),
        }
        async with self._db.write(urgent=True) as conn:
            result = await conn.execute(_insert_statement(conn.dialect.name), row)
            if result.first() is None:
                first = await conn.scalar(_BY_FINGERPRINT, {"message_fingerprint": fingerprint})
                assert first is not None
                return Receipt(first, True, None)
            refs: dict[str, Any] = {
                "message_id": message_id,
                "intervention_numbers": list(intervention_numbers),
            }
            if org_referral_ids:
                refs["org_referral_ids"] = list(org_referral_ids)
            receive = Enqueue(
                job_kind(Flow(flow), "receive"),
                key=f"inbox:{message_id}",
                refs=refs,
                message_id=message_id,
            )
            job = await self._jobs.insert(conn, now, receive)
            await self._audit.write(conn, now, AuditRecord(AuditEvent.INBOX_RECEIVED, flow, refs))
        return Receipt(message_id, False, job.id)

    async def get(self, message_id: str) -> InboundMessage | None:
        async with self._db.read() as conn:
            row = (
                await conn.execute(
                    sa.select(inbound_messages).where(inbound_messages.c.id == message_id)
                )
            ).first()
        return message_from_row(row) if row else None

    async def payload(self, message_id: str) -> dict[str, Any] | None:
        """The decrypted message, or None once purged (its receive job is done)."""
        async with self._db.read() as conn:
            token = await conn.scalar(
                sa.select(inbound_messages.c.payload).where(inbound_messages.c.id == message_id)
            )
        if token is None:
            return None
        data: dict[str, Any] = self._db.cipher.decrypt(
            token, context=PAYLOAD_CONTEXT, row_id=message_id
        )
        return data

    async def list(self, *, flow: Flow | None = None, limit: int = 100) -> list[InboundMessage]:
        query = sa.select(inbound_messages).order_by(
            inbound_messages.c.received_at.desc(), inbound_messages.c.id
        )
        if flow is not None:
            query = query.where(inbound_messages.c.flow == str(flow))
        async with self._db.read() as conn:
            rows = (await conn.execute(query.limit(limit))).all()
        return [message_from_row(r) for r in rows]

    async def purge_payloads(self, conn: AsyncConnection, cutoff: datetime) -> int:
        """Drop the payloads of messages received before ``cutoff`` with no unfinished job."""
        busy = sa.select(jobs.c.id).where(
            jobs.c.message_id == inbound_messages.c.id,
            jobs.c.state.in_([s.value for s in UNFINISHED]),
        )
        result = await conn.execute(
            sa.update(inbound_messages)
            .where(
                inbound_messages.c.payload.is_not(None),
                inbound_messages.c.received_at <= cutoff,
                ~sa.exists(busy),
            )
            .values(payload=None)
        )
        return result.rowcount
