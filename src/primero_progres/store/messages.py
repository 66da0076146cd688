"""Inbound messages from DTP: stored encrypted and turned into one job, in one transaction."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from .audit import audit_in
from .jobs import enqueue_in
from .models import InboundMessage
from .schema import inbound_messages

if TYPE_CHECKING:
    from .store import Store

PAYLOAD_CONTEXT = "inbound_messages"


@dataclass(frozen=True)
class Receipt:
    message_id: str
    duplicate: bool
    job_id: str | None


def _message(row: Any) -> InboundMessage:
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
    """``store.messages``."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def receive(
        self,
        *,
        request_type: str,
        flow: str,
        message: Mapping[str, Any],
        intervention_numbers: Sequence[str] = (),
        org_referral_ids: Sequence[str] = (),
    ) -> Receipt:
        """Store ``message`` and enqueue ``<flow>.receive``; the same content twice is a
        duplicate answered with the first message's id and no new work."""
        store = self._store
        now = store.now()
        message_id = str(uuid.uuid4())
        fingerprint = store.fingerprint(message)
        async with store.engine.begin() as conn:
            insert = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(
                inbound_messages
            )
            result = await conn.execute(
                insert.values(
                    id=message_id,
                    request_type=request_type,
                    flow=flow,
                    fingerprint=fingerprint,
                    intervention_numbers=list(intervention_numbers),
                    org_referral_ids=list(org_referral_ids),
                    received_at=now,
                    payload=store.cipher.encrypt(
                        dict(message), context=PAYLOAD_CONTEXT, row_id=message_id
                    ),
                )
                .on_conflict_do_nothing(index_elements=["fingerprint"])
                .returning(inbound_messages.c.id)
            )
            if result.first() is None:
                first = await conn.scalar(
                    sa.select(inbound_messages.c.id).where(
                        inbound_messages.c.fingerprint == fingerprint
                    )
                )
                assert first is not None
                return Receipt(first, True, None)
            refs = {"message_id": message_id, "intervention_numbers": list(intervention_numbers)}
            if org_referral_ids:
                refs["org_referral_ids"] = list(org_referral_ids)
            job = await enqueue_in(
                conn,
                store,
                f"{flow}.receive",
                None,
                key=f"inbox:{message_id}",
                refs=refs,
                message_id=message_id,
            )
            await audit_in(conn, now, "inbox.received", flow, refs)
        return Receipt(message_id, False, job.id)

    async def get(self, message_id: str) -> InboundMessage | None:
        async with self._store.engine.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(inbound_messages).where(inbound_messages.c.id == message_id)
                )
            ).first()
        return _message(row) if row else None

    async def payload(self, message_id: str) -> dict[str, Any] | None:
        """The decrypted message, or None once purged (its receive job is done)."""
        async with self._store.engine.connect() as conn:
            token = await conn.scalar(
                sa.select(inbound_messages.c.payload).where(inbound_messages.c.id == message_id)
            )
        if token is None:
            return None
        data: dict[str, Any] = self._store.cipher.decrypt(
            token, context=PAYLOAD_CONTEXT, row_id=message_id
        )
        return data

    async def list(self, *, flow: str | None = None, limit: int = 100) -> list[InboundMessage]:
        query = sa.select(inbound_messages).order_by(
            inbound_messages.c.received_at.desc(), inbound_messages.c.id
        )
        if flow is not None:
            query = query.where(inbound_messages.c.flow == flow)
        async with self._store.engine.connect() as conn:
            rows = (await conn.execute(query.limit(limit))).all()
        return [_message(r) for r in rows]
