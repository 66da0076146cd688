"""Flow 4 (``progres-decision``): a proGres decision updates the Primero referral flow 3 sent.

``progres_orgreferralid`` is ``<case_id>#<service key>``, the key being the
last characters of the service's ``unique_id``. Resolution is safe: the
service the ledger recorded first, then an exact full-id match, then the
suffix; two different services matching is an error, never a guess.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..profiles import Profile
from . import dtp
from .errors import (
    AMBIGUOUS_REFERRAL,
    UNKNOWN_REFERRAL,
    MappingError,
    invalid,
    missing,
)
from .values import ABSENT, ProgresMessage, code, read_interventions, text

F_ORG_REFERRAL_ID = "progres_orgreferralid"
F_DECISION = "progres_reviewdecision"
F_REASON = "progres_interoperabiltyreferralrejectionreason"
F_COMMENTS = (
    "progres_interoperabilityreferralrejectionomment",  # DTP's spelling
    "progres_interoperabilityreferralrejectioncomment",
)


@dataclass(frozen=True, slots=True)
class ProgresDecision:
    org_referral_id: str
    case_id: str
    service_key: str
    status: str
    rejected_reason: str | None


def split_org_referral_id(value: Any) -> tuple[str, str] | MappingError:
    """``(case_id, service_key)`` from ``<case_id>#<service key>``."""
    if not isinstance(value, str):
        return invalid([F_ORG_REFERRAL_ID], "not a string")
    case_id, sep, service_key = value.strip().rpartition("#")
    if not sep or not case_id or not service_key or "#" in case_id:
        return invalid([F_ORG_REFERRAL_ID], "not of the form <case_id>#<service key>")
    return case_id, service_key


def read_decision(item: Any, profile: Profile) -> ProgresDecision | MappingError:
    """One decision of the message, validated against the profile's codes."""
    if not isinstance(item, Mapping):
        return invalid([], "the decision is not a JSON object")
    raw_id = item.get(F_ORG_REFERRAL_ID)
    raw_decision = code(item.get(F_DECISION))
    absent = [k for k, v in ((F_ORG_REFERRAL_ID, raw_id), (F_DECISION, raw_decision)) if v is None]
    if absent:
        return missing(absent)
    parts = split_org_referral_id(raw_id)
    if isinstance(parts, MappingError):
        return parts
    org_referral_id = str(raw_id).strip()
    tables = profile.progres_decision
    status = tables.decisions.get(raw_decision) if isinstance(raw_decision, str) else None
    reason = code(item.get(F_REASON))
    comment = None
    for key in F_COMMENTS:
        comment = text(item.get(key))
        if comment is not None:
            break
    wrong = [F_DECISION] if status is None else []
    if reason is ABSENT:
        wrong.append(F_REASON)
    if comment is ABSENT:
        wrong.append(F_COMMENTS[0])
    if wrong or status is None:
        return invalid(wrong, "fields have values outside the profile's tables or the wrong type")
    rejected_reason = None
    if isinstance(reason, str):
        reason_text = tables.rejection_reasons.get(reason, reason)
        rejected_reason = (
            f"{reason_text}{tables.rejected_reason_separator}{comment}" if comment else reason_text
        )
    case_id, service_key = parts
    return ProgresDecision(org_referral_id, case_id, service_key, status, rejected_reason)


def read_message(payload: Any) -> ProgresMessage | MappingError:
    """The raw decisions of a ``PrimeroIncomingReferralDecision`` message, bare or wrapped."""
    return read_interventions(payload, dtp.PROGRES_DECISION_REQUEST, "decision")


def read_decisions(
    payload: Any, profile: Profile
) -> list[ProgresDecision | MappingError] | MappingError:
    """Every decision of a ``PrimeroIncomingReferralDecision`` message, read with ``profile``."""
    message = read_message(payload)
    if isinstance(message, MappingError):
        return message
    return [read_decision(item, profile) for item in message.interventions]


def _matches(referrals: Any, test: Callable[[str], bool]) -> list[dict[str, Any]]:
    if not isinstance(referrals, list):
        return []
    return [
        r
        for r in referrals
        if isinstance(r, dict)
        and isinstance(r.get("service_record_id"), str)
        and r["service_record_id"]
        and isinstance(r.get("id"), str)
        and test(r["service_record_id"])
    ]


def _one(candidates: list[dict[str, Any]]) -> dict[str, Any] | MappingError:
    services = {r["service_record_id"] for r in candidates}
    if len(services) > 1:
        return MappingError(
            AMBIGUOUS_REFERRAL, "several services match the service key", ("service_record_id",)
        )
    # Several referrals of the same service (re-referred): the open one, else the latest.
    return max(
        candidates,
        key=lambda r: (r.get("status") == "in_progress", str(r.get("created_at") or "")),
    )


def select_referral(
    referrals: list[dict[str, Any]],
    service_key: str,
    *,
    known_service_unique_id: str | None = None,
) -> dict[str, Any] | MappingError:
    """The referral a decision is about, among the case's referrals."""
    tests: list[Callable[[str], bool]] = []
    if known_service_unique_id:
        tests.append(lambda s: s == known_service_unique_id)
    if isinstance(service_key, str) and service_key:
        tests.append(lambda s: s == service_key)
        tests.append(lambda s: s.endswith(service_key))
    for test in tests:
        candidates = _matches(referrals, test)
        if candidates:
            return _one(candidates)
    return MappingError(
        UNKNOWN_REFERRAL, "no referral of this case matches", ("service_record_id",)
    )


def referral_patch(decision: ProgresDecision) -> dict[str, str]:
    """The ``data`` of ``PATCH /cases/:id/referrals/:rid`` for this decision, as sent."""
    body = {"status": decision.status}
    if decision.rejected_reason is not None:
        body["rejected_reason"] = decision.rejected_reason
    return body
