"""The ``map`` and ``profile`` commands: output shapes, exit codes, no tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from datetime import date
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from cli_helpers import run, runner
from primero_progres.cli import app
from primero_progres.cli.mapping import Kind
from primero_progres.cli.mapping_dry_run import run_map
from primero_progres.profiles.loader import built_in_path

INTAKE = "progresv4_primero_intake@cpims-gambella.primero.org"
TODAY = date(2026, 11, 29)


def test_flow1_sample_with_rejected_service_types(samples_dir: Path) -> None:
    code, document, _ = run("map", "progres-referral",
                            str(samples_dir / "progresReferral__flow1-1.json"))
    assert code == 2
    assert document["flow"] == "progres-referral"
    assert len(document["results"]) == 2
    for result in document["results"]:
        assert set(result) == {"progres_interventionnumber", "ok", "error", "feedback"}
        assert result["progres_interventionnumber"] == "DAD-21-PRTITV-0000141"
        assert result["ok"] is False
        assert result["error"] == {"kind": "service_type", "message": "service type not accepted",
                                   "fields": ["interventiontype.progres_description"]}
        assert result["feedback"]["status"] == "Delivery Fail"
        assert result["feedback"]["request_type"] == "Feedback"
        assert result["feedback"]["primero_user"] == INTAKE
        assert result["feedback"]["closure_reason"].startswith("Intervention type value shared")


def test_flow1_valid_sample_with_fixed_date(samples_dir: Path) -> None:
    code, document, _ = run("map", "progres-referral",
                            str(samples_dir / "flow1__progresReferralToUNICEF-v2.json"),
                            "--today", "2026-01-01", "--profile", "gambella")
    assert code == 0
    [result] = document["results"]
    assert set(result) == {"progres_interventionnumber", "ok", "case"}
    assert result["ok"] is True
    assert result["progres_interventionnumber"] == "803-23-PRTITV-1000095"
    assert result["case"]["age"] == 6  # born 2020-01-01
    assert result["case"]["owned_by"] == INTAKE
    assert result["case"]["services_section"][0]["service_type"] == (
        "focuses_non_specialized_mhpss_care")


@pytest.mark.parametrize("kind", ["progres-referral", "primero-case", "primero-decision",
                                  "progres-decision"])
@pytest.mark.parametrize("name", ["getPrimeroCases.json", "flow1__progresReferralConfirmation.json",
                                  "no-such-file.json"])
def test_unreadable_files(samples_dir: Path, kind: str, name: str) -> None:
    code, document, out = run("map", kind, str(samples_dir / name))
    assert code == 2
    assert document["error"]["kind"] == "unreadable"
    assert "Traceback" not in out


def test_primero_case_uses_the_embedded_user_or_users_file(samples_dir, tmp_path) -> None:
    case_file = str(samples_dir / "flow2_primeroReferraltoUNHCR.json")
    code, document, _ = run("map", "primero-case", case_file)
    assert code == 0
    [result] = document["results"]
    assert set(result) == {"case_id", "service_unique_id", "ok", "message"}
    assert result["service_unique_id"] == "66299d30-7d59-40aa-a4fc-289669d0e16a"
    assert result["message"]["position"] == "case worker"
    assert result["message"]["id"] == "234bbac3-7278-430a-98b5-1abc460671ec#289669d0e16a"
    users = tmp_path / "users.json"
    users.write_text(json.dumps([{"user_name": "primero_cp", "position": "Supervisor"}]))
    code, document, _ = run("map", "primero-case", case_file, "--users", str(users))
    message = document["results"][0]["message"]
    assert (message["position"], message["email"]) == ("Supervisor", "notavailable@primero.org")


def test_primero_case_lists_and_wrappers(samples_dir: Path) -> None:
    cases = str(samples_dir / "primero_outboundReferral.json")
    code, document, _ = run("map", "primero-case", cases)
    assert code == 0
    assert [r["service_unique_id"] for r in document["results"]] == [
        "6dd4bca7-5d10-4662-ade1-20fe99bef602", "38ed6166-e1bd-4b16-8163-2ca26439cca9"]
    code, document, _ = run("map", "primero-case",
                            str(samples_dir / "primero_outboundReferral_e7a9d84.json"))
    assert document["results"][0]["message"]["language"] == "Other, French"


def test_primero_case_error_result(samples_dir: Path, tmp_path: Path) -> None:
    case = json.loads((samples_dir / "flow2_primeroReferraltoUNHCR.json").read_text())
    case["language"] = ["klingon"]
    path = tmp_path / "case.json"
    path.write_text(json.dumps({"data": [case]}))
    code, document, _ = run("map", "primero-case", str(path))
    assert code == 2
    [result] = document["results"]
    assert result["ok"] is False
    assert result["error"]["kind"] == "unknown_code"


def test_primero_decision(samples_dir: Path, tmp_path: Path) -> None:
    sample = samples_dir / "flow2_primeroReferraltoUNHCR.json"
    code, document, _ = run("map", "primero-decision", str(sample))
    assert (code, document) == (0, {"flow": "primero-decision", "results": []})
    case = json.loads(sample.read_text())
    case["services_section"][0].update(service_referral="external_referral",
                                       unhcr_referral_status="accepted")
    path = tmp_path / "case.json"
    path.write_text(json.dumps(case))
    code, document, _ = run("map", "primero-decision", str(path))
    assert code == 0
    assert document["results"] == [{
        "case_id": "234bbac3-7278-430a-98b5-1abc460671ec",
        "progres_interventionnumber": "A1B2C3",
        "ok": True,
        "message": {
            "case_id": "234bbac3-7278-430a-98b5-1abc460671ec",
            "primero_user": "primero_cp",
            "progres_interventionnumber": "A1B2C3",
            "status": "acknowledged",
            "closure_reason": "No reason specified.",
            "request_type": "ReceiveDecisionOutgoingReferral",
        },
    }]


def test_progres_decision(samples_dir: Path) -> None:
    code, document, _ = run("map", "progres-decision",
                            str(samples_dir / "progresDecision__flow2-3.json"))
    assert code == 0
    assert document["results"] == [{
        "org_referral_id": "f59e880e-d58f-4b68-ba6e-e0616a49aefd#eb097be51d89",
        "ok": True,
        "case_id": "f59e880e-d58f-4b68-ba6e-e0616a49aefd",
        "service_key": "eb097be51d89",
        "patch": {"status": "accepted"},
    }]
    code, document, _ = run("map", "progres-decision",
                            str(samples_dir / "progres_referralDecisionToPrimero.json"))
    assert code == 2
    [result] = document["results"]
    assert (result["ok"], result["org_referral_id"]) == (False, "string")
    assert result["error"]["kind"] == "invalid_data"
    code, document, _ = run("map", "progres-decision",
                            str(samples_dir / "flow2_progresDecision.json"))
    assert code == 2
    assert document["error"]["fields"] == ["request_type"]


def test_bad_profile_and_bad_date(samples_dir: Path, tmp_path: Path) -> None:
    sample = str(samples_dir / "flow1__PrimeroOutgoingReferral.json")
    broken = tmp_path / "p.yaml"
    broken.write_text(built_in_path("gambella").read_text().replace("  module_id:", "  modul_id:"))
    code, document, _ = run("map", "progres-referral", sample, "--profile", str(broken))
    assert code == 2
    assert document["error"]["kind"] == "profile"
    assert "primero.modul_id" in document["error"]["fields"]
    result = runner.invoke(app, ["map", "progres-referral", sample, "--today", "29/11/2026"])
    assert result.exit_code == 2
    assert "Traceback" not in result.output


def test_profile_check(tmp_path: Path) -> None:
    code, _, out = run("profile", "check")
    assert (code, out.strip()) == (0, "profile gambella: ok")
    code, _, out = run("profile", "check", str(built_in_path("gambella")))
    assert code == 0
    broken = tmp_path / "p.yaml"
    broken.write_text(built_in_path("gambella").read_text().replace("  module_id:", "  modul_id:"))
    code, _, out = run("profile", "check", str(broken))
    assert code == 2
    assert "primero.modul_id (line 9): unknown key" in out
    code, schema, _ = run("profile", "schema")
    assert code == 0 and schema["title"] == "Profile"


def test_console_script_prints_the_shape(samples_dir: Path) -> None:
    """The command of the issue's 'Done when', as a real process."""
    completed = subprocess.run(
        [sys.executable, "-m", "primero_progres.cli", "map", "progres-referral",
         str(samples_dir / "progresReferral__flow1-1.json")],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert completed.returncode == 2
    assert completed.stderr == ""
    document = json.loads(completed.stdout)
    assert [r["ok"] for r in document["results"]] == [False, False]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["data", "interventions", "request_type", "services_section", "_json",
                         "case_id", "owned_by", "progres_orgreferralid", "x"]),
        inner, max_size=3),
    max_leaves=10,
)


@settings(max_examples=60, deadline=None)
@example(Kind.progres_decision, {"data": [], "interventions": [{}]})
@given(st.sampled_from(list(Kind)), json_values | st.binary(max_size=20))
def test_any_file_gives_a_json_document_and_exit_0_or_2(kind, content) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "input.json"
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(json.dumps(content), encoding="utf-8")
        document, code = run_map(kind, path, profile="gambella", today=TODAY, users=None)
    json.dumps(document)
    assert code in (0, 2)
    if "error" in document:
        assert code == 2 and document["error"]["kind"]
    else:
        assert document["flow"] == kind.value
        assert code == (0 if all(r["ok"] for r in document["results"]) else 2)
