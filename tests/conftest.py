"""Fixtures shared by every part of the suite.

``db_url`` runs a test once on SQLite and once on PostgreSQL. PostgreSQL is
not optional: CI starts it, and a test that cannot reach it fails rather than
being skipped.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import structlog

from primero_progres.sim.common import reserved_port, serve_in_thread
from primero_progres.sim.primero import create_app as create_primero_app
from primero_progres.store import Cipher, Store

REFERENCE_SAMPLES = Path(__file__).resolve().parent / "data" / "reference"
POSTGRES_ADMIN_URL = os.environ.get(
    "PRIMERO_PROGRES_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def _samples_dir() -> Path:
    override = os.environ.get("PRIMERO_PROGRES_SAMPLES")
    return Path(override) if override else REFERENCE_SAMPLES


@pytest.fixture(autouse=True)
def _restore_stdlib_logging() -> Iterator[None]:
    """A test that calls ``configure_logging`` (DEBUG, a stderr handler) or sets a library's
    logger to DEBUG leaves the loggers as it found them, so later tests do not log at DEBUG;
    and structlog's configuration too (``structlog.reset_defaults()`` would leave the next
    tests printing to stdout, not through the package's redacting stderr printer)."""
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    levels = {name: logger.level for name, logger in _loggers()}
    structlog_config = structlog.get_config()
    yield
    structlog.configure(**structlog_config)
    root.setLevel(level)
    for handler in [h for h in root.handlers if h not in handlers]:
        root.removeHandler(handler)
    for name, logger in _loggers():
        before = levels.get(name, logging.NOTSET)
        if logger.level != before:
            logger.setLevel(before)


def _loggers() -> list[tuple[str, logging.Logger]]:
    return [
        (name, logger)
        for name, logger in list(logging.root.manager.loggerDict.items())
        if isinstance(logger, logging.Logger)
    ]


@pytest.fixture
def refused_url() -> Iterator[str]:
    """``http://127.0.0.1:<port>`` where connections are refused for the whole test: the port
    is held, so no server of a parallel test can start on it meanwhile."""
    with reserved_port() as port:
        yield f"http://127.0.0.1:{port}"


@pytest.fixture
def child_port() -> Iterator[int]:
    """A port for a child process the test tells to listen on it, held for the whole test so
    that no parallel test takes it before the child binds it (``reserved_port``)."""
    with reserved_port() as port:
        yield port


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    """Sample payloads from the reference deployment (test data, not real people)."""
    path = _samples_dir()
    assert path.is_dir(), f"reference samples not found at {path}"
    return path


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'bridge.db'}"


def _plain_dsn(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    import psycopg

    name = f"pp_test_{uuid.uuid4().hex[:12]}"
    admin = _plain_dsn(POSTGRES_ADMIN_URL)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = POSTGRES_ADMIN_URL.rpartition("/")
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest) -> str:
    """The same test on both supported stores."""
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_url")
    return request.getfixturevalue("postgres_url")


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Any]:
    """The bridge and both simulated peers over real loopback HTTP, on SQLite."""
    from primero_progres.stack import Stack

    async with Stack(tmp_path) as running:
        yield running


@pytest.fixture
async def ping_stack(tmp_path: Path) -> AsyncIterator[Any]:
    """The bridge, the Primero simulator and the PING simulator (``UNHCR_GATEWAY=ping``)."""
    from primero_progres.stack import Stack

    async with Stack(tmp_path, gateway="ping") as running:
        yield running


@pytest.fixture
async def pg_stack(tmp_path: Path, postgres_url: str) -> AsyncIterator[Any]:
    """The same stack with the ledger on PostgreSQL."""
    from primero_progres.stack import Stack

    async with Stack(tmp_path, database_url=postgres_url) as running:
        yield running


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[Store]:
    """A migrated store on the database under test, with a throwaway key."""
    opened = await Store.open(db_url, encryption=Cipher.throwaway())
    await opened.upgrade()
    try:
        yield opened
    finally:
        await opened.close()


PRIMERO_SIM_USER = "primero"
PRIMERO_SIM_PASSWORD = "primero-secret"


@dataclass
class PrimeroSim:
    """A running Primero simulator: its URL and, for assertions, its in-process state."""

    url: str
    app: Any
    user: str = PRIMERO_SIM_USER
    password: str = PRIMERO_SIM_PASSWORD

    @property
    def state(self) -> Any:
        return self.app.state.primero

    def reset(self) -> None:
        self.app.state.primero.reset()
        self.app.state.auth.reset()
        self.app.state.faults.clear()
        self.app.state.primero.add_user({"user_name": PRIMERO_SIM_USER, "full_name": "API user"})


@pytest.fixture(scope="session")
def primero_sim_server() -> Iterator[PrimeroSim]:
    app = create_primero_app(users={PRIMERO_SIM_USER: PRIMERO_SIM_PASSWORD})
    with serve_in_thread(app) as server:
        yield PrimeroSim(url=server.url, app=app)


@pytest.fixture
def primero_sim(primero_sim_server: PrimeroSim) -> PrimeroSim:
    """The shared Primero simulator, emptied for this test."""
    primero_sim_server.reset()
    return primero_sim_server


@pytest.fixture(scope="session")
def ping_sim_server() -> Iterator[Any]:
    from ping_helpers import running_ping_sim

    with running_ping_sim() as sim:
        yield sim


@pytest.fixture
def ping_sim(ping_sim_server: Any) -> Any:
    """The shared PING simulator (``ping_helpers.PingSim``), emptied for this test."""
    ping_sim_server.reset()
    return ping_sim_server
