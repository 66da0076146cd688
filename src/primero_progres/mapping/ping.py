"""PING rows to and from the bridge: the pure transforms of the four flows over UNHCR's PING.

PING rows are flat and keyed by aliases that UNHCR's server-side queries set;
option sets are integers; a detail query joins languages and specific needs,
so one intervention arrives as several rows. The profile's ``ping`` section
says how to read them. Flow 1 turns the rows into the intervention the DTP
mapping reads and reuses that mapping, so the Primero side is the same for
both gateways; flows 2 and 4 reuse the Primero side of their DTP
counterparts. Every write-back is a list of ``{Name, Value}`` field updates,
values as strings (PING.md §4.2).

Errors name fields by their PING alias, never their values.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Any, Literal

from ..profiles import Profile
from ..profiles.schema import PingTables
from .errors import UNREADABLE, MappingError, invalid, missing, unknown_code
from .primero_decision import DecisionResult
from .primero_referral import ReferralResult, contact_for, phone_text, referred_services
from .progres_decision import ProgresDecision, split_org_referral_id
from .progres_referral import (
    F_LANGUAGE,
    MappedIntervention,
    failure_reason_kind,
    failure_reason_text,
    map_intervention,
)
from .values import ABSENT, date_part, lookup_name, text

# proGres attributes the write-backs name: entity logical names, the same in every deployment.
LP_INTERVENTION_ID = "progres_lpinterventionid"
BUSINESS_UNIT = "progres_businessunit"
TRANSFER_STATUS = "progres_primerotransferstatus"
TRANSFER_STATUS_DATE = "progres_primerotransferstatusdate"
PRIMERO_ID = "progres_primeroid"
PRIMERO_CASEWORKER = "progres_primerocaseworker"
REFERRAL_ID = "progres_interoperabilityreferralid"
REFERRAL_STATUS = "progres_interoperabilityreferralstatus"
COMMENTS = "progres_comments"

#: flow-1 fields the DTP mapping reads as lookups (``{"Name": ...}`` or a plain name)
_LOOKUP_FIELDS = frozenset(
    {
        "individuals.progres_registrationgroupid",
        "user.progres_partner",
        *(f"individuals.progres_coalocationlevel{n}" for n in range(1, 6)),
    }
)

ReferralStatus = Literal["new", "accepted", "rejected", "synced"]


# ------------------------------------------------------------------ write-backs


@dataclass(frozen=True, slots=True)
class FieldUpdate:
    """Field updates of one proGres row, plus an optional comment (sent as an attachment)."""

    fields: tuple[tuple[str, str], ...]
    comment: str | None = None
    external_id: str | None = None
    external_guid: str | None = None

    def value(self, name: str) -> str | None:
        return next((v for n, v in self.fields if n == name), None)

    def as_item(self, external_id: str | None = None) -> dict[str, Any]:
        """One ``Data`` item of an ingestion call; ``external_id`` overrides the item's own."""
        item: dict[str, Any] = {"ExternalId": external_id or self.external_id or ""}
        if self.external_guid is not None:
            item["ExternalGUID"] = self.external_guid
        if self.comment:
            item["Attachments"] = [{"Comment": self.comment}]
        item["Fields"] = [{"Name": name, "Value": value} for name, value in self.fields]
        return item


def _update(*pairs: tuple[str, Any], **extra: Any) -> FieldUpdate:
    """Values become strings (option-set codes too); absent ones are left out."""
    fields = tuple((name, str(value)) for name, value in pairs if value is not None)
    return FieldUpdate(fields, **extra)


# ------------------------------------------------------------------ flow 1: proGres referral


@dataclass(frozen=True, slots=True)
class InterventionKeys:
    """What identifies an LP intervention for its write-backs (the ledger keeps it)."""

    lp_intervention_id: str
    business_unit: str
    intervention_number: str | None = None


@dataclass(frozen=True, slots=True)
class PendingIntervention:
    """One row of the pending-referrals list."""

    keys: InterventionKeys
    transfer_status: int | None
    #: the status says "ready" (or is unset): the row is actionable
    ready: bool


