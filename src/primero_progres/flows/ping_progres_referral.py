"""Flow 1, ``progres-referral``, over PING: pull the LP interventions queued for Primero.

PING never calls the bridge, so the flow starts with a poll (``ping_polling``):

- ``poll``: one page of the pending list; one ``pull`` job per intervention
  whose transfer status says "ready".
- ``pull``: the intervention's detail rows, mapped with the profile's ``ping``
  section, then the same Primero side as over DTP (``progres_referral.write_case``:
  the upsert plan, the focal-point routing, one delivery per child at a time).
  The exchange is recorded with the ids PING addresses it by, and the
  write-back is queued in the same commit. An intervention whose detail no
  longer shows it queued is left alone (a stale list). One listed again with
  the same content the ledger already delivered is not written to Primero
  again: only its write-back is repeated (PING lost it).
- ``write_back``: the transfer status, "pending acknowledgement" with the case
  id, or "delivery failed" with the profile's reason as a comment; its own job,
  retried on its own, recorded as its own ledger state. It only runs once the
  Primero write is committed, so PING's queue moves only after the work is done.
"""

from __future__ import annotations

from typing import Any

from ..errors import PermanentError
from ..logging import get_logger
from ..mapping import ping as ping_mapping
from ..mapping.errors import MappingError
from ..mapping.ping import FieldUpdate, InterventionKeys
from ..peers.errors import PermanentPeerError
from ..store import (
    Exchange,
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
from .progres_referral import record_refusal, write_case
from .runtime import Runtime

FLOW = Flow.PROGRES_REFERRAL
POLL, PULL, WRITE_BACK = poll_kind(FLOW), job_kind(FLOW, "pull"), job_kind(FLOW, "write_back")
#: flow-1 states in which Primero holds the intervention as the ledger's fingerprint says
_DELIVERED = frozenset(
    {
        LedgerState.DELIVERED,
        LedgerState.WRITTEN_BACK,
        LedgerState.SUPERSEDED_BY_DECISION,
        LedgerState.FEEDBACK_SENT,
    }
)

log = get_logger(__name__)


class NoDetailRows(PermanentError):
    """PING lists the intervention but its detail query returns nothing: a query or data
    problem for a person to look at (never reported to proGres as the child's data)."""


async def poll(rt: Runtime, ctx: StepContext) -> None:
    await poll_page(rt, ctx, FLOW, rt.ping.shipping_processes.referrals_pending, _queue)


async def _queue(rt: Runtime, ctx: StepContext, row: dict[str, Any], round_id: str) -> int:
    pending = ping_mapping.read_pending_intervention(row, rt.profile)
    if isinstance(pending, MappingError):
        return unreadable_row(ctx, FLOW, pending)
    if not pending.ready:
        return 0
    keys = pending.keys
    return await queue_pull(rt, ctx, PULL, keys.lp_intervention_id, round_id, _ids(keys))


def _ids(keys: InterventionKeys) -> dict[str, Any]:
    return {
        "lp_intervention_id": keys.lp_intervention_id,
        "business_unit_id": keys.business_unit,
        "progres_interventionnumber": keys.intervention_number,
    }


def _keys(refs: dict[str, Any]) -> InterventionKeys:
    return InterventionKeys(
        str(refs["lp_intervention_id"]),
        str(refs["business_unit_id"]),
        refs.get("progres_interventionnumber"),
    )


async def pull(rt: Runtime, ctx: StepContext) -> None:
    keys = _keys(ctx.job.refs)
    rows = await rt.ping.referral_detail(keys.lp_intervention_id)
    if not rows:
        raise NoDetailRows(
            f"{FLOW.value}: no detail rows for LP intervention {keys.lp_intervention_id}",
            reason="no_detail_rows",
        )
    if not ping_mapping.awaiting_primero(rows, rt.profile):
        left_the_queue(FLOW, **_ids(keys))
        return
    referral = ping_mapping.map_ping_referral(rows, keys, rt.profile, rt.today())
    keys = referral.keys  # the number now comes from the rows
    fingerprint = await rt.store.fingerprint(rows)
    if referral.mapped is None:
        _refuse(rt, ctx, keys, fingerprint, error=referral.error)
        return
    mapped = referral.mapped
    number = mapped.progres_interventionnumber

    await ctx.hold(f"individual:{mapped.unhcr_individual_no}")
    delivered = await rt.store.ledger.get(FLOW, number)
    if (
        delivered is not None
        and delivered.state in _DELIVERED
        and delivered.case_id
        # the same content; or delivered through DTP before the switch to PING
        and (delivered.content_fingerprint == fingerprint
             or delivered.state == LedgerState.FEEDBACK_SENT)
    ):
        await _deliver_again(rt, ctx, keys, delivered, fingerprint)
        return
    written = await write_case(rt, ctx, mapped)
    if isinstance(written, PermanentPeerError):
        _refuse(rt, ctx, keys, fingerprint, peer_reason=written.reason)
        return
    ctx.ledger_record(
        FLOW,
        number,
        state=LedgerState.DELIVERED,
        event=LedgerEvent.CASE_CREATED if written.action == "create" else LedgerEvent.CASE_UPDATED,
        fingerprint=fingerprint,
        case_record_id=written.case_record_id,
        case_id=written.case_id,
        service_unique_id=written.service_unique_id,
        **_ids(keys),
    )
    update = ping_mapping.referral_received_update(
        keys, case_id=written.case_id, profile=rt.profile, today=rt.today()
    )
    _queue_write_back(rt, ctx, keys, update, number, fingerprint, refused=False)


async def _deliver_again(
    rt: Runtime,
    ctx: StepContext,
    keys: InterventionKeys,
    delivered: Exchange,
    fingerprint: str,
) -> None:
    """Listed again with nothing new for Primero: repeat only the write-back, unless a
    decision was sent since (the status has moved on; writing it back would undo it)."""
    if await _decisions_on(rt, delivered.service_unique_id):
        left_the_queue(FLOW, **_ids(keys))
        return
    ctx.ledger_record(
        FLOW,
        delivered.key,
        state=LedgerState.DELIVERED,
        event=LedgerEvent.REDELIVERED,
        fingerprint=fingerprint,
        **_ids(keys),
    )
    update = ping_mapping.referral_received_update(
        keys, case_id=delivered.case_id, profile=rt.profile, today=rt.today()
    )
    _queue_write_back(rt, ctx, keys, update, delivered.key, fingerprint, refused=False)
    log.info(
        "intervention_redelivered",
        flow=FLOW.value,
        progres_interventionnumber=delivered.key,
        case_id=delivered.case_id,
    )


def _refuse(
    rt: Runtime,
    ctx: StepContext,
    keys: InterventionKeys,
    fingerprint: str,
    *,
    error: MappingError | None = None,
    peer_reason: str | None = None,
) -> None:
    """Record a refused intervention and queue its "delivery failed"."""
    number = keys.intervention_number
    key = number or f"lp:{keys.lp_intervention_id}"
    reason_kind = record_refusal(
        ctx,
        key,
        fingerprint,
        error=error,
        peer_reason=peer_reason,
        ledger_ids=_ids(keys),
        ids={"progres_interventionnumber": number, "lp_intervention_id": keys.lp_intervention_id},
    )
    update = ping_mapping.referral_failed_update(
        keys, error, profile=rt.profile, today=rt.today(), reason_kind=reason_kind
    )
    _queue_write_back(rt, ctx, keys, update, key, fingerprint, refused=True)


def _queue_write_back(
    rt: Runtime,
    ctx: StepContext,
    keys: InterventionKeys,
    update: FieldUpdate,
    ledger_key: str,
    fingerprint: str,
    *,
    refused: bool,
) -> None:
    queue_write_back(
        ctx,
        WRITE_BACK,
        update.as_item(external_id=f"{FLOW.value}:{ledger_key}"),
        ledger_key=ledger_key,
        fingerprint=fingerprint,
        item_id=keys.lp_intervention_id,
        refs={**_ids(keys), "transfer_status": update.value(ping_mapping.TRANSFER_STATUS)},
        refused=refused,
    )


def intervention_lease(lp_intervention_id: str) -> str:
    """Held by every writer of an LP intervention's transfer status (flows 1 and 2): PING's
    writes are unconditional, so each reads the status and writes it under this lease."""
    return f"lp-intervention:{lp_intervention_id}"


async def _decisions_on(rt: Runtime, service_unique_id: str | None) -> list[Exchange]:
    """Flow 2's exchanges on a service (none without its ``unique_id``: nothing names it)."""
    if not service_unique_id:
        return []
    return await rt.store.ledger.find(Flow.PRIMERO_DECISION, service_unique_id=service_unique_id)


async def _decision_sent(rt: Runtime, number: str) -> bool:
    """Flow 2 sent a decision on the intervention's service. Read under the intervention's
    lease, which flow 2 holds to write it: PING shows that decision (or a later one)."""
    delivered = await rt.store.ledger.get(FLOW, number)
    if delivered is None:
        return False
    decisions = await _decisions_on(rt, delivered.service_unique_id)
    return any(decision.state == LedgerState.SENT for decision in decisions)


async def write_back(rt: Runtime, ctx: StepContext) -> None:
    refs = ctx.job.refs
    payload = ctx.job.payload or {}
    refused = bool(payload.get("refused"))
    lp_id = str(refs["lp_intervention_id"])

    async def standing(fingerprint: str | None) -> Standing:
        rows = await rt.ping.referral_detail(lp_id)
        status = ping_mapping.transfer_status_code(rows, rt.profile)
        if status is None:
            return "send"  # the rows do not show it: nothing to compare (docs/ping.md)
        if str(status) == str(refs.get("transfer_status")):
            return "applied"
        if await rt.store.fingerprint(rows) != fingerprint:
            decided = not refused and await _decision_sent(rt, str(payload["ledger_key"]))
            return "decided" if decided else "superseded"
        return "send"

    await ping_write_back(
        rt,
        ctx,
        FLOW,
        rt.ping.update_intervention,
        LedgerState.FAILURE_WRITTEN_BACK if refused else LedgerState.WRITTEN_BACK,
        standing,
        lease=intervention_lease(lp_id),
        **refs,
    )
