"""``serve``'s worker process (PostgreSQL) is killed when it does not stop in time."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

import pytest
import structlog

from primero_progres.cli import worker_process
from primero_progres.cli.worker_process import WorkerProcess
from primero_progres.settings import Settings
from primero_progres.store import generate_key


def stubborn_child(_settings: Settings, _scheduler: bool, messages: Connection) -> None:
    """A worker process that starts, then ignores SIGTERM: only a kill ends it (or, should
    that fail, the end of the test process)."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    messages.send(("started",))
    parent = multiprocessing.parent_process()
    assert parent is not None and parent.sentinel is not None
    wait([parent.sentinel])


def _gone(pid: int) -> bool:
    """Ended and reaped: nothing of it left, not even a zombie."""
    return not Path(f"/proc/{pid}").exists()


async def test_a_worker_process_that_does_not_stop_in_time_is_killed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``stop`` sends SIGTERM, waits ``STOP_TIMEOUT_SECONDS`` (cut to 0.5 s here), then kills
    the child and returns: serve's stop is not held by its worker process."""
    monkeypatch.setenv("PRIMERO_PROGRES_DATABASE_URL", f"sqlite:///{tmp_path / 'unused.db'}")
    monkeypatch.setenv("PRIMERO_PROGRES_ENCRYPTION_KEY", generate_key())
    monkeypatch.setattr(worker_process, "child_main", stubborn_child)
    monkeypatch.setattr(worker_process, "STOP_TIMEOUT_SECONDS", 0.5)
    stop = asyncio.Event()
    background = WorkerProcess(Settings.load(), scheduler=False, stop=stop)
    with structlog.testing.capture_logs() as logs:
        await background.start()
        [started] = [e for e in logs if e["event"] == "worker.process_started"]
        child = started["process_id"]
        try:
            stop.set()
            # a broken kill path would wait for the child for ever
            await asyncio.wait_for(background.stop(), 30)
        finally:
            if not _gone(child):  # not reaped: still this test's child, no other process
                os.kill(child, signal.SIGKILL)
    events: dict[str, Any] = {e["event"]: e for e in logs}
    assert "worker.process_killed" in events
    assert events["worker.process_stopped"]["exit_status"] == -signal.SIGKILL
    assert _gone(child)
