"""The PostgreSQL engine's pool: a connection is pinged before use only after sitting idle,
and one found dead then is replaced, not handed to a transaction."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from primero_progres.store import engine as engine_module
from primero_progres.store.engine import create_engine


@pytest.fixture
async def engine(postgres_url: str) -> AsyncIterator[AsyncEngine]:
    created = create_engine(postgres_url)
    yield created
    await created.dispose()


@pytest.fixture
def pings(engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    dialect = engine.sync_engine.dialect
    seen: list[Any] = []
    ping = dialect.do_ping

    def counted(dbapi_connection: Any) -> bool:
        seen.append(dbapi_connection)
        return ping(dbapi_connection)

    monkeypatch.setattr(dialect, "do_ping", counted)
    return seen


async def _backend_pid(engine: AsyncEngine) -> int:
    async with engine.begin() as conn:
        return int((await conn.execute(sa.text("SELECT pg_backend_pid()"))).scalar_one())


async def test_a_connection_back_soon_is_not_pinged(
    engine: AsyncEngine, pings: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine_module, "PING_AFTER_IDLE_SECONDS", 3600.0)
    pids = {await _backend_pid(engine) for _ in range(5)}
    assert len(pids) == 1  # the one pooled connection, reused
    assert pings == []


async def test_an_idle_connection_cut_meanwhile_is_replaced(
    engine: AsyncEngine, pings: list[Any], monkeypatch: pytest.MonkeyPatch, postgres_url: str
) -> None:
    monkeypatch.setattr(engine_module, "PING_AFTER_IDLE_SECONDS", 0.0)
    first = await _backend_pid(engine)
    admin = create_engine(postgres_url)
    try:
        async with admin.begin() as conn:
            await conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
    finally:
        await admin.dispose()
    second = await _backend_pid(engine)
    assert second != first
    assert len(pings) == 1
