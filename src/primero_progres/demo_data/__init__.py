"""Synthetic data for the demo and the end-to-end tests: invented people, never real ones."""

from __future__ import annotations

import copy
from typing import Any

from ..mapping.dtp import PROGRES_DECISION_REQUEST, PROGRES_REFERRAL_REQUEST

API_USER = "primero-progres"
API_PASSWORD = "demo-password"
DTP_SUBSCRIPTION_KEY = "demo-subscription-key"
INBOX_TOKEN = "demo-inbox-token"
PRIMERO_CASEWORKER = "primero_cp"
UNHCR_CASEWORKER = "unhcr_cw@cpims-gambella.primero.org"

#: the simulated PING deployment (B2C service account, APIM key, partner and interop ids)
PING_SUBSCRIPTION_KEY = "demo-ping-subscription-key"
PING_CLIENT_ID = "demo-ping-client"
PING_USERNAME = "bridge@sim-tenant.onmicrosoft.com"
PING_PASSWORD = "demo-ping-password"
PING_PARTNER_ID = "PNR-1363"
PING_INTEROP_ID = "INT-1436"
PING_BUSINESS_UNIT = "00000000-0000-4000-8000-000000000004"

PRIMERO_USERS: list[dict[str, Any]] = [
    {"user_name": API_USER, "full_name": "Bridge API user", "position": "Integration"},
    {
        "user_name": PRIMERO_CASEWORKER,
        "full_name": "Demo Caseworker",
        "email": "caseworker@example.org",
        "phone": "0100000000",
        "position": "Case Worker",
    },
    # no phone and no position: flow 3 falls back to the profile's default contact for those
    {
        "user_name": UNHCR_CASEWORKER,
        "full_name": "Demo UNHCR Caseworker",
        "email": "unhcr@example.org",
    },
    {
        "user_name": "progresv4_primero_intake@cpims-gambella.primero.org",
        "full_name": "proGres intake",
        "position": "Focal point",
    },
]

_INTERVENTION: dict[str, Any] = {
    "progres_interventionnumber": "DEMO-26-PRTITV-0000001",
    "interventiontype.progres_description": "Alternative Care",
    "individuals.progres_id": "DEMO-00000001",
    "individuals.progres_registrationgroupid": {
        "Id": "00000000-0000-4000-8000-000000000001",
        "KeyAttributes": [],
        "LogicalName": "progres_registrationgroup",
        "Name": "DEMO-26-00001",
        "RowVersion": None,
    },
    "individuals.progres_givenname": "Amani",
    "individuals.progres_familyname": "Example",
    "individuals.progres_dateofbirth": "2015-03-01T00:00:00Z",
    "individuals.progres_sex": "125080000",
    "individuals.progres_primaryphonenumber": "+000000000",
    "individuals.progres_coalocationlevel1": {
        "Id": "00000000-0000-4000-8000-000000000002",
        "KeyAttributes": [],
        "LogicalName": "progres_locationlevel",
        "Name": "Gambela",
        "RowVersion": None,
    },
    "languages.progres_languagecodeid": {
        "Id": "00000000-0000-4000-8000-000000000003",
        "KeyAttributes": [],
        "LogicalName": "progres_languagecode",
        "Name": "Nuer",
        "RowVersion": None,
    },
    "progres_interventionstartdate": "2026-11-01T00:00:00Z",
    "progres_interventiondescription": "<p>Invented demo referral</p>",
    "progres_businessunit": "00000000-0000-4000-8000-000000000004",
    "user.title": "Protection Officer",
    "user.internalemailaddress": "officer@example.org",
    "user.mobilephone": "0000000001",
}


def intervention(number: str = "DEMO-26-PRTITV-0000001", **overrides: Any) -> dict[str, Any]:
    """A valid proGres intervention (flow 1), with any field overridden."""
    item = copy.deepcopy(_INTERVENTION)
    item["progres_interventionnumber"] = number
    item.update(overrides)
    return item


def referral_message(*interventions: dict[str, Any]) -> dict[str, Any]:
    """The DTP message of flow 1 carrying these interventions."""
    return {
        "__query_params": {},
        "request_type": PROGRES_REFERRAL_REQUEST,
        "interventions": list(interventions) or [intervention()],
    }


def decision_message(
    org_referral_id: str, decision: str = "125080000", **extra: Any
) -> dict[str, Any]:
    """The DTP message of flow 4: proGres accepts (``125080000``) or rejects (``125080001``)."""
    item = {
        "progres_orgreferralid": org_referral_id,
        "progres_reviewdecision": decision,
        "progres_interoperabilityreferralnumber": "REF-IOP-DEMO-000000001",
        "progres_reviewdate": "2026-11-29T00:00:00Z",
        **extra,
    }
    return {"request_type": PROGRES_DECISION_REQUEST, "interventions": [item]}


def primero_case(case_id: str, record_id: str, **overrides: Any) -> dict[str, Any]:
    """A Primero case owned by the Primero caseworker (the child flow 3 refers to UNHCR)."""
    case: dict[str, Any] = {
        "id": record_id,
        "case_id": case_id,
        "module_id": "primeromodule-cp",
        "owned_by": PRIMERO_CASEWORKER,
        "associated_user_names": [PRIMERO_CASEWORKER],
        "assigned_user_names": [],
        "status": "open",
        "record_state": True,
        "name_first": "Baraka",
        "name_last": "Sample",
        "date_of_birth": "2014-06-06",
        "sex": "male",
        "unhcr_individual_no": "DEMO-00000002",
        "unhcr_id_no": "DEMO-26-00002",
        "address_current": "Block 7",
        "language": ["language2"],
        "consent_for_services": True,
        "disclosure_other_orgs": True,
        "services_section": [],
    }
    case.update(overrides)
    return case


def ping_intervention(
    number: str = "DEMO-26-PRTITV-0000001", progres_id: str = "DEMO-00000001", **overrides: Any
) -> dict[str, Any]:
    """An LP intervention as the PING simulator is seeded with (``POST /_sim/seed``): the
    same invented child as ``intervention()``, flagged for Primero."""
    item: dict[str, Any] = {
        "intervention_number": number,
        "business_unit": PING_BUSINESS_UNIT,
        "intervention_type": "Alternative Care",
        "start_date": "2026-11-01T00:00:00Z",
        "description": "<p>Invented demo referral</p>",
        "individual": {
            "progres_id": progres_id,
            "registration_group_name": "DEMO-26-00001",
            "given_name": "Amani",
            "family_name": "Example",
            "date_of_birth": "2015-03-01T00:00:00Z",
            "sex": 125080000,
            "phone": "+000000000",
            "locations": ["Gambela"],
        },
        "caseworker": {
            "title": "Protection Officer",
            "mobilephone": "0000000001",
            "internalemailaddress": "officer@example.org",
        },
        "languages": ["Nuer"],
    }
    item.update(overrides)
    return item
