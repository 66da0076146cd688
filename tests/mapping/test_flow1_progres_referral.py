"""Flow 1: proGres interventions to Primero cases. Expected values written from MAPPING.md."""

from __future__ import annotations

import copy
from datetime import date

import pytest

from primero_progres.mapping import progres_referral as flow1
from primero_progres.mapping.errors import MappingError
from primero_progres.mapping.values import ProgresMessage
from primero_progres.profiles import Profile

TODAY = date(2026, 11, 29)
INTAKE = "progresv4_primero_intake@cpims-gambella.primero.org"

MISSING_TEXT = (
    "Intervention referral is missing fields required for sending to Primero. "
    "Please include missing fields and re-send the request."
)
INVALID_TEXT = (
    "Intervention referral has provided invalid data. Please review the data values "
    "shared and re-send the request."
)
SERVICE_TYPE_TEXT = (
    "Intervention type value shared is not one of the accepted interagency referral "
    "service types. Please see the mapping specifications."
)

ID_TOO_LONG_TEXT = (
    "Intervention referral has an identifier longer than 128 characters (intervention "
    "number, individual number or Primero case id). Please review the identifiers and "
    "re-send the request."
)
REFUSED_TEXT = (
    "Primero refused the intervention referral. Please contact the UNICEF CPIMS+ administrator."
)

FIXED_ROW = {
    "service_request_external": True,
    "service_implementing_agency": "UNICEF",
    "service_response_type": "service_provision",
    "service_referral": "external_referral",
    "unhcr_referral_status": "pending",
}


def only_intervention(message: dict) -> dict:
    read = flow1.read_message(message)
    assert not isinstance(read, MappingError)
    assert len(read.interventions) == 1
    return read.interventions[0]


def test_bia_referral_maps_to_case(sample, gambella: Profile) -> None:
    intervention = only_intervention(sample("flow1__PrimeroOutgoingReferral.json"))
    mapped = flow1.map_intervention(intervention, gambella, TODAY)
    assert isinstance(mapped, flow1.MappedIntervention)
    assert mapped.progres_interventionnumber == "811-23-PRTITV-1000095"
    assert mapped.unhcr_individual_no == "803-100000519"
    row = {
        "service_response_day_time": "2023-03-14T00:00:00Z",
        "service_request_title": "proGres V4 Test Account",
        "service_request_agency": "UNHCR",
        "service_request_email": "pTestUser61@unhcr.org",
        "service_referral_notes": "Testing the address,Anna's momma may be her mother",
        "service_type": "focuses_non_specialized_mhpss_care",
        "progres_interventionnumber": "811-23-PRTITV-1000095",
        **FIXED_ROW,
    }
    assert mapped.case == {
        "unhcr_individual_no": "803-100000519",
        "unhcr_id_no": "803-23-1000552",
        "name_first": "Given E",
        "name_last": "Family E",
        "date_of_birth": "2020-01-01",
        "age": 6,
        "sex": "female",
        "status": "open",
        "owned_by": INTAKE,
        "module_id": "primeromodule-cp",
        "services_section": [row],
    }
    assert mapped.service == row


def test_wrapped_message_is_read_like_a_bare_one(sample, gambella: Profile) -> None:
    intervention = only_intervention(sample("flow1__progresReferralToUNICEF-v2.json"))
    mapped = flow1.map_intervention(intervention, gambella, TODAY)
    assert isinstance(mapped, flow1.MappedIntervention)
    assert mapped.progres_interventionnumber == "803-23-PRTITV-1000095"
    assert mapped.case["name_first"] == "Given B"
    assert mapped.case["name_last"] == "Family B"
    assert mapped.service["service_type"] == "focuses_non_specialized_mhpss_care"


