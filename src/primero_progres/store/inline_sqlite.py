"""The SQLite driver of the store's engine: the standard library's ``sqlite3``, called on the
event loop's own thread.

aiosqlite runs each connection on a thread of its own and hands every call over to it (a
queue, a thread wake-up, a future set back through the loop's self-pipe): three to four
hand-offs per statement, which cost a referral more CPU than SQLite's work and SQLAlchemy's
together. Called in place, a statement costs none and holds the loop no longer than SQLite
works on it, and ``sqlite3`` lets the process's other threads (``serve``'s inbox or worker)
run meanwhile. A write transaction waits for this process's other writers on the
``WriteGate`` before it begins, and holds the write lock from ``BEGIN IMMEDIATE`` on, so its
statements wait for nothing. What may wait goes off the loop, one hand-off each:
``BEGIN IMMEDIATE`` when another process holds the write lock, the ``COMMIT`` (its fsync,
``synchronous=FULL``, and the WAL checkpoints), and each statement of a read-only
transaction (``Database.read``: a console report may read long).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections import deque
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar, cast

from sqlalchemy import pool
from sqlalchemy.dialects import registry
from sqlalchemy.dialects.sqlite.base import SQLiteExecutionContext
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite
from sqlalchemy.engine import URL
from sqlalchemy.util.concurrency import await_, in_greenlet

#: the driver name of the URLs this dialect serves (``sqlite+primero_inline:///path``)
DRIVER = "primero_inline"
#: the execution option of the store's read-only connections (``Database.read``)
READ_ONLY = "primero_progres_read_only"

T = TypeVar("T")


class InlineCursor(sqlite3.Cursor):
    async def _async_soft_close(self) -> None:
        """SQLAlchemy's async results close an async driver's cursor here once executed; this
        one's rows are read in place, like its statements: it stays open until read."""


class ReadingCursor(InlineCursor):
    """The cursor of a read-only transaction: a read may be long (the console's reports), so
    each statement runs off the loop, its rows read there at once."""

    _rows: deque[Any]

    def execute(self, sql: str, parameters: Any = (), /) -> ReadingCursor:
        connection = cast(InlineConnection, self.connection)
        self._rows = connection.off_loop(partial(self._read, sql, parameters))
        return self

    def _read(self, sql: str, parameters: Any) -> deque[Any]:
        super().execute(sql, parameters)
        return deque(super().fetchall())

    def fetchone(self) -> Any:
        return self._rows.popleft() if self._rows else None

    def fetchmany(self, size: int | None = None) -> list[Any]:
        count = min(self.arraysize if size is None else size, len(self._rows))
        return [self._rows.popleft() for _ in range(count)]

    def fetchall(self) -> list[Any]:
        rows = list(self._rows)
        self._rows.clear()
        return rows


class InlineConnection(sqlite3.Connection):
    """A ``sqlite3`` connection that leaves the loop only where SQLite may wait (the disk,
    another process) or read long."""

    busy_timeout_ms = 0
    reading = False

    def cursor(self, factory: Any = InlineCursor) -> Any:
        return super().cursor(factory)

    def begin(self, *, immediate: bool) -> None:
        """Open the transaction; ``immediate``: take the write lock now, waiting off the loop
        (up to the busy timeout) if another process holds it; else a read-only one."""
        self.reading = not immediate
        if self.reading:
            self.execute("BEGIN")  # takes no lock yet: the first read does, off the loop
            return
        self.execute("PRAGMA busy_timeout=0")
        try:
            self.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY:
                raise
        else:
            return
        finally:
            self.execute(f"PRAGMA busy_timeout={self.busy_timeout_ms}")
        self.off_loop(partial(sqlite3.Connection.execute, self, "BEGIN IMMEDIATE"))

    def commit(self) -> None:
        if self.in_transaction and not self.reading:
            self.off_loop(partial(sqlite3.Connection.commit, self))
        else:
            super().commit()
        self.reading = False

    def rollback(self) -> None:
        super().rollback()
        self.reading = False

    def off_loop(self, call: Callable[[], T]) -> T:
        """``call()``, on the loop's executor when called from the loop."""
        if not in_greenlet():  # a sync caller (the pool's clean-up): no loop to keep free
            return call()
        return await_(_to_thread(call))


async def _to_thread(call: Callable[[], T]) -> T:
    """Run ``call`` on the loop's executor; if cancelled meanwhile, still wait for it to end
    before raising, so the connection is never used by two threads at once."""
    future = asyncio.get_running_loop().run_in_executor(None, call)
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        while not future.done():
            try:
                await asyncio.shield(future)
            except asyncio.CancelledError:
                continue
            except Exception:
                break
        raise


async def _done() -> None:
    return None


def _resume() -> None:
    """Pass through the loop's side of the greenlet once, awaiting nothing: SQLAlchemy's
    ``AsyncConnection`` checks that a statement went through an await (no loop iteration, no
    thread: the coroutine is already done)."""
    if in_greenlet():
        await_(_done())


class InlineExecutionContext(SQLiteExecutionContext):
    def create_default_cursor(self) -> Any:
        read_only = self.execution_options.get(READ_ONLY)
        return self._dbapi_connection.cursor(ReadingCursor if read_only else InlineCursor)


class InlineSQLiteDialect(SQLiteDialect_pysqlite):
    """pysqlite as an asyncio dialect: SQLAlchemy's async engine runs its sync core in a
    greenlet, and with a driver that never awaits, a statement is one plain call."""

    driver = DRIVER
    is_async = True
    supports_statement_cache = True
    execution_ctx_cls = InlineExecutionContext

    @classmethod
    def get_pool_class(cls, url: URL) -> type[pool.Pool]:
        if cls._is_url_file_db(url):
            return pool.AsyncAdaptedQueuePool
        return pool.StaticPool

    def do_execute(self, cursor: Any, statement: Any, parameters: Any, context: Any = None) -> None:
        cursor.execute(statement, parameters)
        _resume()

    def do_execute_no_params(self, cursor: Any, statement: Any, context: Any = None) -> None:
        cursor.execute(statement)
        _resume()

    def do_executemany(
        self, cursor: Any, statement: Any, parameters: Any, context: Any = None
    ) -> None:
        cursor.executemany(statement, parameters)
        _resume()

    def connect(self, *cargs: Any, **cparams: Any) -> Any:
        connection = super().connect(*cargs, factory=InlineConnection, **cparams)
        connection.busy_timeout_ms = int(1000 * cparams.get("timeout", 5.0))
        return connection


registry.register(f"sqlite.{DRIVER}", __name__, "InlineSQLiteDialect")
