"""The one place that knows the two databases spell ``INSERT ... ON CONFLICT`` differently."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection


def upsert_insert(conn: AsyncConnection, table: sa.Table) -> postgresql.Insert | sqlite.Insert:
    """An INSERT into ``table`` that takes ``on_conflict_do_nothing/do_update`` on both."""
    return upsert_for(conn.dialect.name, table)


def upsert_for(dialect: str, table: sa.Table) -> postgresql.Insert | sqlite.Insert:
    """``upsert_insert`` by dialect name: for statements built once per dialect and cached,
    their values passed at execute time (building one per call costs more than running it)."""
    if dialect == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)