def test_alternative_care_with_address_phone_and_unknown_language(sample, gambella) -> None:
    intervention = only_intervention(sample("referralFromProgres_sample2408022.json"))
    mapped = flow1.map_intervention(intervention, gambella, TODAY)
    assert isinstance(mapped, flow1.MappedIntervention)
    assert mapped.case == {
        "unhcr_individual_no": "989-00000226",
        "unhcr_id_no": "989-22-00200",
        "name_first": "Alfred",
        "name_last": "S-C",
        "name_nickname": "Alfie",
        "date_of_birth": "2014-06-06",
        "age": 12,
        "sex": "male",
        "telephone_current": "+4612312345",
        "address_current": "Gambela Agnuak Abobo",
        "language": ["language6"],  # Afrikaans is not in the table: Other
        "status": "open",
        "owned_by": INTAKE,
        "module_id": "primeromodule-cp",
        "services_section": [
            {
                "service_response_day_time": "2022-08-22T00:00:00Z",
                "service_request_title": "Associate Child Protection and SGBV Officer",
                "service_request_agency": "UNHCR",
                "service_request_email": "scl-test@unhcr.org",
                "service_referral_notes": "This is a check for the address",
                "service_type": "alternative_care",
                "progres_interventionnumber": "989-22-PRTITV-0000051",
                **FIXED_ROW,
            }
        ],
    }


def test_partner_referral_with_every_optional_field(sample, gambella) -> None:
    """The 6 Oct 2021 sample, with an accepted service type, fills every case field."""
    intervention = only_intervention(sample("flow1__progresReferralToUNICEF_6Oct2021.json"))
    intervention = {**intervention, "interventiontype.progres_description": "BID"}
    mapped = flow1.map_intervention(intervention, gambella, TODAY)
    assert isinstance(mapped, flow1.MappedIntervention)
    assert mapped.case == {
        "unhcr_individual_no": "DAD-00008992",
        "unhcr_id_no": "NUR-15-05300",
        "name_first": "Hermione",
        "name_middle": "Marie",
        "name_last": "Granger",
        "name_nickname": "Hermione",
        "date_of_birth": "2002-12-16",
        "age": 23,
        "sex": "male",
        "telephone_current": "+84963567890",
        "address_current": "Central Macedonia Katerini Katerini Apartments "
        "16is Oktovriou 44, Katerini 601 00, Greece location level 6",
        "language": ["language6"],
        "status": "open",
        "owned_by": INTAKE,
        "module_id": "primeromodule-cp",
        "services_section": [
            {
                "service_response_day_time": "2021-10-01T00:00:00Z",
                "service_request_title": "Ms",
                "service_request_agency": "DAD-17-PNR-00011",
                "service_request_phone": "9999999999",
                "service_request_email": "test@test.com",
                "service_referral_notes": "desc",
                "service_type": "focuses_non_specialized_mhpss_care",
                "progres_interventionnumber": "DAD-21-PRTITV-0000201",
                **FIXED_ROW,
            }
        ],
    }


def test_not_accepted_service_types_fail_each_intervention(sample, gambella) -> None:
    read = flow1.read_message(sample("progresReferral__flow1-1.json"))
    assert isinstance(read, ProgresMessage)
    assert len(read.interventions) == 2
    for intervention in read.interventions:
        assert flow1.intervention_number(intervention) == "DAD-21-PRTITV-0000141"
        error = flow1.map_intervention(intervention, gambella, TODAY)
        assert error == MappingError(
            "service_type", "service type not accepted", ("interventiontype.progres_description",)
        )
    other = only_intervention(sample("flow1__progresReferralToUNICEF_6Oct2021.json"))
    assert flow1.map_intervention(other, gambella, TODAY).kind == "service_type"


def test_missing_service_type_is_missing_fields(sample, gambella) -> None:
    intervention = only_intervention(sample("progres_outboundReferral.json"))
    error = flow1.map_intervention(intervention, gambella, TODAY)
    assert isinstance(error, MappingError)
    assert error.kind == "missing_fields"
    assert error.fields == ("interventiontype.progres_description",)


def test_bare_list_of_interventions_sample(sample, gambella) -> None:
    """intervention_sample.json is a bare list (not a message); its items lack the type."""
    payload = sample("intervention_sample.json")
    assert flow1.read_message(payload).kind == "unreadable"
    for intervention in payload:
        error = flow1.map_intervention(intervention, gambella, TODAY)
        assert error.kind == "missing_fields"
        assert "interventiontype.progres_description" in error.fields


@pytest.fixture
def valid(sample) -> dict:
    return only_intervention(sample("flow1__PrimeroOutgoingReferral.json"))


