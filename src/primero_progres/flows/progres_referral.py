"""Flow 1, ``progres-referral``: proGres interventions become Primero cases, and DTP hears back.

Three steps, each its own job so each can be retried alone:

- ``receive``: the inbound message fans out into one ``deliver`` job per
  intervention. The job key carries the intervention number and a fingerprint
  of its content, so the same intervention received again creates nothing new,
  while a changed one is delivered again.
- ``deliver``: map, find the child's case(s) by ``unhcr_individual_no``, create
  or patch (the service row with the same ``progres_interventionnumber`` is
  updated, never duplicated), then queue the feedback. Mapping errors and
  permanent Primero refusals queue a ``Delivery Fail`` instead, and park the
  intervention as a dead letter: once the cause is fixed (a profile table, a
  Primero lookup or form), replaying it delivers the intervention; proGres
  sending it again could not (the same content is a duplicate, forever).
- ``feedback``: send the feedback message to DTP.

Interventions of one child are delivered one at a time (a lease on the
``unhcr_individual_no``, held until the step's outcome is committed), so two
interventions for the same child arriving together can never create two cases.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from ..errors import FailureClass, PermanentError
from ..logging import get_logger
from ..mapping import dtp
from ..mapping import progres_referral as mapping
from ..mapping.errors import MappingError
from ..peers.errors import PermanentPeerError
from ..peers.primero import (
    AuthenticationError,
    FilterIgnoredError,
    ForbiddenError,
    TokenNotIssuedError,
    UnexpectedResponseError,
)
from ..profiles.schema import PRIMERO_REFUSED
from ..store import (
    AuditEvent,
    DeadReason,
    Flow,
    LedgerEvent,
    LedgerState,
    StepContext,
    job_kind,
)
from .inbound import fanned_out, read_inbound
from .runtime import Runtime, idempotency_key

FLOW = Flow.PROGRES_REFERRAL
RECEIVE, DELIVER, FEEDBACK = (job_kind(FLOW, step) for step in ("receive", "deliver", "feedback"))

log = get_logger(__name__)


#: Refusals that are the bridge's own configuration problem (credentials, the API user's role),
#: or no refusal at all (a 2xx whose body is not Primero's, e.g. a proxy's page, after a write
#: that may have happened): proGres can do nothing about them, so they become dead letters an
#: operator replays once Primero is fixed, instead of a false ``Delivery Fail``.
OPERATOR_FIXABLE = (
    AuthenticationError,
    ForbiddenError,
    FilterIgnoredError,
    TokenNotIssuedError,
    UnexpectedResponseError,
)


async def receive(rt: Runtime, ctx: StepContext) -> None:
    read = await read_inbound(rt, ctx, mapping.read_message)
    message_id = ctx.job.message_id
    for index, intervention in enumerate(read.interventions):
        number = mapping.intervention_number(intervention)
        fingerprint = await rt.store.fingerprint(intervention)
        key = f"{DELIVER}:{number}:{fingerprint}" if number else f"{DELIVER}:{message_id}:{index}"
        ctx.enqueue(
            DELIVER,
            {"intervention": intervention, "fingerprint": fingerprint},
            key=key,
            refs={"progres_interventionnumber": number, "message_id": message_id, "index": index},
        )
    fanned_out(ctx, FLOW, len(read.interventions))


async def deliver(rt: Runtime, ctx: StepContext) -> None:
    payload = ctx.job.payload or {}
    intervention = payload.get("intervention")
    fingerprint = str(payload.get("fingerprint"))
    if payload.get("refused") and await _superseded(rt, intervention, fingerprint):
        return
    mapped = mapping.map_intervention(intervention, rt.profile, rt.today())
    if isinstance(mapped, MappingError):
        await _refuse(ctx, rt, intervention, fingerprint, error=mapped)
        return
    number = mapped.progres_interventionnumber

    await ctx.hold(f"individual:{mapped.unhcr_individual_no}")
    written = await write_case(rt, ctx, mapped)
    if isinstance(written, PermanentPeerError):
        await _refuse(
            ctx,
            rt,
            intervention,
            fingerprint,
            peer_reason=written.reason,
            peer_fields=_pointers(written),
        )
        return
    ctx.ledger_record(
        FLOW,
        number,
        state=LedgerState.DELIVERED,
        event=LedgerEvent.CASE_CREATED if written.action == "create" else LedgerEvent.CASE_UPDATED,
        fingerprint=fingerprint,
        progres_interventionnumber=number,
        case_record_id=written.case_record_id,
        case_id=written.case_id,
        service_unique_id=written.service_unique_id,
        # what addresses the intervention through PING, should the deployment switch to it
        **mapping.ping_ids(intervention),
    )
    feedback = mapping.success_feedback(
        case_id=written.case_id, primero_user=written.owned_by, intervention_number=number
    )
    ctx.enqueue(
        FEEDBACK,
        {"message": feedback},
        key=f"{FEEDBACK}:{number}:{fingerprint}",
        refs={
            "progres_interventionnumber": number,
            "case_id": written.case_id,
            "status": feedback["status"],
        },
    )


@dataclass(frozen=True, slots=True)
class WrittenCase:
    """The Primero case an intervention was written to."""

    action: Literal["create", "update"]
    case_record_id: str
    case_id: str
    #: who owns the case now
    owned_by: str
    service_unique_id: str | None


async def write_case(
    rt: Runtime, ctx: StepContext, mapped: mapping.MappedIntervention
) -> WrittenCase | PermanentPeerError:
    """Flow 1's Primero side, whichever gateway brought the intervention: find the child's
    case(s), create or patch (never a duplicate service row).

    The caller holds the lease ``individual:<unhcr_individual_no>``. A permanent refusal by
    Primero is returned for the caller to report to proGres; the refusals that are the
    bridge's own configuration problem (``OPERATOR_FIXABLE``, a role whose scope hides cases:
    ``PrimeroAccessError``, fields Primero did not keep: ``FieldsNotKept``) are raised: dead
    letters.
    """
    number = mapped.progres_interventionnumber
    existing = await rt.primero.find_cases("unhcr_individual_no", mapped.unhcr_individual_no)
    # what the search cannot see it does not return: a narrow scope would mean a duplicate case
    await rt.role.require_scope(rt.primero, FLOW)
    plan = mapping.plan_upsert(existing, mapped)
    try:
        if plan.case_record_id is None:
            written = await rt.primero.create_case(plan.body)
        else:
            written = await rt.primero.patch_case(plan.case_record_id, plan.body)
    except PermanentPeerError as exc:
        if isinstance(exc, OPERATOR_FIXABLE):
            raise
        return exc

    case_record_id = plan.case_record_id or _text(written.get("id"))
    if case_record_id is not None:
        written = await _kept(rt, plan, mapped, case_record_id, written)
    case_id = _text(written.get("case_id")) or _existing_case_id(existing, case_record_id)
    if case_record_id is None or case_id is None:
        # Written, but Primero did not say which case: a Delivery Fail would be false.
        raise UnexpectedResponseError(
            "primero",
            f"{plan.action}_case",
            "the case was written but its id or case_id is missing from the answer",
            reason="bad_response",
        )
    # who owns the case now: Primero's answer, else the plan's (the owner a ``keep`` profile
    # leaves in place), else the focal point the mapping chose
    owned_by = (
        _text(written.get("owned_by")) or plan.primero_user or str(mapped.case["owned_by"])
    )
    service_unique_id = plan.service_unique_id or _service_unique_id(written, number)
    if plan.ambiguous:
        ctx.audit(
            AuditEvent.SEVERAL_CASES_MATCHED,
            flow=FLOW,
            progres_interventionnumber=number,
            case_record_id=case_record_id,
            candidate_ids=list(plan.candidate_ids),
        )
    log.info(
        "intervention_delivered",
        flow=FLOW.value,
        progres_interventionnumber=number,
        case_id=case_id,
        outcome=plan.action,
    )
    return WrittenCase(plan.action, case_record_id, case_id, owned_by, service_unique_id)


class FieldsNotKept(PermanentError):
    """Primero accepted a write but dropped fields the next delivery needs to find its case and
    row (fields not on a writable form of the module drop silently): retrying would append
    another row, so the step stops for an operator to fix Primero's forms and replay."""

    def __init__(self, action: str, record_id: str, fields: list[str]) -> None:
        super().__init__(
            f"primero {action}_case: case {record_id} was written, but Primero did not keep "
            f"(or does not show the API user) {', '.join(fields)}: put them on a writable and "
            "readable form of the module for the API user's role, then replay",
            reason="primero_fields_not_kept",
        )
        self.fields = tuple(fields)


