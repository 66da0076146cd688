"""The Store: one handle on the durable state, for both SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.ext.asyncio import AsyncEngine

from .audit import AuditLog, audit_in
from .crypto import Cipher
from .cursors import Cursors
from .engine import create_engine
from .jobs import JobQueue
from .leases import Leases
from .ledger import Ledger
from .messages import Messages
from .models import UNFINISHED, JobState, PurgeResult
from .schema import inbound_messages, jobs

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


class Store:
    """Engine, cipher and clock, plus the read/write APIs on each part of the state."""

    def __init__(self, engine: AsyncEngine, cipher: Cipher, clock: Clock = utcnow) -> None:
        self.engine = engine
        self.cipher = cipher
        self.clock = clock
        self.jobs = JobQueue(self)
        self.ledger = Ledger(self)
        self.cursors = Cursors(self)
        self.leases = Leases(self)
        self.messages = Messages(self)
        self.audit = AuditLog(self)

    @classmethod
    async def open(cls, url: str, *, encryption: Cipher, clock: Clock = utcnow) -> Store:
        return cls(create_engine(url), encryption, clock)

    async def close(self) -> None:
        await self.engine.dispose()

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def now(self) -> datetime:
        return self.clock()

    def fingerprint(self, obj: Any) -> str:
        """Keyed content hash (HMAC-SHA256 of canonical JSON): not guessable from the data."""
        return self.cipher.fingerprint(obj)

    async def load_message(self, message_id: str | None) -> dict[str, Any] | None:
        """The decrypted inbound message of a receive job (None once purged)."""
        if message_id is None:
            return None
        return await self.messages.payload(message_id)

    async def upgrade(self, revision: str = "head") -> None:
        """Apply the Alembic migrations shipped inside the package."""
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))

        def run(sync_conn: Any) -> None:
            config.attributes["connection"] = sync_conn
            command.upgrade(config, revision)

        async with self.engine.begin() as conn:
            await conn.run_sync(run)

    async def ping(self) -> bool:
        try:
            async with self.engine.connect() as conn:
                await conn.execute(sa.text("SELECT 1"))
        except Exception:
            return False
        return True

    async def purge(self, *, retention_days: float) -> PurgeResult:
        """Drop payloads no longer needed: done jobs at once, dead letters and inbound
        messages with no unfinished work once older than the retention period."""
        now = self.now()
        cutoff = now - timedelta(days=retention_days)
        async with self.engine.begin() as conn:
            done = await conn.execute(
                sa.update(jobs)
                .where(jobs.c.state == JobState.DONE.value, jobs.c.payload.is_not(None))
                .values(payload=None)
            )
            dead = await conn.execute(
                sa.update(jobs)
                .where(
                    jobs.c.state == JobState.DEAD.value,
                    jobs.c.payload.is_not(None),
                    jobs.c.updated_at <= cutoff,
                )
                .values(payload=None)
            )
            busy = sa.select(jobs.c.id).where(
                jobs.c.message_id == inbound_messages.c.id, jobs.c.state.in_(UNFINISHED)
            )
            messages = await conn.execute(
                sa.update(inbound_messages)
                .where(
                    inbound_messages.c.payload.is_not(None),
                    inbound_messages.c.received_at <= cutoff,
                    ~sa.exists(busy),
                )
                .values(payload=None)
            )
            result = PurgeResult(jobs=done.rowcount + dead.rowcount, messages=messages.rowcount)
            if result.jobs or result.messages:
                await audit_in(
                    conn,
                    now,
                    "payloads.purged",
                    None,
                    {"jobs_count": result.jobs, "messages_count": result.messages},
                )
        return result
