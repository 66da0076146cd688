"""Watermark polling shared by flows 2 and 3, one committed page at a time.

The reference set its cursor to "now" after each run and so missed cases
updated while it ran. Here the cursor is the largest ``last_updated_at``
actually processed; a poll starts an overlap window before it (Primero's
``x..`` filter is inclusive at one-second granularity) and relies on job keys
and the ledger to ignore what it has already seen. The cursor is written in
the watermark format Primero is queried with.

A poll is a chain of ``<flow>.poll`` jobs, one Primero page each: a page's job
queues its work, moves the cursor and queues the next page's job in one
commit, so a failure costs one page (retried alone), never the pages before it,
and a retry does not redo a window that grew while it waited. What the next
page needs (where the walk stands, the counts so far) travels in its payload
(``PollState``). The scheduler starts no new poll of a flow while a page of it
is unfinished.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from ..errors import InvalidInputError
from ..logging import get_logger
from ..mapping.values import timestamp
from ..peers.primero import CasePosition, CaseWindow, format_watermark
from ..store import AuditEvent, Flow, StepContext, poll_kind

log = get_logger(__name__)

#: options an operator may give a poll (``primero-progres poll FLOW``), kept by every page
OPTIONS = ("full_scan",)


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


@dataclass(frozen=True)
class PollState:
    """One poll in progress, as its next page's job payload carries it."""

    options: Mapping[str, Any] = field(default_factory=dict)
    #: the case walk: where the next ``GET /cases`` starts (None: the poll's first page)
    position: CasePosition | None = None
    #: the ledger walk (flow 2): the poll's lower bound, and the last record id done
    since: str | None = None
    after: str | None = None
    #: the largest ``last_updated_at`` seen by the pages before this one
    watermark: str | None = None
    #: cases read and messages queued by the pages before this one
    count: int = 0
    total: int = 0

    def walk_on(self, position: CasePosition | None) -> PollState | None:
        """The next page of a case walk from ``position``; None when the walk is over."""
        return replace(self, position=position) if position is not None else None

    @classmethod
    def of(cls, payload: Mapping[str, Any] | None) -> PollState:
        """The state a poll job carries; a payload that does not read is invalid input."""
        payload = payload or {}
        state = payload.get("poll")
        options = {k: payload[k] for k in OPTIONS if k in payload}
        if state is None:
            return cls(options)
        try:
            if not isinstance(state, Mapping):
                raise ValueError("not an object")
            position = state.get("position")
            return cls(
                options,
                CasePosition.from_json(position) if position is not None else None,
                _text(state.get("since")),
                _text(state.get("after")),
                _text(state.get("watermark")),
                _count(state.get("count")),
                _count(state.get("total")),
            )
        except ValueError as exc:
            raise InvalidInputError(
                "poll job: its page state does not read", reason="bad_poll_state"
            ) from exc

    def as_payload(self) -> dict[str, Any]:
        state = {
            "position": self.position.as_json() if self.position is not None else None,
            "since": self.since,
            "after": self.after,
            "watermark": self.watermark,
            "count": self.count,
            "total": self.total,
        }
        return {**self.options, "poll": state}


def _text(value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise ValueError("not a string")


def _count(value: object) -> int:
    if value is None:
        return 0
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise ValueError("not a count")


def first_position(cursor: str | None, overlap: timedelta) -> CasePosition:
    """Where a poll's case walk starts: the overlap window before the cursor."""
    return CasePosition.start(read_from(cursor, overlap))


def finish_page(
    ctx: StepContext,
    flow: Flow,
    cursor: str | None,
    watermark: Watermark,
    state: PollState,
    *,
    seen: int,
    queued: int,
    next_page: PollState | None,
    move_cursor: bool = True,
) -> None:
    """End one page: move the cursor (forward only) in the same commit as the jobs the page
    queued, then queue the next page, or report the whole poll when this was its last."""
    if move_cursor and watermark.value and watermark.value != cursor:
        ctx.set_cursor(flow, watermark.value)
    count, total = state.count + seen, state.total + queued
    if next_page is not None:
        kind = poll_kind(flow)
        following = replace(next_page, watermark=watermark.value, count=count, total=total)
        ctx.enqueue(kind, following.as_payload(), key=f"{kind}:{ctx.job.id}:next")
        log.info("poll_page", flow=flow.value, count=seen, total=queued)
        return
    ctx.audit(AuditEvent.POLL_FINISHED, flow=flow, count=count, total=total, cursor=watermark.value)
    log.info("poll_finished", flow=flow.value, count=count, total=total)


def finish_window(
    ctx: StepContext,
    flow: Flow,
    cursor: str | None,
    watermark: Watermark,
    state: PollState,
    window: CaseWindow,
    *,
    queued: int,
) -> None:
    """End a page of a case walk: the next page starts where this window ended."""
    finish_page(
        ctx,
        flow,
        cursor,
        watermark,
        state,
        seen=len(window.cases),
        queued=queued,
        next_page=state.walk_on(window.next),
    )
