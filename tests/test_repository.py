"""The repository stands alone: a clone has everything its tests, docs and scripts use."""

from __future__ import annotations

import hashlib
import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SKIPPED_DIRS = {".git", ".venv", ".pytest_cache", ".hypothesis", ".ruff_cache", "__pycache__"}
#: SHA-256 of the GNU AGPL v3 text as gnu.org publishes it (agpl-3.0.txt, https URLs)
AGPL_3_SHA256 = "8486a10c4393cee1c25392769ddd3b2d6c242d6ec7928e1414efff7dfb2f07ef"


def _files() -> list[Path]:
    found = []
    for path in REPO.rglob("*"):
        relative = path.relative_to(REPO)
        if path.is_file() and not SKIPPED_DIRS.intersection(relative.parts):
            found.append(path)
    return found


def test_nothing_refers_to_the_sibling_shared_folder() -> None:
    sibling = "../" + "shared"  # spelt apart so this file does not match itself
    offenders = []
    for path in _files():
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        if sibling in text:
            offenders.append(str(path.relative_to(REPO)))
    assert offenders == []


def test_relative_links_in_the_documentation_resolve() -> None:
    broken = []
    for document in _documents():
        text = document.read_text(encoding="utf-8")
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
            if "://" in target or target.startswith("mailto:"):
                continue
            if not (document.parent / target).exists():
                broken.append(f"{document.relative_to(REPO)}: {target}")
    assert broken == []


def _documents() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def test_the_documentation_holds_no_note_left_for_the_team() -> None:
    """What the people who deploy the bridge read says what is, not what someone meant to
    write (a ``TODO(lead)`` once stood in adopt.md where the doctor step belonged)."""
    marker = re.compile(r"\b(TODO|FIXME|XXX)\b")
    notes = [
        f"{document.relative_to(REPO)}:{number}"
        for document in _documents()
        for number, line in enumerate(document.read_text(encoding="utf-8").splitlines(), 1)
        if marker.search(line)
    ]
    assert notes == []


def test_license_is_the_unmodified_agpl_3_and_matches_pyproject() -> None:
    text = (REPO / "LICENSE").read_bytes()
    assert hashlib.sha256(text).hexdigest() == AGPL_3_SHA256
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["license"] == {"text": "AGPL-3.0-or-later"}