@dataclass(frozen=True, slots=True)
class PingReferral:
    """An intervention read from its detail rows: the mapped case, or why not."""

    keys: InterventionKeys
    mapped: MappedIntervention | None = field(repr=False)
    error: MappingError | None
    #: distinct language names and (category, subcategory) specific needs, in row order
    languages: tuple[str, ...] = field(default=(), repr=False)
    specific_needs: tuple[tuple[str, str | None], ...] = field(default=(), repr=False)

    @property
    def ok(self) -> bool:
        return self.mapped is not None


def _tables(profile: Profile) -> PingTables:
    return profile.ping_tables()


def _int_code(value: Any) -> Any:
    """An option-set code as an int; ``None`` when absent, ``ABSENT`` when not a code."""
    if value is None:
        return None
    if isinstance(value, bool):
        return ABSENT
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        return int(value.strip())
    return ABSENT


def _first(rows: Sequence[Mapping[str, Any]], alias: str) -> Any:
    """The first non-null value of an alias across the rows of one entity."""
    for row in rows:
        value = row.get(alias)
        if value is not None:
            return value
    return None


def group_rows(
    rows: Iterable[Any], alias: str
) -> list[tuple[str | None, list[Mapping[str, Any]]]]:
    """Rows grouped by the value of ``alias``, in the order each group first appears."""
    groups: dict[str | None, list[Mapping[str, Any]]] = {}
    for row in rows:
        if not isinstance(row, dict | Mapping):
            continue
        key = row.get(alias)
        groups.setdefault(key if isinstance(key, str) and key else None, []).append(row)
    return list(groups.items())


def keys_from_packed_number(value: Any) -> InterventionKeys | None:
    """The keys the reference packed into a service's ``progres_interventionnumber``.

    OpenFn's PING job stored ``"<number>,<lp intervention id>,<business unit>"``
    there (PING.md §7.1); services it created can be acknowledged with them.
    """
    if not isinstance(value, str) or value.count(",") != 2:
        return None
    number, lp_id, unit = (part.strip() for part in value.split(","))
    if not (number and lp_id and unit):
        return None
    return InterventionKeys(lp_id, unit, number)


def read_pending_intervention(row: Any, profile: Profile) -> PendingIntervention | MappingError:
    """The keys and transfer status of one pending-list row."""
    tables = _tables(profile).progres_referral
    if not isinstance(row, Mapping):
        return invalid([], "the row is not a JSON object")
    lp_id = text(row.get(tables.lp_intervention_id))
    unit = text(row.get(tables.business_unit))
    number = text(row.get(_tables(profile).progres_referral.group_by))
    status = _int_code(row.get(tables.transfer_status))
    absent = [a for a, v in ((tables.lp_intervention_id, lp_id), (tables.business_unit, unit))
              if v is None]
    if absent:
        return missing(absent)
    wrong = [a for a, v in ((tables.lp_intervention_id, lp_id), (tables.business_unit, unit),
                            (tables.group_by, number), (tables.transfer_status, status))
             if v is ABSENT]
    if wrong:
        return invalid(wrong, "fields have the wrong type")
    ready = status is None or status == _tables(profile).transfer_status.ready
    keys = InterventionKeys(str(lp_id), str(unit), number if isinstance(number, str) else None)
    return PendingIntervention(keys, status, ready)


def awaiting_primero(rows: Sequence[Any], profile: Profile) -> bool:
    """Whether an intervention's detail rows still show it queued for Primero.

    True while the transfer status says "ready", and when the rows do not carry it (the
    reference detail query does not select it): the pending list is then all there is.
    """
    alias = _tables(profile).progres_referral.transfer_status
    mappings = [row for row in rows if isinstance(row, Mapping)]
    status = _int_code(_first(mappings, alias))
    return status is None or status == _tables(profile).transfer_status.ready


def transfer_status_code(rows: Sequence[Any], profile: Profile) -> int | None:
    """The transfer status an intervention's detail rows show; None when they do not carry
    it (the reference detail query does not select it) or it is not a code."""
    alias = _tables(profile).progres_referral.transfer_status
    status = _int_code(_first([row for row in rows if isinstance(row, Mapping)], alias))
    return status if isinstance(status, int) else None


