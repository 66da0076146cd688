"""Operator commands: db upgrade, keygen, dead-letters, queue, replay, purge, messages."""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from primero_progres.cli import app
from primero_progres.errors import PermanentError
from primero_progres.store import Cipher, StepContext, Store, generate_key
from primero_progres.worker import Worker


async def make_dead_letter(url: str, ring: str) -> str:
    """A toy job with payload ``{"n": 1}`` that Primero refused (http_422): a dead letter."""
    store = await Store.open(url, encryption=Cipher.from_config(ring))

    async def refuses(ctx: StepContext) -> None:
        raise PermanentError("primero create_case: http 422", reason="http_422")

    job_id = (await store.jobs.enqueue("toy.step", {"n": 1}, refs={"case_id": "c-1"})).id
    await Worker(store, {"toy.step": refuses}).run_until_idle()
    await store.close()
    return job_id


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

    job_id = asyncio.run(make_dead_letter(url, key))
    assert json.loads(runner.invoke(app, ["queue"]).output) == {
        "kind": "toy.step", "state": "dead", "count": 1
    }
    listed = runner.invoke(app, ["dead-letters"])
    row = json.loads(listed.output.strip())
    assert (row["job_id"], row["reason"]["reason"], row["refs"]) == (
        job_id,
        "http_422",
        {"case_id": "c-1"},
    )
    assert runner.invoke(app, ["replay", job_id]).exit_code == 0
    assert runner.invoke(app, ["dead-letters"]).output.strip() == ""
    assert json.loads(runner.invoke(app, ["queue"]).output) == {
        "kind": "toy.step", "state": "pending", "count": 1
    }
    assert runner.invoke(app, ["replay", job_id]).exit_code == 1
    purged = json.loads(runner.invoke(app, ["purge"]).output)
    assert purged == {"jobs_purged": 0, "messages_purged": 0}
    assert runner.invoke(app, ["messages"]).output.strip() == ""


def test_rotate_key_check_rotate_and_retire_the_old_key(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    old, new = generate_key(), generate_key()
    url = f"sqlite:///{tmp_path / 'ops.db'}"
    monkeypatch.setenv("PRIMERO_PROGRES_DATABASE_URL", url)
    monkeypatch.setenv("PRIMERO_PROGRES_ENCRYPTION_KEY", f"k1:{old}")
    runner = CliRunner()
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0

    job_id = asyncio.run(make_dead_letter(url, f"k1:{old}"))
    only_old = runner.invoke(app, ["rotate-key", "--check"])
    assert only_old.exit_code == 1, "the fingerprint key is not stored yet"
    assert "not stored yet" in only_old.stderr

    monkeypatch.setenv("PRIMERO_PROGRES_ENCRYPTION_KEY", f"k2:{new},k1:{old}")
    before = runner.invoke(app, ["rotate-key", "--check"])
    assert before.exit_code == 1
    counts = json.loads(before.stdout)
    assert counts["retired_key_ids_in_use"] == {"k1": 1}
    assert counts["removable_key_ids"] == []
    assert "'k1' (1)" in before.stderr and "run rotate-key again" in before.stderr

    rotated = runner.invoke(app, ["rotate-key", "--batch-size", "1"])
    assert rotated.exit_code == 0, rotated.output
    result = json.loads(rotated.stdout)
    assert result["resealed"] == {"inbound_messages": 0, "jobs": 1, "store_keys": 0}
    assert result["removable_key_ids"] == ["k1"]
    assert "remove them from PRIMERO_PROGRES_ENCRYPTION_KEY" in rotated.stderr
    after = runner.invoke(app, ["rotate-key", "--check"])
    assert after.exit_code == 0
    assert json.loads(after.stdout)["payloads_by_key_id"]["jobs"] == {"k2": 1, "k1": 0}

    monkeypatch.setenv("PRIMERO_PROGRES_ENCRYPTION_KEY", f"k2:{new}")  # k1 retired
    alone = runner.invoke(app, ["rotate-key", "--check"])
    assert alone.exit_code == 0
    assert "every stored payload is sealed with the current key 'k2'" in alone.stderr
    assert runner.invoke(app, ["replay", job_id]).exit_code == 0

    async def replayed_payload() -> object:
        store = await Store.open(url, encryption=Cipher.from_config(f"k2:{new}"))
        seen: list[object] = []

        async def succeeds(ctx: StepContext) -> None:
            seen.append(ctx.job.payload)

        await Worker(store, {"toy.step": succeeds}).run_until_idle()
        await store.close()
        return seen

    assert asyncio.run(replayed_payload()) == [{"n": 1}]
    nothing_lost = runner.invoke(app, ["rotate-key", "--replace-lost-fingerprint-key"])
    assert nothing_lost.exit_code == 1 and "nothing replaced" in nothing_lost.stderr


def test_a_lost_fingerprint_key_stops_the_worker_until_replaced(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'ops.db'}"
    monkeypatch.setenv("PRIMERO_PROGRES_DATABASE_URL", url)
    monkeypatch.setenv("PRIMERO_PROGRES_ENCRYPTION_KEY", f"k1:{generate_key()}")
    runner = CliRunner()
    assert runner.invoke(app, ["rotate-key"]).exit_code == 0  # stores the fingerprint key
    monkeypatch.setenv("PRIMERO_PROGRES_ENCRYPTION_KEY", f"k2:{generate_key()}")  # k1 lost

    # a process of its own: the service configures the logging of the whole process
    stopped = subprocess.run(
        [sys.executable, "-m", "primero_progres.cli", "worker"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert stopped.returncode == 2
    assert "fingerprint key" in stopped.stderr and "'k1'" in stopped.stderr
    refused = runner.invoke(app, ["rotate-key"])
    assert refused.exit_code == 2 and "fingerprint key" in refused.stderr

    replaced = runner.invoke(app, ["rotate-key", "--replace-lost-fingerprint-key"])
    assert replaced.exit_code == 0
    assert json.loads(replaced.stdout) == {"fingerprint_key_replaced": True}
    assert runner.invoke(app, ["rotate-key", "--check"]).exit_code == 0
