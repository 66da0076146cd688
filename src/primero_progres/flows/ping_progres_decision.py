"""Flow 4, ``progres-decision``, over PING: pull the decisions proGres users took.

- ``poll``: one page of the partner's interoperability referrals
  (``ping_polling``); one ``pull`` job per referral accepted or rejected in
  proGres. A status code the profile does not know is an audited error, never
  an acceptance.
- ``pull``: the referral's detail rows; the decision read with the profile
  (status and review decision must agree; any unknown code is a mapping
  failure, a dead letter); then the same Primero side as over DTP
  (``progres_decision.apply_decision``: the referral found through the ledger,
  else Primero, never guessed, its status PATCHed and checked). A decision the
  ledger already applied with the same content is not PATCHed again: only its
  write-back is repeated (PING lost it).
- ``write_back``: "synced", with the profile's comment; its own job and ledger
  state, queued in the same commit as the Primero outcome.
"""

from __future__ import annotations

from typing import Any

from ..errors import MappingFailure
from ..logging import get_logger
from ..mapping import ping as ping_mapping
from ..mapping.errors import MappingError
from ..mapping.progres_decision import ProgresDecision
from ..store import (
    AuditEvent,
    Flow,
    LedgerEvent,
    LedgerState,
    StepContext,
    job_kind,
    poll_kind,
)
from .ping_polling import (
    Standing,
    left_the_queue,
    poll_page,
    queue_pull,
    queue_write_back,
    unreadable_row,
)
from .ping_polling import write_back as ping_write_back
from .progres_decision import apply_decision
from .runtime import Runtime

FLOW = Flow.PROGRES_DECISION
POLL, PULL, WRITE_BACK = poll_kind(FLOW), job_kind(FLOW, "pull"), job_kind(FLOW, "write_back")
_APPLIED = frozenset({LedgerState.ACCEPTED, LedgerState.REJECTED, LedgerState.SYNCED})

log = get_logger(__name__)


async def poll(rt: Runtime, ctx: StepContext) -> None:
    await poll_page(rt, ctx, FLOW, rt.ping.shipping_processes.decisions_list, _queue)


async def _queue(rt: Runtime, ctx: StepContext, row: dict[str, Any], round_id: str) -> int:
    listed = ping_mapping.read_listed_referral(row, rt.profile)
    if isinstance(listed, MappingError):
        return unreadable_row(ctx, FLOW, listed)
    if listed.status is None:
        # a code the profile does not know: never read as a decision, but visible
        ctx.audit(
            AuditEvent.DECISION_NOT_MAPPABLE,
            flow=FLOW,
            interoperability_referral_id=listed.referral_id,
            reason="unknown_code",
            status_code=listed.status_code,
        )
        log.warning(
            "ping_unknown_referral_status",
            flow=FLOW.value,
            interoperability_referral_id=listed.referral_id,
            status_code=listed.status_code,
        )
        return 0
    if not listed.actionable:
        return 0
    refs = {"interoperability_referral_id": listed.referral_id}
    return await queue_pull(rt, ctx, PULL, listed.referral_id, round_id, refs)


async def pull(rt: Runtime, ctx: StepContext) -> None:
    referral_id = str(ctx.job.refs["interoperability_referral_id"])
    ids: dict[str, Any] = {"interoperability_referral_id": referral_id}
    rows = await rt.ping.decision_detail(referral_id)
    listed = ping_mapping.read_listed_referral(rows[0], rt.profile) if rows else None
    if isinstance(listed, ping_mapping.ListedReferral) and listed.status in ("new", "synced"):
        left_the_queue(FLOW, **ids)
        return
    read = ping_mapping.read_ping_decision(rows, rt.profile)
    if isinstance(read, MappingError):
        raise MappingFailure(
            f"{FLOW.value}: interoperability referral {referral_id}: decision {read.kind}",
            reason=read.kind,
        )
    decision = read.decision
    fingerprint = await _fingerprint(rt, decision)
    await ctx.hold(referral_lease(referral_id))
    applied = await rt.store.ledger.get(FLOW, decision.org_referral_id)
    if (
        applied is not None
        and applied.state in _APPLIED
        # the same decision; or applied through DTP (no fingerprint) before the switch
        and (applied.content_fingerprint == fingerprint
             or (applied.content_fingerprint is None and applied.state == decision.status))
    ):
        ctx.ledger_record(
            FLOW,
            applied.key,
            state=LedgerState(decision.status),
            event=LedgerEvent.REDELIVERED,
            fingerprint=fingerprint,
            **ids,
        )
        log.info(
            "decision_redelivered",
            flow=FLOW.value,
            org_referral_id=decision.org_referral_id,
            interoperability_referral_id=referral_id,
        )
    else:
        await apply_decision(rt, ctx, decision, fingerprint=fingerprint, **ids)
    update = ping_mapping.referral_synced_update(referral_id, rt.profile)
    queue_write_back(
        ctx,
        WRITE_BACK,
        update.as_item(external_id=f"{FLOW.value}:{decision.org_referral_id}"),
        ledger_key=decision.org_referral_id,
        fingerprint=fingerprint,
        item_id=referral_id,
        refs={**ids, "org_referral_id": decision.org_referral_id, "status": decision.status},
    )


def referral_lease(referral_id: str) -> str:
    """Held by the pull and the write-back of one interoperability referral."""
    return f"ping-referral:{referral_id}"


async def _fingerprint(rt: Runtime, decision: ProgresDecision) -> str:
    return await rt.store.fingerprint(
        {"status": decision.status, "rejected_reason": decision.rejected_reason,
         "org_referral_id": decision.org_referral_id}
    )


async def write_back(rt: Runtime, ctx: StepContext) -> None:
    refs = ctx.job.refs
    referral_id = str(refs["interoperability_referral_id"])

    async def standing(fingerprint: str | None) -> Standing:
        rows = await rt.ping.decision_detail(referral_id)
        listed = ping_mapping.read_listed_referral(rows[0], rt.profile) if rows else None
        if isinstance(listed, ping_mapping.ListedReferral) and listed.status == "synced":
            return "applied"
        read = ping_mapping.read_ping_decision(rows, rt.profile)
        if isinstance(read, MappingError) or await _fingerprint(rt, read.decision) != fingerprint:
            return "superseded"
        return "send"

    await ping_write_back(
        rt, ctx, FLOW, rt.ping.update_referral, LedgerState.SYNCED, standing,
        lease=referral_lease(referral_id), **refs,
    )