def _not_kept(case: dict[str, Any], mapped: mapping.MappedIntervention, created: bool) -> list[str]:
    """What a written case must show for the next delivery to find it and its row."""
    missing = []
    if created and case.get("unhcr_individual_no") != mapped.unhcr_individual_no:
        missing.append("unhcr_individual_no")
    row = _row(case, mapped.progres_interventionnumber)
    if row is None:
        missing.append(f"{mapping.SERVICES}.progres_interventionnumber")
    elif _text(row.get("unique_id")) is None:
        missing.append(f"{mapping.SERVICES}.unique_id")
    return missing


async def _kept(
    rt: Runtime,
    plan: mapping.UpsertPlan,
    mapped: mapping.MappedIntervention,
    record_id: str,
    written: dict[str, Any],
) -> dict[str, Any]:
    """The case as written, checked: a row the plan found is proven kept; a new one must be in
    Primero's answer, else in the case read again (a PATCH answers only what changed)."""
    created = plan.case_record_id is None
    if plan.service_unique_id is not None and not created:
        return written
    if not _not_kept(written, mapped, created):
        return written
    again = await rt.primero.get_case(record_id)
    missing = _not_kept(again, mapped, created)
    if missing:
        log.warning(
            "primero_fields_not_kept",
            flow=FLOW.value,
            progres_interventionnumber=mapped.progres_interventionnumber,
            case_record_id=record_id,
            fields=missing,
        )
        raise FieldsNotKept(plan.action, record_id, missing)
    return again


