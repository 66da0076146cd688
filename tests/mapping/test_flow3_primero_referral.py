"""Flow 3: Primero referrals to UNHCR become DTP referrals. Expected values from MAPPING.md."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from primero_progres.mapping import primero_referral as flow3

DEFAULT_CONTACT = {
    "position": "CPIMS+ Administrator",
    "email": "notavailable@primero.org",
    "phone": "0000000000",
    "full_name": "CPIMS+",
}
PRIMERO_CP = {
    "user_name": "primero_cp",
    "full_name": "Primero CP",
    "email": "primero_cp@primero.com",
    "phone": "27097909363",
    "position": "case worker",
}


def referral(service_id: str, rid: str = "ref-1", created: str = "2021-02-08T16:41:00.000Z"):
    return {"id": rid, "type": "Referral", "service_record_id": service_id, "created_at": created}


@pytest.fixture
def unhcr_case(sample) -> dict:
    return sample("flow2_primeroReferraltoUNHCR.json")


SERVICE_ID = "66299d30-7d59-40aa-a4fc-289669d0e16a"
CASE_ID = "234bbac3-7278-430a-98b5-1abc460671ec"


def test_referred_service_becomes_dtp_referral(unhcr_case, gambella) -> None:
    results = flow3.referral_messages(
        unhcr_case, [referral(SERVICE_ID)], {"primero_cp": PRIMERO_CP}, gambella
    )
    [result] = results
    assert result.ok and result.error is None
    assert result.case_id == CASE_ID
    assert result.case_record_id == "c48bd8ca-b290-4bca-9be9-4fb0f9e7b59a"
    assert result.service_unique_id == SERVICE_ID
    assert result.referral_id == "ref-1"
    assert result.org_referral_id == f"{CASE_ID}#289669d0e16a"
    assert result.message == {
        "request_type": "ReceiveIncomingReferral",
        "primero_user": "primero_cp",
        "position": "case worker",
        "email": "primero_cp@primero.com",
        "phone": "27097909363",
        "full_name": "Primero CP",
        "service_implementing_agency": "UNICEF",
        "owned_by_agency_id": "UNICEF",
        "service_response_day_time": "2021-02-08T16:40:17.000Z",
        "service_type": "Livelihoods Service",
        "service_type_other": "PSS service",
        "service_referral_notes": "Referral is needed to provide family tracing and reunification",
        "unhcr_individual_no": "A1B2C3D4E5",
        "unhcr_id_no": "A1B2C3D4E5",
        "name_first": "Elias",
        "name_middle": "Ala",
        "name_last": "Merrick",
        "name_nickname": "Eli",
        "date_of_birth": "2008-01-01",
        "sex": "male",
        "address_current": "98 Block A, Adams Street",
        "telephone_current": "446598451512",
        "language": "Anyuak, Nuer",
        "id": f"{CASE_ID}#289669d0e16a",
    }


def test_lower_case_agency_and_default_contact(sample, gambella) -> None:
    [case] = sample("primero_outboundReferral_e7a9d84.json")["_json"]
    service_id = "a41a10ad-e7ca-4898-8233-a463c88c6eb9"
    assert flow3.unhcr_services(case, gambella) == case["services_section"]
    [result] = flow3.referral_messages(case, [referral(service_id)], {}, gambella)
    message = result.message
    assert {k: message[k] for k in DEFAULT_CONTACT} == DEFAULT_CONTACT
    assert message["primero_user"] == "primero"
    assert message["service_type"] == "Early Childhood Service"
    assert message["service_type_other"] is None
    assert message["service_referral_notes"] == "sample referral notes"
    assert message["language"] == "Other, French"
    assert message["address_current"] is None
    assert message["telephone_current"] is None
    assert message["name_middle"] == "Mo"
    assert message["id"] == "0c0edf93-2c44-4803-b8ae-727ede7a9d84#a463c88c6eb9"


def test_only_referred_unhcr_services(sample, gambella) -> None:
    [case] = sample("primero_outboundReferral.json")
    first, second = (row["unique_id"] for row in case["services_section"])
    results = flow3.referral_messages(case, [referral(second)], {}, gambella)
    assert [r.service_unique_id for r in results] == [second]
    message = results[0].message
    assert message["name_middle"] is None
    assert message["service_referral_notes"] == "Primero referral"
    assert message["language"] == "Anyuak"
    refs = [referral(first, "a"), referral(second, "b")]
    both = flow3.referral_messages(case, refs, {}, gambella)
    assert [r.referral_id for r in both] == ["a", "b"]


def test_non_unhcr_services_are_ignored(sample, gambella) -> None:
    case = sample("case_583069e.json")
    drc, unhcr = (row["unique_id"] for row in case["services_section"])
    assert [r["unique_id"] for r in flow3.unhcr_services(case, gambella)] == [unhcr]
    refs = [referral(drc, "x"), referral(unhcr, "y")]
    results = flow3.referral_messages(case, refs, {}, gambella)
    [result] = results
    assert result.referral_id == "y"
    assert result.message["service_type"] == "NFI/Clothes/Shoes Service"
    assert result.message["telephone_current"] == "123-456-7890"
    assert result.message["language"] == "Other"
    assert result.message["primero_user"] == "unhcr_cw1"


def test_cases_without_unhcr_services(sample, gambella) -> None:
    for name in ("primeroCaseExport.json", "primero_sample_state.json"):
        case = sample(name)
        ids = [row["unique_id"] for row in case["services_section"]]
        refs = [referral(i) for i in ids]
        unhcr = bool(flow3.unhcr_services(case, gambella))
        assert len(flow3.referral_messages(case, refs, {}, gambella)) == (len(ids) if unhcr else 0)
    template = sample("primero_outboundReferralTemplate.json")["_json"][0]
    assert flow3.unhcr_services(template, gambella) == []


def test_referrals_created_before_since_are_skipped(unhcr_case, gambella) -> None:
    old = referral(SERVICE_ID, "old", "2021-02-08T16:41:00.000Z")
    since = datetime(2021, 3, 1, tzinfo=UTC)
    assert flow3.referral_messages(unhcr_case, [old], {}, gambella, since=since) == []
    new = referral(SERVICE_ID, "new", "2021-03-01T00:00:00.000Z")
    [result] = flow3.referral_messages(unhcr_case, [old, new], {}, gambella, since=since)
    assert result.referral_id == "new"
    naive = datetime(2021, 3, 1)
    assert len(flow3.referral_messages(unhcr_case, [new], {}, gambella, since=naive)) == 1


def test_sex_and_partial_contact(unhcr_case, gambella) -> None:
    case = {**unhcr_case, "sex": "unknown_4b34795"}
    partial = {"user_name": "primero_cp", "email": "cp@example.org", "phone": ""}
    [result] = flow3.referral_messages(case, [referral(SERVICE_ID)], {"primero_cp": partial},
                                       gambella)
    assert result.message["sex"] == "unknown"
    assert result.message["email"] == "cp@example.org"
    assert result.message["phone"] == "0000000000"
    assert result.message["position"] == "CPIMS+ Administrator"
    other = {**unhcr_case, "sex": "other_b25f252", "language": []}
    [result] = flow3.referral_messages(other, [referral(SERVICE_ID)], {}, gambella)
    assert (result.message["sex"], result.message["language"]) == ("other", "Other")


@pytest.mark.parametrize(
    ("change", "kind", "fields"),
    [
        ({"language": ["language1", "klingon"]}, "unknown_code", ("language",)),
        ({"service_type": "teleportation"}, "unknown_code", ("services_section.service_type",)),
        ({"case_id": None}, "missing_fields", ("case_id",)),
        ({"owned_by": ""}, "missing_fields", ("owned_by",)),
        ({"date_of_birth": "yesterday"}, "invalid_data", ("date_of_birth",)),
        ({"name_first": 12}, "invalid_data", ("name_first",)),
    ],
)
def test_typed_errors(unhcr_case, gambella, change, kind, fields) -> None:
    case = dict(unhcr_case)
    row = dict(case["services_section"][0])
    if "service_type" in change:
        row["service_type"] = change["service_type"]
    else:
        case.update(change)
    case["services_section"] = [row]
    [result] = flow3.referral_messages(case, [referral(SERVICE_ID)], {}, gambella)
    assert not result.ok and result.message is None
    assert (result.error.kind, result.error.fields) == (kind, fields)


def test_helpers(unhcr_case) -> None:
    assert flow3.users_needed(unhcr_case) == {"primero_cp"}
    assert flow3.users_needed({"owned_by": None}) == set()
    assert flow3.users_needed([]) == set()
    assert flow3.org_referral_id("c-1", "5c2d4f6c-7a78-43b5-ac40-eb097be51d89") == (
        "c-1#eb097be51d89"
    )


def test_translated_codes_are_exactly_the_codes_flow3_maps(unhcr_case, gambella) -> None:
    """doctor warns about lookup values outside these sets: each one would be unknown_code."""
    codes = flow3.translated_codes(gambella)
    for service_type in sorted(codes["services_section.service_type"]):
        row = {**unhcr_case["services_section"][0], "service_type": service_type}
        for language in sorted(codes["language"]):
            case = {**unhcr_case, "services_section": [row], "language": [language]}
            [result] = flow3.referral_messages(case, [referral(SERVICE_ID)], {}, gambella)
            assert result.ok, (service_type, language)
    assert "teleportation" not in codes["services_section.service_type"]
    assert "klingon" not in codes["language"]
