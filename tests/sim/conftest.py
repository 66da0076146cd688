"""Clients of the shared Primero simulator (``primero_sim`` in tests/conftest.py)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import httpx2 as httpx
import pytest
import structlog


@pytest.fixture
def api(primero_sim: Any) -> Iterator[httpx.Client]:
    """``/api/v2`` as the simulator's API user."""
    with httpx.Client(
        base_url=primero_sim.url + "/api/v2", auth=(primero_sim.user, primero_sim.password)
    ) as client:
        yield client


@pytest.fixture
def sim(primero_sim: Any) -> Iterator[httpx.Client]:
    """The simulator's own ``/_sim`` controls."""
    with httpx.Client(base_url=primero_sim.url + "/_sim") as client:
        yield client


@pytest.fixture
def every_level() -> None:
    """structlog lets DEBUG lines through (the suite may have configured INFO), so a test can
    tell the level a line was logged at (the autouse ``_restore_stdlib_logging`` puts
    structlog's configuration back)."""
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG))
