"""The PING transforms: rows -> the DTP intermediate, Primero -> {Name, Value} updates.

Expected values are written from PING.md and MAPPING.md, not read back from the code.
"""

from __future__ import annotations

import copy
import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from primero_progres.errors import ConfigurationError
from primero_progres.mapping import ping
from primero_progres.mapping.errors import MappingError
from primero_progres.mapping.primero_decision import DecisionResult, qualifying_decisions
from primero_progres.mapping.progres_decision import select_referral
from primero_progres.mapping.progres_referral import MappedIntervention, map_intervention
from primero_progres.profiles import Profile, load_profile
from primero_progres.profiles.schema import PROGRES_REFERRAL_FIELDS

PING_DATA = Path(__file__).resolve().parents[1] / "data" / "ping"
TODAY = date(2026, 2, 1)
PROFILE = load_profile()
LP1 = "aaaaaaaa-0000-4000-8000-000000000001"
UNIT = "cccccccc-0000-4000-8000-000000000001"
KEYS = ping.InterventionKeys(LP1, UNIT)
INTAKE = "progresv4_primero_intake@cpims-gambella.primero.org"


def rows_of(name: str) -> list[dict[str, Any]]:
    return json.loads((PING_DATA / name).read_text(encoding="utf-8"))["Data"]  # type: ignore[no-any-return]


def fields_of(update: ping.FieldUpdate) -> dict[str, str]:
    return dict(update.fields)


def with_ping(profile: Profile, **changes: Any) -> Profile:
    """The profile with parts of its ping section replaced."""
    data = profile.model_dump()
    for path, value in changes.items():
        node = data["ping"]
        *parents, last = path.split("__")
        for part in parents:
            node = node[part]
        node[last] = value
    return Profile.model_validate(data)


# ------------------------------------------------------------------ flow 1


def test_detail_rows_become_the_dtp_intermediate() -> None:
    """The same case as the DTP mapping gives for the same intervention sent through DTP."""
    result = ping.map_ping_referral(rows_of("referral_detail.json"), KEYS, PROFILE, TODAY)
    assert result.ok and result.error is None
    assert result.keys == ping.InterventionKeys(LP1, UNIT, "000-26-PRTITV-0000001")
    dtp_intervention = {
        "progres_interventionnumber": "000-26-PRTITV-0000001",
        "progres_businessunit": UNIT,
        "progres_interventionstartdate": "2026-01-15T00:00:00Z",
        "progres_interventiondescription": "<p>Needs a family-based care arrangement.</p>",
        "progres_reasonforreferral": json.dumps([{"CreatedBy": "Example Caseworker",
                                                  "Text": "<p>Referred for follow-up.</p>",
                                                  "CreatedOn": "2026-01-15T09:00:00Z"}]),
        "interventiontype.progres_description": "Alternative Care",
        "individuals.progres_id": "000-00000001",
        "individuals.progres_registrationgroupid": {"Name": "000-26-00001"},
        "individuals.progres_givenname": "Amani",
        "individuals.progres_familyname": "Example",
        "individuals.progres_commonyusedname": "Ami",
        "individuals.progres_dateofbirth": "2016-03-01T00:00:00Z",
        "individuals.progres_sex": "125080000",
        "individuals.progres_primaryphonenumber": "+000000000001",
        **{f"individuals.progres_coalocationlevel{n}": {"Name": name} for n, name in
           enumerate(["Region A", "Zone B", "District C", "Camp D", "Block E"], start=1)},
        "individuals.progres_coalocationlevel6": "House 7",
        "languages.progres_languagecodeid": {"Name": "Nuer"},
        "user.title": "Protection Assistant",
        "user.mobilephone": "+000000000099",
        "user.internalemailaddress": "caseworker@example.org",
    }
    expected = map_intervention(dtp_intervention, PROFILE, TODAY)
    assert isinstance(expected, MappedIntervention)
    assert result.mapped is not None
    assert result.mapped.case == {**expected.case, "language": ["language2", "language1"]}
    assert result.mapped.service == expected.service
    assert result.mapped.case["address_current"] == (
        "Region A Zone B District C Camp D Block E House 7")
    assert result.mapped.case["owned_by"] == INTAKE


