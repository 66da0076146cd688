"""When a polling flow runs: one ``<flow>.poll`` job per interval, one process deciding at a time,
and never without a start point.

The decision, the lease it needs and the job it creates are one transaction: the trigger
takes (or renews) the lease ``poll:<flow>``, and only its holder enqueues, only when no poll
of the flow is unfinished and the interval has passed since the last one. The job key
``<flow>.poll:<interval bucket>`` makes a double trigger impossible even if two holders
overlapped.

A polling flow with no cursor has never polled: its first poll would read every case Primero
ever updated and send proGres years of history. So every way a poll starts (the scheduler,
``poll``, the console's "poll now") goes through ``_start``: with no cursor it needs a start
point (the configured ``start_at``, written as the cursor, or ``from_beginning`` said on
purpose), else it refuses with ``NoStartPoint``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from ..errors import ConfigurationError, InvalidInputError
from .audit import AuditLog, audit_entry
from .commands import AuditRecord, CursorMove, Enqueue
from .cursors import Cursors
from .database import Database
from .jobs import JobQueue
from .leases import Leases
from .models import UNFINISHED, AuditEntry, JobState
from .schema import audit_events, cursors, jobs
from .vocabulary import AuditEvent, Flow, job_kind, poll_kind

#: the start point "from the beginning": a cursor before any record Primero holds
BEGINNING = datetime(1970, 1, 1, tzinfo=UTC)


class NoStartPoint(ConfigurationError):
    """A polling flow has no cursor and no start point was given: it must not poll."""

    def __init__(self, flow: Flow) -> None:
        super().__init__(
            f"{flow} has no start point: its first poll would read all of Primero's history. "
            f"Set PRIMERO_PROGRES_POLL_START_AT, or run `primero-progres cursor set {flow} "
            "--to DATE-TIME` (or `--from-beginning` to read everything on purpose)",
            reason="no_start_point",
        )
        self.flow = Flow(flow)


class NotARewind(InvalidInputError):
    """A rewind would move a cursor forward (and skip what lies between)."""


def watermark(moment: datetime) -> str:
    """A moment in the cursor's format (``YYYY-MM-DDTHH:MM:SSZ``; naive is taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_moment(text: str) -> datetime:
    """An operator's ISO 8601 date-time (``2026-11-30T08:00:00Z``; no offset means UTC)."""
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInputError(
            f"not an ISO 8601 date-time: {text[:40]!r} (e.g. 2026-11-30T08:00:00Z)",
            reason="invalid_date_time",
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def poll_lease(flow: Flow) -> str:
    return f"poll:{Flow(flow).value}"


@dataclass(frozen=True)
class PollRun:
    """One poll of a flow: its job, and what it found (from its ``poll_finished`` entry)."""

    job_id: str
    state: str
    queued_at: datetime
    finished_at: datetime | None
    cases_read: int | None
    items_queued: int | None
    items_sent: int
    cursor: str | None


@dataclass(frozen=True)
class PollStatus:
    flow: str
    cursor: str | None
    cursor_updated_at: datetime | None
    last_finished_at: datetime | None
    #: a poll of the flow is pending or running
    running: bool
    #: the scheduler's next trigger (None: it cannot say, e.g. no start point)
    next_poll_at: datetime | None
    #: a poll can start: the flow has a cursor, or a start point to take as one
    startable: bool = True


class Polls:
    """``store.polls``: the scheduler's trigger, the operator's "poll now" and cursor moves."""

    def __init__(
        self, db: Database, queue: JobQueue, leases: Leases, cursors: Cursors, audit: AuditLog
    ) -> None:
        self._db = db
        self._jobs = queue
        self._leases = leases
        self._cursors = cursors
        self._audit = audit

    async def try_trigger(
        self,
        flow: Flow,
        *,
        interval: float,
        owner: str,
        lease_seconds: float,
        start_at: datetime | None = None,
    ) -> str | None:
        """Enqueue the next poll of ``flow`` if it is due and ``owner`` holds the flow's lease;
        the new job's id, else None. Raises ``NoStartPoint`` (after recording it once in the
        audit trail) when the flow has no cursor and ``start_at`` is None."""
        kind = poll_kind(flow)
        refused = False
        async with self._db.write() as conn:
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
            try:
                await self._start(conn, now, flow, start_at=start_at)
            except NoStartPoint:
                refused = True
                await self._record_refusal(conn, now, flow)
            else:
                bucket = int(now.timestamp() // interval)
                command = Enqueue(kind, {}, key=f"{kind}:{bucket}")
                result = await self._jobs.insert(conn, now, command)
        if refused:
            raise NoStartPoint(flow)
        return result.id if result.created else None

    async def stand_down(self, flow: Flow, owner: str) -> None:
        """Give up the flow's trigger lease (a scheduler stopping), so another takes over now."""
        await self._leases.release(poll_lease(flow), owner)

    async def last_completed(self, flows: Iterable[Flow]) -> dict[Flow, datetime]:
        """flow -> when its latest poll finished, for the polling ``flows`` that ever polled
        (what the poll-stale alert and its metric read; ``status`` shows the same)."""
        async with self._db.read() as conn:
            return await _last_completed(conn, flows)

    async def run_now(
        self,
        flow: Flow,
        options: Mapping[str, Any] | None = None,
        *,
        start_at: datetime | None = None,
        from_beginning: bool = False,
        account: str | None = None,
        reason: str | None = None,
    ) -> str:
        """Enqueue a poll of ``flow`` at once, outside the schedule (``options`` is its payload).

        With no cursor: ``start_at`` becomes the cursor, ``from_beginning`` lets this poll read
        everything; neither raises ``NoStartPoint``. An ``account`` is audited as the operator
        who asked.
        """
        async with self._db.write() as conn:
            now = self._db.now()
            await self._start(
                conn, now, flow, start_at=start_at, from_beginning=from_beginning, account=account
            )
            payload = dict(options) if options else None
            result = await self._jobs.insert(conn, now, Enqueue(poll_kind(flow), payload))
            if account is not None:
                ids: dict[str, Any] = {"job_id": result.id, **(payload or {})}
                if from_beginning:
                    ids["from_beginning"] = True
                if reason:
                    ids["reason"] = reason
                record = AuditRecord(AuditEvent.POLL_REQUESTED, flow, ids, account)
                await self._audit.write(conn, now, record)
        return result.id

    async def set_start(
        self, flow: Flow, moment: datetime, *, account: str | None, reason: str | None = None
    ) -> str:
        """Set ``flow``'s cursor to ``moment`` (the start point, or a new one on a new cut-over);
        the cursor written."""
        async with self._db.write() as conn:
            now = self._db.now()
            previous = await _cursor(conn, flow)
            value = watermark(moment)
            await self._move(
                conn, now, flow, value, previous, AuditEvent.CURSOR_SET, account, reason, "operator"
            )
        return value

    async def rewind(
        self, flow: Flow, moment: datetime, *, account: str | None, reason: str | None = None
    ) -> str:
        """Move ``flow``'s cursor back to ``moment``, so the next poll re-reads that window (the
        ledger drops what was already sent). Raises ``NoStartPoint`` when the flow has no
        cursor and ``NotARewind`` when ``moment`` is after the cursor."""
        async with self._db.write() as conn:
            now = self._db.now()
            previous = await _cursor(conn, flow)
            if previous is None:
                raise NoStartPoint(flow)
            value = watermark(moment)
            if value > previous:
                raise NotARewind(
                    f"{flow}: {value} is after the cursor {previous}: a rewind only moves back "
                    "(to skip ahead, set a new start point with `cursor set`)",
                    reason="not_a_rewind",
                )
            await self._move(
                conn, now, flow, value, previous, AuditEvent.CURSOR_REWOUND, account, reason, None
            )
        return value

    async def status(
        self,
        flows: Mapping[Flow, float],
        *,
        start_points: Mapping[Flow, datetime | None] | None = None,
    ) -> list[PollStatus]:
        """Each polling flow (with its interval): cursor, last finished poll, next poll;
        ``start_points``: where each flow with no cursor starts (the scheduler's)."""
        out = []
        async with self._db.read() as conn:
            last_completed = await _last_completed(conn, flows)
            for flow, interval in flows.items():
                kind = poll_kind(flow)
                cursor = (
                    await conn.execute(
                        sa.select(cursors.c.value, cursors.c.updated_at).where(
                            cursors.c.flow == str(flow)
                        )
                    )
                ).first()
                last_created = await conn.scalar(
                    sa.select(sa.func.max(jobs.c.created_at)).where(jobs.c.kind == kind)
                )
                running = await conn.scalar(
                    sa.select(jobs.c.id)
                    .where(jobs.c.kind == kind, jobs.c.state.in_([s.value for s in UNFINISHED]))
                    .limit(1)
                )
                startable = cursor is not None or (start_points or {}).get(flow) is not None
                next_poll = None
                if startable:
                    due = last_created + timedelta(seconds=interval) if last_created else None
                    next_poll = max(due, self._db.now()) if due else self._db.now()
                out.append(
                    PollStatus(
                        flow=str(flow),
                        cursor=cursor.value if cursor else None,
                        cursor_updated_at=cursor.updated_at if cursor else None,
                        last_finished_at=last_completed.get(Flow(flow)),
                        running=running is not None,
                        next_poll_at=next_poll,
                        startable=startable,
                    )
                )
        return out

    async def runs(self, flow: Flow, *, limit: int = 20, offset: int = 0) -> list[PollRun]:
        """The flow's polls, newest first: each one's job, what it read and queued, and how
        many of the messages it queued were sent.

        A poll is a chain of page jobs (each page's job queues the next): a run is shown by
        its first page, with its last page's outcome and the sends of all its pages (and of
        the case jobs they queued, flow 3). A recursive query walks the chains, so the page
        costs the same few statements for a poll of one page or of a hundred."""
        kind, send, case = poll_kind(flow), job_kind(flow, "send"), job_kind(flow, "case")
        pages_of_flow = sa.select(jobs.c.id).where(jobs.c.kind == kind)
        query = (
            sa.select(jobs)
            .where(
                jobs.c.kind == kind,
                sa.or_(jobs.c.parent_id.is_(None), jobs.c.parent_id.not_in(pages_of_flow)),
            )
            .order_by(jobs.c.created_at.desc(), jobs.c.id)
            .limit(limit)
            .offset(offset)
        )
        async with self._db.read() as conn:
            firsts = (await conn.execute(query)).all()
            if not firsts:
                return []
            chain = _chains(kind, [row.id for row in firsts])
            pages = (
                await conn.execute(
                    sa.select(chain.c.run, jobs).join(jobs, jobs.c.id == chain.c.page)
                )
            ).all()
            entries = (
                await conn.execute(
                    sa.select(chain.c.run, audit_events)
                    .join(audit_events, audit_events.c.job_id == chain.c.page)
                    .where(audit_events.c.event == AuditEvent.POLL_FINISHED.value)
                    .order_by(audit_events.c.id)
                )
            ).all()
            sent = await _sent(conn, chain, send, case)
        by_parent: dict[str, dict[str, Any]] = {}
        for page in pages:
            by_parent.setdefault(page.run, {})[page.parent_id] = page
        finished: dict[str, AuditEntry] = {}
        for entry in entries:
            finished.setdefault(entry.run, audit_entry(entry))
        runs = []
        for first in firsts:
            chain_of_run: list[Any] = [first]
            links = by_parent.get(first.id, {})
            while (following := links.get(chain_of_run[-1].id)) is not None:
                chain_of_run.append(following)
            runs.append(_run(first, chain_of_run, finished.get(first.id), sent.get(first.id, 0)))
        return runs

    # ------------------------------------------------------------------ the one decision

    async def _start(
        self,
        conn: AsyncConnection,
        now: datetime,
        flow: Flow,
        *,
        start_at: datetime | None,
        from_beginning: bool = False,
        account: str | None = None,
    ) -> None:
        """Let a poll of ``flow`` start, or raise ``NoStartPoint``: the flow has a cursor, or
        ``start_at`` becomes it, or the caller said ``from_beginning``."""
        if await _cursor(conn, flow) is not None or from_beginning:
            return
        if start_at is None:
            raise NoStartPoint(flow)
        value = watermark(start_at)
        await self._move(
            conn, now, flow, value, None, AuditEvent.CURSOR_SET, account, None, "setting"
        )

    async def _move(
        self,
        conn: AsyncConnection,
        now: datetime,
        flow: Flow,
        value: str,
        previous: str | None,
        event: AuditEvent,
        account: str | None,
        reason: str | None,
        source: str | None,
    ) -> None:
        await self._cursors.write(conn, now, CursorMove(flow, value))
        ids: dict[str, Any] = {"cursor": value, "previous_cursor": previous}
        if source:
            ids["source"] = source
        if reason:
            ids["reason"] = reason
        await self._audit.write(conn, now, AuditRecord(event, flow, ids, account))

    async def _record_refusal(self, conn: AsyncConnection, now: datetime, flow: Flow) -> None:
        """Audit a refused trigger once per flow: a flow that never had a cursor keeps being
        refused every tick, and one entry says it."""
        recorded = await conn.scalar(
            sa.select(audit_events.c.id)
            .where(
                audit_events.c.event == AuditEvent.POLL_NO_START_POINT.value,
                audit_events.c.flow == str(flow),
            )
            .limit(1)
        )
        if recorded is None:
            record = AuditRecord(AuditEvent.POLL_NO_START_POINT, flow, {"reason": "no_start_point"})
            await self._audit.write(conn, now, record)


async def _last_completed(conn: AsyncConnection, flows: Iterable[Flow]) -> dict[Flow, datetime]:
    kinds = {poll_kind(flow): Flow(flow) for flow in flows}
    query = (
        sa.select(jobs.c.kind, sa.func.max(jobs.c.updated_at))
        .where(jobs.c.kind.in_(sorted(kinds)), jobs.c.state == JobState.DONE.value)
        .group_by(jobs.c.kind)
    )
    rows = (await conn.execute(query)).all()
    return {kinds[kind]: finished for kind, finished in rows}


async def _cursor(conn: AsyncConnection, flow: Flow) -> str | None:
    value: str | None = await conn.scalar(
        sa.select(cursors.c.value).where(cursors.c.flow == str(flow))
    )
    return value


def _chains(kind: str, firsts: list[str]) -> sa.CTE:
    """``(run, page)`` for every page of the runs whose first pages are ``firsts``: each
    page's job is the parent of the next page's."""
    seed = sa.select(jobs.c.id.label("run"), jobs.c.id.label("page")).where(
        jobs.c.id.in_(firsts)
    )
    chain = seed.cte("chain", recursive=True)
    following = (
        sa.select(chain.c.run, jobs.c.id)
        .join_from(chain, jobs, jobs.c.parent_id == chain.c.page)
        .where(jobs.c.kind == kind)
    )
    return chain.union_all(following)


async def _sent(conn: AsyncConnection, chain: sa.CTE, send: str, case: str) -> dict[str, int]:
    """run -> its sends that are done: those its pages queued and those of its case jobs."""
    case_jobs = jobs.alias("case_jobs")
    done = sa.and_(jobs.c.kind == send, jobs.c.state == JobState.DONE.value)
    direct = (
        sa.select(chain.c.run, sa.func.count().label("sent"))
        .join_from(chain, jobs, jobs.c.parent_id == chain.c.page)
        .where(done)
        .group_by(chain.c.run)
    )
    via_cases = (
        sa.select(chain.c.run, sa.func.count().label("sent"))
        .join_from(chain, case_jobs, case_jobs.c.parent_id == chain.c.page)
        .join(jobs, jobs.c.parent_id == case_jobs.c.id)
        .where(case_jobs.c.kind == case, done)
        .group_by(chain.c.run)
    )
    sent: dict[str, int] = {}
    for run, count in (await conn.execute(sa.union_all(direct, via_cases))).all():
        sent[run] = sent.get(run, 0) + int(count)
    return sent


def _run(first: Any, chain: list[Any], finished: AuditEntry | None, sent: int) -> PollRun:
    """A run from its pages: dead if one page is, else as its last page stands."""
    last = chain[-1]
    state = next((r.state for r in chain if r.state == JobState.DEAD.value), last.state)
    done = state in (JobState.DONE.value, JobState.DEAD.value, JobState.DISCARDED.value)
    ids = finished.ids if finished else {}
    return PollRun(
        job_id=first.id,
        state=state,
        queued_at=first.created_at,
        finished_at=last.updated_at if done else None,
        cases_read=ids.get("count"),
        items_queued=ids.get("total"),
        items_sent=sent,
        cursor=ids.get("cursor"),
    )
