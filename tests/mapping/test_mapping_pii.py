"""Personal data never reaches an error: marker values in every personal field, every error path."""

from __future__ import annotations

from datetime import date

import pytest

from primero_progres.mapping import primero_decision as flow2
from primero_progres.mapping import primero_referral as flow3
from primero_progres.mapping import progres_decision as flow4
from primero_progres.mapping import progres_referral as flow1
from primero_progres.mapping.errors import MappingError
from primero_progres.profiles import load_profile

PROFILE = load_profile()
TODAY = date(2026, 11, 29)
MARK = "ZZPIIMARKER"


def marked(name: str) -> str:
    return f"{MARK}-{name}"


PERSONAL_INTERVENTION = {
    flow1.F_GIVEN: marked("given"),
    flow1.F_MIDDLE: marked("middle"),
    flow1.F_FAMILY: marked("family"),
    flow1.F_NICKNAME: marked("nick"),
    flow1.F_PHONE: marked("phone"),
    flow1.F_DESCRIPTION: marked("description"),
    flow1.F_REASON: f'[{{"CreatedBy": "{marked("author")}", "Text": "{marked("reason")}"}}]',
    flow1.F_USER_TITLE: marked("title"),
    flow1.F_USER_PHONE: marked("user-phone"),
    flow1.F_USER_EMAIL: marked("user-email"),
    flow1.F_LOCATION_6: marked("level6"),
    **{key: {"Name": marked(key)} for key in flow1.F_LOCATIONS},
    flow1.F_LANGUAGE: {"Name": marked("language")},
}
VALID = {
    **PERSONAL_INTERVENTION,
    flow1.F_SERVICE_TYPE: "BIA",
    flow1.F_INDIVIDUAL: "803-100000519",
    flow1.F_GROUP: {"Name": "803-23-1000552"},
    flow1.F_BIRTH: "2020-01-01T00:00:00Z",
    flow1.F_SEX: "125080000",
    flow1.F_NUMBER: "N-1",
}

INTERVENTION_ERRORS = [
    {flow1.F_SEX: marked("sex")},
    {flow1.F_BIRTH: marked("born")},
    {flow1.F_BIRTH: "2999-01-01" + MARK},
    {flow1.F_SERVICE_TYPE: marked("type")},
    {flow1.F_GIVEN: [marked("given-list")]},
    {flow1.F_FAMILY: {"x": marked("family-dict")}},
    {flow1.F_GROUP: None},
    {flow1.F_REASON: 12},
    {flow1.F_LANGUAGE: [marked("language")]},
]


def assert_clean(error: MappingError | None) -> None:
    assert error is not None
    for value in (error.kind, error.message, *error.fields):
        assert MARK not in value


@pytest.mark.parametrize("change", INTERVENTION_ERRORS)
def test_flow1_errors_and_feedback_hold_no_personal_data(change) -> None:
    error = flow1.map_intervention({**VALID, **change}, PROFILE, TODAY)
    assert isinstance(error, MappingError)
    assert_clean(error)
    feedback = flow1.failure_feedback(
        error, reason_kind=error.kind, intervention_number="N-1", case_id=None,
        primero_user=PROFILE.focal_point.default_user, profile=PROFILE,
    )
    assert MARK not in repr(feedback)


def test_flow1_valid_markers_do_map() -> None:
    """The markers are real personal fields: they do land in the case body."""
    mapped = flow1.map_intervention(VALID, PROFILE, TODAY)
    assert isinstance(mapped, flow1.MappedIntervention)
    assert mapped.case["name_first"] == marked("given")
    assert marked("reason") in mapped.service["service_referral_notes"]


PERSONAL_CASE = {
    "id": "r1",
    "case_id": "c1",
    "owned_by": "cw",
    "name_first": marked("first"),
    "name_middle": marked("middle"),
    "name_last": marked("last"),
    "name_nickname": marked("nick"),
    "address_current": marked("address"),
    "telephone_current": marked("phone"),
    "date_of_birth": "2010-01-01",
    "sex": "female",
    "language": ["language1"],
}
ROW = {"unique_id": "u1", "service_type": "food", "service_implementing_agency": "UNHCR",
       "service_referral_notes": marked("notes"), "service_type_other": marked("other")}

CASE_ERRORS = [
    {"date_of_birth": marked("born")},
    {"sex": [marked("sex")]},
    {"language": [marked("language")]},
    {"name_first": {"v": marked("first")}},
    {"telephone_current": [marked("phone")]},
    {"owned_by": None},
    {"case_id": None},
]


@pytest.mark.parametrize("change", CASE_ERRORS)
def test_flow3_errors_hold_no_personal_data(change) -> None:
    case = {**PERSONAL_CASE, **change, "services_section": [ROW]}
    [result] = flow3.referral_messages(case, [{"service_record_id": "u1"}], {}, PROFILE)
    assert not result.ok
    assert_clean(result.error)


@pytest.mark.parametrize("row_change", [{"service_type": marked("type")},
                                        {"service_referral_notes": [marked("notes")]}])
def test_flow3_service_errors_hold_no_personal_data(row_change) -> None:
    case = {**PERSONAL_CASE, "services_section": [{**ROW, **row_change}]}
    [result] = flow3.referral_messages(case, [{"service_record_id": "u1"}], {}, PROFILE)
    assert_clean(result.error)


def test_flow2_errors_hold_no_personal_data() -> None:
    row = {"unique_id": "u1", "progres_interventionnumber": "N-1",
           "service_referral": "external_referral", "unhcr_referral_status": "rejected",
           "unhcr_referral_rejection_reason": [marked("reason")]}
    case = {**PERSONAL_CASE, "services_section": [row]}
    [result] = flow2.qualifying_decisions(case, PROFILE)
    assert_clean(result.error)


@pytest.mark.parametrize(
    "item",
    [
        {flow4.F_ORG_REFERRAL_ID: "c1#u1", flow4.F_DECISION: marked("decision"),
         flow4.F_COMMENTS[0]: marked("comment")},
        {flow4.F_ORG_REFERRAL_ID: marked("id"), flow4.F_DECISION: "accepted"},
        {flow4.F_ORG_REFERRAL_ID: "c1#u1", flow4.F_DECISION: "rejected",
         flow4.F_REASON: marked("reason"), flow4.F_COMMENTS[1]: [marked("comment")]},
    ],
)
def test_flow4_errors_hold_no_personal_data(item) -> None:
    [error] = flow4.read_decisions({"interventions": [item]}, PROFILE)
    assert_clean(error)
