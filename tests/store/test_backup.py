"""``primero-progres db backup PATH``: a consistent SQLite copy taken while the bridge writes."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sqlite3
import stat
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from primero_progres.cli import app
from primero_progres.store import Cipher, Store, generate_key


def _env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRIMERO_PROGRES_")}
    env.update(values)
    return env


def _message(n: int) -> dict[str, object]:
    return {
        "request_type": "PrimeroOutgoingReferral",
        "interventions": [{"progres_interventionnumber": f"BAK-26-PRTITV-{n:07d}"}],
    }


async def test_backup_while_the_inbox_writes_is_consistent_and_readable(tmp_path: Path) -> None:
    key = generate_key()
    url = f"sqlite:///{tmp_path / 'live.db'}"
    store = await Store.open(url, encryption=Cipher.from_config(key))
    await store.upgrade()
    written = 0

    async def receive_one() -> None:
        nonlocal written
        await store.messages.receive(
            request_type="PrimeroOutgoingReferral",
            flow="progres-referral",
            message=_message(written),
            intervention_numbers=[f"BAK-26-PRTITV-{written:07d}"],
        )
        written += 1

    try:
        for _ in range(20):
            await receive_one()
        before_backup = written
        backup = tmp_path / "backups" / "bridge.db"
        backup.parent.mkdir()
        command = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "primero_progres.cli", "db", "backup", str(backup),
            cwd=tmp_path,
            env=_env(PRIMERO_PROGRES_DATABASE_URL=url),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        finished = asyncio.ensure_future(command.communicate())
        while not finished.done():  # keep writing until the backup command has ended
            await receive_one()
        out, err = finished.result()
        assert command.returncode == 0, err.decode()
        for _ in range(5):
            await receive_one()
    finally:
        await store.close()

    report = json.loads(out)
    assert report["backup"] == str(backup) and report["bytes"] == backup.stat().st_size > 0
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600
    assert not list(backup.parent.glob(".*partial*"))

    # the copy stands alone: no -wal/-shm beside it, moved elsewhere, it opens and holds the data
    alone = tmp_path / "restored" / "bridge.db"
    alone.parent.mkdir()
    shutil.copy(backup, alone)
    with sqlite3.connect(alone) as raw:
        assert raw.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert raw.execute("PRAGMA journal_mode").fetchone() == ("delete",)
    restored = await Store.open(f"sqlite:///{alone}", encryption=Cipher.from_config(key))
    try:
        messages = await restored.messages.list(limit=10_000)
        jobs = await restored.jobs.list(limit=10_000)
        # taken while writing: everything received before it started, not what came after it
        assert before_backup <= len(messages) < written
        # one snapshot: each message arrived with its job in one transaction, and both are there
        assert {j.message_id for j in jobs} == {m.id for m in messages}
        oldest = min(messages, key=lambda m: m.intervention_numbers[0])
        assert oldest.intervention_numbers == ["BAK-26-PRTITV-0000000"]
        assert await restored.messages.payload(oldest.id) == _message(0)
    finally:
        await restored.close()


def test_backup_refuses_postgresql_and_points_to_pg_dump(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PRIMERO_PROGRES_DATABASE_URL", "postgresql+psycopg://bridge@db/bridge")
    result = CliRunner().invoke(app, ["db", "backup", str(tmp_path / "b.db")])
    assert result.exit_code == 2
    assert "pg_dump" in result.output
    assert not (tmp_path / "b.db").exists()


def test_backup_never_overwrites_and_needs_a_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PRIMERO_PROGRES_DATABASE_URL", f"sqlite:///{tmp_path / 'absent.db'}")
    runner = CliRunner()
    missing = runner.invoke(app, ["db", "backup", str(tmp_path / "b.db")])
    assert missing.exit_code == 2
    assert "no database file" in missing.output

    live = tmp_path / "live.db"
    sqlite3.connect(live).close()
    monkeypatch.setenv("PRIMERO_PROGRES_DATABASE_URL", f"sqlite:///{live}")
    monkeypatch.setenv("PRIMERO_PROGRES_ENCRYPTION_KEY", generate_key())
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    existing = tmp_path / "b.db"
    existing.write_bytes(b"an older backup")
    refused = runner.invoke(app, ["db", "backup", str(existing)])
    assert refused.exit_code == 2
    assert "already exists" in refused.output
    assert existing.read_bytes() == b"an older backup"
