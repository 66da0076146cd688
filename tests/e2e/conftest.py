"""End-to-end fixtures: the bridge and both simulated peers over real loopback HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from primero_progres.stack import Stack


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    """A fresh stack on SQLite: Primero and DTP simulators plus the bridge (inbox, worker)."""
    async with Stack(tmp_path) as running:
        yield running


@pytest.fixture
async def pg_stack(tmp_path: Path, postgres_url: str) -> AsyncIterator[Stack]:
    """The same stack with the ledger on PostgreSQL."""
    async with Stack(tmp_path, database_url=postgres_url) as running:
        yield running
