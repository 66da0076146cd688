"""A worker process killed mid-job: after its lease expires the job completes exactly once."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from primero_progres.store import Cipher, Store, generate_key

TOY = Path(__file__).with_name("toy_handlers.py")


def _worker(url: str, key: str, mode: str, directory: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONPATH=str(TOY.parent))
    return subprocess.Popen(
        [sys.executable, str(TOY), url, key, mode, str(directory)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


async def _wait_for(path_glob: Path, proc: subprocess.Popen[bytes]) -> Path:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = sorted(path_glob.parent.glob(path_glob.name))
        if found:
            return found[0]
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else "died"
        await asyncio.sleep(0.05)
    raise AssertionError("the worker never started the job")


async def test_killed_worker_job_completes_once_after_restart(db_url: str, tmp_path: Path) -> None:
    key = generate_key()
    store = await Store.open(db_url, encryption=Cipher.from_config(key))
    await store.upgrade()
    job_id = (await store.jobs.enqueue("toy.step", {"n": 1})).id

    first = _worker(db_url, key, "block", tmp_path)
    started = await _wait_for(tmp_path / "started-*", first)
    assert started.name == f"started-{job_id}"
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    held = await store.jobs.get(job_id)
    assert held is not None and (held.state, held.lease_owner) == ("running", "toy-block/0")

    second = _worker(db_url, key, "complete", tmp_path)
    stderr = second.communicate(timeout=60)[1]
    assert second.returncode == 0, stderr.decode()

    job = await store.jobs.get(job_id)
    assert job is not None
    assert (job.state, job.attempts, job.has_payload) == ("done", 2, False)
    exchange = await store.ledger.get("progres-referral", job_id)
    assert exchange is not None
    assert [e.event for e in await store.ledger.events(exchange.id)] == ["delivered"]
    await store.close()
