"""The ledger of exchanges: one row per referral crossing the bridge, keyed by IDs only,
with its history of events. It is what makes every delivery idempotent."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from .. import FLOWS
from .models import Exchange, ExchangeEvent
from .safe import safe_ids
from .schema import ID_COLUMNS, exchange_events, exchanges

if TYPE_CHECKING:
    from .store import Store


def check_ids(ids: Mapping[str, Any]) -> dict[str, str]:
    """The ID columns among ``ids`` (reads: anything else is a programming error)."""
    unknown = set(ids) - set(ID_COLUMNS)
    if unknown:
        raise ValueError(f"ledger: unknown ID column(s) {sorted(unknown)}")
    return {name: str(value) for name, value in ids.items() if value is not None}


def split_ids(ids: Mapping[str, Any]) -> tuple[dict[str, str], dict[str, Any]]:
    """Writes: ID columns go to the exchange row, other keys to the event detail."""
    columns = {k: v for k, v in ids.items() if k in ID_COLUMNS}
    extra = {k: v for k, v in ids.items() if k not in ID_COLUMNS}
    return check_ids(columns), extra


async def record_in(
    conn: AsyncConnection,
    now: datetime,
    flow: str,
    key: str,
    *,
    state: str | None = None,
    event: str | None = None,
    direction: str | None = None,
    detail: Mapping[str, Any] | None = None,
    fingerprint: str | None = None,
    ids: Mapping[str, Any] | None = None,
) -> str:
    """Upsert the exchange ``(flow, key)`` and append ``event`` to its history."""
    if flow not in FLOWS:
        raise ValueError(f"ledger: unknown flow {flow!r}")
    id_values = check_ids(ids or {})
    safe_detail = safe_ids(detail or {}, what="ledger event detail")
    row = (
        await conn.execute(
            sa.select(exchanges.c.id).where(exchanges.c.flow == flow, exchanges.c.key == key)
        )
    ).first()
    changes: dict[str, Any] = dict(id_values, updated_at=now)
    if state is not None:
        changes["state"] = state
    if fingerprint is not None:
        changes["content_fingerprint"] = fingerprint
    if row is None:
        exchange_id = str(uuid.uuid4())
        changes.setdefault("state", event or "received")
        await conn.execute(
            sa.insert(exchanges).values(
                id=exchange_id, flow=flow, key=key, created_at=now, **changes
            )
        )
    else:
        exchange_id = row.id
        await conn.execute(
            sa.update(exchanges).where(exchanges.c.id == exchange_id).values(**changes)
        )
    if event is not None or state is not None:
        await conn.execute(
            sa.insert(exchange_events).values(
                exchange_id=exchange_id,
                at=now,
                event=event or state,
                direction=direction,
                detail=safe_detail,
            )
        )
    return exchange_id


def _exchange(row: Any) -> Exchange:
    return Exchange(**{c.name: getattr(row, c.name) for c in exchanges.c})


class Ledger:
    """``store.ledger``: reads for handlers and operator views (writes go through a job)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def get(self, flow: str, key: str) -> Exchange | None:
        async with self._store.engine.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(exchanges).where(exchanges.c.flow == flow, exchanges.c.key == key)
                )
            ).first()
        return _exchange(row) if row else None

    async def find(self, flow: str | None = None, **ids: Any) -> list[Exchange]:
        id_values = check_ids(ids)
        query = sa.select(exchanges).order_by(exchanges.c.created_at, exchanges.c.id)
        if flow is not None:
            query = query.where(exchanges.c.flow == flow)
        for name, value in id_values.items():
            query = query.where(exchanges.c[name] == value)
        async with self._store.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [_exchange(r) for r in rows]

    async def list(
        self,
        *,
        flow: str | None = None,
        state: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[Exchange]:
        query = sa.select(exchanges).order_by(exchanges.c.updated_at.desc(), exchanges.c.id)
        if flow is not None:
            query = query.where(exchanges.c.flow == flow)
        if state is not None:
            query = query.where(exchanges.c.state == state)
        async with self._store.engine.connect() as conn:
            rows = (await conn.execute(query.limit(limit).offset(offset))).all()
        return [_exchange(r) for r in rows]

    async def events(self, exchange_id: str) -> list[ExchangeEvent]:
        query = (
            sa.select(exchange_events)
            .where(exchange_events.c.exchange_id == exchange_id)
            .order_by(exchange_events.c.id)
        )
        async with self._store.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [
            ExchangeEvent(r.id, r.exchange_id, r.at, r.event, r.direction, dict(r.detail))
            for r in rows
        ]