def test_languages_and_needs_are_grouped_distinct_in_row_order() -> None:
    result = ping.map_ping_referral(rows_of("referral_detail.json"), KEYS, PROFILE, TODAY)
    assert result.languages == ("Nuer", "Anyuak")
    assert result.specific_needs == (
        ("Child at risk", "Child at risk of not attending school"), ("Disability", None))
    assert result.mapped is not None
    assert "protection_concerns" not in result.mapped.case  # gambella maps no specific need


def test_unknown_language_is_other_and_needs_map_when_the_profile_says() -> None:
    rows = rows_of("referral_detail.json")
    for row in rows:
        if row["progres_language.progres_languagecodeidname"] == "Anyuak":
            row["progres_language.progres_languagecodeidname"] = "Klingon"
    profile = with_ping(PROFILE, progres_referral__protection_concerns={
        "Disability": "disabled", "Child at risk": "child_neglect"})
    result = ping.map_ping_referral(rows, KEYS, profile, TODAY)
    assert result.mapped is not None
    assert result.mapped.case["language"] == ["language2", "language6"]
    assert result.mapped.case["protection_concerns"] == ["child_neglect", "disabled"]


def test_missing_fields_are_named_by_their_ping_alias() -> None:
    [missing, _] = rows_of("referral_detail_refused.json")
    result = ping.map_ping_referral([missing], KEYS, PROFILE, TODAY)
    assert not result.ok
    assert result.error == MappingError(
        "missing_fields", "required fields are missing",
        ("progres_individual.individuals.progres_familyname",))
    update = ping.referral_failed_update(result.keys, result.error, profile=PROFILE, today=TODAY)
    assert fields_of(update) == {
        "progres_lpinterventionid": LP1, "progres_businessunit": UNIT,
        "progres_primerotransferstatus": "125080001",
        "progres_primerotransferstatusdate": "2026-02-01"}
    assert update.comment is not None
    assert update.comment.startswith("Intervention referral is missing fields")
    assert update.comment.endswith(
        "Missing fields: progres_individual.individuals.progres_familyname")


def test_service_type_not_accepted() -> None:
    [_, other_type] = rows_of("referral_detail_refused.json")
    result = ping.map_ping_referral([other_type], KEYS, PROFILE, TODAY)
    assert result.error is not None
    assert (result.error.kind, result.error.fields) == (
        "service_type", ("progres_interventiontype2.interventiontype.progres_description",))


@pytest.mark.parametrize(
    ("change", "kind", "fields"),
    [
        ({"progres_individual.individuals.progres_sex": 125089999}, "invalid_data",
         ("progres_individual.individuals.progres_sex",)),
        ({"progres_individual.individuals.progres_sex": "female"}, "invalid_data",
         ("progres_individual.individuals.progres_sex",)),
        ({"progres_individual.individuals.progres_givenname": ["x"]}, "invalid_data",
         ("progres_individual.individuals.progres_givenname",)),
        ({"progres_language.progres_languagecodeidname": ["Nuer"]}, "invalid_data",
         ("progres_language.progres_languagecodeidname",)),
        ({"progres_individual.individuals.progres_dateofbirth": "2999-01-01"}, "invalid_data",
         ("progres_individual.individuals.progres_dateofbirth",)),
    ],
)
def test_bad_values_are_typed_errors(
    change: dict[str, Any], kind: str, fields: tuple[str, ...]
) -> None:
    rows = [{**row, **change} for row in rows_of("referral_detail.json")]
    result = ping.map_ping_referral(rows, KEYS, PROFILE, TODAY)
    assert result.error is not None
    assert (result.error.kind, result.error.fields) == (kind, fields)


def test_no_rows_or_several_interventions() -> None:
    empty = ping.map_ping_referral([], KEYS, PROFILE, TODAY)
    assert empty.error is not None and empty.error.kind == "unreadable"
    both = ping.map_ping_referral(rows_of("referral_detail_refused.json"), KEYS, PROFILE, TODAY)
    assert both.error == MappingError("invalid_data", "the detail rows hold several interventions",
                                      ("progres_interventionnumber",))


