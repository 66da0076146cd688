"""Flows 2 and 3 over PING: what their shared Primero polls queue, taken to proGres.

Flow 2 (``primero-decision.send`` over PING): the decision becomes the LP
intervention's transfer status, "accepted" or "rejected", with the Primero
case id and the caseworker. The intervention is addressed by the ids the
ledger recorded when flow 1 delivered it (whichever gateway did), else by the
ids OpenFn's PING job packed into the service's intervention number. Writing
a status is idempotent, so the worker retries it like any send.

Flow 3 (``primero-referral.ingest`` then ``.check``): PING creates the
interoperability referral asynchronously and keeps no duplicate guard, so the
bridge never posts an item twice on its own:

- ``ingest`` posts the item once and records the ``SPHTransactionId``
  (``ingesting``) with the ``check`` job, in one commit. An exchange that
  already has a transaction is never posted again. A failure after which PING
  cannot have the item (no connection, the token, APIM's rate limit, a
  refusal) is retried by queueing a fresh ``ingest`` job; one after which PING
  may have it (a timeout or a 5xx once sent, a worker that died while
  posting: the job's second attempt) queues a ``resolve``.
- ``resolve`` looks for the referral once PING had time to create it: the
  partner's referral list, page by page, one detail query per referral,
  for the ``progres_orgreferralid`` flow 3 sets (the service ``unique_id``).
  Found: recorded ``sent`` with its id, as a check would. Not found: looked
  for again later, a few times; then (or past ``RESOLVE_MAX_PAGES`` pages)
  the ``ingest`` becomes a dead letter ``ingestion_outcome_unknown``: look in
  proGres, and replay only if the referral is not there. It never posts: a
  late ingestion would make the post a duplicate. A look-up PING refuses for the
  bridge's own configuration (credentials, subscription key, permissions) makes the
  ``resolve`` job itself the dead letter: replayed once that is fixed, it looks again.
- ``check`` asks check status until the transaction succeeded (``sent``) or
  failed: ``ingestion_failed`` is then recorded and the item is parked as a
  dead ``ingest`` job; replaying it posts the item again.
"""

from __future__ import annotations

from typing import Any

from ..errors import FailureClass, MappingFailure, PermanentError, TransientError
from ..logging import get_logger
from ..mapping import ping as ping_mapping
from ..mapping.errors import MappingError
from ..mapping.primero_decision import DecisionResult
from ..peers.errors import REFUSALS, call_failure
from ..peers.ping import (
    PingPermanentError,
    PingTransientError,
    PingUnexpectedResponseError,
    TransactionStatus,
)
from ..store import (
    AuditEvent,
    DeadReason,
    Flow,
    LedgerEvent,
    LedgerState,
    StepContext,
    decision_key,
    job_kind,
)
from .ping_progres_referral import intervention_lease
from .primero_referral import INGEST, exchange_key
from .runtime import Runtime

CHECK = job_kind(Flow.PRIMERO_REFERRAL, "check")
RESOLVE = job_kind(Flow.PRIMERO_REFERRAL, "resolve")
#: the most pages of the partner's referral list one look-up reads (each with one detail
#: query); a list longer than that is left to an operator
RESOLVE_MAX_PAGES = 20
#: flow-3 states in which PING has the item: posting it again would create a second referral
_POSTED = frozenset({LedgerState.INGESTING, LedgerState.SENT})

log = get_logger(__name__)


# ------------------------------------------------------------------ flow 2


class UnaddressableDecision(PermanentError):
    """No ids address the LP intervention the decision is about."""


async def send_decision(rt: Runtime, ctx: StepContext) -> None:
    """``primero-decision.send`` over PING: the same job flow 2's poll queues for DTP."""
    flow = Flow.PRIMERO_DECISION
    message: dict[str, Any] = (ctx.job.payload or {})["message"]
    refs = ctx.job.refs
    number = refs.get("progres_interventionnumber")
    service_unique_id = refs.get("service_unique_id")
    keys = await _intervention_keys(rt, service_unique_id, number)
    decision = DecisionResult(
        case_id=refs.get("case_id"),
        case_record_id=None,
        service_unique_id=service_unique_id,
        progres_interventionnumber=str(number),
        status=str(refs["status"]),
        ok=True,
        message=message,
        error=None,
    )
    update = ping_mapping.decision_update(decision, keys, profile=rt.profile, today=rt.today())
    if isinstance(update, MappingError):
        raise MappingFailure(f"{flow.value}: decision {update.kind}", reason=update.kind)
    key = decision_key(str(service_unique_id), refs["status"])
    # flow 1's write-back reads then writes this status under the same lease
    await ctx.hold(intervention_lease(keys.lp_intervention_id))
    transaction_id = None
    if not await _already_written(rt, ctx, keys, update):
        receipt = await rt.ping.update_intervention(
            update.as_item(external_id=f"{flow.value}:{key}")
        )
        transaction_id = receipt.transaction_id
    ctx.ledger_record(
        flow,
        key,
        state=LedgerState.SENT,
        event=LedgerEvent.DECISION_SENT,
        progres_interventionnumber=number,
        case_id=refs.get("case_id"),
        service_unique_id=service_unique_id,
        lp_intervention_id=keys.lp_intervention_id,
        business_unit_id=keys.business_unit,
        transaction_id=transaction_id,
    )
    ctx.audit(
        AuditEvent.DECISION_SENT,
        flow=flow,
        case_id=refs.get("case_id"),
        service_unique_id=service_unique_id,
        lp_intervention_id=keys.lp_intervention_id,
        status=refs["status"],
    )


