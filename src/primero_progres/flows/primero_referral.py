"""Flow 3, ``primero-referral``: a Primero referral to UNHCR reaches proGres, once.

``poll`` reads the cases associated with the profile's UNHCR caseworker
user(s) updated since the cursor (minus the overlap window), lists the
referrals of those that hold a UNHCR service, and queues one ``send`` job per
(case, service) whose key is unique forever. Users are fetched by
``user_name``, once per run, only when a message needs them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..logging import get_logger
from ..mapping import ping as ping_mapping
from ..mapping import primero_referral as mapping
from ..store import AuditEvent, Flow, LedgerEvent, LedgerState, StepContext, job_kind, poll_kind
from .polling import Watermark, finish_poll, read_from
from .runtime import Runtime, idempotency_key

FLOW = Flow.PRIMERO_REFERRAL
POLL, SEND = poll_kind(FLOW), job_kind(FLOW, "send")
#: over PING a referral is ingested asynchronously (``ping_outbound``), not sent
INGEST = job_kind(FLOW, "ingest")

Messages = Callable[..., list[mapping.ReferralResult]]
#: by gateway: the messages the poll builds and the job that takes each to proGres
ROUTES: dict[str, tuple[Messages, str]] = {
    "dtp": (mapping.referral_messages, SEND),
    "ping": (ping_mapping.referral_create_messages, INGEST),
}

log = get_logger(__name__)


async def poll(rt: Runtime, ctx: StepContext) -> None:
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
            messages, _ = ROUTES[rt.unhcr_gateway]
            for result in messages(case, referrals, users, rt.profile):
                queued += await _queue(rt, ctx, result)
        watermark.see(case.get("last_updated_at"))
    finish_poll(ctx, FLOW, cursor, watermark, seen=seen, queued=queued)


def exchange_key(case_id: object, service_unique_id: object) -> str:
    """The ledger key of a flow-3 exchange, whichever gateway sends it."""
    return f"{case_id}:{service_unique_id}"


async def _queue(rt: Runtime, ctx: StepContext, result: mapping.ReferralResult) -> int:
    key = exchange_key(result.case_id, result.service_unique_id)
    existing = await rt.store.ledger.get(FLOW, key)
    if existing and existing.state != LedgerState.UNMAPPABLE:
        return 0
    ids: dict[str, Any] = {
        "case_record_id": result.case_record_id,
        "case_id": result.case_id,
        "service_unique_id": result.service_unique_id,
        "referral_id": result.referral_id,
        "org_referral_id": result.org_referral_id,
    }
    if result.error is not None or result.message is None:
        if not existing:
            kind = result.error.kind if result.error else None
            ctx.ledger_record(
                FLOW,
                key,
                state=LedgerState.UNMAPPABLE,
                event=LedgerEvent.REFERRAL_NOT_MAPPABLE,
                reason=kind,
                **ids,
            )
            ctx.audit(
                AuditEvent.REFERRAL_NOT_MAPPABLE,
                flow=FLOW,
                reason=kind,
                fields=list(result.error.fields) if result.error else [],
                **ids,
            )
        return 0
    _, kind = ROUTES[rt.unhcr_gateway]
    ctx.enqueue(kind, {"message": result.message}, key=f"{kind}:{key}", refs=ids)
    ctx.ledger_record(
        FLOW, key, state=LedgerState.QUEUED, event=LedgerEvent.REFERRAL_QUEUED, **ids
    )
    return 1


async def send(rt: Runtime, ctx: StepContext) -> None:
    refs = ctx.job.refs
    message = (ctx.job.payload or {})["message"]
    await rt.dtp.send_referral(message, idempotency_key=idempotency_key(ctx))
    ctx.ledger_record(
        FLOW,
        exchange_key(refs.get("case_id"), refs.get("service_unique_id")),
        state=LedgerState.SENT,
        event=LedgerEvent.REFERRAL_SENT,
        **refs,
    )
    ctx.audit(AuditEvent.REFERRAL_SENT, flow=FLOW, **refs)