def record_refusal(
    ctx: StepContext,
    key: str,
    fingerprint: str,
    *,
    error: MappingError | None,
    peer_reason: str | None,
    peer_fields: Sequence[str] = (),
    ledger_ids: Mapping[str, Any],
    ids: Mapping[str, Any],
    state: LedgerState = LedgerState.REFUSED,
) -> str:
    """The ledger row, audit entry and log line of a refused intervention, whichever gateway
    brought it (``ids`` name it in the audit trail and the log; ``state``: ``refused_reported``
    when the peer already has this content's refusal); returns the reason kind its refusal
    message carries: the mapping ``error``'s, else Primero refused it."""
    reason_kind = error.kind if error is not None else PRIMERO_REFUSED
    ctx.ledger_record(
        FLOW,
        key,
        state=state,
        event=LedgerEvent.INTERVENTION_REFUSED,
        fingerprint=fingerprint,
        reason=reason_kind,
        **ledger_ids,
    )
    ctx.audit(
        AuditEvent.INTERVENTION_REFUSED,
        flow=FLOW,
        reason=reason_kind,
        failure_class=(FailureClass.MAPPING if error else FailureClass.PERMANENT).value,
        fields=list(error.fields) if error else list(peer_fields),
        peer_status=peer_reason,
        **ids,
    )
    log.info("intervention_refused", flow=FLOW.value, reason=reason_kind, **ids)
    return reason_kind


async def _refuse(
    ctx: StepContext,
    rt: Runtime,
    intervention: Any,
    fingerprint: str,
    *,
    error: MappingError | None = None,
    peer_reason: str | None = None,
    peer_fields: list[str] | None = None,
) -> None:
    """Record a refused intervention, queue its ``Delivery Fail`` and park it as a dead letter
    (``peer_fields``: the JSON pointers Primero named, so the audit trail says which field,
    e.g. a code missing from the instance's lookup).

    The dead letter is the only way the intervention can still become a case: proGres sending
    it again unchanged is a duplicate message, and its ``deliver`` key is used for good. Its
    replay runs this step again: delivered, it queues the success feedback (its own key);
    refused again, the same ``Delivery Fail`` key sends nothing more, and a new dead letter
    waits."""
    number = mapping.intervention_number(intervention)
    key_number = number or f"{ctx.job.message_id}:{ctx.job.refs.get('index')}"
    reported = await rt.store.ledger.get(FLOW, key_number)
    reason_kind = record_refusal(
        ctx,
        key_number,
        fingerprint,
        error=error,
        peer_reason=peer_reason,
        peer_fields=peer_fields or (),
        ledger_ids={"progres_interventionnumber": number},
        ids={"progres_interventionnumber": number},
        # refused again on replay: DTP already has this content's Delivery Fail
        state=(
            LedgerState.REFUSED_REPORTED
            if reported is not None
            and reported.state == LedgerState.REFUSED_REPORTED
            and reported.content_fingerprint == fingerprint
            else LedgerState.REFUSED
        ),
    )
    feedback = mapping.refusal_feedback(intervention, error, rt.profile, reason_kind=reason_kind)
    ctx.enqueue(
        FEEDBACK,
        {"message": feedback},
        # not the success feedback's key: a replay that delivers must still send its own
        key=f"{FEEDBACK}:{key_number}:{fingerprint}:refused",
        refs={"progres_interventionnumber": number, "status": feedback["status"]},
    )
    failure_class = FailureClass.MAPPING if error is not None else FailureClass.PERMANENT
    ctx.dead_letter(
        DELIVER,
        {"intervention": intervention, "fingerprint": fingerprint, "refused": True},
        key=f"{DELIVER}:{key_number}:{fingerprint}:refused:{ctx.job.id}",
        refs=ctx.job.refs,
        reason=DeadReason(
            failure_class,
            reason_kind,
            f"{FLOW.value} intervention {key_number} refused ({reason_kind}"
            f"{f', Primero {peer_reason}' if peer_reason else ''}); proGres was told Delivery "
            "Fail. Fix the cause (the profile's tables, a Primero lookup or form) then replay; "
            "or discard if proGres must correct its data and will send it again changed",
        ),
    )


