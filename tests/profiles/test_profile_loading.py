"""Profiles: the built-in gambella tables (from MAPPING.md) and the loader's problem reports."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pydantic
import pytest
from ruamel.yaml import YAML

from primero_progres.errors import ConfigurationError
from primero_progres.profiles import (
    Profile,
    ProfileError,
    ProfileProblem,
    check_profile,
    load_profile,
    profile_json_schema,
)
from primero_progres.profiles.loader import built_in_path

GAMBELLA_TEXT = built_in_path("gambella").read_text(encoding="utf-8")


def variant(tmp_path: Path, old: str, new: str) -> Path:
    assert old in GAMBELLA_TEXT
    path = tmp_path / "variant.yaml"
    path.write_text(GAMBELLA_TEXT.replace(old, new, 1), encoding="utf-8")
    return path


def line_of(path: Path, fragment: str) -> int:
    lines = path.read_text(encoding="utf-8").splitlines()
    return next(i for i, line in enumerate(lines, 1) if fragment in line)


def test_gambella_is_valid() -> None:
    assert check_profile() == []
    assert check_profile("gambella") == []
    assert check_profile(built_in_path("gambella")) == []
    assert load_profile() is load_profile("gambella")


def test_gambella_settings() -> None:
    p = load_profile()
    assert p.name == "gambella"
    assert p.primero.module_id == "primeromodule-cp"
    assert p.focal_point.default_user == "progresv4_primero_intake@cpims-gambella.primero.org"
    assert p.focal_point_user_for({}) == p.focal_point.default_user
    assert p.unhcr_caseworkers == ["unhcr_cw@cpims-gambella.primero.org"]
    assert (p.implementing_agency.unicef, p.implementing_agency.unhcr) == ("UNICEF", "UNHCR")
    assert p.default_contact.model_dump() == {
        "position": "CPIMS+ Administrator",
        "email": "notavailable@primero.org",
        "full_name": "CPIMS+",
        "phone": "0000000000",
    }
    assert p.primero.case_status == "open"
    assert p.progres_referral.default_request_agency == "UNHCR"
    assert p.progres_referral.service_row.model_dump() == {
        "service_request_external": True,
        "service_response_type": "service_provision",
        "service_referral": "external_referral",
        "unhcr_referral_status": "pending",
    }
    assert set(p.progres_referral.failure_reasons) == {
        "invalid_data", "missing_fields", "service_type", "primero_refused", "id_too_long"}
    assert p.primero_decision.statuses == {"accepted": "acknowledged", "rejected": "rejected"}
    assert p.primero_decision.default_closure_reason == "No reason specified."
    assert p.primero_referral.default_referral_notes == "Primero referral"
    assert p.primero_referral.no_language == "Other"
    assert p.primero_referral.sex == {"unknown_4b34795": "unknown", "other_b25f252": "other"}


def test_gambella_flow1_tables() -> None:
    t = load_profile().progres_referral
    assert t.service_types == {
        "Alternative Care": "alternative_care",
        "BID": "focuses_non_specialized_mhpss_care",
        "BIA": "focuses_non_specialized_mhpss_care",
        "Family Tracing and Reunification": "food",
    }
    assert t.sex == {"125080000": "female", "125080001": "male", "125080002": "other_b25f252",
                     "125080003": "unknown_4b34795"}
    dinka = ["Dinka, Northeastern", "Dinka, Northwestern; Alor", "Dinka, South Central",
             "Dinka, Southeastern", "Dinka, Southeastern;", "Dinka, Southwestern; Rek"]
    assert t.languages == {
        "Anyuak": "language1", "Acholi": "language10", "Amharic": "language5", "Bari": "language4",
        "Bembe": "language7", **dict.fromkeys(dinka, "language3"), "Nuer": "language2",
        "Somali": "language8", "Cutchi-swahili": "language1", "Swahili": "language1",
        "Swahili, Congo": "language1", "Zande": "language5",
    }
    assert t.other_language == "language6"


def test_gambella_flow3_and_flow4_tables() -> None:
    p = load_profile()
    assert p.primero_referral.service_types == {
        "alternative_care": "Alternative Care",
        "focuses_non_specialized_mhpss_care": "Child Protection Service",
        "food": "Family Reunification Service",
        "security_e_g_safe_shelter": "Safehouse Service",
        "education_formal": "Psychosocial Service",
        "non_formal_education": "Police/Other Service",
        "family_tracing_and_reunification": "Legal Assistance Service",
        "basic_psychosocial_support": "Livelihoods Service",
        "specialized_mhpss_services": "Family Mediation Service",
        "non_food_items": "Education Service",
        "cash_assistance": "NFI/Clothes/Shoes Service",
        "livelihoods": "Water/Sanitation Service",
        "medical": "Registration Service",
        "nutrition": "Food Service",
        "legal_support": "Adolescent and Youth Empowerment",
        "documentation": "Early Childhood Service",
        "services_for_children_with_disabilities": "Other Service",
        "sexual_and_reproductive_health": "Sexual and reproductive health",
        "shelter": "Shelter",
        "wash": "WASH",
        "durable_solution_in_coordination_with_unhcr":
            "Durable solution (in coordination with UNHCR)",
        "relocation": "Relocation",
        "other_please_specify": "Other",
    }
    assert p.primero_referral.languages == {
        "language1": "Anyuak", "language2": "Nuer", "language3": "Dinka", "language4": "Bari",
        "language5": "Amharic", "language6": "Other", "language7": "Bembe", "language8": "Somali",
        "language10": "Acholi", "murle_fce1c91": "Murle",
        "if_other_language__please_specify_335944b": "Other", "_amharic": "Amharic",
        "_arabic": "Arabic", "_boma": "Boma", "_didinga": "Didinga", "_english": "English",
        "_french": "French", "_karamojong": "Karamojong", "_kifulero": "Fuliiru, Kifulero",
        "_kikongo": "Kikongo", "_kinyabiyisha": "Kinyabwisha",
        "_kinyarwanda": "Rwanda, Kinyarwanda", "_kirundi": "Rundi, Kirundi",
        "_lingala": "Lingala", "_lokoya": "Lokoya", "_lopit": "Lopit", "_luo": "Luo",
        "_makonde": "Makonde", "_mashi": "Mashi", "_moro": "Moro", "_murle": "Murle",
        "_oromo": "Oromo", "_sign_language": "Sign Language", "_tira": "Tira",
        "_toposa": "Toposa", "_toro": "Toro",
    }
    assert p.progres_decision.decisions == {
        "125080000": "accepted", "125080001": "rejected", "accepted": "accepted",
        "rejected": "rejected"}
    assert p.progres_decision.rejection_reasons == {
        "125080000": "Individual Not Found", "125080001": "Individual Not Match UNHCR ID",
        "125080002": "Not applicable"}


def test_misspelled_key_is_named_with_its_line(tmp_path: Path) -> None:
    path = variant(tmp_path, "  module_id: primeromodule-cp", "  modul_id: primeromodule-cp")
    problems = check_profile(path)
    assert ProfileProblem("primero.modul_id", line_of(path, "modul_id"), "unknown key") in problems
    assert ProfileProblem("primero.module_id", line_of(path, "primero:"),
                          "required key missing") in problems
    with pytest.raises(ProfileError) as raised:
        load_profile(str(path))
    assert isinstance(raised.value, ConfigurationError)
    assert raised.value.problems == problems
    assert "primero.modul_id" in str(raised.value)


def test_duplicate_key(tmp_path: Path) -> None:
    path = variant(tmp_path, "    BIA: focuses_non_specialized_mhpss_care",
                   "    BID: focuses_non_specialized_mhpss_care")
    assert check_profile(path) == [
        ProfileProblem("progres_referral.service_types.BID", line_of(path, "    BID: focuses") + 1,
                       "duplicate key")
    ]


@pytest.mark.parametrize(
    ("old", "new", "where", "line_text", "hint"),
    [
        pytest.param(
            "service_request_external: true",
            "service_request_external: 'yes'",
            "progres_referral.service_row.service_request_external",
            "service_request_external",
            "boolean",
            id="wrong_type",
        ),
        pytest.param(
            '"125080001": male',
            "125080001: male",
            "progres_referral.sex.125080001",
            "125080001: male",
            "quote",
            id="unquoted_numeric_code",
        ),
    ],
)
def test_one_bad_value_is_named_with_its_line_and_a_hint(
    tmp_path: Path, old: str, new: str, where: str, line_text: str, hint: str
) -> None:
    """Type errors and unquoted numeric codes are reported the same way: path, line, hint."""
    path = variant(tmp_path, old, new)
    [problem] = check_profile(path)
    assert problem.path == where
    assert problem.line == line_of(path, line_text)
    assert hint in problem.message


#: Every Primero user name on the Gambella instance is <name>@cpims-gambella.primero.org, like
#: its focal point's (``progresv4_primero_intake@...``); production's UNHCR caseworker is
#: ``unhcr_cw@cpims-gambella.primero.org``, and a bare ``unhcr_cw`` matches nobody there.
GAMBELLA_USER_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]*@cpims-gambella\.primero\.org")


def test_every_gambella_user_name_has_the_instance_form() -> None:
    profile = load_profile("gambella")
    names = [
        profile.focal_point.default_user,
        *(route.user for route in profile.focal_point.routes),
        *profile.unhcr_caseworkers,
    ]
    # the commented route examples are copied by people adopting the profile: hold them too
    names += re.findall(r"^\s*#.*\buser:\s*(\S+)", GAMBELLA_TEXT, flags=re.MULTILINE)
    assert "unhcr_cw@cpims-gambella.primero.org" in profile.unhcr_caseworkers
    assert len(names) >= 4
    assert [n for n in names if not GAMBELLA_USER_NAME.fullmatch(n)] == []


def test_yaml_1_2_keeps_no_as_a_string(tmp_path: Path) -> None:
    path = variant(tmp_path, "    Nuer: language2", "    NO: language2")
    assert load_profile(path).progres_referral.languages["NO"] == "language2"


@pytest.mark.parametrize(
    ("old", "new", "where"),
    [
        ("  routes: []", "  routes:\n    - user: someone", "focal_point.routes.0"),
        ('    "125080001": rejected', '    "125080001": maybe', "progres_decision.decisions"),
        (
            "unhcr_caseworkers:\n  - unhcr_cw@cpims-gambella.primero.org",
            "unhcr_caseworkers: []",
            "unhcr_caseworkers",
        ),
        ("    primero_refused: >-", "    primero_refusedx: >-",
         "progres_referral.failure_reasons"),
    ],
)
def test_semantic_checks(tmp_path: Path, old: str, new: str, where: str) -> None:
    path = variant(tmp_path, old, new)
    assert [p.path for p in check_profile(path)] == [where]


def test_unreadable_sources(tmp_path: Path) -> None:
    assert check_profile("atlantis")[0].message.startswith("no such built-in profile")
    assert check_profile(tmp_path / "absent.yaml")[0].message.startswith("cannot read")
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [unclosed\n", encoding="utf-8")
    [problem] = check_profile(broken)
    assert problem.message.startswith("not valid YAML") and problem.line is not None
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("just text\n", encoding="utf-8")
    assert check_profile(scalar)[0].message == "a profile is a mapping of keys to values"
    with pytest.raises(ProfileError):
        load_profile("atlantis")


def test_profile_is_frozen_and_has_a_schema() -> None:
    profile = load_profile()
    with pytest.raises(pydantic.ValidationError):
        profile.name = "other"  # type: ignore[misc]
    schema = profile_json_schema()
    assert schema["additionalProperties"] is False
    assert "progres_referral" in schema["required"]
    assert Profile.model_validate(profile.model_dump()) == profile


def test_committed_json_schema_is_current_and_accepts_gambella() -> None:
    """profile.schema.json is regenerated with `primero-progres profile schema`."""
    committed_path = built_in_path("gambella").with_name("profile.schema.json")
    committed = json.loads(committed_path.read_text(encoding="utf-8"))
    assert committed == profile_json_schema()
    document = YAML(typ="safe").load(GAMBELLA_TEXT)
    jsonschema.validate(document, committed)
    document["primero"]["modul_id"] = "x"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(document, committed)