@pytest.mark.parametrize(
    ("code", "sex"),
    [("125080000", "female"), ("125080001", "male"), ("125080002", "other_b25f252"),
     ("125080003", "unknown_4b34795"), (125080001, "male")],
)
def test_sex_codes(valid, gambella, code, sex) -> None:
    mapped = flow1.map_intervention({**valid, "individuals.progres_sex": code}, gambella, TODAY)
    assert mapped.case["sex"] == sex


@pytest.mark.parametrize("code", ["Female", "125080004", "", True])
def test_other_sex_values_are_invalid_or_missing(valid, gambella, code) -> None:
    error = flow1.map_intervention({**valid, "individuals.progres_sex": code}, gambella, TODAY)
    assert isinstance(error, MappingError)
    expected = "missing_fields" if code == "" else "invalid_data"
    assert error.kind == expected
    assert error.fields == ("individuals.progres_sex",)


@pytest.mark.parametrize(
    ("name", "code"),
    [("Anyuak", "language1"), ("Acholi", "language10"), ("Amharic", "language5"),
     ("Bari", "language4"), ("Bembe", "language7"), ("Dinka, Northeastern", "language3"),
     ("Dinka, Northwestern; Alor", "language3"), ("Dinka, South Central", "language3"),
     ("Dinka, Southeastern", "language3"), ("Dinka, Southeastern;", "language3"),
     ("Dinka, Southwestern; Rek", "language3"), ("Nuer", "language2"), ("Somali", "language8"),
     ("Cutchi-swahili", "language1"), ("Swahili", "language1"), ("Swahili, Congo", "language1"),
     ("Zande", "language5"), ("Klingon", "language6")],
)
def test_languages(valid, gambella, name, code) -> None:
    lookup = {"Id": "x", "LogicalName": "progres_languagecode", "Name": name}
    intervention = {**valid, "languages.progres_languagecodeid": lookup}
    assert flow1.map_intervention(intervention, gambella, TODAY).case["language"] == [code]


@pytest.mark.parametrize(
    ("description", "service_type"),
    [("Alternative Care", "alternative_care"), ("BID", "focuses_non_specialized_mhpss_care"),
     ("BIA", "focuses_non_specialized_mhpss_care"), ("Family Tracing and Reunification", "food")],
)
def test_service_types(valid, gambella, description, service_type) -> None:
    intervention = {**valid, "interventiontype.progres_description": description}
    mapped = flow1.map_intervention(intervention, gambella, TODAY)
    assert mapped.service["service_type"] == service_type


def test_every_required_field_missing_is_listed(gambella) -> None:
    error = flow1.map_intervention({"progres_interventionnumber": "N-1"}, gambella, TODAY)
    assert error.kind == "missing_fields"
    assert set(error.fields) == {
        "interventiontype.progres_description", "individuals.progres_id",
        "individuals.progres_registrationgroupid", "individuals.progres_givenname",
        "individuals.progres_familyname", "individuals.progres_dateofbirth",
        "individuals.progres_sex",
    }


def test_lookup_without_name_is_missing(valid, gambella) -> None:
    intervention = {**valid, "individuals.progres_registrationgroupid": {"Id": "x", "Name": None}}
    error = flow1.map_intervention(intervention, gambella, TODAY)
    assert error.fields == ("individuals.progres_registrationgroupid",)
    assert error.kind == "missing_fields"


@pytest.mark.parametrize("born", ["not a date", "2020-13-45T00:00:00Z", "2027-01-01T00:00:00Z", 7])
def test_bad_or_future_birth_date_is_invalid(valid, gambella, born) -> None:
    intervention = {**valid, "individuals.progres_dateofbirth": born}
    error = flow1.map_intervention(intervention, gambella, TODAY)
    assert error.kind == "invalid_data"
    assert error.fields == ("individuals.progres_dateofbirth",)


@pytest.mark.parametrize(
    ("today", "age"), [(date(2030, 12, 31), 10), (date(2031, 1, 1), 11), (date(2020, 1, 1), 0)]
)
def test_age_is_whole_years_at_the_processing_date(valid, gambella, today, age) -> None:
    assert flow1.map_intervention(valid, gambella, today).case["age"] == age


def test_primero_id_becomes_case_id(valid, gambella) -> None:
    mapped = flow1.map_intervention({**valid, "progres_primeroid": "c-1"}, gambella, TODAY)
    assert mapped.case["case_id"] == "c-1"


