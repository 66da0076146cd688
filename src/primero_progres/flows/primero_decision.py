"""Flow 2, ``primero-decision``: a Primero decision on a proGres referral goes back to DTP, once.

``poll`` reads the cases that hold proGres referrals still waiting for a
decision (the ledger knows them from flow 1 and hands their record ids over a
page at a time, so a poll's memory does not grow with history), or every case
updated since the cursor when the operator asks for a full scan. Each page is
its own job (``polling``): it queues its decisions and the next page in one
commit. Each qualifying (service, status) becomes a ``send`` job whose key is
unique forever, so a decision is queued once however many times the case is
edited afterwards.

In the ledger walk the cursor moves when the last page is done: every page
reads from the same lower bound, so a page retried later misses nothing. In
a full scan it moves page by page, as flow 3's does.

``check`` is the poll narrowed to one case, for a Primero webhook (``webhooks``):
a case the ledger does not know costs no read; a known one is read and its
decisions go through the same ledger test, so a webhook can cause a read, never
a second send.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..logging import get_logger
from ..mapping import primero_decision as mapping
from ..peers.primero import CasePosition
from ..store import (
    AuditEvent,
    Flow,
    LedgerEvent,
    LedgerState,
    StepContext,
    decision_key,
    job_kind,
    poll_kind,
)
from . import sync_status
from .polling import PollState, Watermark, finish_page, finish_window, first_position
from .runtime import Runtime, idempotency_key

FLOW = Flow.PRIMERO_DECISION
POLL, SEND = poll_kind(FLOW), job_kind(FLOW, "send")
#: the check of one case a Primero webhook named
CHECK = job_kind(FLOW, "webhook")
#: record ids read from the ledger per page: one Primero call each (its ``id`` batch)
WAITING_PAGE = 100

log = get_logger(__name__)

#: the ``decision_not_mappable`` reason of a decided service row without a ``unique_id``
NO_UNIQUE_ID = "no_unique_id"


async def poll(rt: Runtime, ctx: StepContext) -> None:
    cursor = await rt.store.cursors.get(FLOW)
    state = PollState.of(ctx.job.payload)
    watermark = Watermark(cursor)
    watermark.see(state.watermark)
    if rt.full_scan or state.options.get("full_scan"):
        await _scan_page(rt, ctx, cursor, state, watermark)
    else:
        await _waiting_page(rt, ctx, cursor, state, watermark)


async def _scan_page(
    rt: Runtime, ctx: StepContext, cursor: str | None, state: PollState, watermark: Watermark
) -> None:
    """A full scan: one page of every case updated since the cursor."""
    position = state.position or first_position(cursor, rt.overlap)
    window = await rt.primero.case_window(position)
    queued = await _decisions(rt, ctx, window.cases, watermark)
    finish_window(ctx, FLOW, cursor, watermark, state, window, queued=queued)


async def _waiting_page(
    rt: Runtime, ctx: StepContext, cursor: str | None, state: PollState, watermark: Watermark
) -> None:
    """The ledger walk: the next ``WAITING_PAGE`` cases waiting for a decision, read from
    Primero if updated since the poll's lower bound."""
    since = state.since
    if state.after is None and state.position is None:
        since = first_position(cursor, rt.overlap).since
    statuses = list(rt.profile.primero_decision.statuses)
    ids = await rt.store.ledger.cases_waiting_for_decision(
        statuses, after=state.after, limit=WAITING_PAGE
    )
    cases: list[dict[str, Any]] = []
    position: CasePosition | None = CasePosition(since)
    while ids and position is not None:
        window = await rt.primero.case_window(position, ids=ids)
        cases.extend(window.cases)
        position = window.next
    queued = await _decisions(rt, ctx, cases, watermark)
    more = len(ids) == WAITING_PAGE
    finish_page(
        ctx,
        FLOW,
        cursor,
        watermark,
        state,
        seen=len(cases),
        queued=queued,
        next_page=PollState(state.options, since=since, after=ids[-1]) if more else None,
        move_cursor=not more,
    )


