"""Running the ``primero-progres`` command in-process, for the CLI tests."""

from __future__ import annotations

import json
from typing import Any

from typer.testing import CliRunner

from primero_progres.cli import app

runner = CliRunner()


def run(*args: str) -> tuple[int, Any, str]:
    """Exit code, stdout parsed as JSON when it is JSON (else the text), and raw stdout."""
    result = runner.invoke(app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    try:
        document = json.loads(result.stdout)
    except ValueError:
        document = result.stdout
    return result.exit_code, document, result.stdout
