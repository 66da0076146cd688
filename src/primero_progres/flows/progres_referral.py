"""Flow 1, ``progres-referral``: proGres interventions become Primero cases, and DTP hears back.

Three steps, each its own job so each can be retried alone:

- ``receive``: the inbound message fans out into one ``deliver`` job per
  intervention. The job key carries the intervention number and a fingerprint
  of its content, so the same intervention received again creates nothing new,
  while a changed one is delivered again.
- ``deliver``: map, find the child's case(s) by ``unhcr_individual_no``, create
  or patch (the service row with the same ``progres_interventionnumber`` is
  updated, never duplicated), then queue the feedback. Mapping errors and
  permanent Primero refusals queue a ``Delivery Fail`` instead.
- ``feedback``: send the feedback message to DTP.

Interventions of one child are delivered one at a time (a lease on the
``unhcr_individual_no``), so two interventions for the same child arriving
together can never create two cases.
"""

from __future__ import annotations

from typing import Any

from ..errors import FailureClass, InvalidInputError, TransientError
from ..logging import get_logger
from ..mapping import progres_referral as mapping
from ..mapping.errors import MappingError
from ..peers.errors import PermanentPeerError
from ..peers.primero import (
    AuthenticationError,
    FilterIgnoredError,
    ForbiddenError,
    TokenNotIssuedError,
)
from .runtime import Runtime

FLOW = "progres-referral"
RECEIVE, DELIVER, FEEDBACK = f"{FLOW}.receive", f"{FLOW}.deliver", f"{FLOW}.feedback"

log = get_logger(__name__)


#: Refusals that are the bridge's own configuration problem (credentials, the API user's role):
#: proGres can do nothing about them, so they become dead letters an operator replays once
#: Primero is fixed, instead of a ``Delivery Fail``.
OPERATOR_FIXABLE = (AuthenticationError, ForbiddenError, FilterIgnoredError, TokenNotIssuedError)


class IndividualBusy(TransientError):
    """Another worker is delivering an intervention for the same child right now."""


async def receive(rt: Runtime, ctx: Any) -> None:
    message = await rt.store.load_message(ctx.job.message_id)
    read = mapping.read_message(message)
    if isinstance(read, MappingError):
        raise InvalidInputError(f"message {ctx.job.message_id}: {read.kind}", reason=read.kind)
    for index, intervention in enumerate(read.interventions):
        number = mapping.intervention_number(intervention)
        fingerprint = rt.store.fingerprint(intervention)
        key = (
            f"{DELIVER}:{number}:{fingerprint}"
            if number
            else f"{DELIVER}:{ctx.job.message_id}:{index}"
        )
        ctx.enqueue(
            DELIVER,
            {"intervention": intervention, "fingerprint": fingerprint},
            key=key,
            refs={
                "progres_interventionnumber": number,
                "message_id": ctx.job.message_id,
                "index": index,
            },
        )
    ctx.audit(
        "message_fanned_out",
        flow=FLOW,
        message_id=ctx.job.message_id,
        count=len(read.interventions),
    )