def test_plain_text_reason_and_paragraphs(valid, gambella) -> None:
    intervention = {
        **valid,
        "progres_interventiondescription": "<P class='x'>first</p>",
        "progres_reasonforreferral": "<p>second</p>",
    }
    assert flow1.map_intervention(intervention, gambella, TODAY).service[
        "service_referral_notes"
    ] == "first,second"
    no_notes = {k: v for k, v in valid.items()
                if k not in ("progres_interventiondescription", "progres_reasonforreferral")}
    assert "service_referral_notes" not in flow1.map_intervention(no_notes, gambella, TODAY).service


def test_message_checks() -> None:
    assert flow1.read_message([]).kind == "unreadable"
    assert flow1.read_message("x").kind == "unreadable"
    wrong = flow1.read_message({"request_type": "PrimeroIncomingReferralDecision",
                                "interventions": []})
    assert (wrong.kind, wrong.fields) == ("invalid_data", ("request_type",))
    assert flow1.read_message({"request_type": "PrimeroOutgoingReferral"}).kind == "missing_fields"
    assert flow1.read_message({"interventions": {}}).kind == "invalid_data"
    read = flow1.read_message({"data": {"interventions": [1, {}]}})
    assert read.interventions == [1, {}]
    assert flow1.map_intervention(1, Profile.model_validate(_profile_data()), TODAY).kind == (
        "invalid_data"
    )


def _profile_data() -> dict:
    from primero_progres.profiles import load_profile

    return load_profile().model_dump()


# -- focal-point routing ---------------------------------------------------------------------


def routed_profile(gambella: Profile) -> Profile:
    data = gambella.model_dump()
    data["focal_point"]["routes"] = [
        {"partner": "DAD-17-PNR-00011", "business_unit": "bu-2", "user": "both_intake"},
        {"partner": "DAD-17-PNR-00011", "user": "partner_intake"},
        {"business_unit": "bu-1", "user": "unit_intake"},
    ]
    return Profile.model_validate(data)


@pytest.mark.parametrize(
    ("fields", "user"),
    [
        ({"user.progres_partner": {"Name": "DAD-17-PNR-00011"}, "progres_businessunit": "bu-2"},
         "both_intake"),
        ({"user.progres_partner": {"Name": "DAD-17-PNR-00011"}}, "partner_intake"),
        ({"progres_businessunit": "bu-1"}, "unit_intake"),
        ({"progres_businessunit": "bu-9"}, INTAKE),
        ({}, INTAKE),
    ],
)
def test_focal_point_routes(valid, gambella, fields, user) -> None:
    profile = routed_profile(gambella)
    intervention = {**valid, **fields}
    assert profile.focal_point_user_for(intervention) == user
    assert flow1.map_intervention(intervention, profile, TODAY).case["owned_by"] == user


# -- upsert ----------------------------------------------------------------------------------


@pytest.fixture
def mapped(valid, gambella) -> flow1.MappedIntervention:
    result = flow1.map_intervention({**valid, "progres_primeroid": "case-uuid-1"}, gambella, TODAY)
    assert isinstance(result, flow1.MappedIntervention)
    return result


def existing(record_id: str, updated: str, rows: list[dict], individual="803-100000519") -> dict:
    return {"id": record_id, "case_id": f"cid-{record_id}", "unhcr_individual_no": individual,
            "last_updated_at": updated, "services_section": rows}


NUMBER = "811-23-PRTITV-1000095"


def test_no_case_creates(mapped) -> None:
    plan = flow1.plan_upsert([], mapped)
    assert plan.action == "create"
    assert plan.case_record_id is None
    assert plan.body == mapped.case
    assert plan.body["case_id"] == "case-uuid-1"
    assert (plan.ambiguous, plan.candidate_ids, plan.service_unique_id) == (False, (), None)


def test_ignored_search_filter_is_checked_again(mapped) -> None:
    other = existing("r-9", "2024-01-01T00:00:00.000Z", [], individual="SOMEONE-ELSE")
    assert flow1.plan_upsert([other], mapped).action == "create"


