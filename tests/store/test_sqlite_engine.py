"""The SQLite engine: its settings, its write lock taken at the transaction's start, and which
waits leave the event loop (``store/inline_sqlite.py``)."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator
from typing import Any

import pytest
import sqlalchemy as sa

from primero_progres.store import Cipher
from primero_progres.store.database import Database
from primero_progres.store.engine import SQLITE_BUSY_TIMEOUT_MS, create_engine


@pytest.fixture
async def db(sqlite_url: str) -> AsyncIterator[Database]:
    engine = create_engine(sqlite_url)

    @sa.event.listens_for(engine.sync_engine, "connect")
    def _thread_ident(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.create_function("thread_ident", 0, threading.get_ident)

    yield Database(engine, Cipher.throwaway())
    await engine.dispose()


def _file(sqlite_url: str) -> str:
    return sa.engine.make_url(sqlite_url).database or ""


async def _ticks_while(task: asyncio.Task[Any], count: int) -> int:
    """How many of ``count`` short sleeps this loop got through while ``task`` ran."""
    ticks = 0
    for _ in range(count):
        await asyncio.sleep(0.01)
        ticks += not task.done()
    return ticks


async def test_a_write_transaction_runs_with_the_stores_settings(db: Database) -> None:
    async with db.write() as conn:
        settings = [
            (await conn.exec_driver_sql(f"PRAGMA {name}")).scalar()
            for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")
        ]
    assert settings == ["wal", 2, 1, SQLITE_BUSY_TIMEOUT_MS]  # synchronous 2: FULL


async def test_a_write_transaction_holds_the_write_lock_from_its_start(
    db: Database, sqlite_url: str
) -> None:
    other = sqlite3.connect(_file(sqlite_url), timeout=0, isolation_level=None)
    try:
        async with db.write():
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")
        other.execute("BEGIN IMMEDIATE")
        other.execute("ROLLBACK")
    finally:
        other.close()


async def _writer_behind_another_process(
    db: Database, sqlite_url: str, **connect: Any
) -> tuple[sqlite3.Connection, asyncio.Task[None]]:
    """A table, another process's connection holding the write lock (``connect``: its
    options), and a write of ours to that table waiting for it."""
    async with db.write() as conn:  # the file exists, in WAL mode
        await conn.exec_driver_sql("CREATE TABLE t (n INTEGER)")
    other = sqlite3.connect(_file(sqlite_url), isolation_level=None, **connect)
    other.execute("BEGIN IMMEDIATE")

    async def write() -> None:
        async with db.write() as conn:
            await conn.exec_driver_sql("INSERT INTO t VALUES (1)")

    return other, asyncio.create_task(write())


async def test_a_writer_waiting_for_another_process_leaves_the_loop_free(
    db: Database, sqlite_url: str
) -> None:
    other, waiting = await _writer_behind_another_process(db, sqlite_url)
    assert await _ticks_while(waiting, 5) == 5
    other.execute("COMMIT")
    await waiting
    assert other.execute("SELECT n FROM t").fetchall() == [(1,)]
    other.close()


async def test_a_writer_cancelled_while_waiting_for_the_lock_leaves_no_transaction_open(
    db: Database, sqlite_url: str
) -> None:
    other, waiting = await _writer_behind_another_process(db, sqlite_url, timeout=0)
    assert await _ticks_while(waiting, 3) == 3
    waiting.cancel()
    other.execute("COMMIT")
    with pytest.raises(asyncio.CancelledError):
        await waiting
    other.execute("BEGIN IMMEDIATE")  # the cancelled writer's lock is gone
    other.execute("ROLLBACK")
    async with db.write() as conn:
        await conn.exec_driver_sql("INSERT INTO t VALUES (2)")
    assert other.execute("SELECT n FROM t").fetchall() == [(2,)]
    other.close()


async def test_reads_run_off_the_loop_and_writes_on_it(db: Database) -> None:
    loop_thread = threading.get_ident()
    async with db.write() as conn:
        assert (await conn.exec_driver_sql("SELECT thread_ident()")).scalar() == loop_thread
    async with db.read() as conn:
        rows = (await conn.exec_driver_sql("SELECT thread_ident() UNION ALL SELECT 0")).all()
    assert rows[0][0] != loop_thread
    assert rows[1] == (0,)
