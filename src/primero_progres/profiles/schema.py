"""The mapping profile: every table, code, default and text a country localizes.

The pydantic model is the source of truth for the YAML files. Models are
frozen and reject unknown keys, so a misspelled key is an error rather than a
silently ignored setting. Lookups the transforms use per message are plain
dicts, built once when the profile is loaded.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, Strict, field_validator, model_validator

from ..errors import ConfigurationError

#: The reasons flow 1 gives DTP with a ``Delivery Fail``, each worded by the profile
#: (``progres_referral.failure_reasons``); the first three are also mapping error kinds.
INVALID_DATA = "invalid_data"
MISSING_FIELDS = "missing_fields"
SERVICE_TYPE = "service_type"
PRIMERO_REFUSED = "primero_refused"
REQUIRED_FAILURE_REASONS = (INVALID_DATA, MISSING_FIELDS, SERVICE_TYPE, PRIMERO_REFUSED)

#: The fields flow 1 reads from a proGres intervention, named as DTP sends them. The PING
#: profile section maps each to the alias a PING detail query gives it.
PROGRES_REFERRAL_FIELDS = (
    "progres_interventionnumber",
    "progres_businessunit",
    "progres_primeroid",
    "progres_interventionstartdate",
    "progres_interventiondescription",
    "progres_reasonforreferral",
    "interventiontype.progres_description",
    "individuals.progres_id",
    "individuals.progres_registrationgroupid",
    "individuals.progres_givenname",
    "individuals.progres_middlename",
    "individuals.progres_familyname",
    "individuals.progres_commonyusedname",
    "individuals.progres_dateofbirth",
    "individuals.progres_sex",
    "individuals.progres_primaryphonenumber",
    "individuals.progres_coalocationlevel1",
    "individuals.progres_coalocationlevel2",
    "individuals.progres_coalocationlevel3",
    "individuals.progres_coalocationlevel4",
    "individuals.progres_coalocationlevel5",
    "individuals.progres_coalocationlevel6",
    "user.title",
    "user.progres_partner",
    "user.mobilephone",
    "user.internalemailaddress",
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class PrimeroSettings(_Strict):
    module_id: str = Field(min_length=1)
    case_status: str = Field(min_length=1)


class ExistingCase(_Strict):
    """What a new proGres referral does to a Primero case that already exists for the child.

    ``owned_by: focal_point`` hands the case to the intake focal point (the reference
    behaviour), which takes it away from its current caseworker; ``keep`` leaves the owner.
    ``status: reopen`` sets the case status to ``primero.case_status`` (reopening a closed
    case); ``keep`` leaves the status alone.
    """

    owned_by: Literal["keep", "focal_point"]
    status: Literal["keep", "reopen"]


class FocalPointRoute(_Strict):
    """Send referrals from one proGres business unit and/or partner to that agency's intake."""

    user: str = Field(min_length=1)
    business_unit: str | None = Field(default=None, min_length=1)
    partner: str | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _has_a_criterion(self) -> FocalPointRoute:
        if self.business_unit is None and self.partner is None:
            raise ValueError("a route needs 'business_unit' or 'partner' (or both)")
        return self


class FocalPoint(_Strict):
    default_user: str = Field(min_length=1)
    routes: list[FocalPointRoute] = Field(default_factory=list)


class ImplementingAgency(_Strict):
    unicef: str = Field(min_length=1)
    unhcr: str = Field(min_length=1)


class Contact(_Strict):
    position: str = Field(min_length=1)
    email: str = Field(min_length=1)
    full_name: str = Field(min_length=1)
    phone: str = Field(min_length=1)


class ServiceRowDefaults(_Strict):
    service_request_external: bool
    service_response_type: str = Field(min_length=1)
    service_referral: str = Field(min_length=1)
    unhcr_referral_status: str = Field(min_length=1)


class ProgresReferralTables(_Strict):
    """Flow 1: proGres intervention -> Primero case."""

    required_fields: list[str] = Field(min_length=1)
    service_types: dict[str, str] = Field(min_length=1)
    sex: dict[str, str] = Field(min_length=1)
    languages: dict[str, str]
    other_language: str = Field(min_length=1)
    default_request_agency: str = Field(min_length=1)
    service_row: ServiceRowDefaults
    notes_separator: str
    failure_reasons: dict[str, str]
    missing_fields_suffix: str = Field(min_length=1)

    @field_validator("failure_reasons")
    @classmethod
    def _all_reasons(cls, value: dict[str, str]) -> dict[str, str]:
        missing = [k for k in REQUIRED_FAILURE_REASONS if not value.get(k)]
        if missing:
            raise ValueError(f"missing reason text for: {', '.join(missing)}")
        return value


