"""Polling triggers: every tick, ask the store to start each polling flow's next poll.

``store.polls.try_trigger`` does the deciding (lease ``poll:<flow>`` per flow, interval,
no overlapping poll) in one transaction, so any number of schedulers on any number of
machines trigger each poll once.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import uuid
from collections.abc import Mapping

from .logging import get_logger
from .store import Flow, Store

log = get_logger(__name__)


class Scheduler:
    """Enqueue ``<flow>.poll`` jobs every interval, one process at a time per flow."""

    def __init__(
        self,
        store: Store,
        triggers: Mapping[Flow, float],
        *,
        owner: str | None = None,
        tick_seconds: float = 5.0,
        lease_seconds: float | None = None,
    ) -> None:
        self.store = store
        self.triggers = {Flow(flow): interval for flow, interval in triggers.items()}
        self.owner = owner or f"{socket.gethostname()}:{uuid.uuid4().hex[:8]}"
        self.tick_seconds = tick_seconds
        self.lease_seconds = lease_seconds or max(3 * tick_seconds, 15.0)

    async def tick(self) -> list[Flow]:
        """One round over the flows; returns the flows for which a poll was enqueued."""
        enqueued = []
        for flow, interval in self.triggers.items():
            job_id = await self.store.polls.try_trigger(
                flow, interval=interval, owner=self.owner, lease_seconds=self.lease_seconds
            )
            if job_id is not None:
                log.info("poll.enqueued", flow=flow.value, job_id=job_id)
                enqueued.append(flow)
        return enqueued

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
                await self.store.polls.stand_down(flow, self.owner)