async def check(rt: Runtime, ctx: StepContext) -> None:
    """One case a webhook named: its decisions, exactly as the ledger walk would queue them."""
    record_id = str((ctx.job.payload or {})["record_id"])
    if not rt.full_scan and not await rt.store.ledger.find(
        Flow.PROGRES_REFERRAL, case_record_id=record_id
    ):
        log.info("webhook_check", flow=FLOW.value, outcome="not_a_progres_case")
        return
    window = await rt.primero.case_window(CasePosition(), ids=[record_id])
    queued = await _decisions(rt, ctx, window.cases, Watermark(None))
    log.info("webhook_check", flow=FLOW.value, count=len(window.cases), total=queued)


async def _decisions(
    rt: Runtime, ctx: StepContext, cases: list[dict[str, Any]], watermark: Watermark
) -> int:
    queued = 0
    for case in cases:
        for decision in mapping.qualifying_decisions(case, rt.profile):
            queued += await _queue(rt, ctx, decision)
        watermark.see(case.get("last_updated_at"))
    return queued


async def _queue(rt: Runtime, ctx: StepContext, decision: mapping.DecisionResult) -> int:
    """Queue one decision, once ever per (service, status). A row without a ``unique_id``
    cannot be keyed (``None:<status>`` would let only the first such decision through) nor
    addressed: it is audited and skipped, like a decision that cannot be mapped."""
    service_unique_id = decision.service_unique_id
    if decision.error is not None or decision.message is None or service_unique_id is None:
        ctx.audit(
            AuditEvent.DECISION_NOT_MAPPABLE,
            flow=FLOW,
            case_id=decision.case_id,
            service_unique_id=service_unique_id,
            progres_interventionnumber=decision.progres_interventionnumber,
            reason=(
                decision.error.kind
                if decision.error
                else NO_UNIQUE_ID if service_unique_id is None else None
            ),
        )
        return 0
    key = decision_key(service_unique_id, decision.status)
    if await rt.store.ledger.get(FLOW, key):
        return 0
    ctx.enqueue(
        SEND,
        {"message": decision.message},
        key=f"{SEND}:{key}",
        refs={
            "case_id": decision.case_id,
            "service_unique_id": decision.service_unique_id,
            "progres_interventionnumber": decision.progres_interventionnumber,
            "status": decision.status,
            "case_record_id": decision.case_record_id,
        },
    )
    ctx.ledger_record(
        FLOW,
        key,
        state=LedgerState.QUEUED,
        event=LedgerEvent.DECISION_QUEUED,
        progres_interventionnumber=decision.progres_interventionnumber,
        case_record_id=decision.case_record_id,
        case_id=decision.case_id,
        service_unique_id=decision.service_unique_id,
    )
    return 1


async def send(rt: Runtime, ctx: StepContext) -> None:
    message: dict[str, Any] = (ctx.job.payload or {})["message"]
    refs = ctx.job.refs
    await rt.dtp.send_decision(message, idempotency_key=idempotency_key(ctx))
    key = ledger_key(refs)
    ctx.ledger_record(
        FLOW,
        key,
        state=LedgerState.SENT,
        event=LedgerEvent.DECISION_SENT,
        progres_interventionnumber=refs.get("progres_interventionnumber"),
        case_id=refs.get("case_id"),
        service_unique_id=refs.get("service_unique_id"),
    )
    ctx.audit(
        AuditEvent.DECISION_SENT,
        flow=FLOW,
        case_id=refs.get("case_id"),
        service_unique_id=refs.get("service_unique_id"),
        status=refs["status"],
    )
    sync_status.queue_synced(rt, ctx, FLOW, key)


def ledger_key(refs: Mapping[str, Any]) -> str:
    """The exchange a ``send`` job's refs name."""
    return decision_key(str(refs.get("service_unique_id")), refs["status"])
