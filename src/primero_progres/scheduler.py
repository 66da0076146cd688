"""Polling triggers: every tick, ask the store to start each polling flow's next poll.

``store.polls.try_trigger`` does the deciding (lease ``poll:<flow>`` per flow, interval,
no overlapping poll, a start point) in one transaction, so any number of schedulers on any
number of machines trigger each poll once. A flow without a start point is not polled: the
store records it once in the audit trail, and each scheduler logs ``poll.no_start_point``
once, at error level, for the monitoring to alert on.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import uuid
from collections.abc import Mapping
from datetime import datetime

from .logging import get_logger
from .store import Flow, NoStartPoint, Store

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
        start_at: datetime | None = None,
        start_points: Mapping[Flow, datetime | None] | None = None,
    ) -> None:
        self.store = store
        #: where a flow without a cursor starts (``POLL_START_AT``); None: it waits for one
        self.start_at = start_at
        #: the same, flow by flow where it differs (``flows.start_points``)
        self.start_points = dict(start_points or {})
        self._refused: set[Flow] = set()
        self.triggers = {Flow(flow): interval for flow, interval in triggers.items()}
        self.owner = owner or f"{socket.gethostname()}:{uuid.uuid4().hex[:8]}"
        self.tick_seconds = tick_seconds
        self.lease_seconds = lease_seconds or max(3 * tick_seconds, 15.0)

    async def tick(self) -> list[Flow]:
        """One round over the flows; returns the flows for which a poll was enqueued."""
        enqueued = []
        for flow, interval in self.triggers.items():
            try:
                job_id = await self.store.polls.try_trigger(
                    flow,
                    interval=interval,
                    owner=self.owner,
                    lease_seconds=self.lease_seconds,
                    start_at=self.start_points.get(flow, self.start_at),
                )
            except NoStartPoint as exc:
                if flow not in self._refused:
                    self._refused.add(flow)
                    log.error("poll.no_start_point", flow=flow.value, reason=exc.reason)
                continue
            self._refused.discard(flow)
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
