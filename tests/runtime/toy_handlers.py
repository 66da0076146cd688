"""Toy job handlers and a fake clock for the runtime tests (no flow code involved).

Run as a script, it is a worker process: ``python toy_handlers.py URL KEY MODE DIR``.
``block`` writes ``DIR/started-<job id>`` then blocks forever (to be SIGKILLed);
``complete`` records the job in the ledger and exits once no work is left.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from primero_progres.store import Cipher, JobState, StepContext, Store
from primero_progres.worker import Worker


class FakeClock:
    """A controllable UTC clock for the store (backoff and lease timing)."""

    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


async def record_once(ctx: StepContext) -> None:
    """Record this job as an exchange of flow 1 keyed by the job id."""
    ctx.ledger_record("progres-referral", ctx.job.id, state="delivered", event="delivered")


async def _main(url: str, key: str, mode: str, directory: Path) -> None:
    store = await Store.open(url, encryption=Cipher.from_config(key))

    async def block(ctx: StepContext) -> None:
        (directory / f"started-{ctx.job.id}").write_text(str(ctx.job.attempts))
        await asyncio.Event().wait()

    handler = block if mode == "block" else record_once
    worker = Worker(
        store,
        {"toy.step": handler},
        worker_id=f"toy-{mode}",
        lease_seconds=1.0,
        poll_interval=0.1,
    )
    stop = asyncio.Event()
    runner = asyncio.create_task(worker.run(stop))
    try:
        if mode == "block":
            await runner  # until the test kills this process
        while any(
            kind == "toy.step" and state in (JobState.PENDING, JobState.RUNNING)
            for kind, state in await store.jobs.counts()
        ):
            await asyncio.sleep(0.1)
    finally:
        stop.set()
        await runner
        await store.close()


if __name__ == "__main__":
    asyncio.run(_main(sys.argv[1], sys.argv[2], sys.argv[3], Path(sys.argv[4])))
