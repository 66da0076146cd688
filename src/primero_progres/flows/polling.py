"""Watermark polling shared by flows 2 and 3.

The reference set its cursor to "now" after each run and so missed cases
updated while it ran. Here the cursor is the largest ``last_updated_at``
actually processed; each run re-reads an overlap window before it (Primero's
``x..`` filter is inclusive at one-second granularity) and relies on job keys
and the ledger to ignore what it has already seen. The cursor is written in
the watermark format Primero is queried with.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from ..logging import get_logger
from ..mapping.values import timestamp
from ..peers.primero import format_watermark
from ..store import AuditEvent, Flow, StepContext

log = get_logger(__name__)


def read_from(cursor: str | None, overlap: timedelta) -> datetime | None:
    """Where the next read starts: the watermark minus the overlap window."""
    watermark = timestamp(cursor)
    return watermark - overlap if watermark else None


class Watermark:
    """Tracks the largest ``last_updated_at`` seen during one poll."""

    def __init__(self, cursor: str | None) -> None:
        self._value = timestamp(cursor)

    def see(self, last_updated_at: object) -> None:
        seen = timestamp(last_updated_at)
        if seen and (self._value is None or seen > self._value):
            self._value = seen

    @property
    def value(self) -> str | None:
        return format_watermark(self._value) if self._value else None


def finish_poll(
    ctx: StepContext,
    flow: Flow,
    cursor: str | None,
    watermark: Watermark,
    *,
    seen: int,
    queued: int,
) -> None:
    """End a poll: move the cursor in the same step as the jobs it queued, and report the run."""
    if watermark.value and watermark.value != cursor:
        ctx.set_cursor(flow, watermark.value)
    ctx.audit(
        AuditEvent.POLL_FINISHED, flow=flow, count=seen, total=queued, cursor=watermark.value
    )
    log.info("poll_finished", flow=flow.value, count=seen, total=queued)