def _distinct_texts(
    rows: Sequence[Mapping[str, Any]], alias: str, wrong: list[str]
) -> list[str]:
    found: list[str] = []
    for row in rows:
        value = row.get(alias)
        if value is None:
            continue
        name = lookup_name(value)
        if name is ABSENT:
            wrong.append(alias)
        elif name is not None and name not in found:
            found.append(name)
    return found


def _needs(
    rows: Sequence[Mapping[str, Any]], category: str, subcategory: str, wrong: list[str]
) -> list[tuple[str, str | None]]:
    found: list[tuple[str, str | None]] = []
    for row in rows:
        name = lookup_name(row.get(category))
        sub = lookup_name(row.get(subcategory))
        if name is ABSENT or sub is ABSENT:
            wrong.append(category if name is ABSENT else subcategory)
            continue
        if name is not None and (name, sub) not in found:
            found.append((name, sub))
    return found


def _aliased(error: MappingError, tables: PingTables) -> MappingError:
    """The same error naming PING aliases instead of the DTP field names."""
    names = {**tables.progres_referral.fields, F_LANGUAGE: tables.progres_referral.language}
    renamed = tuple(dict.fromkeys(names.get(f, f) for f in error.fields))
    return MappingError(error.kind, error.message, renamed)


def map_ping_referral(
    rows: Sequence[Any], keys: InterventionKeys, profile: Profile, today: date
) -> PingReferral:
    """The Primero case for the detail rows of one LP intervention (or a typed error).

    ``keys`` come from the pending list: they address the write-back whatever the
    detail rows hold. Scalar fields take their first non-null value across the
    rows; languages and specific needs are collected, distinct, in row order.
    """
    tables = _tables(profile)
    flow = tables.progres_referral
    groups = group_rows(rows, flow.group_by)
    if not groups:
        error = MappingError(UNREADABLE, "the detail query returned no rows", ())
        return PingReferral(keys, None, error)
    if len(groups) > 1:
        error = invalid([flow.group_by], "the detail rows hold several interventions")
        return PingReferral(keys, None, error)
    number, group = groups[0]
    keys = InterventionKeys(keys.lp_intervention_id, keys.business_unit,
                            number or keys.intervention_number)
    wrong: list[str] = []
    languages = _distinct_texts(group, flow.language, wrong)
    needs = _needs(group, flow.specific_need_category, flow.specific_need_subcategory, wrong)
    if wrong:
        error = invalid(list(dict.fromkeys(wrong)), "fields have the wrong type")
        return PingReferral(keys, None, error)
    intervention: dict[str, Any] = {}
    head, several = group[0], len(group) > 1
    for canonical, alias in flow.fields.items():
        value = head.get(alias)
        if value is None and several:
            value = _first(group, alias)
        if value is None:
            continue
        if not isinstance(value, str) and canonical not in _LOOKUP_FIELDS and (
            isinstance(value, Mapping) and "Name" in value
        ):
            value = value["Name"]  # a lookup where DTP sends text: its formatted name
        if value is not None:
            intervention[canonical] = value
    if languages:
        intervention[F_LANGUAGE] = languages[0]
    mapped = map_intervention(intervention, profile, today)
    if isinstance(mapped, MappingError):
        return PingReferral(keys, None, _aliased(mapped, tables), tuple(languages), tuple(needs))
    case = dict(mapped.case)
    referral_tables = profile.progres_referral
    codes = [referral_tables.languages.get(name, referral_tables.other_language)
             for name in languages]
    if codes:
        case["language"] = list(dict.fromkeys(codes))
    concerns = [flow.protection_concerns[c] for c, _ in needs if c in flow.protection_concerns]
    if concerns:
        case["protection_concerns"] = list(dict.fromkeys(concerns))
    mapped = replace(mapped, case=case)
    return PingReferral(keys, mapped, None, tuple(languages), tuple(needs))


