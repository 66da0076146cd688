"""Over PING too, personal data never reaches an error or a write-back comment (marker values)."""

from __future__ import annotations

import copy
from datetime import date
from typing import Any

import pytest

from primero_progres.mapping import ping
from primero_progres.mapping.errors import MappingError
from primero_progres.profiles import load_profile

PROFILE = load_profile()
TODAY = date(2026, 2, 1)
MARK = "ZZPIIMARKER"
KEYS = ping.InterventionKeys("aaaaaaaa-0000-4000-8000-000000000001",
                             "cccccccc-0000-4000-8000-000000000001")
P = "progres_individual.individuals."

ROW = {
    "progres_interventionnumber": "N-1",
    "progres_interventiontype2.interventiontype.progres_description": "BIA",
    f"{P}progres_id": "803-100000519",
    "progres_individual.progres_registrationgroupidname": "803-23-1000552",
    f"{P}progres_givenname": f"{MARK}-given",
    f"{P}progres_middlename": f"{MARK}-middle",
    f"{P}progres_familyname": f"{MARK}-family",
    f"{P}progres_commonyusedname": f"{MARK}-nick",
    f"{P}progres_dateofbirth": "2016-02-29T00:00:00Z",
    f"{P}progres_sex": 125080000,
    f"{P}progres_primaryphonenumber": f"{MARK}-phone",
    "progres_interventiondescription": f"<p>{MARK}-description</p>",
    "progres_reasonforreferral": f"{MARK}-reason",
    "individuals.progres_coalocationlevel6": {"Name": f"{MARK}-house"},
    "systemuser.title": f"{MARK}-title",
    "systemuser.su.mobilephone": f"{MARK}-worker-phone",
    "systemuser.su.internalemailaddress": f"{MARK}@example.org",
    "progres_language.progres_languagecodeidname": f"{MARK}-language",
    "progres_specificneed.progres_spncategory2name": f"{MARK}-need",
}

ROW_ERRORS: list[dict[str, Any]] = [
    {f"{P}progres_sex": f"{MARK}-sex"},
    {f"{P}progres_dateofbirth": f"{MARK}-born"},
    {f"{P}progres_dateofbirth": "2999-01-01" + MARK},
    {"progres_interventiontype2.interventiontype.progres_description": f"{MARK}-type"},
    {f"{P}progres_givenname": [f"{MARK}-list"]},
    {f"{P}progres_familyname": None},
    {"progres_language.progres_languagecodeidname": [f"{MARK}-language-list"]},
    {"progres_specificneed.progres_spncategory2name": [f"{MARK}-need-list"]},
]


def assert_clean(error: MappingError | None) -> None:
    assert error is not None
    for value in (error.kind, error.message, *error.fields):
        assert MARK not in value


def test_markers_do_map() -> None:
    """The markers are in real personal fields: they reach the case, nothing else."""
    result = ping.map_ping_referral([ROW], KEYS, PROFILE, TODAY)
    assert result.mapped is not None
    assert MARK in repr(result.mapped.case)
    assert MARK not in repr(result)
    update = ping.referral_received_update(result.keys, case_id="c-1", profile=PROFILE,
                                           today=TODAY)
    assert MARK not in repr(update.as_item("l-1"))


@pytest.mark.parametrize("change", ROW_ERRORS)
def test_flow1_errors_and_failure_comments_hold_no_personal_data(change: dict[str, Any]) -> None:
    row = {**ROW, **change}
    if change.get(f"{P}progres_familyname", "") is None:
        del row[f"{P}progres_familyname"]
    result = ping.map_ping_referral([row], KEYS, PROFILE, TODAY)
    assert_clean(result.error)
    update = ping.referral_failed_update(result.keys, result.error, profile=PROFILE, today=TODAY)
    assert MARK not in repr(update.as_item("l-1"))


def test_flow4_errors_hold_no_personal_data() -> None:
    row = {
        "progres_interoperabilityreferralid": "r-1",
        "progres_interoperabilityreferralstatus": 125080002,
        "progres_reviewdecision": 125080001,
        "progres_offlineid": "case-1",
        "progres_orgreferralid": "svc-1",
        "progres_interoperabilityreferralrejectionomment": f"{MARK}-comment",
    }
    for change in ({"progres_reviewdecision": f"{MARK}-review"},
                   {"progres_interoperabilityreferralstatus": f"{MARK}-status"},
                   {"progres_offlineid": [MARK]},
                   {"progres_interoperabiltyreferralrejectionreasonname": {"Name": [MARK]}}):
        read = ping.read_ping_decision([{**row, **change}], PROFILE)
        assert isinstance(read, MappingError)
        assert_clean(read)


def test_flow3_errors_hold_no_personal_data(sample: Any) -> None:
    case = sample("flow2_primeroReferraltoUNHCR.json")
    case["referrals"] = [{"id": "ref-1", "service_record_id": case["services_section"][0][
        "unique_id"], "created_at": "2026-01-30T10:11:12.000Z"}]
    for change in ({"sex": f"{MARK}-sex"}, {"date_of_birth": f"{MARK}-born"},
                   {"name_first": [MARK]}, {"telephone_current": {"n": MARK}}):
        changed = {**copy.deepcopy(case), **change}
        [result] = ping.referral_create_items(changed, changed["referrals"], {}, PROFILE)
        assert_clean(result.error)
