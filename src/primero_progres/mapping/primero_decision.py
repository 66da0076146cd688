"""Flow 2 (``primero-decision``): a Primero decision on a proGres referral goes back to DTP.

A service qualifies by its proGres origin (it carries a
``progres_interventionnumber`` and is an external referral), not by its
``service_request_agency``: the reference's agency test dropped decisions on
UNHCR partners' referrals.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..profiles import Profile
from . import dtp
from .errors import MappingError, invalid, missing
from .values import ABSENT, text

F_NUMBER = "progres_interventionnumber"


@dataclass(frozen=True, slots=True)
class DecisionResult:
    case_id: str | None
    case_record_id: str | None
    service_unique_id: str | None
    progres_interventionnumber: str
    status: str
    ok: bool
    message: dict[str, Any] | None
    error: MappingError | None


def qualifying_decisions(case: Any, profile: Profile) -> list[DecisionResult]:
    """One result per service of this case whose proGres referral was accepted or rejected."""
    if not isinstance(case, Mapping):
        return []
    rows = case.get("services_section")
    if not isinstance(rows, list):
        return []
    tables = profile.primero_decision
    case_id = _id(case.get("case_id"))
    case_record_id = _id(case.get("id"))
    owner = text(case.get("owned_by"))
    results = []
    for row in rows:
        if not isinstance(row, Mapping):
            continue
        number = text(row.get(F_NUMBER))
        status = row.get("unhcr_referral_status")
        if (
            not isinstance(number, str)
            or row.get("service_referral") != tables.service_referral
            or not isinstance(status, str)
            or status not in tables.statuses
        ):
            continue
        unique_id = _id(row.get("unique_id"))
        reason = text(row.get("unhcr_referral_rejection_reason"))
        error = _problem(case_id, owner, reason)
        message = None
        if error is None:
            message = {
                "case_id": case_id,
                "primero_user": owner,
                "progres_interventionnumber": number,
                "status": tables.statuses[status],
                "closure_reason": reason or tables.default_closure_reason,
                "request_type": dtp.DECISION_REQUEST,
            }
        results.append(
            DecisionResult(
                case_id=case_id,
                case_record_id=case_record_id,
                service_unique_id=unique_id,
                progres_interventionnumber=number,
                status=status,
                ok=error is None,
                message=message,
                error=error,
            )
        )
    return results


def _id(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _problem(case_id: str | None, owner: Any, reason: Any) -> MappingError | None:
    absent = [name for name, value in (("case_id", case_id), ("owned_by", owner)) if value is None]
    if absent:
        return missing(absent)
    wrong = [
        name
        for name, value in (("owned_by", owner), ("unhcr_referral_rejection_reason", reason))
        if value is ABSENT
    ]
    return invalid(wrong, "fields have the wrong type") if wrong else None
