"""What the operator console and the repair commands read: per-flow figures, the timeline of
one ID, and the inbound messages with their outcome. IDs, codes, statuses, counts and times
only: the payload columns are never read here.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from .audit import audit_entry
from .database import Database
from .jobs import by_flow, job_from_row, waiting_by_kind
from .messages import message_from_row
from .models import UNFINISHED, InboundMessage, Job, JobState
from .schema import ID_COLUMNS, audit_events, exchange_events, exchanges, inbound_messages, jobs
from .vocabulary import Flow, LedgerEvent, job_kind

#: the job that stands for one item entering each flow (an intervention, a decision, a referral)
ITEM_STEP = {
    Flow.PROGRES_REFERRAL: "deliver",
    Flow.PRIMERO_DECISION: "send",
    Flow.PRIMERO_REFERRAL: "send",
    Flow.PROGRES_DECISION: "apply",
}
#: the ledger events that mean an item reached the other side
DELIVERED = {
    LedgerEvent.CASE_CREATED: Flow.PROGRES_REFERRAL,
    LedgerEvent.CASE_UPDATED: Flow.PROGRES_REFERRAL,
    LedgerEvent.DECISION_SENT: Flow.PRIMERO_DECISION,
    LedgerEvent.REFERRAL_SENT: Flow.PRIMERO_REFERRAL,
    LedgerEvent.REFERRAL_PATCHED: Flow.PROGRES_DECISION,
}
#: refused items, answered with a ``Delivery Fail`` (flow 1 only)
REFUSED = {LedgerEvent.INTERVENTION_REFUSED: Flow.PROGRES_REFERRAL}
#: at most this many entries in one trace
TRACE_LIMIT = 500


@dataclass(frozen=True)
class Window:
    received: int = 0
    delivered: int = 0
    #: None where the flow has no refusal (only flow 1 answers ``Delivery Fail``)
    refused: int | None = None
    dead: int = 0


@dataclass(frozen=True)
class FlowFigures:
    flow: str
    today: Window
    week: Window
    #: jobs pending or running now
    in_flight: int
    #: when the oldest of them was queued
    oldest_waiting_at: datetime | None


@dataclass(frozen=True)
class TraceEntry:
    at: datetime
    #: inbox, job, ledger or audit
    source: str
    what: str
    flow: str | None = None
    outcome: str | None = None
    ids: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Trace:
    query: str
    #: what matched: ``{"exchanges": 2, "messages": 1, "jobs": 5, "audit": 4}``
    found: dict[str, int]
    entries: list[TraceEntry]
    truncated: bool = False


@dataclass(frozen=True)
class MessageSummary:
    message: InboundMessage
    #: items the message fanned out into (before that, the IDs it carries)
    items: int
    #: job state -> number of the message's jobs
    jobs: dict[str, int]

    @property
    def outcome(self) -> str:
        if self.jobs.get(JobState.DEAD.value):
            return "dead letter"
        if any(self.jobs.get(s.value) for s in UNFINISHED):
            return "in flight"
        if self.jobs.get(JobState.DISCARDED.value):
            return "discarded"
        return "done" if self.jobs else "no work"


def _window(
    flow: Flow,
    received: dict[str, int],
    delivered: dict[str, int],
    refused: dict[str, int],
    dead: dict[str, int],
) -> Window:
    has_refusals = flow in REFUSED.values()
    return Window(
        received=received.get(flow.value, 0),
        delivered=delivered.get(flow.value, 0),
        refused=refused.get(flow.value, 0) if has_refusals else None,
        dead=dead.get(flow.value, 0),
    )


def _like_id(value: str) -> str:
    """How ``value`` appears inside a JSON text column (a string element or value)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class Reports:
    """``store.reports``."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def overview(self) -> list[FlowFigures]:
        """Per flow: received, delivered, refused and dead today (UTC) and in the last 7 days;
        in flight now, and the age of the oldest waiting job. A few indexed aggregate queries,
        whatever the size of the history (bench/console.py)."""
        now = self._db.now()
        today = now.replace(hour=0, minute=0, second=0, microsecond=0)
        week = now - timedelta(days=7)
        item_kinds = {job_kind(flow, step): flow for flow, step in ITEM_STEP.items()}

        def split(at: Any) -> tuple[Any, Any]:
            return (
                sa.func.sum(sa.case((at >= today, 1), else_=0)),
                sa.func.count(),
            )

        # a copy of an item its own step parked for a replay (a refused intervention) was
        # received once already
        parent = jobs.alias("parent")
        async with self._db.read() as conn:
            received_rows = (
                await conn.execute(
                    sa.select(jobs.c.kind, *split(jobs.c.created_at))
                    .select_from(jobs.outerjoin(parent, parent.c.id == jobs.c.parent_id))
                    .where(
                        jobs.c.kind.in_(list(item_kinds)),
                        jobs.c.created_at >= week,
                        sa.or_(parent.c.kind.is_(None), parent.c.kind != jobs.c.kind),
                    )
                    .group_by(jobs.c.kind)
                )
            ).all()
            events = {**DELIVERED, **REFUSED}
            event_rows = (
                await conn.execute(
                    sa.select(exchange_events.c.event, *split(exchange_events.c.at))
                    .where(
                        exchange_events.c.at >= week,
                        exchange_events.c.event.in_([e.value for e in events]),
                    )
                    .group_by(exchange_events.c.event)
                )
            ).all()
            dead_rows = (
                await conn.execute(
                    sa.select(jobs.c.kind, *split(jobs.c.updated_at))
                    .where(jobs.c.state == JobState.DEAD.value, jobs.c.updated_at >= week)
                    .group_by(jobs.c.kind)
                )
            ).all()
            # the same figures as the backlog alert's (``jobs.waiting_by_flow``)
            waiting = by_flow(await waiting_by_kind(conn))

        received: tuple[dict[str, int], dict[str, int]] = ({}, {})
        for kind, n_today, n_week in received_rows:
            flow = item_kinds[kind].value
            received[0][flow] = int(n_today or 0)
            received[1][flow] = int(n_week or 0)
        delivered: tuple[dict[str, int], dict[str, int]] = (defaultdict(int), defaultdict(int))
        refused: tuple[dict[str, int], dict[str, int]] = (defaultdict(int), defaultdict(int))
        for event, n_today, n_week in event_rows:
            target = delivered if LedgerEvent(event) in DELIVERED else refused
            flow = events[LedgerEvent(event)].value
            target[0][flow] += int(n_today or 0)
            target[1][flow] += int(n_week or 0)
        dead: tuple[dict[str, int], dict[str, int]] = (defaultdict(int), defaultdict(int))
        for kind, n_today, n_week in dead_rows:
            flow = kind.partition(".")[0]
            dead[0][flow] += int(n_today or 0)
            dead[1][flow] += int(n_week or 0)
        return [
            FlowFigures(
                flow=flow.value,
                today=_window(flow, received[0], delivered[0], refused[0], dead[0]),
                week=_window(flow, received[1], delivered[1], refused[1], dead[1]),
                in_flight=waiting[flow].count if flow in waiting else 0,
                oldest_waiting_at=waiting[flow].oldest_created_at if flow in waiting else None,
            )
            for flow in Flow
        ]

    async def messages(
        self, *, flow: Flow | None = None, limit: int = 50, offset: int = 0
    ) -> list[MessageSummary]:
        """Inbound messages, newest first (ties by id), each with its items and job states."""
        query = sa.select(inbound_messages).order_by(
            inbound_messages.c.received_at.desc(), inbound_messages.c.id
        )
        if flow is not None:
            query = query.where(inbound_messages.c.flow == str(flow))
        parent = jobs.alias("parent")
        async with self._db.read() as conn:
            rows = (await conn.execute(query.limit(limit).offset(offset))).all()
            ids = [r.id for r in rows]
            states: dict[str, dict[str, int]] = defaultdict(dict)
            items: dict[str, int] = {}
            if ids:
                for message_id, state, count in (
                    await conn.execute(
                        sa.select(jobs.c.message_id, jobs.c.state, sa.func.count())
                        .where(jobs.c.message_id.in_(ids))
                        .group_by(jobs.c.message_id, jobs.c.state)
                    )
                ).all():
                    states[message_id][state] = count
                # the receive job (no parent) fans the message out: its children are the items
                for message_id, count in (
                    await conn.execute(
                        sa.select(parent.c.message_id, sa.func.count())
                        .select_from(jobs.join(parent, jobs.c.parent_id == parent.c.id))
                        .where(parent.c.message_id.in_(ids), parent.c.parent_id.is_(None))
                        .group_by(parent.c.message_id)
                    )
                ).all():
                    items[message_id] = count
        summaries = []
        for row in rows:
            message = message_from_row(row)
            carried = max(len(message.intervention_numbers), len(message.org_referral_ids))
            summaries.append(
                MessageSummary(message, items.get(row.id, carried), dict(states[row.id]))
            )
        return summaries

    async def trace(self, query: str) -> Trace:
        """Everything the bridge did for one ID: a ``progres_interventionnumber``, a Primero
        case id or record id, an org referral id, a message id or a job id."""
        q = query.strip()[:200]
        if not q:
            return Trace(query, {}, [])
        quoted = _like_id(q)
        async with self._db.read() as conn:
            found_exchanges = (
                await conn.execute(
                    sa.select(exchanges).where(sa.or_(*(exchanges.c[c] == q for c in ID_COLUMNS)))
                )
            ).all()
            found_messages = (
                await conn.execute(
                    sa.select(inbound_messages).where(
                        sa.or_(
                            inbound_messages.c.id == q,
                            sa.cast(inbound_messages.c.intervention_numbers, sa.Text).contains(
                                quoted, autoescape=True
                            ),
                            sa.cast(inbound_messages.c.org_referral_ids, sa.Text).contains(
                                quoted, autoescape=True
                            ),
                        )
                    )
                )
            ).all()
            message_ids = [m.id for m in found_messages]
            job_rows = (
                await conn.execute(
                    sa.select(jobs)
                    .where(
                        sa.or_(
                            jobs.c.id == q,
                            jobs.c.message_id.in_(message_ids),
                            sa.cast(jobs.c.refs, sa.Text).contains(quoted, autoescape=True),
                        )
                    )
                    .limit(TRACE_LIMIT)
                )
            ).all()
            found_jobs = {row.id: row for row in job_rows}
            # the job a found one came from (a poll, a receive), and what a found job queued
            parent_ids = {r.parent_id for r in job_rows if r.parent_id} - found_jobs.keys()
            related = (
                await conn.execute(
                    sa.select(jobs)
                    .where(
                        sa.or_(
                            jobs.c.id.in_(parent_ids),
                            jobs.c.parent_id == q,
                        )
                    )
                    .limit(TRACE_LIMIT)
                )
            ).all()
            for row in related:
                found_jobs.setdefault(row.id, row)
            if not message_ids:
                extra = {r.message_id for r in found_jobs.values() if r.message_id}
                if extra:
                    found_messages = (
                        await conn.execute(
                            sa.select(inbound_messages).where(inbound_messages.c.id.in_(extra))
                        )
                    ).all()
            exchange_ids = [e.id for e in found_exchanges]
            ledger_rows = (
                await conn.execute(
                    sa.select(
                        exchange_events, exchanges.c.flow, *(exchanges.c[c] for c in ID_COLUMNS)
                    )
                    .join(exchanges, exchanges.c.id == exchange_events.c.exchange_id)
                    .where(exchange_events.c.exchange_id.in_(exchange_ids))
                    .order_by(exchange_events.c.id)
                    .limit(TRACE_LIMIT)
                )
            ).all()
            audit_rows = (
                await conn.execute(
                    sa.select(audit_events)
                    .where(
                        sa.or_(
                            audit_events.c.job_id.in_(list(found_jobs)),
                            sa.cast(audit_events.c.ids, sa.Text).contains(quoted, autoescape=True),
                        )
                    )
                    .order_by(audit_events.c.id)
                    .limit(TRACE_LIMIT)
                )
            ).all()

        entries: list[TraceEntry] = []
        for m in found_messages:
            message = message_from_row(m)
            entries.append(
                TraceEntry(
                    message.received_at,
                    "inbox",
                    f"{message.request_type} received",
                    message.flow,
                    ids={
                        "message_id": message.id,
                        "intervention_numbers": message.intervention_numbers,
                        "org_referral_ids": message.org_referral_ids,
                    },
                )
            )
        for row in found_jobs.values():
            entries.extend(_job_entries(job_from_row(row)))
        for row in ledger_rows:
            entries.append(
                TraceEntry(
                    row.at,
                    "ledger",
                    row.event,
                    row.flow,
                    row.direction,
                    {
                        "exchange_id": row.exchange_id,
                        **{c: getattr(row, c) for c in ID_COLUMNS if getattr(row, c)},
                        **dict(row.detail),
                    },
                )
            )
        for row in audit_rows:
            entry = audit_entry(row)
            ids = dict(entry.ids)
            if entry.account:
                ids["by"] = entry.account
            entries.append(TraceEntry(entry.at, "audit", entry.event, entry.flow, ids=ids))
        entries.sort(key=lambda e: (e.at, _ORDER[e.source]))
        found = {
            "exchanges": len(found_exchanges),
            "messages": len(found_messages),
            "jobs": len(found_jobs),
            "audit": len(audit_rows),
        }
        truncated = len(entries) > TRACE_LIMIT
        return Trace(query, found, entries[:TRACE_LIMIT], truncated)


_ORDER = {"inbox": 0, "job": 1, "ledger": 2, "audit": 3}


def _job_entries(job: Job) -> list[TraceEntry]:
    ids: dict[str, Any] = {"job_id": job.id, **job.refs}
    if job.parent_id:
        ids["parent_job_id"] = job.parent_id
    queued = TraceEntry(job.created_at, "job", f"{job.kind} queued", job.flow, ids=ids)
    if job.state in (JobState.PENDING, JobState.RUNNING) and job.attempts == 0:
        return [queued]
    outcome = job.state.value
    detail: dict[str, Any] = {"job_id": job.id, "attempts": job.attempts}
    if job.dead_reason is not None:
        detail.update(
            failure_class=job.dead_reason.failure_class.value, reason=job.dead_reason.reason
        )
    if job.first_failed_at is not None:
        detail["first_failed_at"] = job.first_failed_at.isoformat()
    last = TraceEntry(job.updated_at, "job", f"{job.kind} {outcome}", job.flow, outcome, detail)
    return [queued, last]
