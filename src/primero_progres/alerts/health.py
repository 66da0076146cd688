"""Each process's view of the peers, written to ``store.peer_health`` every few seconds.

The peer clients report every HTTP call (``peers.observe``); a recorder keeps, per peer, the
latest success and the failures after it, and ``flush`` merges that into the database, one
small write per peer that was called. A failure followed by a success in the same interval
(a token renewed after a 401) never reaches the database as a failure.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import replace

from ..logging import get_logger
from ..peers.observe import PeerCall
from ..store import PeerOutcomes, Store

log = get_logger(__name__)


def combine(older: PeerOutcomes, newer: PeerOutcomes) -> PeerOutcomes:
    """Two consecutive reports of one peer as one."""
    if newer.succeeded_at is not None:
        return newer
    return replace(
        newer,
        succeeded_at=older.succeeded_at,
        first_failed_at=older.first_failed_at or newer.first_failed_at,
    )


class PeerHealthRecorder:
    """An observer of peer calls (``peers.observe.add_observer``) that reports to the store."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._seen: dict[str, PeerOutcomes] = {}

    def __call__(self, call: PeerCall) -> None:
        at = self._store.now()
        if call.healthy:
            seen = PeerOutcomes(call.peer, succeeded_at=at)
        else:
            assert call.failure is not None
            seen = PeerOutcomes(
                call.peer, first_failed_at=at, failed_at=at, failure=call.failure.value
            )
        known = self._seen.get(call.peer)
        self._seen[call.peer] = combine(known, seen) if known is not None else seen

    async def flush(self) -> None:
        """Write what was seen since the last flush; kept for the next one if that fails."""
        batch, self._seen = self._seen, {}
        if not batch:
            return
        try:
            await self._store.peer_health.record(list(batch.values()))
        except Exception as exc:
            log.warning("peer_health.flush_failed", error=type(exc).__name__)
            for peer, seen in batch.items():
                newer = self._seen.get(peer)
                self._seen[peer] = combine(seen, newer) if newer is not None else seen

    async def run(self, stop: asyncio.Event, *, interval: float) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval)
            await self.flush()