def test_received_update_acknowledges_with_the_case_id() -> None:
    update = ping.referral_received_update(KEYS, case_id="case-1", profile=PROFILE, today=TODAY)
    assert update.as_item("ledger-9") == {
        "ExternalId": "ledger-9",
        "Fields": [
            {"Name": "progres_lpinterventionid", "Value": LP1},
            {"Name": "progres_businessunit", "Value": UNIT},
            {"Name": "progres_primerotransferstatus", "Value": "125080002"},
            {"Name": "progres_primerotransferstatusdate", "Value": "2026-02-01"},
            {"Name": "progres_primeroid", "Value": "case-1"},
        ],
    }
    without = ping.referral_received_update(KEYS, case_id=None, profile=PROFILE, today=TODAY)
    assert without.value("progres_primeroid") is None


def test_primero_refusal_is_written_with_its_own_reason() -> None:
    update = ping.referral_failed_update(KEYS, None, profile=PROFILE, today=TODAY,
                                         reason_kind="primero_refused")
    assert update.comment == PROFILE.progres_referral.failure_reasons["primero_refused"]
    assert update.as_item("l")["Attachments"] == [{"Comment": update.comment}]


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ({"progres_lpinterventionid": LP1, "progres_businessunit": UNIT,
          "progres_interventionnumber": "N-1"}, (None, True)),
        ({"progres_lpinterventionid": LP1, "progres_businessunit": UNIT,
          "progres_primerotransferstatus": 125080000}, (125080000, True)),
        ({"progres_lpinterventionid": LP1, "progres_businessunit": UNIT,
          "progres_primerotransferstatus": "125080002"}, (125080002, False)),
    ],
)
def test_pending_rows(row: dict[str, Any], expected: tuple[int | None, bool]) -> None:
    pending = ping.read_pending_intervention(row, PROFILE)
    assert isinstance(pending, ping.PendingIntervention)
    assert (pending.transfer_status, pending.ready) == expected
    assert pending.keys.lp_intervention_id == LP1


def test_pending_rows_that_cannot_be_acknowledged() -> None:
    assert ping.read_pending_intervention({"progres_businessunit": UNIT}, PROFILE) == (
        MappingError("missing_fields", "required fields are missing",
                     ("progres_lpinterventionid",)))
    wrong = ping.read_pending_intervention(
        {"progres_lpinterventionid": LP1, "progres_businessunit": UNIT,
         "progres_primerotransferstatus": "ready"}, PROFILE)
    assert isinstance(wrong, MappingError)
    assert wrong.fields == ("progres_primerotransferstatus",)
    assert isinstance(ping.read_pending_intervention("row", PROFILE), MappingError)


def test_sample_pending_list() -> None:
    read = [ping.read_pending_intervention(r, PROFILE) for r in rows_of("referrals_pending.json")]
    assert all(isinstance(r, ping.PendingIntervention) and r.ready for r in read)


def test_keys_packed_by_the_reference() -> None:
    assert ping.keys_from_packed_number(f"000-26-PRTITV-0000001,{LP1},{UNIT}") == (
        ping.InterventionKeys(LP1, UNIT, "000-26-PRTITV-0000001"))
    for value in ("000-26-PRTITV-0000001", "a,b", "a,,c", None, 5):
        assert ping.keys_from_packed_number(value) is None


def test_a_profile_without_ping_is_a_configuration_error() -> None:
    data = PROFILE.model_dump()
    data["ping"] = None
    bare = Profile.model_validate(data)
    with pytest.raises(ConfigurationError, match="no ping section"):
        ping.map_ping_referral([], KEYS, bare, TODAY)


def test_schema_lists_exactly_the_fields_flow1_reads() -> None:
    """Every field the DTP flow-1 mapping reads can be aliased, and nothing else."""
    from primero_progres.mapping import progres_referral as flow1

    read = {getattr(flow1, name) for name in dir(flow1) if name.startswith("F_")
            and isinstance(getattr(flow1, name), str)}
    read |= set(flow1.F_LOCATIONS) | {"progres_businessunit"}
    read -= {flow1.F_LANGUAGE}  # read through the ping language alias, one per row
    assert set(PROGRES_REFERRAL_FIELDS) == read


