"""Flow 3 (``primero-referral``): a Primero referral to UNHCR becomes a DTP referral.

One message per UNHCR service that has a Primero referral
(``referral.service_record_id == service.unique_id``). The DTP id keeps only
the last characters of the service id (DTP relies on that format); flow 4
resolves it back with ``progres_decision.select_referral``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from ..profiles import Profile
from . import dtp
from .errors import MappingError, invalid, missing, unknown_code
from .values import ABSENT, date_part, text, timestamp


@dataclass(frozen=True, slots=True)
class ReferralResult:
    case_id: str | None
    case_record_id: str | None
    service_unique_id: str | None
    referral_id: str | None
    org_referral_id: str | None
    ok: bool
    message: dict[str, Any] | None
    error: MappingError | None


def org_referral_id(case_id: str, service_unique_id: str, suffix_length: int = 12) -> str:
    """``<case_id>#<last 12 characters of the service unique_id>``: the id DTP keeps."""
    return f"{case_id}#{service_unique_id[-suffix_length:]}"


def _is_unhcr(row: Any, agency: str) -> bool:
    if not isinstance(row, Mapping):
        return False
    value = row.get("service_implementing_agency")
    return isinstance(value, str) and value.casefold() == agency


def unhcr_services(case: Any, profile: Profile) -> list[dict[str, Any]]:
    """The service rows implemented by UNHCR (the profile's value, any letter case)."""
    if not isinstance(case, Mapping):
        return []
    rows = case.get("services_section")
    if not isinstance(rows, list):
        return []
    agency = profile.implementing_agency.unhcr.casefold()
    return [row for row in rows if _is_unhcr(row, agency)]


def users_needed(case: Any) -> set[str]:
    """Primero user names whose contact details the messages of this case need."""
    if not isinstance(case, Mapping):
        return set()
    owner = case.get("owned_by")
    return {owner} if isinstance(owner, str) and owner else set()


def latest_referral_per_service(
    referrals: Any, since: datetime | None
) -> dict[str, Mapping[str, Any]]:
    """The newest referral of each service (created since ``since``), by service ``unique_id``."""
    by_service: dict[str, Mapping[str, Any]] = {}
    if not isinstance(referrals, list):
        return by_service
    for referral in referrals:
        if not isinstance(referral, Mapping):
            continue
        service_id = referral.get("service_record_id")
        if not isinstance(service_id, str) or not service_id:
            continue
        created = timestamp(referral.get("created_at"))
        if since is not None and created is not None and created < _aware(since):
            continue
        current = by_service.get(service_id)
        if current is None or _created(referral) >= _created(current):
            by_service[service_id] = referral
    return by_service


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _created(referral: Mapping[str, Any]) -> str:
    value = referral.get("created_at")
    return value if isinstance(value, str) else ""


def contact_for(user: Any, profile: Profile) -> dict[str, str]:
    """The referring user's position, email, phone and name; the profile's default for each gap."""
    default = profile.default_contact
    user = user if isinstance(user, Mapping) else {}
    out = {}
    for key in ("position", "email", "phone", "full_name"):
        value = user.get(key)
        out[key] = value if isinstance(value, str) and value.strip() else getattr(default, key)
    return out


def referred_services(
    case: Any,
    referrals: list[dict[str, Any]],
    users: Mapping[str, dict[str, Any]],
    profile: Profile,
    *,
    since: datetime | None = None,
) -> list[tuple[Mapping[str, Any], Mapping[str, Any], Any]]:
    """``(service row, its latest referral, the case owner's user)`` per referred UNHCR service.

    Shared by flow 3 over DTP and over PING: the same services go either way.
    """
    services = unhcr_services(case, profile)
    if not services:
        return []
    by_service = latest_referral_per_service(referrals, since)
    owner = case.get("owned_by")
    user = users.get(owner) if isinstance(owner, str) and isinstance(users, Mapping) else None
    found: list[tuple[Mapping[str, Any], Mapping[str, Any], Any]] = []
    for row in services:
        unique_id = _id(row.get("unique_id"))
        referral = by_service.get(unique_id) if unique_id else None
        if referral is not None:
            found.append((row, referral, user))
    return found


def referral_messages(
    case: Any,
    referrals: list[dict[str, Any]],
    users: Mapping[str, dict[str, Any]],
    profile: Profile,
    *,
    since: datetime | None = None,
) -> list[ReferralResult]:
    """One DTP ``ReceiveIncomingReferral`` (or a typed error) per referred UNHCR service."""
    case_id = _id(case.get("case_id")) if isinstance(case, Mapping) else None
    case_record_id = _id(case.get("id")) if isinstance(case, Mapping) else None
    results = []
    for row, referral, user in referred_services(case, referrals, users, profile, since=since):
        unique_id = str(row["unique_id"])
        dtp_id = None
        if case_id is not None:
            dtp_id = org_referral_id(
                case_id, unique_id, profile.primero_referral.org_referral_id_suffix_length
            )
        message_or_error = _message(case, row, user, profile, dtp_id)
        error = message_or_error if isinstance(message_or_error, MappingError) else None
        results.append(
            ReferralResult(
                case_id=case_id,
                case_record_id=case_record_id,
                service_unique_id=unique_id,
                referral_id=_id(referral.get("id")),
                org_referral_id=dtp_id,
                ok=error is None,
                message=None if isinstance(message_or_error, MappingError) else message_or_error,
                error=error,
            )
        )
    return results