def test_one_case_holding_the_intervention_reuses_its_row(mapped) -> None:
    row_id = "5c2d4f6c-7a78-43b5-ac40-eb097be51d89"
    case = existing("r-1", "2024-01-01T00:00:00.000Z",
                    [{"unique_id": "aaaa", "progres_interventionnumber": "OTHER"},
                     {"unique_id": row_id, "progres_interventionnumber": NUMBER}])
    plan = flow1.plan_upsert([copy.deepcopy(case)], mapped)
    assert plan.action == "update"
    assert plan.case_record_id == "r-1"
    assert plan.service_unique_id == row_id
    assert plan.body["services_section"] == [{"unique_id": row_id, **mapped.service}]
    for forbidden in ("case_id", "id", "unique_id", "short_id", "created_at", "case_id_display"):
        assert forbidden not in plan.body
    assert plan.body["unhcr_individual_no"] == "803-100000519"
    # Primero accepts module_id on PATCH and moves the case: it is never sent on an update
    assert "module_id" not in plan.body
    assert (plan.ambiguous, plan.candidate_ids) == (False, ("r-1",))
    assert "unique_id" not in mapped.service  # the mapped row itself is left alone


def test_one_case_without_the_intervention_gets_a_new_row(mapped) -> None:
    plan = flow1.plan_upsert([existing("r-1", "2024-01-01T00:00:00.000Z", [])], mapped)
    assert plan.action == "update"
    assert plan.service_unique_id is None
    assert plan.body["services_section"] == [mapped.service]
    assert plan.body["services_section"][0]["unhcr_referral_status"] == "pending"


@pytest.mark.parametrize("decided", ["pending", "accepted", "rejected"])
def test_a_row_that_exists_keeps_the_focal_points_decision(mapped, decided) -> None:
    """A re-sent or crash-recovered delivery must not put ``pending`` back (issue 10, 1)."""
    row = {"unique_id": "row-1", "progres_interventionnumber": NUMBER,
           "unhcr_referral_status": decided, "unhcr_referral_rejection_reason": "r"}
    plan = flow1.plan_upsert([existing("r-1", "2024-01-01T00:00:00.000Z", [row])], mapped)
    [sent] = plan.body["services_section"]
    assert sent["unique_id"] == "row-1"
    assert not set(sent) & flow1.FOCAL_POINT_FIELDS
    assert sent["progres_interventionnumber"] == NUMBER
    assert sent["service_type"] == mapped.service["service_type"]
    assert flow1.plan_upsert([], mapped).body["services_section"][0][
        "unhcr_referral_status"] == "pending"


@pytest.mark.parametrize("empty", [None, ""])
def test_a_row_that_exists_without_a_status_gets_the_starting_one(mapped, empty) -> None:
    row = {"unique_id": "row-1", "progres_interventionnumber": NUMBER}
    if empty is not None:
        row["unhcr_referral_status"] = empty
    plan = flow1.plan_upsert([existing("r-1", "2024-01-01T00:00:00.000Z", [row])], mapped)
    [sent] = plan.body["services_section"]
    assert sent["unhcr_referral_status"] == "pending"


@pytest.mark.parametrize(
    ("field", "length", "kind"),
    [("progres_interventionnumber", 300, "id_too_long"),
     ("progres_interventionnumber", 129, "id_too_long"),
     ("individuals.progres_id", 129, "id_too_long"),
     ("progres_primeroid", 200, "id_too_long"),
     ("progres_interventionnumber", 128, None),
     ("individuals.progres_id", 60, None)],
)
def test_ids_over_128_characters_are_refused(valid, gambella, field, length, kind) -> None:
    """A 300-character intervention number used to overflow ``jobs.key`` on PostgreSQL."""
    value = ("X" * length)
    mapped = flow1.map_intervention({**valid, field: value}, gambella, TODAY)
    if kind is None:
        assert isinstance(mapped, flow1.MappedIntervention)
        return
    assert isinstance(mapped, MappingError)
    assert (mapped.kind, mapped.fields) == (kind, (field,))
    assert value not in mapped.message
    feedback = flow1.refusal_feedback({**valid, field: value}, mapped, gambella)
    assert feedback["closure_reason"] == ID_TOO_LONG_TEXT


