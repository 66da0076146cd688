"""Flow 1 (``progres-referral``): a proGres intervention becomes a Primero case.

``map_intervention`` validates and maps one intervention; ``plan_upsert``
decides which existing case to update (if any) and the exact body to send;
the two feedback builders give DTP its ``Pending Acknowledgement`` or
``Delivery Fail`` message.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Literal

from ..profiles import Profile
from ..profiles.schema import ExistingCase
from . import dtp
from .errors import (
    INVALID_DATA,
    MAX_ID_LENGTH,
    MISSING_FIELDS,
    SERVICE_TYPE,
    MappingError,
    invalid,
    missing,
    too_long,
)
from .values import (
    ABSENT,
    ProgresMessage,
    code,
    date_part,
    lookup_name,
    read_interventions,
    strip_paragraphs,
    text,
    timestamp,
    whole_years,
)

F_SERVICE_TYPE = "interventiontype.progres_description"
F_INDIVIDUAL = "individuals.progres_id"
F_GROUP = "individuals.progres_registrationgroupid"
F_GIVEN = "individuals.progres_givenname"
F_MIDDLE = "individuals.progres_middlename"
F_FAMILY = "individuals.progres_familyname"
F_NICKNAME = "individuals.progres_commonyusedname"
F_BIRTH = "individuals.progres_dateofbirth"
F_SEX = "individuals.progres_sex"
F_PHONE = "individuals.progres_primaryphonenumber"
F_LOCATIONS = tuple(f"individuals.progres_coalocationlevel{n}" for n in range(1, 6))
F_LOCATION_6 = "individuals.progres_coalocationlevel6"
F_LANGUAGE = "languages.progres_languagecodeid"
F_NUMBER = "progres_interventionnumber"
F_START = "progres_interventionstartdate"
F_DESCRIPTION = "progres_interventiondescription"
F_REASON = "progres_reasonforreferral"
F_PRIMERO_ID = "progres_primeroid"
F_USER_TITLE = "user.title"
F_USER_PARTNER = "user.progres_partner"
F_USER_PHONE = "user.mobilephone"
F_USER_EMAIL = "user.internalemailaddress"
_PING_LP_INTERVENTION = "progres_lpinterventionid"
_PING_BUSINESS_UNIT = "progres_businessunit"

_LOOKUPS = frozenset({F_GROUP, F_LANGUAGE, F_USER_PARTNER, *F_LOCATIONS})
_CODES = frozenset({F_SEX})

#: never sent in a PATCH: the fields Primero refuses to change on update (PRIMERO-API.md 2.4),
#: and ``module_id``, which Primero accepts and which would move the case to another module
PATCH_FORBIDDEN = frozenset(
    {"id", "unique_identifier", "unique_id", "short_id", "created_at", "created_by", "case_id",
     "case_id_display", "module_id"}
)
#: every top-level case field ``map_intervention`` and ``plan_upsert`` may write
CASE_FIELDS = (
    "unhcr_individual_no", "unhcr_id_no", "name_first", "name_middle", "name_last",
    "name_nickname", "date_of_birth", "age", "sex", "telephone_current", "address_current",
    "language", "status", "case_status_reopened", "case_id", "owned_by", "module_id",
    "services_section",
)
#: every field of the ``services_section`` row ``map_intervention`` may write
SERVICE_FIELDS = (
    "service_response_day_time", "service_request_external", "service_request_title",
    "service_request_agency", "service_request_phone", "service_request_email",
    "service_referral_notes", "service_type", "service_implementing_agency",
    "service_response_type", "service_referral", "unhcr_referral_status",
    "progres_interventionnumber",
)
SERVICES = "services_section"
#: the fields of a service row the focal point owns once the row exists: the decision flow 2
#: reads. A new row starts them (``pending``); a write to an existing row sends one only where
#: the row holds no value yet, so a repeated or crash-recovered delivery cannot put a decision
#: back to ``pending``.
FOCAL_POINT_FIELDS = frozenset({"unhcr_referral_status", "unhcr_referral_rejection_reason"})
#: the case fields flow 1 reads back from the cases it finds
READ_FIELDS = ("unhcr_individual_no", "case_id", "owned_by", "status", SERVICES)


@dataclass(frozen=True, slots=True)
class MappedIntervention:
    progres_interventionnumber: str
    unhcr_individual_no: str
    case: dict[str, Any]
    service: dict[str, Any]
    #: the profile's choice for a case that already exists (``plan_upsert`` applies it)
    existing_case: ExistingCase


@dataclass(frozen=True, slots=True)
class UpsertPlan:
    """What to write to Primero for one mapped intervention."""

    action: Literal["create", "update"]
    case_record_id: str | None
    body: dict[str, Any]
    ambiguous: bool
    candidate_ids: tuple[str, ...]
    service_unique_id: str | None
    #: who owns the case once the write is done (None: kept, and the current owner is unknown)
    primero_user: str | None


def read_message(payload: Any) -> ProgresMessage | MappingError:
    """The interventions of a ``PrimeroOutgoingReferral`` message, bare or wrapped."""
    return read_interventions(payload, dtp.PROGRES_REFERRAL_REQUEST, "referral")


def intervention_number(intervention: Any) -> str | None:
    """The intervention number, when the intervention has a usable one."""
    if not isinstance(intervention, Mapping):
        return None
    value = text(intervention.get(F_NUMBER))
    return None if value is ABSENT else value


def ping_ids(intervention: Any) -> dict[str, Any]:
    """The ids that address this intervention through PING (DTP sends them too), as ledger
    columns: recorded, a deployment that switches to PING can still send its decision."""
    found: dict[str, Any] = {"lp_intervention_id": None, "business_unit_id": None}
    if isinstance(intervention, Mapping):
        for column, key in (("lp_intervention_id", _PING_LP_INTERVENTION),
                            ("business_unit_id", _PING_BUSINESS_UNIT)):
            value = text(intervention.get(key))
            found[column] = value if isinstance(value, str) else None
    return found


def _read(intervention: Mapping[str, Any], key: str) -> Any:
    value = intervention.get(key)
    if key in _LOOKUPS:
        return lookup_name(value)
    if key in _CODES:
        return code(value)
    return text(value)


def _referral_notes(intervention: Mapping[str, Any], separator: str) -> str | None:
    parts: list[str] = []
    description = text(intervention.get(F_DESCRIPTION))
    if isinstance(description, str):
        parts.append(strip_paragraphs(description))
    reason = text(intervention.get(F_REASON))
    if isinstance(reason, str):
        parts.extend(_reason_texts(reason))
    joined = separator.join(p for p in parts if p)
    return joined or None


def _reason_texts(reason: str) -> list[str]:
    """``progres_reasonforreferral`` is plain text or a JSON list of ``{"Text": ...}`` notes."""
    if reason.lstrip().startswith("["):
        try:
            notes = json.loads(reason)
        except ValueError:
            notes = None
        if isinstance(notes, list):
            return [
                strip_paragraphs(n["Text"])
                for n in notes
                if isinstance(n, Mapping) and isinstance(n.get("Text"), str)
            ]
    return [strip_paragraphs(reason)]


def _address(intervention: Mapping[str, Any]) -> str | None:
    parts = [lookup_name(intervention.get(key)) for key in F_LOCATIONS]
    parts.append(text(intervention.get(F_LOCATION_6)))
    joined = " ".join(p.strip() for p in parts if isinstance(p, str) and p.strip())
    return joined or None


def map_intervention(
    intervention: Any, profile: Profile, today: date
) -> MappedIntervention | MappingError:
    """The Primero case body (with its one service row) for one intervention."""
    if not isinstance(intervention, Mapping):
        return invalid([], "the intervention is not a JSON object")
    tables = profile.progres_referral

    values: dict[str, Any] = {}
    wrong: list[str] = []
    for key in tables.required_fields:
        value = _read(intervention, key)
        if value is ABSENT:
            wrong.append(key)
        values[key] = value
    absent = [key for key in tables.required_fields if values[key] is None]
    if absent:
        return missing(absent)
    for key in (F_MIDDLE, F_NICKNAME, F_PHONE, F_LANGUAGE, F_START, F_PRIMERO_ID, F_USER_TITLE,
                F_USER_PARTNER, F_USER_PHONE, F_USER_EMAIL, F_DESCRIPTION, F_REASON, F_LOCATION_6,
                *F_LOCATIONS, F_SERVICE_TYPE, F_INDIVIDUAL, F_GROUP, F_GIVEN, F_FAMILY, F_BIRTH,
                F_SEX, F_NUMBER):
        if key not in values:
            value = _read(intervention, key)
            if value is ABSENT:
                wrong.append(key)
            values[key] = value
    if wrong:
        return invalid(wrong, "fields have the wrong type")

    sex = tables.sex.get(values[F_SEX]) if values[F_SEX] is not None else None
    born = date_part(values[F_BIRTH])
    bad = []
    if values[F_SEX] is not None and sex is None:
        bad.append(F_SEX)
    if born is ABSENT or (born is not None and born > today):
        bad.append(F_BIRTH)
    if bad:
        return invalid(bad, "fields have values outside the profile's tables or an invalid date")

    service_type = tables.service_types.get(values[F_SERVICE_TYPE] or "")
    if service_type is None:
        return MappingError(SERVICE_TYPE, "service type not accepted", (F_SERVICE_TYPE,))

    number = values[F_NUMBER]
    individual = values[F_INDIVIDUAL]
    if number is None or individual is None:
        return missing([k for k in (F_NUMBER, F_INDIVIDUAL) if values[k] is None])
    long_ids = [
        key
        for key in (F_NUMBER, F_INDIVIDUAL, F_PRIMERO_ID)
        if isinstance(values[key], str) and len(values[key]) > MAX_ID_LENGTH
    ]
    if long_ids:
        return too_long(long_ids)

    row: dict[str, Any] = {}
    _put(row, "service_response_day_time", values[F_START])
    row["service_request_external"] = tables.service_row.service_request_external
    _put(row, "service_request_title", values[F_USER_TITLE])
    row["service_request_agency"] = values[F_USER_PARTNER] or tables.default_request_agency
    _put(row, "service_request_phone", values[F_USER_PHONE])
    _put(row, "service_request_email", values[F_USER_EMAIL])
    _put(row, "service_referral_notes", _referral_notes(intervention, tables.notes_separator))
    row["service_type"] = service_type
    row["service_implementing_agency"] = profile.implementing_agency.unicef
    row["service_response_type"] = tables.service_row.service_response_type
    row["service_referral"] = tables.service_row.service_referral
    row["unhcr_referral_status"] = tables.service_row.unhcr_referral_status
    row["progres_interventionnumber"] = number

    case: dict[str, Any] = {"unhcr_individual_no": individual}
    _put(case, "unhcr_id_no", values[F_GROUP])
    _put(case, "name_first", values[F_GIVEN])
    _put(case, "name_middle", values[F_MIDDLE])
    _put(case, "name_last", values[F_FAMILY])
    _put(case, "name_nickname", values[F_NICKNAME])
    if isinstance(born, date):
        case["date_of_birth"] = born.isoformat()
        case["age"] = whole_years(born, today)
    _put(case, "sex", sex)
    _put(case, "telephone_current", values[F_PHONE])
    _put(case, "address_current", _address(intervention))
    if values[F_LANGUAGE] is not None:
        case["language"] = [tables.languages.get(values[F_LANGUAGE], tables.other_language)]
    case["status"] = profile.primero.case_status
    _put(case, "case_id", values[F_PRIMERO_ID])
    case["owned_by"] = profile.focal_point_user_for(intervention)
    case["module_id"] = profile.primero.module_id
    case["services_section"] = [row]
    return MappedIntervention(number, individual, case, row, profile.existing_case)


def _put(target: dict[str, Any], key: str, value: Any) -> None:
    if value is not None:
        target[key] = value


def _last_updated(case: Mapping[str, Any]) -> datetime:
    return timestamp(case.get("last_updated_at")) or datetime.min.replace(tzinfo=UTC)


def _row_for(case: Mapping[str, Any], number: str) -> Mapping[str, Any] | None:
    rows = case.get("services_section")
    if not isinstance(rows, list):
        return None
    for row in rows:
        if isinstance(row, Mapping) and row.get(F_NUMBER) == number:
            return row
    return None


def plan_upsert(existing_cases: list[dict[str, Any]], mapped: MappedIntervention) -> UpsertPlan:
    """Create, or update the right existing case, without ever adding a duplicate service row.

    Primero may ignore the search filter, so the individual number is checked
    here again. Several matches: the case already holding this intervention,
    else the most recently updated one (``ambiguous`` is then set for the audit).
    The row of an intervention the case already holds is updated without the
    ``FOCAL_POINT_FIELDS`` it already has a value for.
    """
    matches = [
        c
        for c in existing_cases
        if isinstance(c, Mapping)
        and c.get("unhcr_individual_no") == mapped.unhcr_individual_no
        and isinstance(c.get("id"), str)
    ]
    focal_point = mapped.case.get("owned_by")
    if not matches:
        return UpsertPlan("create", None, dict(mapped.case), False, (), None, focal_point)
    number = mapped.progres_interventionnumber
    holding = [c for c in matches if _row_for(c, number) is not None]
    pool = holding or matches
    chosen = max(pool, key=_last_updated)
    row = dict(mapped.service)
    existing_row = _row_for(chosen, number)
    service_unique_id = None
    if existing_row is not None and isinstance(existing_row.get("unique_id"), str):
        service_unique_id = existing_row["unique_id"]
        kept = {
            k: v
            for k, v in row.items()
            if k not in FOCAL_POINT_FIELDS or existing_row.get(k) in (None, "")
        }
        row = {"unique_id": service_unique_id, **kept}
    body = _update_body(mapped, chosen)
    body["services_section"] = [row]
    owner = chosen.get("owned_by") if "owned_by" not in body else body["owned_by"]
    return UpsertPlan(
        "update",
        chosen["id"],
        body,
        len(matches) > 1,
        tuple(c["id"] for c in matches),
        service_unique_id,
        owner if isinstance(owner, str) and owner else None,
    )


def _update_body(mapped: MappedIntervention, case: Mapping[str, Any]) -> dict[str, Any]:
    """The case fields of a PATCH, as the profile's ``existing_case`` choice says.

    Reopening a case whose status differs also sets ``case_status_reopened``, as Primero's
    own "reopen" action does; a status the API user cannot read is simply overwritten.
    """
    body = {k: v for k, v in mapped.case.items() if k not in PATCH_FORBIDDEN}
    policy = mapped.existing_case
    if policy.owned_by == "keep":
        body.pop("owned_by", None)
    if policy.status == "keep":
        body.pop("status", None)
    else:
        current = case.get("status")
        if isinstance(current, str) and current != body.get("status"):
            body["case_status_reopened"] = True
    return body


def written_codes(profile: Profile) -> dict[str, frozenset[str]]:
    """The option codes flow 1 may write, by field (``services_section.<field>`` for the row).

    A Primero instance must hold each in the lookup of that field, or it refuses the case
    (422 ``Invalid Record JSON``); ``doctor`` checks it.
    """
    tables = profile.progres_referral
    row = tables.service_row
    return {
        "sex": frozenset(tables.sex.values()),
        "language": frozenset({*tables.languages.values(), tables.other_language}),
        "status": frozenset({profile.primero.case_status}),
        f"{SERVICES}.service_type": frozenset(tables.service_types.values()),
        f"{SERVICES}.service_implementing_agency": frozenset({profile.implementing_agency.unicef}),
        f"{SERVICES}.service_response_type": frozenset({row.service_response_type}),
        f"{SERVICES}.service_referral": frozenset({row.service_referral}),
        f"{SERVICES}.unhcr_referral_status": frozenset({row.unhcr_referral_status}),
    }


def written_fields() -> tuple[str, ...]:
    """Every field flow 1 may write: case fields, then ``services_section.<field>``."""
    return (*CASE_FIELDS, *(f"{SERVICES}.{name}" for name in SERVICE_FIELDS))


def success_feedback(
    *, case_id: str, primero_user: str, intervention_number: str
) -> dict[str, Any]:
    """``Pending Acknowledgement``: the case exists in Primero."""
    return {
        "status": dtp.PENDING_ACKNOWLEDGEMENT,
        "primero_user": primero_user,
        "case_id": case_id,
        "progres_interventionnumber": intervention_number,
    }


def failure_reason_kind(error: MappingError | None) -> str:
    """The feedback reason for a mapping error: its own kind when the profile has a text."""
    return error.kind if error is not None else INVALID_DATA


def refusal_feedback(
    intervention: Any,
    error: MappingError | None,
    profile: Profile,
    *,
    reason_kind: str | None = None,
) -> dict[str, Any]:
    """The ``Delivery Fail`` for an intervention that will not become a case: refused by the
    mapping (``error``) or by Primero (``reason_kind``, e.g. ``primero_refused``)."""
    known_case_id = intervention.get(F_PRIMERO_ID) if isinstance(intervention, Mapping) else None
    return failure_feedback(
        error,
        reason_kind=reason_kind or failure_reason_kind(error),
        intervention_number=intervention_number(intervention),
        case_id=known_case_id if isinstance(known_case_id, str) else None,
        primero_user=profile.focal_point_user_for(intervention),
        profile=profile,
    )


def failure_reason_text(error: MappingError | None, reason_kind: str, profile: Profile) -> str:
    """The profile's reason text for a failure kind, naming the missing fields (never values)."""
    reasons = profile.progres_referral.failure_reasons
    reason = reasons.get(reason_kind) or reasons[INVALID_DATA]
    if reason_kind == MISSING_FIELDS and error is not None and error.fields:
        suffix = profile.progres_referral.missing_fields_suffix
        reason = f"{reason} {suffix} {', '.join(error.fields)}"
    return reason


def failure_feedback(
    error: MappingError | None,
    *,
    reason_kind: str,
    intervention_number: str | None,
    case_id: str | None,
    primero_user: str | None,
    profile: Profile,
) -> dict[str, Any]:
    """``Delivery Fail`` with the profile's reason text (kinds without a text: invalid data)."""
    reason = failure_reason_text(error, reason_kind, profile)
    return {
        "status": dtp.DELIVERY_FAIL,
        "request_type": dtp.FEEDBACK_REQUEST,
        "case_id": case_id,
        "primero_user": primero_user,
        "progres_interventionnumber": intervention_number,
        "closure_reason": reason,
    }
