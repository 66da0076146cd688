"""The sync status of flows 2 and 3, written back on the Primero case (``MARK_SYNCED``).

Primero shows its users whether a case went to an external system, and when, from the
``mark_synced*`` fields a client with the ``sync_external`` permission PATCHes
(``Webhookable``). After a flow-2 decision or a flow-3 referral reaches DTP the bridge marks
the case ``synced``; when the exchange became a dead letter, ``failed``. Each mark is a job
of its own (``<flow>.mark``), queued in the same commit as the send's success or the dead
letter, so a mark Primero refuses is retried or dead-lettered alone: it never blocks, delays
or repeats the exchange.

``mark_synced_url`` names the destination without a secret: the DTP endpoint the message
went to. Over PING nothing is marked (the destination is PING's ingestion API, whose
outcome flow 3 learns later, asynchronously): ``MARK_SYNCED`` applies to DTP deployments.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal

from ..errors import InvalidInputError
from ..logging import get_logger
from ..store import (
    AuditEvent,
    Enqueue,
    Flow,
    Job,
    LedgerState,
    StepContext,
    flow_of,
    job_kind,
)
from .runtime import Runtime

Status = Literal["synced", "failed"]
SYNCED: Status = "synced"
FAILED: Status = "failed"
#: the flows whose exchanges are marked, and the kind of their mark jobs
MARKS = {flow: job_kind(flow, "mark") for flow in (Flow.PRIMERO_DECISION, Flow.PRIMERO_REFERRAL)}

log = get_logger(__name__)


def mark_job(flow: Flow, ledger_key: str, status: Status) -> Enqueue:
    """The mark of exchange ``(flow, ledger_key)``: one per status, ever (its job key)."""
    kind = MARKS[flow]
    return Enqueue(
        kind,
        {"ledger_key": ledger_key, "status": status},
        f"{kind}:{ledger_key}:{status}",
    )


def queue_synced(rt: Runtime, ctx: StepContext, flow: Flow, ledger_key: str) -> None:
    """In a send's step: mark the case once that send is committed."""
    if not rt.marks_sync:
        return
    job = mark_job(flow, ledger_key, SYNCED)
    ctx.enqueue(job.kind, job.payload, key=job.key)


def failed_follow_up(
    rt: Runtime, flow: Flow, ledger_key_of: Callable[[Mapping[str, Any]], str]
) -> Callable[[Job], list[Enqueue]]:
    """The worker's follow-up for a dead send of ``flow``: the ``failed`` mark, committed with
    the dead letter (``ledger_key_of(job)`` names its exchange from the job's refs)."""

    def follow_up(job: Job) -> list[Enqueue]:
        if not rt.marks_sync:
            return []
        return [mark_job(flow, ledger_key_of(job.refs), FAILED)]

    return follow_up


async def mark(rt: Runtime, ctx: StepContext) -> None:
    """PATCH the case's sync status. A ``failed`` mark whose exchange was sent meanwhile (a
    replayed dead letter) is stale and skipped: the ``synced`` mark says the truth."""
    payload = ctx.job.payload or {}
    flow = flow_of(ctx.job.kind)
    ledger_key, status = payload.get("ledger_key"), payload.get("status")
    if flow not in MARKS or not isinstance(ledger_key, str) or status not in (SYNCED, FAILED):
        raise InvalidInputError("mark job: its payload does not read", reason="bad_mark_job")
    exchange = await rt.store.ledger.get(flow, ledger_key)
    if exchange is None or not exchange.case_record_id:
        raise InvalidInputError(
            "mark job: the ledger has no Primero case for this exchange", reason="no_case_to_mark"
        )
    if status == FAILED and exchange.state == LedgerState.SENT:
        log.info("sync_mark_skipped", flow=flow.value, case_record_id=exchange.case_record_id)
        return
    url = rt.sync_urls.get(flow)
    if url is None:
        log.info("sync_mark_unconfigured", flow=flow.value, reason="no_destination")
        return
    await rt.primero.mark_synced(exchange.case_record_id, url=url, status=status)
    ctx.audit(
        AuditEvent.SYNC_MARKED,
        flow=flow,
        case_record_id=exchange.case_record_id,
        case_id=exchange.case_id,
        service_unique_id=exchange.service_unique_id,
        status=status,
    )