async def deliver(rt: Runtime, ctx: Any) -> None:
    intervention = ctx.job.payload["intervention"]
    fingerprint = ctx.job.payload["fingerprint"]
    number = mapping.intervention_number(intervention)
    profile = rt.profile
    mapped = mapping.map_intervention(intervention, profile, rt.today())
    if isinstance(mapped, MappingError):
        _fail(ctx, rt, number, fingerprint, error=mapped, reason_kind=mapped.kind)
        return

    lease = f"individual:{mapped.unhcr_individual_no}"
    if not await rt.store.leases.acquire(lease, ctx.worker_id, ttl=rt.settings.lease_seconds):
        raise IndividualBusy(
            f"{FLOW} {number}: case of this individual is being updated", reason="busy"
        )

    def release() -> Any:
        return rt.store.leases.release(lease, ctx.worker_id)

    try:
        existing = await rt.primero.find_cases("unhcr_individual_no", mapped.unhcr_individual_no)
        plan = mapping.plan_upsert(existing, mapped)
        if plan.action == "create":
            written = await rt.primero.create_case(plan.body)
        else:
            written = await rt.primero.patch_case(plan.case_record_id, plan.body)
    except PermanentPeerError as exc:
        if isinstance(exc, OPERATOR_FIXABLE):
            await release()
            raise
        ctx.after_commit(release)
        _fail(
            ctx,
            rt,
            number,
            fingerprint,
            error=None,
            reason_kind="primero_refused",
            peer_reason=exc.reason,
        )
        return
    except BaseException:
        await release()
        raise
    # The lease is released once the step has committed; a crash simply lets it expire.
    ctx.after_commit(release)

    case_record_id = plan.case_record_id or written.get("id")
    case_id = written.get("case_id") or _existing_case_id(existing, case_record_id)
    owned_by = written.get("owned_by") or mapped.case.get("owned_by")
    service_unique_id = plan.service_unique_id or _service_unique_id(written, number)
    if plan.ambiguous:
        ctx.audit(
            "several_cases_matched",
            flow=FLOW,
            progres_interventionnumber=number,
            case_record_id=case_record_id,
            candidate_ids=list(plan.candidate_ids),
        )
    ctx.ledger_record(
        FLOW,
        number,
        state="delivered",
        event=f"case_{plan.action}d",
        fingerprint=fingerprint,
        progres_interventionnumber=number,
        case_record_id=case_record_id,
        case_id=case_id,
        service_unique_id=service_unique_id,
    )
    feedback = mapping.success_feedback(
        case_id=case_id, primero_user=owned_by, intervention_number=number
    )
    ctx.enqueue(
        FEEDBACK,
        {"message": feedback},
        key=f"{FEEDBACK}:{number}:{fingerprint}",
        refs={
            "progres_interventionnumber": number,
            "case_id": case_id,
            "status": feedback["status"],
        },
    )
    log.info(
        "intervention_delivered",
        flow=FLOW,
        progres_interventionnumber=number,
        case_id=case_id,
        outcome=plan.action,
    )


def _fail(
    ctx: Any,
    rt: Runtime,
    number: str | None,
    fingerprint: str,
    *,
    error: MappingError | None,
    reason_kind: str,
    peer_reason: str | None = None,
) -> None:
    """Record a refused intervention and queue its ``Delivery Fail`` feedback."""
    intervention = ctx.job.payload["intervention"]
    known_case_id = (
        intervention.get("progres_primeroid") if isinstance(intervention, dict) else None
    )
    feedback = mapping.failure_feedback(
        error,
        reason_kind=reason_kind,
        intervention_number=number,
        case_id=known_case_id if isinstance(known_case_id, str) else None,
        primero_user=rt.profile.focal_point_user_for(intervention),
        profile=rt.profile,
    )
    key_number = number or f"{ctx.job.message_id}:{ctx.job.refs.get('index')}"
    ctx.ledger_record(
        FLOW,
        key_number,
        state="refused",
        event=reason_kind,
        fingerprint=fingerprint,
        progres_interventionnumber=number,
    )
    ctx.audit(
        "intervention_refused",
        flow=FLOW,
        progres_interventionnumber=number,
        reason=reason_kind,
        failure_class=(FailureClass.MAPPING if error else FailureClass.PERMANENT).value,
        fields=list(error.fields) if error else [],
        peer_status=peer_reason,
    )
    ctx.enqueue(
        FEEDBACK,
        {"message": feedback},
        key=f"{FEEDBACK}:{key_number}:{fingerprint}",
        refs={"progres_interventionnumber": number, "status": feedback["status"]},
    )
    log.info(
        "intervention_refused", flow=FLOW, progres_interventionnumber=number, reason=reason_kind
    )


async def feedback(rt: Runtime, ctx: Any) -> None:
    message = ctx.job.payload["message"]
    receipt = await rt.dtp.send_decision(message)
    number = message.get("progres_interventionnumber")
    if number:
        ctx.ledger_record(
            FLOW,
            number,
            state="feedback_sent"
            if message.get("status") != "Delivery Fail"
            else "refused_reported",
            event="feedback_sent",
            progres_interventionnumber=number,
            dtp_request_id=receipt.request_id,
        )
    ctx.audit(
        "feedback_sent", flow=FLOW, progres_interventionnumber=number, status=message.get("status")
    )


def _service_unique_id(case: dict[str, Any], number: str | None) -> str | None:
    for row in case.get("services_section") or []:
        if isinstance(row, dict) and row.get("progres_interventionnumber") == number:
            return row.get("unique_id")
    return None


def _existing_case_id(cases: list[dict[str, Any]], record_id: str | None) -> str | None:
    for case in cases:
        if case.get("id") == record_id:
            return case.get("case_id")
    return None