class PrimeroDecisionTables(_Strict):
    """Flow 2: Primero decision -> DTP."""

    service_referral: str = Field(min_length=1)
    statuses: dict[str, str] = Field(min_length=1)
    default_closure_reason: str = Field(min_length=1)


class PrimeroReferralTables(_Strict):
    """Flow 3: Primero referral to UNHCR -> DTP."""

    service_types: dict[str, str] = Field(min_length=1)
    languages: dict[str, str]
    language_separator: str = Field(min_length=1)
    no_language: str = Field(min_length=1)
    sex: dict[str, str]
    default_referral_notes: str = Field(min_length=1)
    org_referral_id_suffix_length: int = Field(ge=1, le=36)


class ProgresDecisionTables(_Strict):
    """Flow 4: proGres decision -> Primero referral."""

    decisions: dict[str, str] = Field(min_length=1)
    rejection_reasons: dict[str, str]
    rejected_reason_separator: str = Field(min_length=1)

    @field_validator("decisions")
    @classmethod
    def _known_statuses(cls, value: dict[str, str]) -> dict[str, str]:
        bad = sorted({v for v in value.values() if v not in ("accepted", "rejected")})
        if bad:
            raise ValueError("decisions map to 'accepted' or 'rejected' only")
        return value


#: an option-set code used as a mapping key: an integer in YAML, a string once through JSON
OptionCodeKey = Annotated[int, Strict(False)]


class PingTransferStatus(_Strict):
    """Option-set codes of an LP intervention's ``progres_primerotransferstatus``."""

    ready: int
    delivery_failed: int
    pending_acknowledgement: int
    accepted: int
    rejected: int

    @model_validator(mode="after")
    def _distinct(self) -> PingTransferStatus:
        _distinct_codes(self)
        return self


class PingReferralStatus(_Strict):
    """Option-set codes of ``progres_interoperabilityreferralstatus`` (interop referrals)."""

    new: int
    accepted: int
    rejected: int
    synced: int

    @model_validator(mode="after")
    def _distinct(self) -> PingReferralStatus:
        _distinct_codes(self)
        return self


def _distinct_codes(model: BaseModel) -> None:
    codes = list(model.model_dump().values())
    if len(set(codes)) != len(codes):
        raise ValueError("two statuses share a code")


class PingProgresReferral(_Strict):
    """Flow 1 over PING: rows of the pending list and of the detail query."""

    lp_intervention_id: str = Field(min_length=1, description="key column of the pending rows")
    business_unit: str = Field(min_length=1, description="business unit column (a write key)")
    transfer_status: str = Field(min_length=1, description="transfer status column")
    group_by: str = Field(min_length=1, description="detail rows of one intervention share it")
    fields: dict[str, str] = Field(
        min_length=1, description="flow-1 field (DTP name) -> alias in the detail rows"
    )
    language: str = Field(min_length=1, description="language name alias (one per row)")
    specific_need_category: str = Field(min_length=1)
    specific_need_subcategory: str = Field(min_length=1)
    #: specific-need category name -> Primero protection concern; empty: needs are not sent
    protection_concerns: dict[str, str] = Field(default_factory=dict)

    @field_validator("fields")
    @classmethod
    def _known_fields(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(value) - set(PROGRES_REFERRAL_FIELDS))
        if unknown:
            raise ValueError(f"not a flow-1 field: {', '.join(unknown)}")
        return value


class PingPrimeroDecision(_Strict):
    """Flow 2 over PING: the comment attached to the transfer status."""

    acknowledged_comment: str = Field(min_length=1)
    rejected_comment: str = Field(min_length=1)
    reason_separator: str


