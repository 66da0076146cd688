"""Operator commands: db upgrade, keygen, dead-letters, replay, purge, messages."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from primero_progres.cli import app
from primero_progres.errors import PermanentError
from primero_progres.store import Cipher, StepContext, Store, generate_key
from primero_progres.worker import Worker


def test_keygen_prints_32_random_bytes() -> None:
    runner = CliRunner()
    first = runner.invoke(app, ["keygen"]).output.strip()
    second = runner.invoke(app, ["keygen"]).output.strip()
    assert len(base64.urlsafe_b64decode(first)) == 32
    assert first != second


def test_commands_refuse_without_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PRIMERO_PROGRES_ENCRYPTION_KEY", raising=False)
    result = CliRunner().invoke(app, ["purge"])
    assert result.exit_code == 2
    assert "PRIMERO_PROGRES_ENCRYPTION_KEY" in result.output


def test_dead_letters_replay_purge_and_messages(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    key = generate_key()
    url = f"sqlite:///{tmp_path / 'ops.db'}"
    monkeypatch.setenv("PRIMERO_PROGRES_ENCRYPTION_KEY", key)
    monkeypatch.setenv("PRIMERO_PROGRES_DATABASE_URL", url)
    runner = CliRunner()
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0

    async def make_dead_letter() -> str:
        store = await Store.open(url, encryption=Cipher.from_config(key))

        async def refuses(ctx: StepContext) -> None:
            raise PermanentError("primero create_case: http 422", reason="http_422")

        job_id = (await store.jobs.enqueue("toy.step", {"n": 1}, refs={"case_id": "c-1"})).id
        await Worker(store, {"toy.step": refuses}).run_until_idle()
        await store.close()
        return job_id

    job_id = asyncio.run(make_dead_letter())
    listed = runner.invoke(app, ["dead-letters"])
    row = json.loads(listed.output.strip())
    assert (row["job_id"], row["reason"]["reason"], row["refs"]) == (
        job_id,
        "http_422",
        {"case_id": "c-1"},
    )
    assert runner.invoke(app, ["replay", job_id]).exit_code == 0
    assert runner.invoke(app, ["dead-letters"]).output.strip() == ""
    assert runner.invoke(app, ["replay", job_id]).exit_code == 1
    purged = json.loads(runner.invoke(app, ["purge"]).output)
    assert purged == {"jobs_purged": 0, "messages_purged": 0}
    assert runner.invoke(app, ["messages"]).output.strip() == ""
