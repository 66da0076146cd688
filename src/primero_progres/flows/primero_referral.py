"""Flow 3, ``primero-referral``: a Primero referral to UNHCR reaches proGres, once.

``poll`` reads the cases associated with the profile's UNHCR caseworker
user(s) updated since the cursor (minus the overlap window), lists the
referrals of those that hold a UNHCR service, and queues one ``send`` job per
(case, service) whose key is unique forever. Users are fetched by
``user_name``, once per run, only when a message needs them.
"""

from __future__ import annotations

from typing import Any

from ..logging import get_logger
from ..mapping import primero_referral as mapping
from ..scheduler import poll_kind
from .polling import Watermark, finish_poll, read_from
from .runtime import Runtime

FLOW = "primero-referral"
POLL, SEND = poll_kind(FLOW), f"{FLOW}.send"

log = get_logger(__name__)


async def poll(rt: Runtime, ctx: Any) -> None:
    cursor = await rt.store.cursors.get(FLOW)
    watermark = Watermark(cursor)
    users: dict[str, dict[str, Any]] = {}
    missing_users: set[str] = set()
    queued = seen = 0
    filters = {"associated_user_names": list(rt.profile.unhcr_caseworkers)}
    async for case in rt.primero.iter_cases(
        filters=filters, updated_since=read_from(cursor, rt.overlap)
    ):
        seen += 1
        if mapping.unhcr_services(case, rt.profile):
            referrals = await rt.primero.list_referrals(case["id"])
            for user_name in mapping.users_needed(case) - users.keys() - missing_users:
                user = await rt.primero.get_user(user_name)
                if user is None:
                    missing_users.add(user_name)
                else:
                    users[user_name] = user
            for result in mapping.referral_messages(case, referrals, users, rt.profile):
                queued += await _queue(rt, ctx, result)
        watermark.see(case.get("last_updated_at"))
    finish_poll(ctx, log, FLOW, cursor, watermark, seen=seen, queued=queued)


async def _queue(rt: Runtime, ctx: Any, result: Any) -> int:
    key = f"{result.case_id}:{result.service_unique_id}"
    existing = await rt.store.ledger.get(FLOW, key)
    if existing and existing.state != "unmappable":
        return 0
    ids = {
        "case_record_id": result.case_record_id,
        "case_id": result.case_id,
        "service_unique_id": result.service_unique_id,
        "referral_id": result.referral_id,
        "org_referral_id": result.org_referral_id,
    }
    if not result.ok:
        if not existing:
            ctx.ledger_record(FLOW, key, state="unmappable", event=result.error.kind, **ids)
            ctx.audit(
                "referral_not_mappable",
                flow=FLOW,
                reason=result.error.kind,
                fields=list(result.error.fields),
                **ids,
            )
        return 0
    ctx.enqueue(SEND, {"message": result.message}, key=f"{SEND}:{key}", refs=ids)
    ctx.ledger_record(FLOW, key, state="queued", event="referral_queued", **ids)
    return 1


async def send(rt: Runtime, ctx: Any) -> None:
    refs = ctx.job.refs
    await rt.dtp.send_referral(ctx.job.payload["message"])
    ctx.ledger_record(
        FLOW,
        f"{refs['case_id']}:{refs['service_unique_id']}",
        state="sent",
        event="referral_sent",
        **refs,
    )
    ctx.audit("referral_sent", flow=FLOW, **refs)