async def _already_written(
    rt: Runtime,
    ctx: StepContext,
    keys: ping_mapping.InterventionKeys,
    update: ping_mapping.FieldUpdate,
) -> bool:
    """On a second attempt, whether PING already shows the decision: the first may have been
    applied with its answer lost (PING keeps no duplicate guard)."""
    if ctx.job.attempts <= 1:
        return False
    rows = await rt.ping.referral_detail(keys.lp_intervention_id)
    status = ping_mapping.transfer_status_code(rows, rt.profile)
    written = status is not None and str(status) == str(update.value(ping_mapping.TRANSFER_STATUS))
    if written:
        log.info("ping_decision_already_written", flow=Flow.PRIMERO_DECISION.value,
                 lp_intervention_id=keys.lp_intervention_id)
    return written


async def _intervention_keys(
    rt: Runtime, service_unique_id: Any, number: Any
) -> ping_mapping.InterventionKeys:
    """The LP intervention a decision is about: from flow 1's exchange, else from OpenFn's
    packed ``"<number>,<lp id>,<business unit>"``."""
    found = []
    if isinstance(service_unique_id, str) and service_unique_id:
        found = await rt.store.ledger.find(
            Flow.PROGRES_REFERRAL, service_unique_id=service_unique_id
        )
    if not found and isinstance(number, str) and number:
        found = await rt.store.ledger.find(Flow.PROGRES_REFERRAL, progres_interventionnumber=number)
    for exchange in sorted(found, key=lambda e: e.updated_at, reverse=True):
        if exchange.lp_intervention_id and exchange.business_unit_id:
            return ping_mapping.InterventionKeys(
                exchange.lp_intervention_id, exchange.business_unit_id, exchange.key
            )
    packed = ping_mapping.keys_from_packed_number(number)
    if packed is not None:
        return packed
    raise UnaddressableDecision(
        f"primero-decision: service {service_unique_id}: no LP intervention id is known for it "
        "(delivered before the ledger kept PING's ids)",
        reason="ping_keys_unknown",
    )


# ------------------------------------------------------------------ flow 3


class IngestionNotSent(PermanentError):
    """PING could not be reached after every try; it cannot have the item."""


class IngestionPending(TransientError):
    """PING has not finished the transaction: ask again later."""

    def __init__(self, message: str, *, reason: str, retry_after: float) -> None:
        super().__init__(message, reason=reason)
        self.retry_after = retry_after


def _not_received(exc: PingTransientError) -> bool:
    """Whether PING cannot have queued the item: the request never left (no connection, the
    token endpoint failed first) or APIM throttled it before PING saw it."""
    return not exc.request_sent or exc.operation == "token" or exc.status_code == 429


async def ingest(rt: Runtime, ctx: StepContext) -> None:
    flow = Flow.PRIMERO_REFERRAL
    payload = ctx.job.payload or {}
    refs = dict(ctx.job.refs)
    key = exchange_key(refs.get("case_id"), refs.get("service_unique_id"))
    current = await rt.store.ledger.get(flow, key)
    if current is not None and current.state in _POSTED:
        log.info("ping_ingest_skipped", flow=flow.value, case_id=refs.get("case_id"),
                 state=current.state)
        return
    if ctx.job.attempts > 1:
        # an earlier attempt stopped while posting
        _resolve_later(rt, ctx, key, payload, refs, "worker_stopped", lookups=0)
        return
    try:
        receipt = await rt.ping.create_referral(payload["message"])
    except PingTransientError as exc:
        if not _not_received(exc):
            _resolve_later(rt, ctx, key, payload, refs, exc.reason, lookups=0)
            return
        _try_again(rt, ctx, key, payload, refs, exc)
        return
    except PingUnexpectedResponseError as exc:
        # accepted without a transaction id
        _resolve_later(rt, ctx, key, payload, refs, exc.reason, lookups=0)
        return
    transaction_id = receipt.transaction_id
    ctx.ledger_record(
        flow,
        key,
        state=LedgerState.INGESTING,
        event=LedgerEvent.REFERRAL_INGESTED,
        transaction_id=transaction_id,
        **refs,
    )
    ctx.enqueue(
        CHECK,
        payload,
        key=f"{CHECK}:{transaction_id}",
        refs={**refs, "transaction_id": transaction_id},
        delay=rt.ping_status_check,
    )


