"""The log redactor: only IDs, codes and statuses are ever written."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Iterator

import pytest

from primero_progres.logging import REDACTED, configure_logging, get_logger, redact_event
from primero_progres.store import Cipher, Store

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


@pytest.fixture
def debug_logging() -> Iterator[None]:
    """DEBUG in JSON for the test (the autouse ``_restore_stdlib_logging`` undoes it)."""
    configure_logging(level="DEBUG", json=True)
    yield


def _no_marker_in_records(records: list[logging.LogRecord]) -> None:
    for record in records:
        exc = record.exc_info[1] if record.exc_info else None
        assert MARKER not in repr((record.msg, record.args, record.exc_text, str(exc)))


@pytest.mark.usefixtures("debug_logging")
def test_library_records_keep_their_template_and_numbers_but_no_argument_text(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    # loggers named like the libraries', but of this test only: uvicorn's own are configured
    # (handlers, no propagation) by whichever server another test started
    lib = "zzlib"
    logging.getLogger(f"{lib}.aiosqlite").debug("executing %s", ("individual:" + MARKER,))
    logging.getLogger(f"{lib}.access").info(
        '%s - "%s %s HTTP/%s" %d', "127.0.0.1:5", "GET", f"/x?q={MARKER}", "1.1", 200
    )
    logging.getLogger(lib).debug("%(name)s took %(ms).1f ms", {"name": MARKER, "ms": 2.5})
    logging.getLogger(lib).info(f"value {MARKER} refused")
    logging.getLogger(f"{lib}.error").info("Application startup complete.")
    try:
        raise ValueError(f"bad value {MARKER}")
    except ValueError:
        logging.getLogger(f"{lib}.error").exception("Exception in ASGI application\n")

    lines = [json.loads(line) for line in capsys.readouterr().err.strip().splitlines()]
    lines = [line for line in lines if line.get("logger", "").startswith(lib)]
    assert MARKER not in json.dumps(lines)
    assert [(line["logger"], line["event"]) for line in lines] == [
        (f"{lib}.aiosqlite", f"executing {REDACTED}"),
        (f"{lib}.access", f'{REDACTED} - "{REDACTED} {REDACTED} HTTP/{REDACTED}" 200'),
        (lib, f"{REDACTED} took 2.5 ms"),
        (lib, REDACTED),
        (f"{lib}.error", "Application startup complete."),
        (f"{lib}.error", "Exception in ASGI application\n"),
    ]
    assert lines[-1]["error"] == "ValueError"
    _no_marker_in_records(caplog.records)
    assert MARKER not in caplog.text


@pytest.mark.usefixtures("debug_logging")
async def test_the_database_drivers_at_debug_log_no_sql_parameter(
    db_url: str, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """``sqlalchemy.engine`` and ``psycopg`` print every parameter at DEBUG: lease names,
    job keys, anything a statement carries."""
    caplog.set_level(logging.DEBUG)
    for name in ("sqlalchemy.engine", "sqlalchemy.pool", "psycopg"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    store = await Store.open(db_url, encryption=Cipher.throwaway())
    try:
        await store.upgrade()
        async with store.leases.hold(f"individual:{MARKER}", "w/0", ttl=30):
            await store.jobs.enqueue("toy.step", {"note": MARKER}, key=f"toy.step:{MARKER}")
    finally:
        await store.close()
        for name in ("sqlalchemy.engine", "sqlalchemy.pool", "psycopg"):
            logging.getLogger(name).setLevel(logging.NOTSET)
    out, err = capfd.readouterr()
    assert '"logger": "sqlalchemy.engine' in err, "the engine logged at DEBUG"
    assert MARKER not in out + err
    _no_marker_in_records(caplog.records)
