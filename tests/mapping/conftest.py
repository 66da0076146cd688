"""Fixtures of the mapping tests: the built-in profile and the reference samples."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from primero_progres.profiles import Profile, load_profile


@pytest.fixture(scope="session")
def gambella() -> Profile:
    return load_profile("gambella")


@pytest.fixture(scope="session")
def sample(samples_dir: Path) -> Callable[[str], Any]:
    def read(name: str) -> Any:
        return json.loads((samples_dir / name).read_text(encoding="utf-8"))

    return read
