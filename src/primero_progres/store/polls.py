"""When a polling flow runs: one ``<flow>.poll`` job per interval, one process deciding at a time.

The decision, the lease it needs and the job it creates are one transaction: the trigger
takes (or renews) the lease ``poll:<flow>``, and only its holder enqueues, only when no poll
of the flow is unfinished and the interval has passed since the last one. The job key
``<flow>.poll:<interval bucket>`` makes a double trigger impossible even if two holders
overlapped.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from .commands import Enqueue
from .database import Database
from .jobs import JobQueue
from .leases import Leases
from .models import UNFINISHED
from .schema import jobs
from .vocabulary import Flow, poll_kind


def poll_lease(flow: Flow) -> str:
    return f"poll:{Flow(flow).value}"


class Polls:
    """``store.polls``: the scheduler's trigger and the operator's "poll now"."""

    def __init__(self, db: Database, queue: JobQueue, leases: Leases) -> None:
        self._db = db
        self._jobs = queue
        self._leases = leases

    async def try_trigger(
        self, flow: Flow, *, interval: float, owner: str, lease_seconds: float
    ) -> str | None:
        """Enqueue the next poll of ``flow`` if it is due and ``owner`` holds the flow's lease;
        the new job's id, else None."""
        kind = poll_kind(flow)
        async with self._db.engine.begin() as conn:
            now = self._db.now()
            if not await self._leases.take(conn, now, poll_lease(flow), owner, lease_seconds):
                return None
            unfinished = await conn.scalar(
                sa.select(jobs.c.id)
                .where(jobs.c.kind == kind, jobs.c.state.in_([s.value for s in UNFINISHED]))
                .limit(1)
            )
            if unfinished is not None:
                return None
            last = await conn.scalar(
                sa.select(jobs.c.created_at)
                .where(jobs.c.kind == kind)
                .order_by(jobs.c.created_at.desc())
                .limit(1)
            )
            if last is not None and last + timedelta(seconds=interval) > now:
                return None
            bucket = int(now.timestamp() // interval)
            result = await self._jobs.insert(conn, now, Enqueue(kind, {}, key=f"{kind}:{bucket}"))
        return result.id if result.created else None

    async def stand_down(self, flow: Flow, owner: str) -> None:
        """Give up the flow's trigger lease (a scheduler stopping), so another takes over now."""
        await self._leases.release(poll_lease(flow), owner)

    async def run_now(self, flow: Flow, options: Mapping[str, Any] | None = None) -> str:
        """Enqueue a poll of ``flow`` at once, outside the schedule (``options`` is its payload)."""
        result = await self._jobs.enqueue(poll_kind(flow), dict(options) if options else None)
        return result.id
