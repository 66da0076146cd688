"""A worker that dies between its step and its commit, played deterministically."""

from __future__ import annotations

import asyncio

from primero_progres.stack import Stack
from primero_progres.store import StepBuffer


async def die_after_the_step(stack: Stack, kind: str) -> None:
    """A worker claims a ``kind`` job and runs its step, then dies before committing: its
    outcome (jobs, ledger, audit, lease release) is lost, the job stays claimed until its
    lease expires. Only the peers saw the step's calls."""
    owner, ttl = "doomed/0", stack.settings.lease_seconds
    job = await stack.store.jobs.claim(owner, kinds=[kind], lease_seconds=ttl)
    assert job is not None

    async def hold_until_death(lease: str) -> None:
        assert await stack.store.leases.acquire(lease, owner, ttl=ttl)

    await stack.handlers[kind](StepBuffer(job, worker_id=owner, hold=hold_until_death))
    await asyncio.sleep(ttl + 0.1)