def test_several_cases_prefer_the_one_holding_the_intervention(mapped) -> None:
    holding = existing("r-old", "2020-01-01T00:00:00.000Z",
                       [{"unique_id": "row-1", "progres_interventionnumber": NUMBER}])
    newer = existing("r-new", "2025-01-01T00:00:00.000Z", [])
    plan = flow1.plan_upsert([newer, holding], mapped)
    assert (plan.case_record_id, plan.service_unique_id) == ("r-old", "row-1")
    assert plan.ambiguous is True
    assert set(plan.candidate_ids) == {"r-old", "r-new"}


def test_several_cases_without_it_pick_the_most_recently_updated(mapped) -> None:
    cases = [existing("r-a", "2021-09-27T12:54:49.951Z", []),
             existing("r-b", "2023-01-01T00:00:00.000Z", []),
             existing("r-c", "2022-01-01T00:00:00.000Z", [])]
    plan = flow1.plan_upsert(cases, mapped)
    assert plan.case_record_id == "r-b"
    assert plan.ambiguous is True


def with_existing_case(gambella: Profile, owned_by: str, status: str) -> Profile:
    data = gambella.model_dump()
    data["existing_case"] = {"owned_by": owned_by, "status": status}
    return Profile.model_validate(data)


def test_gambella_hands_an_existing_case_to_the_focal_point_and_reopens_it(
    valid, gambella
) -> None:
    assert (gambella.existing_case.owned_by, gambella.existing_case.status) == (
        "focal_point", "reopen"
    )
    mapped = flow1.map_intervention(valid, gambella, TODAY)
    closed = {**existing("r-1", "2024-01-01T00:00:00.000Z", []), "owned_by": "cw_a",
              "status": "closed"}
    plan = flow1.plan_upsert([closed], mapped)
    assert plan.body["owned_by"] == INTAKE
    assert plan.body["status"] == "open"
    assert plan.body["case_status_reopened"] is True
    assert plan.primero_user == INTAKE
    assert "module_id" not in plan.body


def test_reopen_of_an_open_case_does_not_claim_a_reopening(valid, gambella) -> None:
    mapped = flow1.map_intervention(valid, gambella, TODAY)
    opened = {**existing("r-1", "2024-01-01T00:00:00.000Z", []), "status": "open"}
    plan = flow1.plan_upsert([opened], mapped)
    assert plan.body["status"] == "open"
    assert "case_status_reopened" not in plan.body
    unknown = existing("r-1", "2024-01-01T00:00:00.000Z", [])  # status not readable
    plan = flow1.plan_upsert([unknown], mapped)
    assert plan.body["status"] == "open"
    assert "case_status_reopened" not in plan.body


def test_keep_owner_and_status_leaves_both_alone(valid, gambella) -> None:
    profile = with_existing_case(gambella, "keep", "keep")
    mapped = flow1.map_intervention(valid, profile, TODAY)
    closed = {**existing("r-1", "2024-01-01T00:00:00.000Z", []), "owned_by": "cw_a",
              "status": "closed"}
    plan = flow1.plan_upsert([closed], mapped)
    for untouched in ("owned_by", "status", "case_status_reopened", "module_id"):
        assert untouched not in plan.body
    assert plan.primero_user == "cw_a"
    assert plan.body["services_section"] == [mapped.service]
    assert plan.body["unhcr_individual_no"] == "803-100000519"


@pytest.mark.parametrize(("owned_by", "status"), [("keep", "reopen"), ("focal_point", "keep")])
def test_each_choice_is_independent(valid, gambella, owned_by, status) -> None:
    profile = with_existing_case(gambella, owned_by, status)
    mapped = flow1.map_intervention(valid, profile, TODAY)
    closed = {**existing("r-1", "2024-01-01T00:00:00.000Z", []), "owned_by": "cw_a",
              "status": "closed"}
    plan = flow1.plan_upsert([closed], mapped)
    assert ("owned_by" in plan.body) is (owned_by == "focal_point")
    assert ("status" in plan.body) is (status == "reopen")
    assert plan.primero_user == (INTAKE if owned_by == "focal_point" else "cw_a")


def test_keep_owner_of_an_unreadable_owner_is_unknown(valid, gambella) -> None:
    profile = with_existing_case(gambella, "keep", "reopen")
    mapped = flow1.map_intervention(valid, profile, TODAY)
    plan = flow1.plan_upsert([existing("r-1", "2024-01-01T00:00:00.000Z", [])], mapped)
    assert plan.primero_user is None


