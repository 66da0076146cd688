"""Flow 3, ``primero-referral``: a Primero referral to UNHCR reaches proGres, once.

``poll`` reads one page of the cases associated with the profile's UNHCR
caseworker user(s), updated since the cursor (minus the overlap window), and
queues one ``case`` job per case that holds a UNHCR service, then the next
page (``polling``). A ``case`` job lists that case's referrals, fetches the
owner's contact details, and queues one ``send`` job per (case, service),
whose key is unique forever; the ledger keeps it once. Each case is its own
unit: one case Primero fails on is retried alone.

``check`` is the poll narrowed to one case, for a Primero webhook (``webhooks``):
the same query with the case's id, the same scope check, and the same ``case`` job
(same key) when the ledger has news, so a webhook can cause a read, never a second
send.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..logging import get_logger
from ..mapping import ping as ping_mapping
from ..mapping import primero_referral as mapping
from ..peers.primero import CasePosition, ForbiddenError
from ..store import AuditEvent, Flow, LedgerEvent, LedgerState, StepContext, job_kind, poll_kind
from . import sync_status
from .polling import PollState, Watermark, finish_window, first_position
from .primero_access import SELF_SCOPE, USERS_FORBIDDEN, scope_too_narrow
from .runtime import Runtime, idempotency_key

FLOW = Flow.PRIMERO_REFERRAL
POLL, CASE, SEND = poll_kind(FLOW), job_kind(FLOW, "case"), job_kind(FLOW, "send")
#: the check of one case a Primero webhook named (``.check`` is PING's ingestion status)
CHECK = job_kind(FLOW, "webhook")
#: over PING a referral is ingested asynchronously (``ping_outbound``), not sent
INGEST = job_kind(FLOW, "ingest")

Messages = Callable[..., list[mapping.ReferralResult]]
#: by gateway: the messages a case job builds and the job that takes each to proGres
ROUTES: dict[str, tuple[Messages, str]] = {
    "dtp": (mapping.referral_messages, SEND),
    "ping": (ping_mapping.referral_create_messages, INGEST),
}

log = get_logger(__name__)


async def poll(rt: Runtime, ctx: StepContext) -> None:
    cursor = await rt.store.cursors.get(FLOW)
    state = PollState.of(ctx.job.payload)
    position = state.position or first_position(cursor, rt.overlap)
    watermark = Watermark(cursor)
    window = await rt.primero.case_window(position, filters=_filters(rt))
    await _check_scope(rt)
    queued = 0
    for case in window.cases:
        queued += await _queue_case(rt, ctx, case)
        watermark.see(case.get("last_updated_at"))
    finish_window(ctx, FLOW, cursor, watermark, state, window, queued=queued)


async def check(rt: Runtime, ctx: StepContext) -> None:
    """One case a webhook named: the poll's query for that id alone, then the poll's test."""
    record_id = str((ctx.job.payload or {})["record_id"])
    window = await rt.primero.case_window(CasePosition(), ids=[record_id], filters=_filters(rt))
    queued = 0
    if window.cases:
        await _check_scope(rt)
        for case in window.cases:
            queued += await _queue_case(rt, ctx, case)
    log.info("webhook_check", flow=FLOW.value, count=len(window.cases), total=queued)


def _filters(rt: Runtime) -> dict[str, list[str]]:
    return {"associated_user_names": list(rt.profile.unhcr_caseworkers)}


async def _check_scope(rt: Runtime) -> None:
    """A narrow scope hides referrals without a word: checked before a page counts as read."""
    scope = await rt.role.scope(rt.primero)
    if scope == SELF_SCOPE:
        raise scope_too_narrow(FLOW)
    if scope is None:
        log.warning("primero_scope_unchecked", flow=FLOW.value, reason=USERS_FORBIDDEN)


async def _queue_case(rt: Runtime, ctx: StepContext, case: dict[str, Any]) -> int:
    """Queue the ``case`` job of a case with news (its key: the case at this update); 1 if so."""
    if not await _news(rt, case):
        return 0
    ctx.enqueue(
        CASE,
        {"case": case},
        key=f"{CASE}:{case['id']}:{case.get('last_updated_at')}",
        refs={"case_record_id": case["id"], "case_id": case.get("case_id")},
    )
    return 1


async def _news(rt: Runtime, case: dict[str, Any]) -> bool:
    """Whether the case holds a UNHCR service the ledger has not queued yet (or could not map):
    only those cases are worth their own job."""
    for row in mapping.unhcr_services(case, rt.profile):
        key = exchange_key(case.get("case_id"), row.get("unique_id"))
        known = await rt.store.ledger.get(FLOW, key)
        if known is None or known.state == LedgerState.UNMAPPABLE:
            return True
    return False


async def examine(rt: Runtime, ctx: StepContext) -> None:
    """One case the poll found: its referrals to UNHCR become ``send`` jobs."""
    case: dict[str, Any] = (ctx.job.payload or {})["case"]
    referrals = await rt.primero.list_referrals(case["id"])
    users: dict[str, dict[str, Any]] = {}
    forbidden = False
    for user_name in mapping.users_needed(case):
        try:
            user = await rt.users.get(rt.primero, user_name)
        except ForbiddenError:
            forbidden = True
            continue
        if user is not None:
            users[user_name] = user
    messages, _ = ROUTES[rt.unhcr_gateway]
    for result in messages(case, referrals, users, rt.profile):
        if await _queue(rt, ctx, result) and forbidden:
            _contact_defaulted(ctx, result)


def _contact_defaulted(ctx: StepContext, result: mapping.ReferralResult) -> None:
    """Without the users permission the referring user's contact is the profile's default:
    the referral still goes, and the audit trail says why its contact is not the user's."""
    ctx.audit(
        AuditEvent.CONTACT_DEFAULTED,
        flow=FLOW,
        case_id=result.case_id,
        service_unique_id=result.service_unique_id,
        org_referral_id=result.org_referral_id,
        reason=USERS_FORBIDDEN,
    )
    log.warning(
        "contact_defaulted",
        flow=FLOW.value,
        case_id=result.case_id,
        org_referral_id=result.org_referral_id,
        reason=USERS_FORBIDDEN,
    )