def referral_received_update(
    keys: InterventionKeys, *, case_id: str | None, profile: Profile, today: date
) -> FieldUpdate:
    """Flow 1 success: ``pending acknowledgement``, today's date and the Primero case id."""
    codes = _tables(profile).transfer_status
    return _update(
        (LP_INTERVENTION_ID, keys.lp_intervention_id),
        (BUSINESS_UNIT, keys.business_unit),
        (TRANSFER_STATUS, codes.pending_acknowledgement),
        (TRANSFER_STATUS_DATE, today.isoformat()),
        (PRIMERO_ID, case_id),
    )


def referral_failed_update(
    keys: InterventionKeys,
    error: MappingError | None,
    *,
    profile: Profile,
    today: date,
    reason_kind: str | None = None,
) -> FieldUpdate:
    """Flow 1 permanent failure: ``delivery failed`` with the profile's reason as a comment.

    ``reason_kind`` defaults to the error's own kind (``primero_refused`` for a
    Primero refusal); the comment names missing fields by alias, never values.
    """
    kind = reason_kind or failure_reason_kind(error)
    codes = _tables(profile).transfer_status
    return _update(
        (LP_INTERVENTION_ID, keys.lp_intervention_id),
        (BUSINESS_UNIT, keys.business_unit),
        (TRANSFER_STATUS, codes.delivery_failed),
        (TRANSFER_STATUS_DATE, today.isoformat()),
        comment=failure_reason_text(error, kind, profile),
    )


# ------------------------------------------------------------------ flow 2: Primero decision


def decision_update(
    decision: DecisionResult, keys: InterventionKeys, *, profile: Profile, today: date
) -> FieldUpdate | MappingError:
    """Flow 2: the transfer status for a Primero decision, with the case id and caseworker.

    ``decision`` comes from ``primero_decision.qualifying_decisions`` (the same
    Primero side as DTP). A status other than accepted or rejected is an
    ``unknown_code`` error, never an acceptance.
    """
    if decision.error is not None or decision.message is None:
        return decision.error or missing(["unhcr_referral_status"])
    tables = _tables(profile)
    codes = {"accepted": tables.transfer_status.accepted,
             "rejected": tables.transfer_status.rejected}
    code = codes.get(decision.status)
    if code is None:
        return unknown_code(["unhcr_referral_status"])
    texts = tables.primero_decision
    comment = texts.acknowledged_comment if decision.status == "accepted" else (
        texts.rejected_comment)
    reason = decision.message.get("closure_reason")
    if isinstance(reason, str) and reason and (
        reason != profile.primero_decision.default_closure_reason
    ):
        comment = f"{comment}{texts.reason_separator}{reason}"
    return _update(
        (LP_INTERVENTION_ID, keys.lp_intervention_id),
        (BUSINESS_UNIT, keys.business_unit),
        (TRANSFER_STATUS, code),
        (TRANSFER_STATUS_DATE, today.isoformat()),
        (PRIMERO_ID, decision.case_id),
        (PRIMERO_CASEWORKER, decision.message.get("primero_user")),
        comment=comment,
    )


# ------------------------------------------------------------------ flow 3: Primero referral


@dataclass(frozen=True, slots=True)
class PingReferralCreate:
    """One interoperability referral to create (``/asyncdata``), or why it cannot be."""

    case_id: str | None
    case_record_id: str | None
    service_unique_id: str | None
    referral_id: str | None
    #: ``progres_orgreferralid``: the full service ``unique_id``, flow 4's match key
    org_referral_id: str | None
    update: FieldUpdate | None = field(repr=False)
    error: MappingError | None

    @property
    def ok(self) -> bool:
        return self.update is not None


