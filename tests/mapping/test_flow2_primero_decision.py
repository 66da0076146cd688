"""Flow 2: Primero decisions on proGres referrals. Expected values written from MAPPING.md."""

from __future__ import annotations

import pytest

from primero_progres.mapping.primero_decision import qualifying_decisions

CASE_ID = "234bbac3-7278-430a-98b5-1abc460671ec"


@pytest.fixture
def case(sample) -> dict:
    return sample("flow2_primeroReferraltoUNHCR.json")


def with_service(case: dict, **fields) -> dict:
    row = {**case["services_section"][0], **fields}
    return {**case, "services_section": [row]}


@pytest.mark.parametrize(
    "name",
    ["flow2_primeroReferraltoUNHCR.json", "case_583069e.json", "primeroCaseExport.json",
     "primero_sample_state.json"],
)
def test_reference_cases_hold_no_decision(sample, gambella, name) -> None:
    """None of these services is an external proGres referral with a decision."""
    assert qualifying_decisions(sample(name), gambella) == []


def test_rejected_partner_referral_goes_back(case, gambella) -> None:
    """The row's requesting agency is a partner ("Save the Children"): it still qualifies."""
    decided = with_service(
        case, service_referral="external_referral", unhcr_referral_status="rejected",
        unhcr_referral_rejection_reason="primero reason for rejection",
    )
    [result] = qualifying_decisions(decided, gambella)
    assert result.ok and result.error is None
    assert result.case_id == CASE_ID
    assert result.case_record_id == "c48bd8ca-b290-4bca-9be9-4fb0f9e7b59a"
    assert result.service_unique_id == "66299d30-7d59-40aa-a4fc-289669d0e16a"
    assert result.progres_interventionnumber == "A1B2C3"
    assert result.status == "rejected"
    assert result.message == {
        "case_id": CASE_ID,
        "primero_user": "primero_cp",
        "progres_interventionnumber": "A1B2C3",
        "status": "rejected",
        "closure_reason": "primero reason for rejection",
        "request_type": "ReceiveDecisionOutgoingReferral",
    }


def test_accepted_becomes_acknowledged_with_default_reason(case, gambella) -> None:
    decided = with_service(case, service_referral="external_referral",
                           unhcr_referral_status="accepted")
    [result] = qualifying_decisions(decided, gambella)
    assert result.message["status"] == "acknowledged"
    assert result.message["closure_reason"] == "No reason specified."
    assert result.status == "accepted"


@pytest.mark.parametrize(
    "fields",
    [
        {"service_referral": "external_referral", "unhcr_referral_status": "pending"},
        {"service_referral": "internal_referral", "unhcr_referral_status": "accepted"},
        {"service_referral": "external_referral", "unhcr_referral_status": "accepted",
         "progres_interventionnumber": None},
        {"service_referral": "external_referral", "unhcr_referral_status": ["accepted"]},
    ],
)
def test_services_that_do_not_qualify(case, gambella, fields) -> None:
    assert qualifying_decisions(with_service(case, **fields), gambella) == []


def test_one_result_per_qualifying_service(case, gambella) -> None:
    rows = [
        {"unique_id": "r1", "progres_interventionnumber": "N-1",
         "service_referral": "external_referral", "unhcr_referral_status": "accepted"},
        {"unique_id": "r2", "progres_interventionnumber": "N-2"},
        "not a row",
        {"unique_id": "r3", "progres_interventionnumber": "N-3",
         "service_referral": "external_referral", "unhcr_referral_status": "rejected"},
    ]
    results = qualifying_decisions({**case, "services_section": rows}, gambella)
    assert [(r.service_unique_id, r.message["status"]) for r in results] == [
        ("r1", "acknowledged"), ("r3", "rejected")]


def test_case_without_id_or_owner_is_a_typed_error(case, gambella) -> None:
    decided = with_service(case, service_referral="external_referral",
                           unhcr_referral_status="accepted")
    del decided["case_id"]
    decided["owned_by"] = None
    [result] = qualifying_decisions(decided, gambella)
    assert not result.ok and result.message is None
    assert result.error.kind == "missing_fields"
    assert result.error.fields == ("case_id", "owned_by")


@pytest.mark.parametrize("value", [None, [], "case", 3, {"services_section": "x"}])
def test_not_a_case(gambella, value) -> None:
    assert qualifying_decisions(value, gambella) == []