# ------------------------------------------------------------------ flow 2


@pytest.fixture
def decided_case(sample: Any) -> dict[str, Any]:
    case = sample("flow2_primeroReferraltoUNHCR.json")
    row = {**case["services_section"][0], "service_referral": "external_referral"}
    accepted = {**row, "unique_id": "svc-a", "progres_interventionnumber": "N-A",
                "unhcr_referral_status": "accepted"}
    rejected = {**row, "unique_id": "svc-r", "progres_interventionnumber": "N-R",
                "unhcr_referral_status": "rejected",
                "unhcr_referral_rejection_reason": "Not the right service"}
    plain = {**row, "unique_id": "svc-d", "progres_interventionnumber": "N-D",
             "unhcr_referral_status": "rejected"}
    return {**case, "services_section": [accepted, rejected, plain]}


def test_primero_decisions_become_transfer_statuses(decided_case: dict[str, Any]) -> None:
    updates = [ping.decision_update(d, KEYS, profile=PROFILE, today=TODAY)
               for d in qualifying_decisions(decided_case, PROFILE)]
    assert all(isinstance(u, ping.FieldUpdate) for u in updates)
    accepted, rejected, plain = updates
    assert isinstance(accepted, ping.FieldUpdate)
    assert fields_of(accepted) == {
        "progres_lpinterventionid": LP1, "progres_businessunit": UNIT,
        "progres_primerotransferstatus": "125080003",
        "progres_primerotransferstatusdate": "2026-02-01",
        "progres_primeroid": "234bbac3-7278-430a-98b5-1abc460671ec",
        "progres_primerocaseworker": "primero_cp"}
    assert accepted.comment == "Referral acknowledged by PRIMERO"
    assert isinstance(rejected, ping.FieldUpdate) and isinstance(plain, ping.FieldUpdate)
    assert rejected.value("progres_primerotransferstatus") == "125080004"
    assert rejected.comment == "Referral rejected by PRIMERO: Not the right service"
    assert plain.comment == "Referral rejected by PRIMERO"


def test_an_unknown_primero_status_is_never_accepted() -> None:
    decision = DecisionResult("c", "r", "s", "N-1", "maybe", True,
                              {"primero_user": "u", "closure_reason": "x"}, None)
    assert ping.decision_update(decision, KEYS, profile=PROFILE, today=TODAY) == MappingError(
        "unknown_code", "code not in the profile's table", ("unhcr_referral_status",))
    broken = DecisionResult(None, None, None, "N-1", "accepted", False, None,
                            MappingError("missing_fields", "m", ("case_id",)))
    assert ping.decision_update(broken, KEYS, profile=PROFILE, today=TODAY) == broken.error


# ------------------------------------------------------------------ flow 3


@pytest.fixture
def unhcr_case(sample: Any) -> dict[str, Any]:
    case: dict[str, Any] = sample("flow2_primeroReferraltoUNHCR.json")
    case["referrals"] = [{"id": "ref-1", "service_record_id": case["services_section"][0][
        "unique_id"], "created_at": "2026-01-30T10:11:12.000Z"}]
    return case


def create(case: dict[str, Any], users: dict[str, Any] | None = None,
           profile: Profile = PROFILE) -> ping.PingReferralCreate:
    [result] = ping.referral_create_items(case, case["referrals"], users or {}, profile)
    return result