def _id(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _iso(value: Any) -> str | None:
    return value.isoformat() if isinstance(value, date) else None


def referral_create_items(
    case: Any,
    referrals: list[dict[str, Any]],
    users: Mapping[str, dict[str, Any]],
    profile: Profile,
    *,
    since: datetime | None = None,
) -> list[PingReferralCreate]:
    """One create item (or a typed error) per UNHCR service of the case that has a referral.

    The same services as the DTP flow 3 (``primero_referral``); the fields are
    PING.md §7.3. ``ExternalId`` is the ``case_id``, ``ExternalGUID`` the case
    record id.
    """
    case_id = _id(case.get("case_id")) if isinstance(case, Mapping) else None
    case_record_id = _id(case.get("id")) if isinstance(case, Mapping) else None
    results = []
    for row, referral, user in referred_services(case, referrals, users, profile, since=since):
        unique_id = _id(row.get("unique_id"))
        built = _create_item(case, row, referral, user, profile)
        results.append(
            PingReferralCreate(
                case_id=case_id,
                case_record_id=case_record_id,
                service_unique_id=unique_id,
                referral_id=_id(referral.get("id")),
                org_referral_id=unique_id,
                update=built if isinstance(built, FieldUpdate) else None,
                error=built if isinstance(built, MappingError) else None,
            )
        )
    return results


def referral_create_messages(
    case: Any,
    referrals: list[dict[str, Any]],
    users: Mapping[str, dict[str, Any]],
    profile: Profile,
    *,
    since: datetime | None = None,
) -> list[ReferralResult]:
    """``referral_create_items`` in the shape flow 3's poll queues, whichever the gateway:
    the ``message`` is the ``/asyncdata`` item (``ExternalId`` the ``case_id``)."""
    return [
        ReferralResult(
            case_id=item.case_id,
            case_record_id=item.case_record_id,
            service_unique_id=item.service_unique_id,
            referral_id=item.referral_id,
            org_referral_id=item.org_referral_id,
            ok=item.update is not None,
            message=item.update.as_item() if item.update is not None else None,
            error=item.error,
        )
        for item in referral_create_items(case, referrals, users, profile, since=since)
    ]


def translated_codes(profile: Profile) -> dict[str, frozenset[str]]:
    """The Primero codes flow 3 can translate for PING, by field; others are ``unknown_code``."""
    tables = _tables(profile).primero_referral
    return {
        "services_section.service_type": frozenset(tables.requested_services),
        "sex": frozenset(tables.sex),
    }


_CASE_TEXTS = ("name_first", "name_middle", "name_last", "address_current",
               "unhcr_individual_no", "unhcr_id_no")
_SERVICE_TEXTS = ("service_type", "service_type_other", "service_referral_notes")


def _create_item(
    case: Mapping[str, Any],
    row: Mapping[str, Any],
    referral: Mapping[str, Any],
    user: Any,
    profile: Profile,
) -> FieldUpdate | MappingError:
    tables = _tables(profile).primero_referral
    case_id, record_id = _id(case.get("case_id")), _id(case.get("id"))
    unique_id, service_type = _id(row.get("unique_id")), row.get("service_type")
    referred_on = date_part(referral.get("created_at"))
    absent = [name for name, value in (
        ("case_id", case_id), ("id", record_id), ("services_section.unique_id", unique_id),
        ("services_section.service_type", service_type), ("referral.created_at", referred_on),
    ) if value is None or value == ""]
    if absent:
        return missing(absent)
    values = {key: text(case.get(key)) for key in _CASE_TEXTS}
    service = {key: text(row.get(key)) for key in _SERVICE_TEXTS}
    born = date_part(case.get("date_of_birth"))
    sex = case.get("sex")
    phone = case.get("telephone_current")
    wrong = [key for key, value in values.items() if value is ABSENT]
    wrong += [f"services_section.{key}" for key, value in service.items() if value is ABSENT]
    for name, value in (
        ("referral.created_at", referred_on),
        ("date_of_birth", born),
        ("sex", sex if sex is None or isinstance(sex, str) else ABSENT),
        ("telephone_current", ABSENT if isinstance(phone, bool | dict | list) else phone),
    ):
        if value is ABSENT:
            wrong.append(name)
    if wrong:
        return invalid(wrong, "fields have the wrong type or an invalid date")
    unknown = []
    if service["service_type"] not in tables.requested_services:
        unknown.append("services_section.service_type")
    if sex and sex not in tables.sex:
        unknown.append("sex")
    if unknown:
        return unknown_code(unknown)
    concerns = case.get("protection_concerns")
    concern = next(
        (tables.protection_concerns[c] for c in (concerns if isinstance(concerns, list) else [])
         if isinstance(c, str) and c in tables.protection_concerns),
        None,
    )
    contact = contact_for(user, profile)
    notes = service["service_referral_notes"] or profile.primero_referral.default_referral_notes
    return _update(
        ("progres_externalguid", record_id),
        ("progres_externalid", case_id),
        ("progres_businessunit", tables.business_unit),
        ("progres_organizationfrom", tables.organization_from),
        ("progres_orgreferredby", tables.referred_by),
        ("progres_orgposition", contact["position"]),
        ("progres_orgemail", contact["email"]),
        ("progres_orgphonenumber", contact["phone"]),
        ("progres_orgreferralid", unique_id),
        ("progres_referraldate", _iso(referred_on)),
        ("progres_requestedservice", tables.requested_services[str(service["service_type"])]),
        ("progres_otherrequestedservices", service["service_type_other"]),
        ("progres_spneedcategory", concern),
        ("progres_reasonforreferral", notes),
        ("progres_pocfirstname", values["name_first"]),
        ("progres_pocmiddlename", values["name_middle"]),
        ("progres_poclastname", values["name_last"]),
        ("progres_pocdateofbirth", _iso(born)),
        ("progres_pocsex", tables.sex[sex] if sex else None),
        ("progres_pocphonenumber", phone_text(phone)),
        ("progres_pocaddress", values["address_current"]),
        ("progres_pocotheridnumber", values["unhcr_id_no"]),
        ("progres_unhcrid", values["unhcr_individual_no"] or values["unhcr_id_no"]),
        ("progres_offlineid", case_id),
        external_id=case_id,
        external_guid=record_id,
    )


# ------------------------------------------------------------------ flow 4: proGres decision


@dataclass(frozen=True, slots=True)
class ListedReferral:
    """One row of the decisions list."""

    referral_id: str
    status_code: int | None
    #: the profile's name for the code; None for a code the profile does not know
    status: ReferralStatus | None

    @property
    def actionable(self) -> bool:
        """Decided in proGres (accepted or rejected) and not yet synced with Primero."""
        return self.status in ("accepted", "rejected")


def _referral_status(code: Any, tables: PingTables) -> ReferralStatus | None:
    names = tables.referral_status
    by_code: dict[int, ReferralStatus] = {
        names.new: "new", names.accepted: "accepted", names.rejected: "rejected",
        names.synced: "synced",
    }
    return by_code.get(code) if isinstance(code, int) else None


def read_listed_referral(row: Any, profile: Profile) -> ListedReferral | MappingError:
    """The id and status of one decisions-list row."""
    tables = _tables(profile)
    aliases = tables.progres_decision
    if not isinstance(row, Mapping):
        return invalid([], "the row is not a JSON object")
    referral_id = text(row.get(aliases.referral_id))
    code = _int_code(row.get(aliases.status))
    if referral_id is None:
        return missing([aliases.referral_id])
    wrong = [a for a, v in ((aliases.referral_id, referral_id), (aliases.status, code))
             if v is ABSENT]
    if wrong:
        return invalid(wrong, "fields have the wrong type")
    return ListedReferral(str(referral_id), code, _referral_status(code, tables))


def referrals_by_org_referral_id(rows: Sequence[Any], profile: Profile) -> dict[str, str]:
    """``progres_orgreferralid`` -> interoperability referral id, from the detail rows of
    several referrals (flow 3's look-up of a referral whose creation went unanswered); rows
    without both are left out."""
    aliases = _tables(profile).progres_decision
    found: dict[str, str] = {}
    for row in rows:
        if not isinstance(row, Mapping):
            continue
        referral_id = text(row.get(aliases.referral_id))
        org_referral_id = text(row.get(aliases.org_referral_id))
        if isinstance(referral_id, str) and isinstance(org_referral_id, str):
            found.setdefault(org_referral_id, referral_id)
    return found


@dataclass(frozen=True, slots=True)
class PingDecision:
    """A proGres decision, ready for the Primero side of flow 4 (``progres_decision``)."""

    referral_id: str
    decision: ProgresDecision


def _first_of(rows: Sequence[Mapping[str, Any]], aliases: Sequence[str]) -> Any:
    return next((v for a in aliases if (v := _first(rows, a)) is not None), None)


def read_ping_decision(rows: Sequence[Any], profile: Profile) -> PingDecision | MappingError:
    """The decision in the detail rows of one interoperability referral.

    The status must say accepted or rejected; a review decision, when present,
    must agree with it. Any other code is an error, never an acceptance.
    """
    tables = _tables(profile)
    aliases = tables.progres_decision
    groups = group_rows(rows, aliases.referral_id)
    if not groups:
        return MappingError(UNREADABLE, "the detail query returned no rows", ())
    if len(groups) > 1:
        return invalid([aliases.referral_id], "the detail rows hold several referrals")
    referral_id, group = groups[0]
    case_id = text(_first(group, aliases.case_id))
    org_referral_id = text(_first(group, aliases.org_referral_id))
    status_code = _int_code(_first(group, aliases.status))
    review_code = _int_code(_first(group, aliases.review_decision))
    reason = lookup_name(_first_of(group, aliases.rejection_reason))
    reason_code = _int_code(_first_of(group, aliases.rejection_reason_code))
    comment = text(_first_of(group, aliases.rejection_comment))
    absent = [a for a, v in ((aliases.referral_id, referral_id), (aliases.case_id, case_id),
                             (aliases.org_referral_id, org_referral_id),
                             (aliases.status, status_code)) if v is None]
    if absent:
        return missing(absent)
    code_alias = (aliases.rejection_reason_code or aliases.rejection_reason)[0]
    checked = (
        (aliases.case_id, case_id),
        (aliases.org_referral_id, org_referral_id),
        (aliases.status, status_code),
        (aliases.review_decision, review_code),
        (aliases.rejection_reason[0], reason),
        (code_alias, reason_code),
        (aliases.rejection_comment[0], comment),
    )
    wrong = [alias for alias, value in checked if value is ABSENT]
    if wrong:
        return invalid(wrong, "fields have the wrong type")
    status = _referral_status(status_code, tables)
    if status is None:
        return unknown_code([aliases.status])
    if status not in ("accepted", "rejected"):
        return invalid([aliases.status], "the referral holds no decision")
    if review_code is not None:
        reviewed = aliases.review_decisions.get(review_code)
        if reviewed is None:
            return unknown_code([aliases.review_decision])
        if reviewed != status:
            return invalid([aliases.status, aliases.review_decision],
                           "the status and the review decision disagree")
    rejected_reason = None
    if status == "rejected":
        if reason is None and isinstance(reason_code, int):
            reason = profile.progres_decision.rejection_reasons.get(str(reason_code))
        parts = [p for p in (reason, comment) if isinstance(p, str) and p]
        rejected_reason = aliases.rejected_reason_separator.join(parts) or None
    # A referral DTP created carries DTP's ``<case_id>#<service key>``; PING's, the full id.
    dtp_form = split_org_referral_id(org_referral_id) if "#" in str(org_referral_id) else None
    decision = ProgresDecision(
        org_referral_id=str(org_referral_id),
        case_id=str(case_id),
        service_key=dtp_form[1] if isinstance(dtp_form, tuple) else str(org_referral_id),
        status=status,
        rejected_reason=rejected_reason,
    )
    return PingDecision(str(referral_id), decision)


def referral_synced_update(referral_id: str, profile: Profile) -> FieldUpdate:
    """Flow 4, after the Primero referral is updated: ``synced``, with the profile's comment."""
    tables = _tables(profile)
    return _update(
        (REFERRAL_ID, referral_id),
        (REFERRAL_STATUS, tables.referral_status.synced),
        (COMMENTS, tables.progres_decision.synced_comment),
    )
