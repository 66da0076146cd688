"""What flows 1 and 4 over PING share: paging a list, one committed page per job, one pull
per listed item at a time, and the write-back step.

PING's lists are queues: an item stays listed until its write-back changes its
status field, which happens only once the Primero side is committed. So a poll
keeps no watermark; each ``<flow>.poll`` job asks for one page, queues one
``pull`` job per actionable row and, while PING says more rows are available,
the job for the next page, all in one commit. A page that fails is retried
alone; the pages before it are already queued.

An item is pulled again in every poll round while it stays listed (its
write-back was lost, or it was refused and queued again), except while a pull
of it is outstanding: still pending or running (retrying a transient
failure), or dead, waiting for an operator's replay. So a failing item is
never queued twice, and never piles up dead letters round after round.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal

from ..logging import get_logger
from ..mapping.errors import MappingError
from ..peers.ping import PEER, IngestionReceipt, PingUnexpectedResponseError
from ..store import AuditEvent, Flow, LedgerEvent, LedgerState, StepContext, poll_kind
from .runtime import Runtime

log = get_logger(__name__)

#: a page count no real list reaches: past it the gateway is paging in circles
MAX_PAGES = 10_000

#: ``(runtime, step, row, poll round)`` -> how many jobs it queued
RowHandler = Callable[[Runtime, StepContext, dict[str, Any], str], Awaitable[int]]

#: what PING holds now, against the write-back a job carries: it already shows the status
#: (an earlier attempt whose answer was lost), someone changed the item since it was pulled
#: (a proGres user's edit, another decision), flow 2 wrote its decision over it since (flow 1
#: only: decided), or it is as pulled (send)
Standing = Literal["applied", "superseded", "decided", "send"]


async def poll_page(
    rt: Runtime,
    ctx: StepContext,
    flow: Flow,
    shipping_process_id: str,
    on_row: RowHandler,
) -> None:
    """Ask for this job's page of the list, hand each row to ``on_row``, queue the next page."""
    payload = ctx.job.payload or {}
    number = int(payload.get("page") or 1)
    cookie = payload.get("cookie") if number > 1 else None
    #: the poll round: the id of its first page's job
    round_id = str(payload.get("round") or ctx.job.id)
    page = await rt.ping.retrieve_page(
        shipping_process_id,
        page_number=number,
        paging_cookie=cookie if isinstance(cookie, str) else None,
    )
    queued = 0
    for row in page.rows:
        queued += await on_row(rt, ctx, row, round_id)
    seen = int(payload.get("seen") or 0) + len(page.rows)
    total = int(payload.get("queued") or 0) + queued
    log.info("ping_page_polled", flow=flow.value, page=number, count=len(page.rows), total=queued)
    if not page.more:
        ctx.audit(AuditEvent.POLL_FINISHED, flow=flow, count=seen, total=total, page=number)
        log.info("poll_finished", flow=flow.value, count=seen, total=total)
        return
    if not page.rows:
        raise PingUnexpectedResponseError(
            PEER, "retrieve", f"{shipping_process_id}: page {number} is empty but announces more",
            reason="paging_stalled",
        )
    if number >= MAX_PAGES:
        raise PingUnexpectedResponseError(
            PEER, "retrieve", f"{shipping_process_id}: still more rows after {number} pages",
            reason="paging_runaway",
        )
    kind = poll_kind(flow)
    ctx.enqueue(
        kind,
        {"page": number + 1, "cookie": page.paging_cookie, "round": round_id, "seen": seen,
         "queued": total},
        key=f"{kind}:{round_id}:{number + 1}",
        refs={"page": number + 1},
    )


async def queue_pull(
    rt: Runtime,
    ctx: StepContext,
    kind: str,
    item_id: str,
    round_id: str,
    refs: dict[str, Any],
) -> int:
    """Queue the pull of one listed item, unless one is outstanding; 1 if queued."""
    if await rt.store.jobs.outstanding(kind, f"{kind}:{item_id}:"):
        return 0
    ctx.enqueue(kind, None, key=f"{kind}:{item_id}:{round_id}", refs=refs)
    return 1


def unreadable_row(ctx: StepContext, flow: Flow, error: MappingError) -> int:
    """A list row without the ids its item needs: audited and skipped; the others go on."""
    fields = list(error.fields)
    ctx.audit(AuditEvent.PING_ROW_UNREADABLE, flow=flow, reason=error.kind, fields=fields)
    return 0


def left_the_queue(flow: Flow, **ids: Any) -> None:
    """A listed item whose detail shows it no longer waits (a stale list): nothing to do.
    Only logged: PING may list it again each round, and the ledger must not grow with that."""
    log.info("ping_stale_listing", flow=flow.value, **ids)


def queue_write_back(
    ctx: StepContext,
    kind: str,
    item: Mapping[str, Any],
    *,
    ledger_key: str,
    fingerprint: str,
    item_id: str,
    refs: Mapping[str, Any],
    **payload: Any,
) -> None:
    """Queue the write-back of one item in the commit of the work it acknowledges."""
    ctx.enqueue(
        kind,
        {"item": dict(item), "ledger_key": ledger_key, "fingerprint": fingerprint, **payload},
        key=f"{kind}:{item_id}:{ctx.job.id}",
        refs=refs,
    )


async def write_back(
    rt: Runtime,
    ctx: StepContext,
    flow: Flow,
    send: Callable[[Mapping[str, Any]], Awaitable[IngestionReceipt]],
    state: LedgerState,
    standing: Callable[[str | None], Awaitable[Standing]],
    *,
    lease: str,
    **ids: Any,
) -> None:
    """Send the status a ``queue_write_back`` job holds, then record ``state``; unless a later
    pull recorded other content since: that pull's own write-back says what is true now.

    PING's writes are unconditional and it keeps no duplicate guard, so under the item's
    ``lease`` (the one its other writers hold) the item is read first: a status already
    there is not written again (an earlier attempt was applied, its answer lost), and an
    item changed since it was pulled is left alone (writing would undo a decision sent
    since, or swallow a proGres user's edit the next pull delivers). A decision flow 2 wrote
    since is recorded: it stands for the acknowledgement, and nothing lists the item again."""
    payload = ctx.job.payload or {}
    ledger_key = str(payload["ledger_key"])
    current = await rt.store.ledger.get(flow, ledger_key)
    if current is not None and current.content_fingerprint != payload.get("fingerprint"):
        log.info("ping_write_back_superseded", flow=flow.value, **ids)
        return
    await ctx.hold(lease)
    now = await standing(payload.get("fingerprint"))
    if now == "superseded":
        log.info("ping_write_back_superseded", flow=flow.value, changed_in="ping", **ids)
        return
    if now == "decided":
        # nothing will list the item again: without this the ledger would say "delivered",
        # never acknowledged, forever
        log.info("ping_write_back_superseded", flow=flow.value, changed_in="decision", **ids)
        ctx.ledger_record(
            flow,
            ledger_key,
            state=LedgerState.SUPERSEDED_BY_DECISION,
            event=LedgerEvent.ACKNOWLEDGEMENT_SUPERSEDED,
            **ids,
        )
        return
    transaction_id = None
    if now == "send":
        receipt = await send(payload["item"])
        transaction_id = receipt.transaction_id
    else:
        log.info("ping_write_back_already_applied", flow=flow.value, **ids)
    ctx.ledger_record(
        flow,
        ledger_key,
        state=state,
        event=LedgerEvent.STATUS_WRITTEN_BACK,
        transaction_id=transaction_id,
        **ids,
    )
    ctx.audit(AuditEvent.STATUS_WRITTEN_BACK, flow=flow, **ids)