def _try_again(
    rt: Runtime,
    ctx: StepContext,
    key: str,
    payload: dict[str, Any],
    refs: dict[str, Any],
    exc: PingTransientError,
) -> None:
    """Post later in a fresh job: the worker's own retry would make the next attempt look
    like one that may have posted."""
    tries = int(payload.get("tries") or 1)
    if tries >= rt.max_attempts:
        raise IngestionNotSent(
            f"primero-referral {key}: PING unreachable after {tries} tries ({exc.reason}); "
            "nothing was sent: replay to try again",
            reason="ingestion_not_sent",
        ) from exc
    delay = rt.retry_delay(tries, exc.retry_after)
    ctx.enqueue(
        INGEST,
        {**payload, "tries": tries + 1},
        key=f"{INGEST}:{key}:after:{ctx.job.id}",
        refs=refs,
        delay=delay,
    )
    log.warning(
        "ping_ingest_retry",
        flow=Flow.PRIMERO_REFERRAL.value,
        case_id=refs.get("case_id"),
        reason=exc.reason,
        attempt=tries,
        retry_in=round(delay, 3),
    )


def _resolve_later(
    rt: Runtime,
    ctx: StepContext,
    key: str,
    payload: dict[str, Any],
    refs: dict[str, Any],
    why: str,
    *,
    lookups: int,
) -> None:
    """PING may have queued the item: look for it once its ingestion had time to finish
    (never post again: a late ingestion would make a duplicate)."""
    ctx.enqueue(
        RESOLVE,
        {"message": payload.get("message"), "why": why, "lookups": lookups},
        key=f"{RESOLVE}:{key}:{ctx.job.id}",
        refs=refs,
        delay=rt.ping_status_check,
    )
    if lookups == 0:
        log.warning(
            "ping_ingestion_outcome_unknown",
            flow=Flow.PRIMERO_REFERRAL.value,
            case_id=refs.get("case_id"),
            reason=why,
        )


def _bridge_refused(exc: PingPermanentError) -> bool:
    """Whether PING refused the bridge itself rather than the look-up (``REFUSALS``: the
    credentials, the subscription key, a permission): an operator fixes it."""
    return call_failure(exc) in REFUSALS


async def resolve(rt: Runtime, ctx: StepContext) -> None:
    """Look for the referral an unanswered post may have created: found, it is sent; not
    found after ``max_attempts`` look-ups (or in too long a list, or on an answer PING got
    wrong), the ``ingest`` is a dead letter for a person.

    A refusal of the bridge itself (``_bridge_refused``) is raised instead: this job becomes
    the dead letter, with the refusal's reason, and replaying it once the credentials are
    fixed looks again; parking the ``ingest`` would leave only a replay that posts."""
    flow = Flow.PRIMERO_REFERRAL
    payload = ctx.job.payload or {}
    refs = dict(ctx.job.refs)
    key = exchange_key(refs.get("case_id"), refs.get("service_unique_id"))
    current = await rt.store.ledger.get(flow, key)
    if current is not None and current.state in _POSTED:
        return
    why = str(payload.get("why") or "unknown")
    lookups = int(payload.get("lookups") or 0) + 1
    try:
        referral_id, whole_list = await _find_referral(rt, str(refs.get("service_unique_id")))
    except PingPermanentError as exc:
        if _bridge_refused(exc):
            log.warning("ping_ingestion_lookup_refused", flow=flow.value,
                        case_id=refs.get("case_id"), reason=exc.reason, attempt=lookups)
            raise
        referral_id, whole_list = None, False
        why = f"{why}, look-up {exc.reason}"
    if referral_id is not None:
        ids = {**refs, "interoperability_referral_id": referral_id}
        ctx.ledger_record(flow, key, state=LedgerState.SENT, event=LedgerEvent.REFERRAL_SENT,
                          **ids)
        ctx.audit(AuditEvent.REFERRAL_SENT, flow=flow, **ids)
        log.info("ping_ingestion_outcome_resolved", flow=flow.value, case_id=refs.get("case_id"),
                 interoperability_referral_id=referral_id, attempt=lookups)
        return
    if whole_list and lookups < rt.max_attempts:
        _resolve_later(rt, ctx, key, payload, refs, why, lookups=lookups)
        return
    searched = (
        f"not in PING's referral list after {lookups} look-ups" if whole_list
        else f"not found in PING's referral list (stopped after {RESOLVE_MAX_PAGES} pages "
        "or on an error)"
    )
    _park_ingest(
        ctx, key, payload, refs, f"unknown:{ctx.job.id}", "ingestion_outcome_unknown",
        f"{flow.value} {key}: PING may have queued the referral ({why}); {searched}: look "
        "in proGres, replay only if it is not there",
    )
    log.warning("ping_ingestion_outcome_unresolved", flow=flow.value,
                case_id=refs.get("case_id"), reason=why, attempt=lookups)


