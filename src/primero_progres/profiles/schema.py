"""The mapping profile: every table, code, default and text a country localizes.

The pydantic model is the source of truth for the YAML files. Models are
frozen and reject unknown keys, so a misspelled key is an error rather than a
silently ignored setting. Lookups the transforms use per message are plain
dicts, built once when the profile is loaded.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

#: The reasons flow 1 gives DTP with a ``Delivery Fail``, each worded by the profile
#: (``progres_referral.failure_reasons``); the first three are also mapping error kinds.
INVALID_DATA = "invalid_data"
MISSING_FIELDS = "missing_fields"
SERVICE_TYPE = "service_type"
PRIMERO_REFUSED = "primero_refused"
REQUIRED_FAILURE_REASONS = (INVALID_DATA, MISSING_FIELDS, SERVICE_TYPE, PRIMERO_REFUSED)


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
