"""Engine creation for the two supported databases (psycopg; on SQLite the standard
library's ``sqlite3`` called on the event loop's thread, ``inline_sqlite.py``).

SQLite needs care (STACK.md's double-claim trap): pysqlite opens a transaction
only at the first write, so a SELECT-then-UPDATE claim races. We take control
of transactions (``isolation_level=None``) and start every one with
``BEGIN IMMEDIATE``, in WAL mode with a busy timeout, so writers queue instead
of failing; only the store's read-only connections (``Database.read``) begin a
plain deferred transaction, a snapshot that takes no lock.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import InvalidatePoolError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from ..errors import ConfigurationError
from .inline_sqlite import DRIVER as SQLITE_DRIVER
from .inline_sqlite import READ_ONLY

SQLITE_BUSY_TIMEOUT_MS = 30_000
#: a PostgreSQL connection back from the pool after this long idle is pinged first
#: (``_postgres_hooks``)
PING_AFTER_IDLE_SECONDS = 5.0


def async_url(url: str) -> str:
    """Map the configured URL onto the store's async drivers (inline sqlite3, psycopg)."""
    try:
        parsed = make_url(url)
    except Exception as exc:
        raise ConfigurationError(
            "PRIMERO_PROGRES_DATABASE_URL is not a database URL", reason="invalid_database_url"
        ) from exc
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        parsed = parsed.set(drivername=f"sqlite+{SQLITE_DRIVER}")
    elif backend == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    else:
        raise ConfigurationError(
            f"PRIMERO_PROGRES_DATABASE_URL: unsupported database {backend!r} "
            "(use sqlite or postgresql)",
            reason="invalid_database_url",
        )
    return parsed.render_as_string(hide_password=False)


def create_engine(url: str, *, pool_size: int | None = None) -> AsyncEngine:
    """The engine of ``url``; on PostgreSQL ``pool_size`` connections stay open (SQLAlchemy's
    default, 5, when None), and up to 10 more are opened, then closed, in a burst."""
    full = async_url(url)
    if full.startswith("sqlite"):
        engine = create_async_engine(full, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
        _sqlite_hooks(engine)
        return engine
    sized = {} if pool_size is None else {"pool_size": pool_size}
    engine = create_async_engine(full, **sized)
    _postgres_hooks(engine)
    return engine


def _sqlite_hooks(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        # a read-only transaction reads a snapshot (WAL) and never takes the write lock
        read_only = bool(conn.get_execution_options().get(READ_ONLY))
        conn.connection.driver_connection.begin(immediate=not read_only)


def _postgres_hooks(engine: AsyncEngine) -> None:
    """Ping a pooled connection before use only if it sat idle ``PING_AFTER_IDLE_SECONDS``.

    SQLAlchemy's ``pool_pre_ping`` pings at every checkout: a round trip per transaction,
    a tenth of a referral's. A connection back within seconds was working a moment ago;
    one idle longer may have been cut (a database restart, a firewall's idle timeout),
    so it is pinged, and if it is dead the pool is emptied and a new connection made,
    as ``pool_pre_ping`` does. A connection cut while busy or in those few seconds fails
    its transaction, which SQLAlchemy's disconnect handling also answers by emptying the
    pool: a restart costs each process at most that one transaction, retried as any
    transaction the database failed.
    """
    dialect = engine.sync_engine.dialect

    @event.listens_for(engine.sync_engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine.sync_engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.pop("idle_since", None)
        if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE_SECONDS:
            return
        try:
            dialect.do_ping(dbapi_connection)
        except dialect.loaded_dbapi.Error as exc:
            raise InvalidatePoolError("idle connection failed its ping") from exc


def is_sqlite(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "sqlite"
