"""Flow 2, ``primero-decision``: a Primero decision on a proGres referral goes back to DTP, once.

``poll`` reads the cases that hold proGres referrals still waiting for a
decision (the ledger knows them from flow 1; the store hands their record ids
over a page at a time, so a poll's memory does not grow with history), or
every case updated since the cursor when the operator asks for a full scan.
Each qualifying (service, status) becomes a ``send`` job whose key is unique
forever, so a decision is queued once however many times the case is edited
afterwards. The cursor moves in the same transaction as those jobs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from ..logging import get_logger
from ..mapping import primero_decision as mapping
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
from .polling import Watermark, finish_poll, read_from
from .runtime import Runtime, idempotency_key

FLOW = Flow.PRIMERO_DECISION
POLL, SEND = poll_kind(FLOW), job_kind(FLOW, "send")
#: record ids read from the ledger per page (the Primero client splits them into its own batches)
WAITING_PAGE = 500

log = get_logger(__name__)


async def poll(rt: Runtime, ctx: StepContext) -> None:
    cursor = await rt.store.cursors.get(FLOW)
    watermark = Watermark(cursor)
    since = read_from(cursor, rt.overlap)
    full_scan = rt.full_scan or bool((ctx.job.payload or {}).get("full_scan"))
    queued = seen = 0
    async for case in _cases(rt, since, full_scan=full_scan):
        seen += 1
        for decision in mapping.qualifying_decisions(case, rt.profile):
            queued += await _queue(rt, ctx, decision)
        watermark.see(case.get("last_updated_at"))
    finish_poll(ctx, FLOW, cursor, watermark, seen=seen, queued=queued)


async def _cases(
    rt: Runtime, since: datetime | None, *, full_scan: bool
) -> AsyncIterator[dict[str, Any]]:
    """Every case updated since ``since``, or only those waiting for a decision, page by page."""
    if full_scan:
        async for case in rt.primero.iter_cases(updated_since=since):
            yield case
        return
    statuses = list(rt.profile.primero_decision.statuses)
    after: str | None = None
    while True:
        page = await rt.store.ledger.cases_waiting_for_decision(
            statuses, after=after, limit=WAITING_PAGE
        )
        if not page:
            return
        async for case in rt.primero.iter_cases(updated_since=since, ids=page):
            yield case
        if len(page) < WAITING_PAGE:
            return
        after = page[-1]


async def _queue(rt: Runtime, ctx: StepContext, decision: mapping.DecisionResult) -> int:
    key = decision_key(decision.service_unique_id, decision.status)
    if decision.error is not None or decision.message is None:
        ctx.audit(
            AuditEvent.DECISION_NOT_MAPPABLE,
            flow=FLOW,
            case_id=decision.case_id,
            service_unique_id=decision.service_unique_id,
            reason=decision.error.kind if decision.error else None,
        )
        return 0
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
    ctx.ledger_record(
        FLOW,
        decision_key(refs.get("service_unique_id"), refs["status"]),
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
