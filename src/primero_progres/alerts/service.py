"""The alert check: every ``ALERT_CHECK_SECONDS``, one process (the holder of the ``alerts``
lease) reads the state, decides what is due and delivers it.

Deciding and delivering are apart: the notices and the new alert states are written in one
transaction, then delivered from the outbox target by target. A target that fails keeps the
notice for the next check; the others are not sent it twice; a notice nobody could take
within a day is dropped. Any number of workers run the check; only the lease holder acts, and
another takes over when it stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import uuid
from datetime import timedelta

from ..logging import get_logger
from ..runtime.metrics import ALERT_NOTIFICATIONS
from ..settings import Settings
from ..store import AuditEvent, Store
from . import monitoring
from .conditions import AlertEvent, Rules, dead_letter_cursor, evaluate
from .notify import Target, named, send, targets

log = get_logger(__name__)

LEASE = "alerts"
#: a dead letter is read once its transaction has surely committed (PostgreSQL hands out audit
#: ids before commit, so a later id may commit first)
SETTLE = timedelta(seconds=2)
#: notices older than this are dropped undelivered
OUTBOX_EXPIRY = timedelta(days=1)


def rules(settings: Settings) -> Rules:
    return Rules(
        repeat=timedelta(minutes=settings.alert_repeat_minutes),
        peer_down=timedelta(minutes=settings.alert_peer_down_minutes),
        backlog=timedelta(minutes=settings.alert_backlog_minutes),
        public_url=settings.public_url,
    )


class Alerter:
    """Runs the alert check of one process."""

    def __init__(
        self,
        store: Store,
        settings: Settings,
        *,
        owner: str | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.owner = owner or f"{socket.gethostname()}:{uuid.uuid4().hex[:8]}"
        self.configured: list[Target] = targets(settings)
        self._named: list[Target] | None = None
        self.rules = rules(settings)
        self.check_seconds = settings.alert_check_seconds
        self.lease_seconds = max(3 * self.check_seconds, 120.0)
        # every series from zero, so that a first failure is an increase a rule can see
        for event in AlertEvent:
            for outcome in ("sent", "failed"):
                ALERT_NOTIFICATIONS.labels(event.value, outcome)

    async def targets(self) -> list[Target]:
        if self._named is None:
            self._named = await named(self.configured, self.store.fingerprint)
        return self._named

    async def _lead(self) -> bool:
        return await self.store.leases.acquire(LEASE, self.owner, ttl=self.lease_seconds)

    async def check(self) -> bool:
        """One round: decide and deliver, if this process holds the lease; whether it did."""
        if not self.configured or not await self._lead():
            return False
        states = await self.store.alerts.states()
        state = await monitoring.read(self.store, self.settings, dead_letters=False)
        dead = await self.store.audit.after(
            AuditEvent.JOB_DEAD, after_id=dead_letter_cursor(states), until=state.now - SETTLE
        )
        decision = evaluate(state, dead, states, self.rules)
        await self.store.alerts.commit(
            decision.states, decision.notices, targets=[t.id for t in await self.targets()]
        )
        await self.deliver()
        return True

    async def deliver(self) -> None:
        """Work through the outbox; a target that fails is tried again at the next check."""
        by_id = {target.id: target for target in await self.targets()}
        failed: set[str] = set()
        expiry = self.store.now() - OUTBOX_EXPIRY
        for entry in await self.store.alerts.outbox():
            if not await self._lead():
                return
            pending = {target for target in entry.pending if target in by_id}
            if entry.created_at < expiry:
                log.warning("alert.expired", alert_key=entry.notice.key, count=len(pending))
                pending = set()
            trying = sorted(pending - failed)
            if not trying and pending == set(entry.pending):
                continue
            results = await asyncio.gather(*(send(by_id[t], entry.notice) for t in trying))
            for target, sent in zip(trying, results, strict=True):
                ALERT_NOTIFICATIONS.labels(entry.notice.event, "sent" if sent else "failed").inc()
                if sent:
                    pending.discard(target)
                    log.info(
                        "alert.sent",
                        alert_key=entry.notice.key,
                        target_id=by_id[target].name,
                        attempts=entry.attempts + 1,
                    )
                else:
                    failed.add(target)
            await self.store.alerts.attempted(entry.id, pending=pending)

    async def run(self, stop: asyncio.Event) -> None:
        if not self.configured:
            log.info("alerts.disabled", reason="no_alert_urls")
            return
        log.info("alerts.started", worker=self.owner, count=len(self.configured))
        try:
            while not stop.is_set():
                try:
                    await self.check()
                except Exception as exc:
                    log.warning("alerts.check_failed", error=type(exc).__name__)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=self.check_seconds)
        finally:
            with contextlib.suppress(Exception):
                await self.store.leases.release(LEASE, self.owner)