def test_referral_create_fields(unhcr_case: dict[str, Any]) -> None:
    user = {"user_name": "primero_cp", "position": "Case Worker", "email": "cw@example.org"}
    result = create(unhcr_case, {"primero_cp": user})
    assert result.ok and result.update is not None
    assert (result.case_id, result.referral_id, result.org_referral_id) == (
        "234bbac3-7278-430a-98b5-1abc460671ec", "ref-1", "66299d30-7d59-40aa-a4fc-289669d0e16a")
    item = result.update.as_item()
    assert item["ExternalId"] == "234bbac3-7278-430a-98b5-1abc460671ec"
    assert item["ExternalGUID"] == "c48bd8ca-b290-4bca-9be9-4fb0f9e7b59a"
    assert "Attachments" not in item
    assert fields_of(result.update) == {
        "progres_externalguid": "c48bd8ca-b290-4bca-9be9-4fb0f9e7b59a",
        "progres_externalid": "234bbac3-7278-430a-98b5-1abc460671ec",
        "progres_businessunit": "577ccdf6-86de-e811-80d8-001dd8b71fe3",
        "progres_organizationfrom": "c00582a6-d8f6-f011-8406-6045bd8ea5fb",
        "progres_orgreferredby": "Primero CP",
        "progres_orgposition": "Case Worker",
        "progres_orgemail": "cw@example.org",
        "progres_orgphonenumber": "0000000000",
        "progres_orgreferralid": "66299d30-7d59-40aa-a4fc-289669d0e16a",
        "progres_referraldate": "2026-01-30",
        "progres_requestedservice": "3408e901-0406-e611-80d9-00155d34051a",
        "progres_otherrequestedservices": "PSS service",
        "progres_spneedcategory": "a1c5b4fb-8f76-e611-80c9-00155d340529",
        "progres_reasonforreferral": (
            "Referral is needed to provide family tracing and reunification"),
        "progres_pocfirstname": "Elias",
        "progres_pocmiddlename": "Ala",
        "progres_poclastname": "Merrick",
        "progres_pocdateofbirth": "2008-01-01",
        "progres_pocsex": "125080001",
        "progres_pocphonenumber": "446598451512",
        "progres_pocaddress": "98 Block A, Adams Street",
        "progres_pocotheridnumber": "A1B2C3D4E5",
        "progres_unhcrid": "A1B2C3D4E5",
        "progres_offlineid": "234bbac3-7278-430a-98b5-1abc460671ec",
    }


@pytest.mark.parametrize(
    ("change", "kind", "fields"),
    [
        ({"sex": "Unknown"}, "unknown_code", ("sex",)),
        ({"service_type": "wash"}, "unknown_code", ("services_section.service_type",)),
        ({"case_id": None}, "missing_fields", ("case_id",)),
        ({"name_first": 12}, "invalid_data", ("name_first",)),
        ({"date_of_birth": "not a date"}, "invalid_data", ("date_of_birth",)),
        ({"created_at": None}, "missing_fields", ("referral.created_at",)),
    ],
)
def test_referral_create_refusals(
    unhcr_case: dict[str, Any], change: dict[str, Any], kind: str, fields: tuple[str, ...]
) -> None:
    case = copy.deepcopy(unhcr_case)
    for key, value in change.items():
        if key == "service_type":
            case["services_section"][0][key] = value
        elif key == "created_at":
            case["referrals"][0][key] = value
        else:
            case[key] = value
    result = create(case)
    assert not result.ok and result.error is not None
    assert (result.error.kind, result.error.fields) == (kind, fields)


def test_unhcr_id_falls_back_and_unsent_services_give_nothing(
    unhcr_case: dict[str, Any]
) -> None:
    case = {**unhcr_case, "unhcr_individual_no": None, "unhcr_id_no": "G-1", "sex": None,
            "protection_concerns": ["not_mapped"]}
    update = create(case).update
    assert update is not None
    assert (update.value("progres_unhcrid"), update.value("progres_pocsex"),
            update.value("progres_spneedcategory")) == ("G-1", None, None)
    assert ping.referral_create_items(unhcr_case, [], {}, PROFILE) == []


# ------------------------------------------------------------------ flow 4


def test_accepted_and_rejected_decisions() -> None:
    accepted = ping.read_ping_decision(rows_of("decision_detail_accepted.json"), PROFILE)
    assert isinstance(accepted, ping.PingDecision)
    assert accepted.referral_id == "ffffffff-0000-4000-8000-000000000002"
    assert (accepted.decision.status, accepted.decision.rejected_reason) == ("accepted", None)
    assert accepted.decision.case_id == "c7f3e1a2-0000-4000-8000-000000000001"
    assert accepted.decision.service_key == "5a1b2c3d-0000-4000-8000-000000000001"
    rejected = ping.read_ping_decision(rows_of("decision_detail_rejected.json"), PROFILE)
    assert isinstance(rejected, ping.PingDecision)
    assert rejected.decision.status == "rejected"
    assert rejected.decision.rejected_reason == (
        "Individual Not Found — No record under this registration number.")