async def feedback(rt: Runtime, ctx: StepContext) -> None:
    message: dict[str, Any] = (ctx.job.payload or {})["message"]
    number = message.get("progres_interventionnumber")
    refused = message.get("status") == dtp.DELIVERY_FAIL
    if refused and number and await _delivered_since(rt, str(number)):
        return
    receipt = await rt.dtp.send_decision(message, idempotency_key=idempotency_key(ctx))
    if number:
        ctx.ledger_record(
            FLOW,
            number,
            state=LedgerState.REFUSED_REPORTED if refused else LedgerState.FEEDBACK_SENT,
            event=LedgerEvent.FEEDBACK_SENT,
            progres_interventionnumber=number,
            dtp_request_id=receipt.request_id,
        )
    ctx.audit(
        AuditEvent.FEEDBACK_SENT,
        flow=FLOW,
        progres_interventionnumber=number,
        status=message.get("status"),
    )


async def _superseded(rt: Runtime, intervention: Any, fingerprint: str) -> bool:
    """A refused intervention's parked copy, replayed after proGres sent the intervention
    again changed (the ledger holds that content's fingerprint): written now, the old content
    would overwrite the newer in Primero. Nothing is written; the copy is done."""
    number = mapping.intervention_number(intervention)
    exchange = await rt.store.ledger.get(FLOW, number) if number else None
    if exchange is None or exchange.content_fingerprint in (None, fingerprint):
        return False
    log.warning(
        "refused_copy_superseded",
        flow=FLOW.value,
        progres_interventionnumber=number,
        state=exchange.state,
    )
    return True


async def _delivered_since(rt: Runtime, number: str) -> bool:
    """A ``Delivery Fail`` still unsent (DTP was down) when the replay of its dead letter
    delivered the intervention: sent now, it would tell proGres the opposite of what is
    true, after the success feedback."""
    exchange = await rt.store.ledger.get(FLOW, number)
    if exchange is None or exchange.state not in (
        LedgerState.DELIVERED,
        LedgerState.FEEDBACK_SENT,
    ):
        return False
    log.info(
        "refusal_feedback_superseded",
        flow=FLOW.value,
        progres_interventionnumber=number,
        case_id=exchange.case_id,
    )
    return True


def _pointers(exc: PermanentPeerError) -> list[str]:
    """The JSON pointers of a refusal (``/services_section/0/service_type``), never values."""
    return [d.partition("=")[2] for d in exc.details if d.startswith("detail=")]


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _row(case: dict[str, Any], number: str) -> dict[str, Any] | None:
    rows = case.get(mapping.SERVICES)
    for row in rows if isinstance(rows, list) else []:
        if isinstance(row, dict) and row.get("progres_interventionnumber") == number:
            return row
    return None


def _service_unique_id(case: dict[str, Any], number: str) -> str | None:
    row = _row(case, number)
    return _text(row.get("unique_id")) if row is not None else None


def _existing_case_id(cases: list[dict[str, Any]], record_id: str | None) -> str | None:
    for case in cases:
        if case.get("id") == record_id:
            return _text(case.get("case_id"))
    return None
