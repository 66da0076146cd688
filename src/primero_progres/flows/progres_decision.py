"""Flow 4, ``progres-decision``: proGres accepts or rejects a referral that flow 3 sent.

The ``progres_orgreferralid`` is ``<case_id>#<last 12 characters of the
service unique_id>``, a truncated key. It is resolved through the ledger first
(flow 3 recorded the full ids when it sent the referral), then through Primero
(the case by ``case_id``, its referrals by ``service_record_id``; two
candidates is an error, never a guess). After the PATCH the status Primero
returns is checked, since an illegal transition answers 200 and changes
nothing. An unknown case or referral becomes a dead letter with its reason.
"""

from __future__ import annotations

from typing import Any

from ..errors import MappingFailure, PermanentError
from ..logging import get_logger
from ..mapping import progres_decision as mapping
from ..mapping.errors import MappingError
from ..store import AuditEvent, Flow, LedgerEvent, LedgerState, StepContext, job_kind
from .inbound import fanned_out, read_inbound
from .runtime import Runtime

FLOW = Flow.PROGRES_DECISION
RECEIVE, APPLY = job_kind(FLOW, "receive"), job_kind(FLOW, "apply")

log = get_logger(__name__)


class UnresolvedDecision(PermanentError):
    """The decision names a case or referral that cannot be found, or not unambiguously."""


async def receive(rt: Runtime, ctx: StepContext) -> None:
    read = await read_inbound(rt, ctx, mapping.read_message)
    for index, item in enumerate(read.interventions):
        decision = mapping.read_decision(item, rt.profile)
        fingerprint = await rt.store.fingerprint(item)
        ctx.enqueue(
            APPLY,
            {"decision": item},
            key=f"{APPLY}:{fingerprint}",
            refs={
                "org_referral_id": getattr(decision, "org_referral_id", None),
                "message_id": ctx.job.message_id,
                "index": index,
            },
        )
    fanned_out(ctx, FLOW, len(read.interventions))


async def apply(rt: Runtime, ctx: StepContext) -> None:
    decision = mapping.read_decision((ctx.job.payload or {}).get("decision"), rt.profile)
    if isinstance(decision, MappingError):
        raise MappingFailure(f"{FLOW.value}: decision {decision.kind}", reason=decision.kind)
    await apply_decision(rt, ctx, decision)


async def apply_decision(
    rt: Runtime,
    ctx: StepContext,
    decision: mapping.ProgresDecision,
    *,
    fingerprint: str | None = None,
    **ids: Any,
) -> None:
    """Flow 4's Primero side, whichever gateway brought the decision: find the referral, PATCH
    its status, record the exchange (with the gateway's own ``ids``)."""
    case_record_id, referral = await _resolve(rt, decision)
    patch = mapping.referral_patch(decision)
    await rt.primero.update_referral(
        case_record_id,
        referral["id"],
        status=patch["status"],
        rejected_reason=patch.get("rejected_reason"),
    )
    ctx.ledger_record(
        FLOW,
        decision.org_referral_id,
        state=LedgerState(decision.status),
        event=LedgerEvent.REFERRAL_PATCHED,
        fingerprint=fingerprint,
        org_referral_id=decision.org_referral_id,
        case_record_id=case_record_id,
        case_id=decision.case_id,
        referral_id=referral["id"],
        service_unique_id=referral.get("service_record_id"),
        **ids,
    )
    ctx.audit(
        AuditEvent.DECISION_APPLIED,
        flow=FLOW,
        org_referral_id=decision.org_referral_id,
        referral_id=referral["id"],
        status=decision.status,
    )
    log.info(
        "decision_applied",
        flow=FLOW.value,
        org_referral_id=decision.org_referral_id,
        status=decision.status,
    )


async def _resolve(rt: Runtime, decision: mapping.ProgresDecision) -> tuple[str, dict[str, Any]]:
    """The Primero case record id and referral this decision is about."""
    sent = await rt.store.ledger.find(
        flow=Flow.PRIMERO_REFERRAL, org_referral_id=decision.org_referral_id
    )
    known = sent[0] if len(sent) == 1 else None
    if known and known.case_record_id:
        case_record_id = known.case_record_id
    else:
        cases = await rt.primero.find_cases("case_id", decision.case_id)
        if not cases:
            raise UnresolvedDecision(
                f"{FLOW.value} {decision.org_referral_id}: no such case", reason="unknown_case"
            )
        if len(cases) > 1:
            raise UnresolvedDecision(
                f"{FLOW.value} {decision.org_referral_id}: several cases", reason="ambiguous_case"
            )
        case_record_id = str(cases[0]["id"])
    referrals = await rt.primero.list_referrals(case_record_id)
    selected = mapping.select_referral(
        referrals,
        decision.service_key,
        known_service_unique_id=known.service_unique_id if known else None,
    )
    if isinstance(selected, MappingError):
        raise UnresolvedDecision(
            f"{FLOW.value} {decision.org_referral_id}: {selected.kind}", reason=selected.kind
        )
    return case_record_id, selected
