"""The ledger of exchanges: one row per referral or decision crossing the bridge, keyed by IDs
only, with its history of events. It is what makes every delivery idempotent."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Collection
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from .commands import LedgerRecord
from .database import Database
from .dialect import upsert_for
from .models import Exchange, ExchangeEvent
from .schema import ID_COLUMNS, exchange_events, exchanges
from .sizes import fit_id, fit_key
from .vocabulary import DECISION_KEY_SEPARATOR, REFUSED_STATES, Flow


@functools.lru_cache(maxsize=8)
def _waiting_query(statuses: tuple[str, ...]) -> sa.Select[str]:
    """The query of ``cases_waiting_for_decision``, built once per profile: a poll asks it a
    page at a time, and building statements per page leaves garbage that grows with pages."""
    delivered = exchanges.alias("delivered")
    decided = exchanges.alias("decided")
    open_status = [
        ~sa.exists().where(
            decided.c.flow == Flow.PRIMERO_DECISION.value,
            # decision_key(service_unique_id, status), spelled in SQL
            decided.c.key == delivered.c.service_unique_id.concat(DECISION_KEY_SEPARATOR + status),
        )
        for status in statuses
    ]
    # The flow test is wrapped so that no index on ``flow`` serves it: the database then walks
    # the ``case_record_id`` index from ``after`` and stops after a page, instead of reading
    # every flow-1 row for each page (SQLite: 7x faster at 100,000 rows; bench/flow2_poll.py).
    flow_1 = sa.func.coalesce(delivered.c.flow, "") == Flow.PROGRES_REFERRAL.value
    return (
        sa.select(delivered.c.case_record_id)
        .where(
            flow_1,
            delivered.c.case_record_id > sa.bindparam("after", type_=sa.String),
            delivered.c.state.not_in([s.value for s in REFUSED_STATES]),
            sa.or_(*open_status),
        )
        .distinct()
        .order_by(delivered.c.case_record_id)
        .limit(sa.bindparam("limit", type_=sa.Integer))
    )


@functools.lru_cache(maxsize=64)
def _upsert_statement(dialect: str, changed: tuple[str, ...]) -> Any:
    """Insert the exchange, or update its ``changed`` columns; RETURNING its id. One statement
    built once per set of columns, where a select then an insert or update was two, each
    built per call (issue 9)."""
    insert = upsert_for(dialect, exchanges)
    return insert.on_conflict_do_update(
        index_elements=["flow", "key"], set_={name: insert.excluded[name] for name in changed}
    ).returning(exchanges.c.id)


_INSERT_EVENT = sa.insert(exchange_events)


def _id_filters(ids: dict[str, Any]) -> list[sa.ColumnElement[bool]]:
    unknown = set(ids) - set(ID_COLUMNS)
    if unknown:
        raise ValueError(f"ledger: unknown ID column(s) {sorted(unknown)}")
    return [
        exchanges.c[name] == fit_id(str(value)) for name, value in ids.items() if value is not None
    ]


def _exchange(row: Any) -> Exchange:
    return Exchange(**{c.name: getattr(row, c.name) for c in exchanges.c})


class Ledger:
    """``store.ledger``: reads for flows and operator views; written by ``LedgerRecord``
    commands."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def get(self, flow: Flow, key: str) -> Exchange | None:
        query = sa.select(exchanges).where(
            exchanges.c.flow == str(flow), exchanges.c.key == fit_key(key)
        )
        async with self._db.read() as conn:
            row = (await conn.execute(query)).first()
        return _exchange(row) if row else None

    async def find(self, flow: Flow | None = None, **ids: Any) -> list[Exchange]:
        """Exchanges whose ID columns equal ``ids`` (``case_id=...``), oldest first."""
        query = sa.select(exchanges).where(*_id_filters(ids))
        if flow is not None:
            query = query.where(exchanges.c.flow == str(flow))
        query = query.order_by(exchanges.c.created_at, exchanges.c.id)
        async with self._db.read() as conn:
            rows = (await conn.execute(query)).all()
        return [_exchange(r) for r in rows]

    async def events(self, exchange_id: str) -> list[ExchangeEvent]:
        query = (
            sa.select(exchange_events)
            .where(exchange_events.c.exchange_id == exchange_id)
            .order_by(exchange_events.c.id)
        )
        async with self._db.read() as conn:
            rows = (await conn.execute(query)).all()
        return [
            ExchangeEvent(r.id, r.exchange_id, r.at, r.event, r.direction, dict(r.detail))
            for r in rows
        ]

    async def cases_waiting_for_decision(
        self, statuses: Collection[str], *, after: str | None = None, limit: int
    ) -> list[str]:
        """Primero record ids of cases holding a delivered proGres referral that can still send
        a decision, in id order, the page after ``after`` (``limit`` at most).

        One decision goes out per (service, status), so a service stays watched until a flow-2
        exchange exists for every one of ``statuses``: an accepted referral later rejected must
        still send its rejection. Only ids leave the database, so a poll's memory does not grow
        with the ledger.
        """
        if not statuses:
            return []
        query = _waiting_query(tuple(sorted(statuses)))
        async with self._db.read() as conn:
            ids = await conn.scalars(query, {"after": after or "", "limit": limit})
            return list(ids.all())

    async def write(self, conn: AsyncConnection, at: datetime, record: LedgerRecord) -> str:
        """Apply ``record`` in the caller's transaction; the exchange id."""
        changes: dict[str, Any] = dict(record.ids, updated_at=at, state=str(record.state))
        if record.fingerprint is not None:
            changes["content_fingerprint"] = record.fingerprint
        row = {"id": str(uuid.uuid4()), "flow": Flow(record.flow).value, "key": record.key}
        upsert = _upsert_statement(conn.dialect.name, tuple(sorted(changes)))
        exchange_id: str = (
            await conn.execute(upsert, {**row, "created_at": at, **changes})
        ).scalar_one()
        event = {
            "exchange_id": exchange_id,
            "at": at,
            "event": str(record.event or record.state),
            "direction": record.direction,
            "detail": dict(record.detail),
        }
        await conn.execute(_INSERT_EVENT, event)
        return exchange_id

    # last: a method named ``list`` would shadow the builtin in the annotations below it
    async def list(
        self,
        *,
        flow: Flow | None = None,
        state: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[Exchange]:
        query = sa.select(exchanges).order_by(exchanges.c.updated_at.desc(), exchanges.c.id)
        if flow is not None:
            query = query.where(exchanges.c.flow == str(flow))
        if state is not None:
            query = query.where(exchanges.c.state == str(state))
        async with self._db.read() as conn:
            rows = (await conn.execute(query.limit(limit).offset(offset))).all()
        return [_exchange(r) for r in rows]
