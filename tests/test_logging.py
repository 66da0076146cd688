"""The log redactor: only IDs, codes and statuses are ever written."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from primero_progres.logging import REDACTED, configure_logging, get_logger, redact_event

MARKER = "ZZLOG-MARKER-5e1d"


def test_allow_listed_ids_and_statuses_pass_everything_else_is_redacted() -> None:
    event = {
        "event": "intervention_delivered",
        "case_id": "c-1",
        "progres_interventionnumber": "N-1",
        "status_code": 200,
        "name_first": MARKER,
        "case": {"name_first": MARKER},
        "case_ids": ["a", "b"],
    }
    assert redact_event(None, "info", event) == {
        "event": "intervention_delivered",
        "case_id": "c-1",
        "progres_interventionnumber": "N-1",
        "status_code": 200,
        "name_first": REDACTED,
        "case": REDACTED,
        "case_ids": ["a", "b"],
    }


def test_a_safe_key_holding_a_structure_is_redacted() -> None:
    assert redact_event(None, "info", {"case_id": {"name": MARKER}}) == {"case_id": REDACTED}


def test_an_exception_is_logged_by_type_only(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(level="INFO", json=True)
    try:
        raise ValueError(f"bad value {MARKER}")
    except ValueError:
        get_logger("test").exception("step_failed", job_id="j-1")
    line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert line["error"] == "ValueError"
    assert line["job_id"] == "j-1"
    assert MARKER not in json.dumps(line)


def test_redaction_holds_without_any_explicit_configuration() -> None:
    code = (
        "from primero_progres.logging import get_logger;"
        f"get_logger('x').info('hello', name_last='{MARKER}', case_id='c-9')"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    output = result.stdout + result.stderr
    assert "c-9" in output
    assert MARKER not in output