def exchange_key(case_id: object, service_unique_id: object) -> str:
    """The ledger key of a flow-3 exchange, whichever gateway sends it."""
    return f"{case_id}:{service_unique_id}"


async def _queue(rt: Runtime, ctx: StepContext, result: mapping.ReferralResult) -> bool:
    """Queue the referral's ``send`` (or PING ingestion) once (the ledger knows it); whether it
    was queued now."""
    key = exchange_key(result.case_id, result.service_unique_id)
    existing = await rt.store.ledger.get(FLOW, key)
    if existing and existing.state != LedgerState.UNMAPPABLE:
        return False
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
        return False
    _, kind = ROUTES[rt.unhcr_gateway]
    ctx.enqueue(kind, {"message": result.message}, key=f"{kind}:{key}", refs=ids)
    ctx.ledger_record(
        FLOW, key, state=LedgerState.QUEUED, event=LedgerEvent.REFERRAL_QUEUED, **ids
    )
    return True


async def send(rt: Runtime, ctx: StepContext) -> None:
    refs = ctx.job.refs
    message = (ctx.job.payload or {})["message"]
    await rt.dtp.send_referral(message, idempotency_key=idempotency_key(ctx))
    key = ledger_key(refs)
    ctx.ledger_record(FLOW, key, state=LedgerState.SENT, event=LedgerEvent.REFERRAL_SENT, **refs)
    ctx.audit(AuditEvent.REFERRAL_SENT, flow=FLOW, **refs)
    sync_status.queue_synced(rt, ctx, FLOW, key)


def ledger_key(refs: Mapping[str, Any]) -> str:
    """The exchange a ``send`` job's refs name."""
    return exchange_key(refs.get("case_id"), refs.get("service_unique_id"))