def _id(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


_CASE_TEXT = ("unhcr_individual_no", "unhcr_id_no", "name_first", "name_last", "address_current",
              "name_middle", "name_nickname")
#: the case fields flow 3 reads: the API user's role must be able to read them
READ_FIELDS = (*_CASE_TEXT, "case_id", "owned_by", "date_of_birth", "sex", "telephone_current",
               "language", "services_section")


def translated_codes(profile: Profile) -> dict[str, frozenset[str]]:
    """The Primero codes flow 3 can translate for DTP, by field; others are ``unknown_code``."""
    tables = profile.primero_referral
    return {
        "services_section.service_type": frozenset(tables.service_types),
        "language": frozenset(tables.languages),
    }


def _message(
    case: Mapping[str, Any],
    row: Mapping[str, Any],
    user: Any,
    profile: Profile,
    dtp_id: str | None,
) -> dict[str, Any] | MappingError:
    tables = profile.primero_referral
    owner = text(case.get("owned_by"))
    absent = [
        name
        for name, value in (
            ("case_id", dtp_id),
            ("owned_by", owner),
            ("services_section.service_type", row.get("service_type")),
        )
        if value is None or value == ""
    ]
    if absent:
        return missing(absent)

    values = {key: text(case.get(key)) for key in _CASE_TEXT}
    wrong = [key for key, value in values.items() if value is ABSENT]
    service_type = row.get("service_type")
    day_time = text(row.get("service_response_day_time"))
    type_other = text(row.get("service_type_other"))
    notes = text(row.get("service_referral_notes"))
    born = date_part(case.get("date_of_birth"))
    sex = case.get("sex")
    phone = case.get("telephone_current")
    languages = case.get("language")
    for name, value in (
        ("owned_by", owner),
        ("services_section.service_type", _str_or_absent(service_type)),
        ("services_section.service_response_day_time", day_time),
        ("services_section.service_type_other", type_other),
        ("services_section.service_referral_notes", notes),
        ("date_of_birth", born),
        ("sex", sex if sex is None or isinstance(sex, str) else ABSENT),
        ("telephone_current", ABSENT if isinstance(phone, bool | dict | list) else phone),
        ("language", languages if languages is None or isinstance(languages, list) else ABSENT),
    ):
        if value is ABSENT:
            wrong.append(name)
    if wrong:
        return invalid(wrong, "fields have the wrong type or an invalid date")

    codes = [c for c in (languages or []) if c is not None]
    unknown = []
    if not isinstance(service_type, str) or service_type not in tables.service_types:
        unknown.append("services_section.service_type")
    if any(not isinstance(c, str) or c not in tables.languages for c in codes):
        unknown.append("language")
    if unknown:
        return unknown_code(unknown)

    names = [tables.languages[c] for c in codes]
    agency = profile.implementing_agency.unicef
    contact = contact_for(user, profile)
    return {
        "request_type": dtp.REFERRAL_REQUEST,
        "primero_user": owner,
        "position": contact["position"],
        "email": contact["email"],
        "phone": contact["phone"],
        "full_name": contact["full_name"],
        "service_implementing_agency": agency,
        "owned_by_agency_id": agency,
        "service_response_day_time": day_time,
        "service_type": tables.service_types[str(service_type)],
        "service_type_other": type_other,
        "service_referral_notes": notes or tables.default_referral_notes,
        "unhcr_individual_no": values["unhcr_individual_no"],
        "unhcr_id_no": values["unhcr_id_no"],
        "name_first": values["name_first"],
        "name_middle": values["name_middle"],
        "name_last": values["name_last"],
        "name_nickname": values["name_nickname"],
        "date_of_birth": born.isoformat() if isinstance(born, date) else None,
        "sex": tables.sex.get(sex, sex) if sex else None,
        "address_current": values["address_current"],
        "telephone_current": phone_text(phone),
        "language": tables.language_separator.join(names) if names else tables.no_language,
        "id": dtp_id,
    }


def _str_or_absent(value: Any) -> Any:
    return value if isinstance(value, str) else ABSENT


def phone_text(value: Any) -> str | None:
    """A phone number as text (Primero may hold it as a number)."""
    if value is None or value == "":
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
