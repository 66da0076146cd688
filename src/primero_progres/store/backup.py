"""Online backup of the SQLite database (``primero-progres db backup PATH``).

SQLite's backup API copies the database page by page through its own
connection. Done in one step, it reads inside one read transaction: in WAL
mode that is a consistent snapshot, and writers (the inbox, running workers)
are not blocked while it runs. Copying the file with ``cp`` instead could
catch a write half done, and misses whatever still sits in the ``-wal`` file.

PostgreSQL has its own tool for this (``pg_dump``); the bridge does not try
to replace it.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

from ..errors import ConfigurationError
from .engine import SQLITE_BUSY_TIMEOUT_MS


class BackupUnsupported(ConfigurationError):
    """The configured database is not one ``db backup`` can copy (PostgreSQL, in-memory)."""


class BackupTargetExists(ConfigurationError):
    """The backup file already exists: a backup never overwrites one."""


@dataclass(frozen=True, slots=True)
class BackupResult:
    path: Path
    pages: int
    bytes: int


def sqlite_path(url: str) -> Path:
    """The database file of a ``sqlite://`` URL; a clear refusal for anything else."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "postgresql":
        raise BackupUnsupported(
            "db backup copies SQLite databases only; for PostgreSQL use pg_dump "
            "(e.g. pg_dump --format=custom --file=bridge.dump DATABASE), see docs/operate.md",
            reason="backup_postgresql",
        )
    if backend != "sqlite" or not parsed.database or parsed.database == ":memory:":
        raise BackupUnsupported(
            "db backup needs an SQLite database file (PRIMERO_PROGRES_DATABASE_URL)",
            reason="backup_unsupported_database",
        )
    return Path(parsed.database)


def backup_sqlite(url: str, destination: Path) -> BackupResult:
    """Copy the live database at ``url`` to a new file ``destination``, consistently.

    The copy is written next to the destination under a temporary name, checked
    with ``PRAGMA quick_check``, switched to a self-contained rollback journal,
    and linked into place, so a failed backup never leaves a half file under
    the requested name. The file is readable by its owner only.
    """
    source_path = sqlite_path(url)
    if not source_path.is_file():
        raise BackupUnsupported(
            f"db backup: no database file at {source_path}", reason="backup_no_database"
        )
    destination = Path(destination)
    if destination.exists():
        raise BackupTargetExists(
            f"db backup: {destination} already exists (a backup never overwrites a file)",
            reason="backup_target_exists",
        )
    partial = destination.with_name(f".{destination.name}.partial")
    partial.unlink(missing_ok=True)
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(descriptor)
    try:
        source = sqlite3.connect(source_path, timeout=SQLITE_BUSY_TIMEOUT_MS / 1000)
        try:
            target = sqlite3.connect(partial)
            try:
                # pages=-1: the whole database in one step, i.e. one read snapshot
                source.backup(target, pages=-1)
                target.execute("PRAGMA journal_mode=DELETE")
                (check,) = target.execute("PRAGMA quick_check").fetchone()
                (pages,) = target.execute("PRAGMA page_count").fetchone()
            finally:
                target.close()
        finally:
            source.close()
        if check != "ok":
            raise BackupUnsupported(
                "db backup: the copy failed its integrity check", reason="backup_corrupt"
            )
        os.link(partial, destination)  # fails rather than overwrite a file created meanwhile
    finally:
        with contextlib.suppress(OSError):
            partial.unlink()
    return BackupResult(destination, pages, destination.stat().st_size)
