"""``primero-progres --help`` loads only the command line: the store, its database libraries,
the web framework and the profile schema are imported by the commands that use them.

Behavioural, not timed (bench/startup.py prints the time): a fresh interpreter runs
``--help`` and lists what it imported.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from primero_progres.cli import mapping as cli_mapping
from primero_progres.cli import repair as cli_repair
from primero_progres.cli import store as cli_store
from primero_progres.profiles.loader import BUILT_IN
from primero_progres.store import Flow
from primero_progres.store.keys import DEFAULT_BATCH_SIZE

#: what a command that needs neither a database nor a server nor a profile must not load
#: (pydantic itself is not here: typer loads it for a sub-command's help)
HEAVY = ("sqlalchemy", "alembic", "fastapi", "starlette", "uvicorn", "pydantic_settings",
         "argon2", "apprise", "httpx2", "ruamel", "structlog")

PROBE = """
import json, sys
from primero_progres.cli import app
try:
    app({args!r})
except SystemExit:
    pass
print(json.dumps(sorted({{name.split(".")[0] for name in sys.modules}})), file=sys.stderr)
"""


def _loaded_by(*args: str) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(args=list(args))],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stderr.strip().splitlines()[-1]))


@pytest.mark.parametrize(
    "args",
    [["--help"], ["db", "--help"], ["map", "--help"], ["cursor", "--help"], ["keygen", "--help"],
     ["primero", "--help"]],
)
def test_help_loads_no_database_web_or_profile_library(args: list[str]) -> None:
    loaded = _loaded_by(*args)
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


def test_a_command_still_loads_what_it_uses() -> None:
    """The probe does see imports: ``keygen`` needs the store's crypto and loads it."""
    loaded = _loaded_by("keygen")
    assert "cryptography" in loaded


def test_the_constants_repeated_for_the_help_match_their_sources() -> None:
    assert [f.value for f in cli_repair.FlowName] == [f.value for f in Flow]
    assert cli_store.DEFAULT_BATCH_SIZE == DEFAULT_BATCH_SIZE
    assert cli_mapping.BUILT_IN == BUILT_IN


def test_a_command_that_logs_nobody_in_makes_no_argon2_hash() -> None:
    """``poll`` and ``repair`` sign their audit entries through ``operators``: importing it must
    not make the console's dummy login hash (64 MiB of Argon2 memory, most of a second)."""
    probe = (
        "import primero_progres.cli.service, primero_progres.operators as o;"
        "print(o.dummy_hash.cache_info().currsize)"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip() == "0"