class PingPrimeroReferral(_Strict):
    """Flow 3 over PING: what an interoperability referral is created with."""

    business_unit: str = Field(min_length=1)
    organization_from: str = Field(min_length=1)
    referred_by: str = Field(min_length=1)
    #: Primero service_type -> proGres requested service (lookup id)
    requested_services: dict[str, str] = Field(min_length=1)
    #: Primero protection concern -> proGres specific-need category (lookup id); first match sent
    protection_concerns: dict[str, str] = Field(default_factory=dict)
    #: Primero sex -> ``progres_pocsex`` option-set code
    sex: dict[str, int] = Field(min_length=1)


class PingProgresDecision(_Strict):
    """Flow 4 over PING: rows of the decision detail query."""

    referral_id: str = Field(min_length=1)
    status: str = Field(min_length=1)
    review_decision: str = Field(min_length=1)
    case_id: str = Field(min_length=1)
    org_referral_id: str = Field(min_length=1)
    #: label aliases of the rejection reason, first present wins (proGres misspells them)
    rejection_reason: list[str] = Field(min_length=1)
    #: code aliases of the rejection reason, read through progres_decision.rejection_reasons
    rejection_reason_code: list[str] = Field(default_factory=list)
    rejection_comment: list[str] = Field(min_length=1)
    #: ``progres_reviewdecision`` code -> accepted | rejected
    review_decisions: dict[OptionCodeKey, str] = Field(min_length=1)
    rejected_reason_separator: str = Field(min_length=1)
    synced_comment: str = Field(min_length=1)

    @field_validator("review_decisions")
    @classmethod
    def _known_decisions(cls, value: dict[OptionCodeKey, str]) -> dict[OptionCodeKey, str]:
        if any(v not in ("accepted", "rejected") for v in value.values()):
            raise ValueError("review decisions map to 'accepted' or 'rejected' only")
        return value


class PingTables(_Strict):
    """How PING's rows and option sets read here (``PRIMERO_PROGRES_UNHCR_GATEWAY=ping``)."""

    transfer_status: PingTransferStatus
    referral_status: PingReferralStatus
    progres_referral: PingProgresReferral
    primero_decision: PingPrimeroDecision
    primero_referral: PingPrimeroReferral
    progres_decision: PingProgresDecision


class Profile(_Strict):
    """A localized mapping profile (``gambella`` is built in)."""

    name: str = Field(min_length=1)
    description: str = ""
    primero: PrimeroSettings
    existing_case: ExistingCase
    focal_point: FocalPoint
    implementing_agency: ImplementingAgency
    unhcr_caseworkers: list[str] = Field(min_length=1)
    default_contact: Contact
    progres_referral: ProgresReferralTables
    primero_decision: PrimeroDecisionTables
    primero_referral: PrimeroReferralTables
    progres_decision: ProgresDecisionTables
    #: only for a deployment that reaches proGres through PING
    ping: PingTables | None = None

    @model_validator(mode="after")
    def _ping_reads_every_required_field(self) -> Profile:
        if self.ping is not None:
            aliased = self.ping.progres_referral.fields
            absent = [f for f in self.progres_referral.required_fields if f not in aliased]
            if absent:
                raise ValueError(
                    "ping.progres_referral.fields has no alias for the required "
                    f"field(s): {', '.join(absent)}"
                )
        return self

    def ping_tables(self) -> PingTables:
        """The ``ping`` section; ``ConfigurationError`` when the profile has none."""
        if self.ping is None:
            raise ConfigurationError(
                f"profile {self.name} has no ping section (needed with "
                "PRIMERO_PROGRES_UNHCR_GATEWAY=ping)",
                reason="profile_without_ping",
            )
        return self.ping

    def focal_point_user_for(self, intervention: Any) -> str:
        """The intake user for this intervention: first matching route, else the default."""
        if not isinstance(intervention, Mapping) or not self.focal_point.routes:
            return self.focal_point.default_user
        unit = intervention.get("progres_businessunit")
        partner = intervention.get("user.progres_partner")
        partner_name = partner.get("Name") if isinstance(partner, Mapping) else partner
        for route in self.focal_point.routes:
            if route.business_unit is not None and route.business_unit != unit:
                continue
            if route.partner is not None and route.partner != partner_name:
                continue
            return route.user
        return self.focal_point.default_user


def profile_json_schema() -> dict[str, Any]:
    """The JSON Schema of a profile file, for editors and external validation."""
    return Profile.model_json_schema()
