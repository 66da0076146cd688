"""Fixtures starting the Primero simulator on a loopback port (``serve_in_thread``)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from primero_progres.sim.common import serve_in_thread
from primero_progres.sim.primero import create_app

PRIMERO_SIM_USER = "primero"
PRIMERO_SIM_PASSWORD = "primero-secret"


@dataclass
class PrimeroSim:
    """A running simulator: its URL and, for assertions, its in-process state."""

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
    app = create_app(users={PRIMERO_SIM_USER: PRIMERO_SIM_PASSWORD})
    # a hang fault leaves a request open: do not wait for it at shutdown
    with serve_in_thread(app, timeout_graceful_shutdown=1) as server:
        yield PrimeroSim(url=server.url, app=app)


@pytest.fixture
def primero_sim(primero_sim_server: PrimeroSim) -> PrimeroSim:
    """The shared simulator, emptied for this test."""
    primero_sim_server.reset()
    return primero_sim_server
