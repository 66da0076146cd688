"""The Store: the only owner of connections and tables, for both SQLite and PostgreSQL.

Each part of the durable state has one API here (``store.jobs``, ``.polls``, ``.ledger``,
``.cursors``, ``.leases``, ``.messages``, ``.audit``, ``.keys``, ``.peers``, for the operator
console ``.accounts``, ``.reports``, and for alerting ``.alerts``); writes a step asks for are
typed commands (``commands.py``) applied in one transaction.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from .accounts import Accounts
from .alerts import Alerts
from .audit import AuditLog
from .commands import AuditRecord, Command, CursorMove, Enqueue, LedgerRecord
from .crypto import Cipher
from .cursors import Cursors
from .database import Clock, Database, utcnow
from .engine import create_engine
from .jobs import JobQueue, Queued
from .keys import Keys
from .leases import Leases
from .ledger import Ledger
from .messages import Messages
from .models import PurgeResult
from .peers import PeerLog
from .polls import Polls
from .reports import Reports
from .vocabulary import AuditEvent

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
#: the PostgreSQL advisory lock held around migrations (any fixed 64-bit number, never changed:
#: processes of two releases must wait on the same lock)
MIGRATION_LOCK = 0x7072_6F67_7265_7301
#: ``revision = "..."`` and ``down_revision = "..."`` in a migration's module
_REVISION = re.compile(r"""^(revision|down_revision)\b[^=\n]*=\s*["']([^"'\n]+)["']""", re.M)


class Store:
    """Engine, cipher and clock, and the API of each part of the state."""

    def __init__(self, engine: AsyncEngine, cipher: Cipher, clock: Clock = utcnow) -> None:
        self._db = Database(engine, cipher, clock)
        self.audit = AuditLog(self._db)
        self.ledger = Ledger(self._db)
        self.cursors = Cursors(self._db)
        self.leases = Leases(self._db)
        self.jobs = JobQueue(self._db, self.audit, self._write)
        self.keys = Keys(self._db, self.audit)
        self.messages = Messages(self._db, self.jobs, self.audit, self.keys)
        self.polls = Polls(self._db, self.jobs, self.leases, self.cursors, self.audit)
        self.accounts = Accounts(self._db, self.audit)
        self.peers = PeerLog(self._db)
        self.reports = Reports(self._db)
        self.alerts = Alerts(self._db)

    @classmethod
    async def open(
        cls, url: str, *, encryption: Cipher, clock: Clock = utcnow, pool_size: int | None = None
    ) -> Store:
        """``pool_size``: the PostgreSQL connections kept open (``create_engine``)."""
        return cls(create_engine(url, pool_size=pool_size), encryption, clock)

    async def close(self) -> None:
        await self.engine.dispose()

    @property
    def engine(self) -> AsyncEngine:
        return self._db.engine

    @property
    def cipher(self) -> Cipher:
        return self._db.cipher

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def now(self) -> datetime:
        return self._db.now()

    async def fingerprint(self, obj: object) -> str:
        """Keyed content hash (HMAC-SHA256 of canonical JSON): not guessable from the data, and
        the same before and after an encryption-key rotation."""
        return await self.keys.fingerprint(obj)

    async def apply(self, commands: Sequence[Command]) -> None:
        """Apply ``commands`` in one transaction, outside any job (operator actions, imports)."""
        async with self._db.write() as conn:
            await self._write(conn, self.now(), commands)

    async def _write(
        self,
        conn: AsyncConnection,
        now: datetime,
        commands: Sequence[Command],
        job_id: str | None = None,
    ) -> list[Queued]:
        """Apply ``commands``; ``job_id``: the job whose step asked for them (linked to the
        jobs it queues and the audit entries it writes). The jobs queued, in order."""
        queued: list[Queued] = []
        for item in commands:
            if isinstance(item, Enqueue):
                queued.append((item, await self.jobs.insert(conn, now, item, parent_id=job_id)))
            elif isinstance(item, LedgerRecord):
                await self.ledger.write(conn, now, item)
            elif isinstance(item, AuditRecord):
                await self.audit.write(conn, now, item, job_id=job_id)
            elif isinstance(item, CursorMove):
                await self.cursors.write(conn, now, item)
            else:
                raise TypeError(f"not a store command: {type(item).__name__}")
        return queued

    async def upgrade(self, revision: str = "head") -> None:
        """Apply the Alembic migrations shipped inside the package.

        Several processes starting at once on an empty PostgreSQL database would each create
        the tables (one dies on a unique violation): the upgrade holds an advisory lock for its
        transaction, so the others wait, then find the schema at its revision. SQLite's
        ``BEGIN IMMEDIATE`` already serialises them.
        """
        if revision == "head" and await self.revision() == self.head():
            # nothing to migrate: Alembic is not even imported
            return
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))

        def run(sync_conn: Any) -> None:
            config.attributes["connection"] = sync_conn
            command.upgrade(config, revision)

        async with self._db.write() as conn:
            if conn.dialect.name == "postgresql":
                await conn.execute(
                    sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK}
                )
            await conn.run_sync(run)

    async def revision(self) -> str | None:
        """The migration the database is at (None before ``upgrade``)."""
        try:
            async with self._db.read() as conn:
                value = await conn.scalar(sa.text("SELECT version_num FROM alembic_version"))
        except Exception:
            return None
        return str(value) if value is not None else None

    @staticmethod
    @functools.cache
    def head() -> str:
        """The newest migration this version of the package ships, read from the migration
        files: a database already there is opened without importing Alembic (11 MB and a
        third of a second of every command's start)."""
        revisions: set[str] = set()
        parents: set[str] = set()
        for path in (MIGRATIONS / "versions").glob("*.py"):
            text = path.read_text("utf-8")
            found = {match[1]: match[2] for match in _REVISION.finditer(text)}
            revisions.add(found["revision"])
            if "down_revision" in found:
                parents.add(found["down_revision"])
        (head,) = revisions - parents
        return head

    async def ping(self) -> bool:
        try:
            async with self._db.read() as conn:
                await conn.execute(sa.text("SELECT 1"))
        except Exception:
            return False
        return True

    async def purge(self, *, retention_days: float) -> PurgeResult:
        """Drop payloads no longer needed: done jobs at once, dead letters and inbound
        messages with no unfinished work once older than the retention period."""
        now = self.now()
        cutoff = now - timedelta(days=retention_days)
        async with self._db.write() as conn:
            result = PurgeResult(
                jobs=await self.jobs.purge_payloads(conn, cutoff),
                messages=await self.messages.purge_payloads(conn, cutoff),
            )
            if result.jobs or result.messages:
                counts = {"jobs_count": result.jobs, "messages_count": result.messages}
                record = AuditRecord(AuditEvent.PAYLOADS_PURGED, None, counts)
                await self.audit.write(conn, now, record)
        return result