def test_a_new_case_always_gets_the_focal_point_and_the_module(valid, gambella) -> None:
    profile = with_existing_case(gambella, "keep", "keep")
    mapped = flow1.map_intervention(valid, profile, TODAY)
    plan = flow1.plan_upsert([], mapped)
    assert plan.body["owned_by"] == INTAKE and plan.primero_user == INTAKE
    assert plan.body["module_id"] == "primeromodule-cp"
    assert plan.body["status"] == "open"


def test_existing_case_choice_is_required_and_checked(gambella) -> None:
    data = gambella.model_dump()
    del data["existing_case"]
    with pytest.raises(ValueError, match="existing_case"):
        Profile.model_validate(data)
    data["existing_case"] = {"owned_by": "caseworker", "status": "reopen"}
    with pytest.raises(ValueError, match="owned_by"):
        Profile.model_validate(data)


def test_declared_written_fields_and_codes_cover_what_is_written(valid, gambella) -> None:
    mapped = flow1.map_intervention(
        {**valid, "languages.progres_languagecodeid": "Nuer"}, gambella, TODAY
    )
    assert mapped.case["language"] == ["language2"]
    closed = {**existing("r-1", "2024-01-01T00:00:00.000Z", []), "status": "closed"}
    written = set(flow1.written_fields())
    for body in (flow1.plan_upsert([], mapped).body, flow1.plan_upsert([closed], mapped).body):
        assert set(body) <= written
        for row in body["services_section"]:
            assert {f"services_section.{key}" for key in row} - {"services_section.unique_id"} \
                <= written
    codes = flow1.written_codes(gambella)
    assert codes["sex"] == {"female", "male", "other_b25f252", "unknown_4b34795"}
    assert "language6" in codes["language"] and "language2" in codes["language"]
    assert codes["status"] == {"open"}
    assert codes["services_section.service_type"] == {
        "alternative_care", "focuses_non_specialized_mhpss_care", "food"
    }
    assert codes["services_section.unhcr_referral_status"] == {"pending"}
    for field, values in codes.items():
        where = mapped.service if field.startswith("services_section.") else mapped.case
        value = where.get(field.removeprefix("services_section."), [])
        for item in value if isinstance(value, list) else [value]:
            assert item in values, field


# -- feedback --------------------------------------------------------------------------------


def test_success_feedback_matches_the_reference_sample(sample) -> None:
    assert flow1.success_feedback(
        case_id="b30cba6b-8d97-4524-b77f-a8f50cfcc974",
        primero_user="unhcr_cw",
        intervention_number="NAI-20-PRTITV-0000006",
    ) == sample("successNotificationToDTP.json")


def test_missing_fields_feedback_names_the_keys(gambella) -> None:
    error = MappingError("missing_fields", "required fields are missing",
                         ("individuals.progres_sex", "individuals.progres_id"))
    feedback = flow1.failure_feedback(
        error, reason_kind="missing_fields", intervention_number="N-1", case_id=None,
        primero_user=INTAKE, profile=gambella,
    )
    assert feedback == {
        "status": "Delivery Fail",
        "request_type": "Feedback",
        "case_id": None,
        "primero_user": INTAKE,
        "progres_interventionnumber": "N-1",
        "closure_reason": MISSING_TEXT
        + " Missing fields: individuals.progres_sex, individuals.progres_id",
    }


@pytest.mark.parametrize(
    ("kind", "text"),
    [("invalid_data", INVALID_TEXT), ("service_type", SERVICE_TYPE_TEXT),
     ("unknown_code", INVALID_TEXT), ("primero_refused", REFUSED_TEXT),
     ("id_too_long", ID_TOO_LONG_TEXT)],
)
def test_failure_reasons(gambella, kind, text) -> None:
    feedback = flow1.failure_feedback(
        None, reason_kind=kind, intervention_number="N-1", case_id="c-1", primero_user="u",
        profile=gambella,
    )
    assert feedback["closure_reason"] == text
    assert (feedback["status"], feedback["case_id"]) == ("Delivery Fail", "c-1")
