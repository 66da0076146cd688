"""``map ping-*`` and ``profile check --gateway ping``: output shapes, exit codes, no tracebacks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cli_helpers import run
from primero_progres.profiles import check_profile
from primero_progres.profiles.loader import built_in_path

PING_DATA = Path(__file__).resolve().parents[1] / "data" / "ping"
GAMBELLA_TEXT = built_in_path("gambella").read_text(encoding="utf-8")
PING_SECTION_START = GAMBELLA_TEXT.index("\n# Only for PRIMERO_PROGRES_UNHCR_GATEWAY=ping")
LP1 = "aaaaaaaa-0000-4000-8000-000000000001"
UNIT = "cccccccc-0000-4000-8000-000000000001"


def fields(item: dict[str, Any]) -> dict[str, str]:
    return {f["Name"]: f["Value"] for f in item["Fields"]}


@pytest.fixture
def dtp_only_profile(tmp_path: Path) -> Path:
    path = tmp_path / "dtp-only.yaml"
    path.write_text(GAMBELLA_TEXT[:PING_SECTION_START] + "\n", encoding="utf-8")
    return path


def test_ping_referral_sample() -> None:
    code, document, _ = run("map", "ping-referral", str(PING_DATA / "referral_detail.json"),
                            "--today", "2026-02-01")
    assert code == 0
    assert document["flow"] == "ping-referral"
    [result] = document["results"]
    assert set(result) == {"progres_interventionnumber", "lp_intervention_id", "ok", "case",
                           "update"}
    assert (result["progres_interventionnumber"], result["lp_intervention_id"]) == (
        "000-26-PRTITV-0000001", LP1)
    assert result["case"]["language"] == ["language2", "language1"]
    assert result["case"]["age"] == 9  # born 2016-03-01
    assert result["update"]["ExternalId"] == "dry-run"
    assert fields(result["update"]) == {
        "progres_lpinterventionid": LP1, "progres_businessunit": UNIT,
        "progres_primerotransferstatus": "125080002",
        "progres_primerotransferstatusdate": "2026-02-01"}


def test_ping_referral_refusals_exit_2_with_their_write_back() -> None:
    code, document, _ = run("map", "ping-referral",
                            str(PING_DATA / "referral_detail_refused.json"))
    assert code == 2
    first, second = document["results"]
    assert (first["ok"], first["error"]["kind"]) == (False, "missing_fields")
    assert fields(first["update"])["progres_primerotransferstatus"] == "125080001"
    assert first["update"]["Attachments"][0]["Comment"].endswith(
        "Missing fields: progres_individual.individuals.progres_familyname")
    assert second["error"]["kind"] == "service_type"


def test_no_data_maps_to_nothing() -> None:
    code, document, _ = run("map", "ping-referral", str(PING_DATA / "no_data.json"))
    assert (code, document["results"]) == (0, [])


def test_ping_decision_samples() -> None:
    code, document, _ = run("map", "ping-decision",
                            str(PING_DATA / "decision_detail_rejected.json"))
    assert code == 0
    [result] = document["results"]
    assert result["patch"]["status"] == "rejected"
    assert result["patch"]["rejected_reason"] == (
        "Individual Not Found — No record under this registration number.")
    assert result["service_key"] == "5a1b2c3d-0000-4000-8000-000000000002"
    assert fields(result["update"]) == {
        "progres_interoperabilityreferralid": "ffffffff-0000-4000-8000-000000000003",
        "progres_interoperabilityreferralstatus": "125080003",
        "progres_comments": "Referral decision synced with PRIMERO"}


def test_ping_decision_on_a_list_without_decisions_exits_2() -> None:
    code, document, _ = run("map", "ping-decision", str(PING_DATA / "decisions_list.json"))
    assert code == 2
    assert {r["error"]["kind"] for r in document["results"]} == {"missing_fields"}


def test_ping_primero_case(samples_dir: Path, tmp_path: Path) -> None:
    case_file = str(samples_dir / "flow2_primeroReferraltoUNHCR.json")
    code, document, _ = run("map", "ping-primero-case", case_file, "--today", "2026-02-01")
    assert code == 0
    [result] = document["results"]
    assert set(result) == {"case_id", "service_unique_id", "ok", "item"}
    item = fields(result["item"])
    assert item["progres_referraldate"] == "2026-02-01"
    assert item["progres_orgreferralid"] == result["service_unique_id"]
    assert item["progres_orgposition"] == "case worker"  # the embedded user
    users = tmp_path / "users.json"
    users.write_text(json.dumps([{"user_name": "primero_cp", "position": "Supervisor"}]))
    _, document, _ = run("map", "ping-primero-case", case_file, "--users", str(users))
    assert fields(document["results"][0]["item"])["progres_orgposition"] == "Supervisor"


@pytest.fixture
def decided_case_file(samples_dir: Path, tmp_path: Path) -> Path:
    case = json.loads((samples_dir / "flow2_primeroReferraltoUNHCR.json").read_text())
    row = case["services_section"][0]
    row.update(service_referral="external_referral", unhcr_referral_status="accepted",
               progres_interventionnumber=f"000-26-PRTITV-0000001,{LP1},{UNIT}")
    path = tmp_path / "decided.json"
    path.write_text(json.dumps(case))
    return path


def test_ping_primero_decision_with_keys_from_options_or_the_packed_number(
    decided_case_file: Path,
) -> None:
    code, document, _ = run("map", "ping-primero-decision", str(decided_case_file),
                            "--today", "2026-02-01")
    assert code == 0
    [result] = document["results"]
    assert fields(result["update"]) == {
        "progres_lpinterventionid": LP1, "progres_businessunit": UNIT,
        "progres_primerotransferstatus": "125080003",
        "progres_primerotransferstatusdate": "2026-02-01",
        "progres_primeroid": "234bbac3-7278-430a-98b5-1abc460671ec",
        "progres_primerocaseworker": "primero_cp"}
    assert result["update"]["Attachments"] == [{"Comment": "Referral acknowledged by PRIMERO"}]
    code, document, _ = run("map", "ping-primero-decision", str(decided_case_file),
                            "--lp-intervention-id", "LP-X", "--business-unit", "BU-X")
    assert fields(document["results"][0]["update"])["progres_lpinterventionid"] == "LP-X"
    code, _, out = run("map", "ping-primero-decision", str(decided_case_file),
                       "--lp-intervention-id", "LP-X")
    assert code == 2
    assert "Traceback" not in out


def test_ping_kinds_need_a_ping_section(dtp_only_profile: Path) -> None:
    code, document, _ = run("map", "ping-referral", str(PING_DATA / "referral_detail.json"),
                            "--profile", str(dtp_only_profile))
    assert code == 2
    assert document["error"] == {"kind": "profile", "message": "the profile has no ping section",
                                 "fields": ["ping"]}


@pytest.mark.parametrize("kind", ["ping-referral", "ping-decision"])
@pytest.mark.parametrize(
    "content", ['{"Data": {"progres_interventionnumber": "N"}}', '{"x": 1}', '["row"]', "{"]
)
def test_files_that_are_not_rows_are_unreadable(kind: str, content: str, tmp_path: Path) -> None:
    path = tmp_path / "input.json"
    path.write_text(content)
    code, document, out = run("map", kind, str(path))
    assert code == 2
    assert document["error"]["kind"] == "unreadable"
    assert "Traceback" not in out


def test_the_malformed_check_status_string_is_not_rows() -> None:
    code, document, _ = run("map", "ping-referral", str(PING_DATA / "check_status_malformed.json"))
    assert (code, document["error"]["kind"]) == (2, "unreadable")


# ------------------------------------------------------------------ profile check


def test_profile_check_for_the_ping_gateway(dtp_only_profile: Path) -> None:
    assert run("profile", "check", "--gateway", "ping")[0] == 0
    assert run("profile", "check", str(dtp_only_profile))[0] == 0
    code, _, out = run("profile", "check", str(dtp_only_profile), "--gateway", "ping")
    assert code == 2
    assert "ping: required with the PING gateway" in out


@pytest.mark.parametrize(
    ("old", "new", "path", "message"),
    [
        ("      125080001: rejected\n    rejected_reason_separator",
         "      125080001: maybe\n    rejected_reason_separator",
         "ping.progres_decision.review_decisions", "'accepted' or 'rejected' only"),
        ("    rejected: 125080004\n", "    rejected: 125080003\n",
         "ping.transfer_status", "two statuses share a code"),
        ("      user.title: systemuser.title\n", "      user.titel: systemuser.title\n",
         "ping.progres_referral.fields", "not a flow-1 field: user.titel"),
        ("      individuals.progres_sex: progres_individual.individuals.progres_sex\n", "",
         "", "no alias for the required field(s): individuals.progres_sex"),
        ("      female: 125080000\n", "      female: '125080000'\n",
         "ping.primero_referral.sex.female", "integer"),
    ],
)
def test_ping_section_problems_are_reported_by_path(
    tmp_path: Path, old: str, new: str, path: str, message: str
) -> None:
    assert GAMBELLA_TEXT.count(old) == 1, old
    variant = tmp_path / "variant.yaml"
    variant.write_text(GAMBELLA_TEXT.replace(old, new), encoding="utf-8")
    problems = check_profile(variant)
    assert len(problems) == 1, problems
    assert problems[0].path == path
    assert message in problems[0].message
