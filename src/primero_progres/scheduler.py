"""Polling triggers, guarded by a lease row per flow.

Each tick, for each polling flow, the scheduler takes (or renews) the lease
``poll:<flow>`` in the database. Only the holder enqueues, and only when the
interval has elapsed since the last ``<flow>.poll`` job and none is
unfinished; the job key ``<flow>.poll:<interval bucket>`` makes a double
trigger impossible even if two holders overlapped.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import uuid
from collections.abc import Mapping
from datetime import timedelta
from typing import TYPE_CHECKING

import sqlalchemy as sa

from .logging import get_logger
from .store.jobs import enqueue_in
from .store.leases import acquire_in
from .store.models import UNFINISHED
from .store.schema import jobs

if TYPE_CHECKING:
    from .store import Store

log = get_logger(__name__)


def poll_kind(flow: str) -> str:
    return f"{flow}.poll"


class Scheduler:
    """Enqueue ``<flow>.poll`` jobs every interval, one process at a time per flow."""

    def __init__(
        self,
        store: Store,
        triggers: Mapping[str, float],
        *,
        owner: str | None = None,
        tick_seconds: float = 5.0,
        lease_seconds: float | None = None,
    ) -> None:
        self.store = store
        self.triggers = dict(triggers)
        self.owner = owner or f"{socket.gethostname()}:{uuid.uuid4().hex[:8]}"
        self.tick_seconds = tick_seconds
        self.lease_seconds = lease_seconds or max(3 * tick_seconds, 15.0)

    async def tick(self) -> list[str]:
        """One round over the flows; returns the flows for which a poll was enqueued."""
        enqueued = []
        for flow, interval in self.triggers.items():
            if await self._tick_flow(flow, interval):
                enqueued.append(flow)
        return enqueued

    async def _tick_flow(self, flow: str, interval: float) -> bool:
        kind = poll_kind(flow)
        async with self.store.engine.begin() as conn:
            if not await acquire_in(
                conn, self.store, f"poll:{flow}", self.owner, self.lease_seconds
            ):
                return False
            unfinished = await conn.scalar(
                sa.select(jobs.c.id)
                .where(jobs.c.kind == kind, jobs.c.state.in_(UNFINISHED))
                .limit(1)
            )
            if unfinished is not None:
                return False
            now = self.store.now()
            last = await conn.scalar(
                sa.select(jobs.c.created_at)
                .where(jobs.c.kind == kind)
                .order_by(jobs.c.created_at.desc())
                .limit(1)
            )
            if last is not None and last + timedelta(seconds=interval) > now:
                return False
            bucket = int(now.timestamp() // interval)
            result = await enqueue_in(conn, self.store, kind, {}, key=f"{kind}:{bucket}", refs={})
        if result.created:
            log.info("poll.enqueued", flow=flow, job_id=result.id)
        return result.created

    async def run(self, stop: asyncio.Event) -> None:
        log.info("scheduler.started", worker=self.owner, count=len(self.triggers))
        while not stop.is_set():
            try:
                await self.tick()
            except Exception as exc:
                log.warning("scheduler.tick_failed", error=type(exc).__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.tick_seconds)
        for flow in self.triggers:
            with contextlib.suppress(Exception):
                await self.store.leases.release(f"poll:{flow}", self.owner)
