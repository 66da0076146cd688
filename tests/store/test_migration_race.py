"""Several processes starting at once on an empty database all migrate it, none dies.

On PostgreSQL the upgrade holds an advisory lock: the test takes that lock itself, starts the
upgrades, sees each of them wait for it, then lets them go (without the lock they would race
on ``CREATE TABLE`` and one would die with a unique violation).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa

from primero_progres.store import Cipher, Store, generate_key
from primero_progres.store.store import MIGRATION_LOCK, MIGRATIONS

PROCESSES = 3


def _upgrades(url: str) -> list[subprocess.Popen[bytes]]:
    env = dict(
        os.environ,
        PRIMERO_PROGRES_DATABASE_URL=url,
        PRIMERO_PROGRES_ENCRYPTION_KEY=generate_key(),
    )
    command = [sys.executable, "-m", "primero_progres.cli", "db", "upgrade"]
    return [
        subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for _ in range(PROCESSES)
    ]


def _finished(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        stderr = proc.communicate(timeout=120)[1].decode(errors="replace")
        assert proc.returncode == 0, stderr[-2000:]


async def _at_head(url: str) -> None:
    store = await Store.open(url, encryption=Cipher.throwaway())
    try:
        async with store.engine.connect() as conn:
            query = sa.text("SELECT version_num FROM alembic_version")
            versions = (await conn.execute(query)).all()
            tables = await conn.run_sync(lambda sync: sa.inspect(sync).get_table_names())
        assert len(versions) == 1
        assert {"jobs", "exchanges", "leases", "cursors", "audit_events"} <= set(tables)
    finally:
        await store.close()


def _waiting_for_the_lock(dsn: str) -> int:
    """Upgrades waiting for the migration lock in this test's database: pg_locks is the whole
    server's, where other tests (other pytest-xdist workers) may wait on their own upgrades."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            " AND ((classid::bigint << 32) | objid::bigint) = %s",
            (MIGRATION_LOCK,),
        ).fetchone()
    return int(row[0]) if row else 0


@pytest.mark.postgres
async def test_concurrent_upgrades_on_an_empty_postgres_wait_for_one_another(
    postgres_url: str,
) -> None:
    dsn = postgres_url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(dsn, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
        procs = _upgrades(postgres_url)
        deadline = time.monotonic() + 90
        while _waiting_for_the_lock(dsn) < PROCESSES:
            assert all(p.poll() is None for p in procs), "an upgrade ran without the lock"
            assert time.monotonic() < deadline, "the upgrades never waited for the lock"
            time.sleep(0.1)
        holder.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))
    _finished(procs)
    await _at_head(postgres_url)


async def test_concurrent_upgrades_on_an_empty_sqlite_all_succeed(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    _finished(_upgrades(url))
    await _at_head(url)


def test_the_head_read_from_the_migration_files_is_alembics() -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    assert Store.head() == ScriptDirectory.from_config(config).get_current_head()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_database_at_its_head_is_opened_without_alembic(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Alembic (11 MB, a third of a second) is imported only when there is something to
    migrate: every command upgrades the database it opens, ``poll`` among them."""
    url = (
        f"sqlite:///{tmp_path / 'db.db'}"
        if backend == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    probe = (
        "import asyncio, sys\n"
        "from primero_progres.store import Cipher, Store\n"
        "async def main():\n"
        "    store = await Store.open(sys.argv[1], encryption=Cipher.throwaway())\n"
        "    try:\n"
        "        await store.upgrade()\n"
        "        print(await store.revision(), 'alembic' in sys.modules)\n"
        "    finally:\n"
        "        await store.close()\n"
        "asyncio.run(main())\n"
    )

    def upgrade() -> str:
        done = subprocess.run(
            [sys.executable, "-c", probe, url], capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout.strip()

    assert upgrade() == f"{Store.head()} True"
    assert upgrade() == f"{Store.head()} False"
