"""Flow 2, ``primero-decision``: a Primero decision on a proGres referral goes back to DTP, once.

``poll`` reads the cases that hold proGres referrals still waiting for a
decision (the ledger knows them from flow 1), or every case updated since the
cursor when the operator asks for a full scan. Each qualifying (service,
status) becomes a ``send`` job whose key is unique forever, so a decision is
queued once however many times the case is edited afterwards. The cursor
moves in the same transaction as those jobs.
"""

from __future__ import annotations

from typing import Any

from ..logging import get_logger
from ..mapping import primero_decision as mapping
from ..scheduler import poll_kind
from .polling import Watermark, finish_poll, read_from
from .runtime import Runtime

FLOW = "primero-decision"
POLL, SEND = poll_kind(FLOW), f"{FLOW}.send"
#: Primero's ``id=`` filter takes a list; keep URLs short
ID_BATCH = 100

log = get_logger(__name__)


async def poll(rt: Runtime, ctx: Any) -> None:
    cursor = await rt.store.cursors.get(FLOW)
    watermark = Watermark(cursor)
    since = read_from(cursor, rt.overlap)
    full_scan = rt.full_scan or bool((ctx.job.payload or {}).get("full_scan"))
    if full_scan:
        batches: list[list[str] | None] = [None]
    else:
        waiting = await _cases_waiting_for_decision(rt)
        batches = [waiting[i : i + ID_BATCH] for i in range(0, len(waiting), ID_BATCH)]
    queued = seen = 0
    for ids in batches:
        async for case in rt.primero.iter_cases(updated_since=since, ids=ids):
            seen += 1
            for decision in mapping.qualifying_decisions(case, rt.profile):
                queued += await _queue(rt, ctx, decision)
            watermark.see(case.get("last_updated_at"))
    finish_poll(ctx, log, FLOW, cursor, watermark, seen=seen, queued=queued)


async def _cases_waiting_for_decision(rt: Runtime) -> list[str]:
    """Primero record ids of cases with a delivered proGres referral that can still send a decision.

    One decision goes out per (service, status), so a service stays watched until a decision
    for every status of the profile has been queued: an accepted referral later rejected
    must still send its rejection.
    """
    delivered = await rt.store.ledger.find(flow="progres-referral")
    sent: dict[str | None, set[str]] = {}
    for exchange in await rt.store.ledger.find(flow=FLOW):
        sent.setdefault(exchange.service_unique_id, set()).add(exchange.key.rpartition(":")[2])
    every_status = set(rt.profile.primero_decision.statuses)
    ids = {
        e.case_record_id
        for e in delivered
        if e.case_record_id
        and e.state not in ("refused", "refused_reported")
        and not every_status <= sent.get(e.service_unique_id, set())
    }
    return sorted(ids)


async def _queue(rt: Runtime, ctx: Any, decision: Any) -> int:
    key = f"{decision.service_unique_id}:{decision.status}"
    if not decision.ok:
        ctx.audit(
            "decision_not_mappable",
            flow=FLOW,
            case_id=decision.case_id,
            service_unique_id=decision.service_unique_id,
            reason=decision.error.kind,
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
        state="queued",
        event="decision_queued",
        progres_interventionnumber=decision.progres_interventionnumber,
        case_record_id=decision.case_record_id,
        case_id=decision.case_id,
        service_unique_id=decision.service_unique_id,
    )
    return 1


async def send(rt: Runtime, ctx: Any) -> None:
    message = ctx.job.payload["message"]
    refs = ctx.job.refs
    await rt.dtp.send_decision(message)
    ctx.ledger_record(
        FLOW,
        f"{refs['service_unique_id']}:{refs['status']}",
        state="sent",
        event="decision_sent",
        progres_interventionnumber=refs.get("progres_interventionnumber"),
        case_id=refs.get("case_id"),
        service_unique_id=refs["service_unique_id"],
    )
    ctx.audit(
        "decision_sent",
        flow=FLOW,
        case_id=refs.get("case_id"),
        service_unique_id=refs["service_unique_id"],
        status=refs["status"],
    )