def test_the_decision_finds_its_primero_referral_by_the_full_service_id() -> None:
    read = ping.read_ping_decision(rows_of("decision_detail_accepted.json"), PROFILE)
    assert isinstance(read, ping.PingDecision)
    referrals = [
        {"id": "r-other", "service_record_id": "5a1b2c3d-0000-4000-8000-000000000009"},
        {"id": "r-1", "service_record_id": "5a1b2c3d-0000-4000-8000-000000000001"},
    ]
    assert select_referral(referrals, read.decision.service_key)["id"] == "r-1"


def rejected_row(**changes: Any) -> dict[str, Any]:
    row = dict(rows_of("decision_detail_rejected.json")[0])
    for key, value in changes.items():
        if value is None:
            row.pop(key, None)
        else:
            row[key] = value
    return row


@pytest.mark.parametrize("code", ["²", "١٢٥٠٨٠٠٠٠", "125080000²"])
def test_a_code_of_non_ascii_digits_is_a_wrong_type_not_a_crash(code: str) -> None:
    read = ping.read_ping_decision([rejected_row(progres_reviewdecision=code)], PROFILE)
    assert isinstance(read, MappingError)
    assert (read.kind, read.fields) == ("invalid_data", ("progres_reviewdecision",))


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"progres_interoperabiltyreferralrejectionreasonname": None,
          "progres_interoperabilityreferralrejectionreasonname": "Not applicable"},
         "Not applicable — No record under this registration number."),
        ({"progres_interoperabiltyreferralrejectionreasonname": None,
          "progres_interoperabiltyreferralrejectionreason": 125080001,
          "progres_interoperabilityreferralrejectionomment": None,
          "progres_interoperabilityreferralrejectioncomment": "Other id"},
         "Individual Not Match UNHCR ID — Other id"),
        ({"progres_interoperabilityreferralrejectionomment": None}, "Individual Not Found"),
        ({"progres_interoperabiltyreferralrejectionreasonname": None,
          "progres_interoperabiltyreferralrejectionreason": None}, (
            "No record under this registration number.")),
    ],
)
def test_rejection_reason_spellings(changes: dict[str, Any], reason: str) -> None:
    read = ping.read_ping_decision([rejected_row(**changes)], PROFILE)
    assert isinstance(read, ping.PingDecision)
    assert read.decision.rejected_reason == reason


@pytest.mark.parametrize(
    ("changes", "kind", "fields"),
    [
        ({"progres_interoperabilityreferralstatus": 125080000}, "invalid_data",
         ("progres_interoperabilityreferralstatus",)),
        ({"progres_interoperabilityreferralstatus": 125080003}, "invalid_data",
         ("progres_interoperabilityreferralstatus",)),
        ({"progres_interoperabilityreferralstatus": 125089999}, "unknown_code",
         ("progres_interoperabilityreferralstatus",)),
        ({"progres_interoperabilityreferralstatus": "rejected"}, "invalid_data",
         ("progres_interoperabilityreferralstatus",)),
        ({"progres_reviewdecision": 125080000}, "invalid_data",
         ("progres_interoperabilityreferralstatus", "progres_reviewdecision")),
        ({"progres_reviewdecision": 125080007}, "unknown_code", ("progres_reviewdecision",)),
        ({"progres_offlineid": None}, "missing_fields", ("progres_offlineid",)),
        ({"progres_orgreferralid": 7}, "invalid_data", ("progres_orgreferralid",)),
    ],
)
def test_decisions_that_are_not_decisions(
    changes: dict[str, Any], kind: str, fields: tuple[str, ...]
) -> None:
    read = ping.read_ping_decision([rejected_row(**changes)], PROFILE)
    assert isinstance(read, MappingError)
    assert (read.kind, read.fields) == (kind, fields)