def _park_ingest(
    ctx: StepContext,
    key: str,
    payload: dict[str, Any],
    refs: dict[str, Any],
    suffix: str,
    reason: str,
    message: str,
) -> None:
    """The item as a dead ``ingest`` job for a person: replaying it posts the item again."""
    ctx.dead_letter(
        INGEST,
        {"message": payload.get("message")},
        key=f"{INGEST}:{key}:{suffix}",
        refs=refs,
        reason=DeadReason(FailureClass.PERMANENT, reason, message),
    )


async def _find_referral(rt: Runtime, service_unique_id: str) -> tuple[str | None, bool]:
    """The interoperability referral whose ``progres_orgreferralid`` is the service's, and
    whether the whole list was read (False: stopped after ``RESOLVE_MAX_PAGES`` pages).

    The list holds every referral of the partner, in any status. Each referral's detail is
    its own query: PING is known to take one id per ``{record_ids}`` (a bracketed list is
    unverified). The look-up stops at the referral that matches."""
    shipping = rt.ping.shipping_processes
    number, cookie = 1, None
    while number <= RESOLVE_MAX_PAGES:
        page = await rt.ping.retrieve_page(
            shipping.decisions_list, page_number=number, paging_cookie=cookie
        )
        listed = [ping_mapping.read_listed_referral(row, rt.profile) for row in page.rows]
        for referral in listed:
            if not isinstance(referral, ping_mapping.ListedReferral):
                continue
            details = await rt.ping.decision_detail(referral.referral_id)
            found = ping_mapping.referrals_by_org_referral_id(details, rt.profile)
            if service_unique_id in found:
                return found[service_unique_id], True
        if not page.more:
            return None, True
        number, cookie = number + 1, page.paging_cookie
    return None, False


async def check(rt: Runtime, ctx: StepContext) -> None:
    flow = Flow.PRIMERO_REFERRAL
    refs = dict(ctx.job.refs)
    transaction_id = str(refs.pop("transaction_id"))
    key = exchange_key(refs.get("case_id"), refs.get("service_unique_id"))
    status = await rt.ping.referral_create_status(transaction_id)
    if status.state == "succeeded":
        ctx.ledger_record(
            flow,
            key,
            state=LedgerState.SENT,
            event=LedgerEvent.REFERRAL_SENT,
            transaction_id=transaction_id,
            **refs,
        )
        ctx.audit(AuditEvent.REFERRAL_SENT, flow=flow, transaction_id=transaction_id, **refs)
        return
    if status.state == "failed":
        _failed(ctx, key, transaction_id, status, ctx.job.payload or {}, refs)
        return
    raise IngestionPending(
        f"{flow.value} {key}: transaction {transaction_id} is {status.state}"
        + (" (unreadable answer)" if status.unreadable else ""),
        reason=f"ingestion_{status.state}",
        retry_after=rt.ping_status_check,
    )


def _failed(
    ctx: StepContext,
    key: str,
    transaction_id: str,
    status: TransactionStatus,
    payload: dict[str, Any],
    refs: dict[str, Any],
) -> None:
    """Record the failure and park the item as a dead ``ingest`` job: replaying it posts the
    referral again (PING's own message is never kept: it echoes the item)."""
    flow = Flow.PRIMERO_REFERRAL
    word = next((item.status for item in status.items if item.state == "failed"), None)
    ctx.ledger_record(
        flow,
        key,
        state=LedgerState.INGESTION_FAILED,
        event=LedgerEvent.REFERRAL_INGESTION_FAILED,
        transaction_id=transaction_id,
        ping_status=word,
        **refs,
    )
    ctx.audit(
        AuditEvent.REFERRAL_INGESTION_FAILED,
        flow=flow,
        transaction_id=transaction_id,
        ping_status=word,
        **refs,
    )
    _park_ingest(
        ctx, key, payload, refs, f"failed:{transaction_id}", "ingestion_failed",
        f"PING transaction {transaction_id} failed ({word or 'no status word'}): "
        "replay to post the referral again",
    )
    log.warning(
        "ping_ingestion_failed",
        flow=flow.value,
        case_id=refs.get("case_id"),
        transaction_id=transaction_id,
        status=word,
    )