def test_decision_detail_without_rows_or_with_two_referrals() -> None:
    assert ping.read_ping_decision([], PROFILE) == MappingError(
        "unreadable", "the detail query returned no rows", ())
    two = rows_of("decision_detail_accepted.json") + rows_of("decision_detail_rejected.json")
    read = ping.read_ping_decision(two, PROFILE)
    assert isinstance(read, MappingError) and read.kind == "invalid_data"


def test_decisions_list() -> None:
    listed = [ping.read_listed_referral(r, PROFILE) for r in rows_of("decisions_list.json")]
    assert [(r.status, r.actionable) for r in listed if isinstance(r, ping.ListedReferral)] == [
        ("new", False), ("accepted", True), ("rejected", True), ("synced", False)]
    unknown = ping.read_listed_referral({"progres_interoperabilityreferralid": "r",
                                         "progres_interoperabilityreferralstatus": 1}, PROFILE)
    assert isinstance(unknown, ping.ListedReferral)
    assert (unknown.status, unknown.actionable) == (None, False)
    assert ping.read_listed_referral({"progres_interoperabilityreferralstatus": 1}, PROFILE) == (
        MappingError("missing_fields", "required fields are missing",
                     ("progres_interoperabilityreferralid",)))


def test_synced_update() -> None:
    update = ping.referral_synced_update("ref-1", PROFILE)
    assert update.as_item("ledger-3") == {
        "ExternalId": "ledger-3",
        "Fields": [
            {"Name": "progres_interoperabilityreferralid", "Value": "ref-1"},
            {"Name": "progres_interoperabilityreferralstatus", "Value": "125080003"},
            {"Name": "progres_comments", "Value": "Referral decision synced with PRIMERO"},
        ],
    }


# ------------------------------------------------------------------ properties

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
codes = st.one_of(st.none(), st.integers(125079990, 125080010), st.text(max_size=9),
                  st.booleans(), st.floats(allow_nan=False))


@SETTINGS
@given(status=codes, review=codes)
def test_only_an_accepting_status_ever_accepts(status: Any, review: Any) -> None:
    row = rejected_row(progres_interoperabilityreferralstatus=status,
                       progres_reviewdecision=review)
    for key, value in (("progres_interoperabilityreferralstatus", status),
                       ("progres_reviewdecision", review)):
        if value is None:
            row.pop(key, None)
    read = ping.read_ping_decision([row], PROFILE)
    if isinstance(read, ping.PingDecision) and read.decision.status == "accepted":
        assert status in (125080001, "125080001")
        assert review in (None, 125080000, "125080000")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                  max_size=3),
    max_leaves=8,
)


@SETTINGS
@given(changes=st.dictionaries(
    st.sampled_from(sorted({*PROFILE.ping_tables().progres_referral.fields.values(),
                            "progres_language.progres_languagecodeidname",
                            "progres_specificneed.progres_spncategory2name"})),
    json_values, max_size=6))
def test_any_row_values_give_a_case_or_a_typed_error(changes: dict[str, Any]) -> None:
    rows = [{**row, **changes} for row in rows_of("referral_detail.json")]
    result = ping.map_ping_referral(rows, KEYS, PROFILE, TODAY)
    assert (result.mapped is None) != (result.error is None)
    if result.error is not None:
        update = ping.referral_failed_update(result.keys, result.error, profile=PROFILE,
                                             today=TODAY)
        assert update.value("progres_primerotransferstatus") == "125080001"


def test_every_profile_field_alias_is_a_flow1_field() -> None:
    assert set(PROFILE.ping_tables().progres_referral.fields) <= set(PROGRES_REFERRAL_FIELDS)


def test_the_ping_section_survives_a_json_round_trip() -> None:
    """Option-set codes as keys are integers in YAML and strings once dumped to JSON."""
    again = Profile.model_validate(json.loads(PROFILE.model_dump_json()))
    assert again == PROFILE
    assert again.ping_tables().progres_decision.review_decisions == {
        125080000: "accepted", 125080001: "rejected"}
