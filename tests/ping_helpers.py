"""The PING simulator and a client of it, for the tests of both (real HTTP on loopback)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx2 as httpx

from primero_progres.peers.ping import PingClient, ShippingProcesses
from primero_progres.sim.common import FaultRule, serve_in_thread
from primero_progres.sim.ping import DEFAULT_SCOPE, DEFAULT_TOKEN_PATH, create_app
from primero_progres.sim.ping_state import DEFAULT_SHIPPING_PROCESSES, PingState, Seed

KEY = "ping-subscription-key"
CLIENT_ID = "ping-client-id"
USER = "bridge@sim-tenant.onmicrosoft.com"
PASSWORD = "ping-password"
PARTNER = "PNR-1363"
INTEROP = "INT-1436"
SHIPPING = ShippingProcesses(**DEFAULT_SHIPPING_PROCESSES)


class FakeClock:
    """A monotonic clock the test moves by hand (the client's and the simulator's)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class PingSim:
    """A running PING simulator: its URL and, for assertions, its in-process state."""

    url: str
    app: Any

    @property
    def state(self) -> PingState:
        return self.app.state.ping  # type: ignore[no-any-return]

    def reset(self) -> None:
        self.state.reset()
        self.state.clock = time.monotonic
        self.app.state.faults.clear()

    def faults(self, *rules: dict[str, Any]) -> None:
        self.app.state.faults.set([FaultRule(**rule) for rule in rules])

    def seed(self, seed: Seed) -> dict[str, list[str]]:
        return self.state.seed(seed)

    def sim(self, method: str, path: str, **kwargs: Any) -> Any:
        """Call a ``/_sim/`` route over HTTP, as a test or an operator would."""
        response = httpx.request(method, f"{self.url}/_sim/{path}", timeout=10, **kwargs)
        response.raise_for_status()
        return response.json()


@contextmanager
def running_ping_sim(**options: Any) -> Iterator[PingSim]:
    options.setdefault("subscription_key", KEY)
    options.setdefault("client_id", CLIENT_ID)
    options.setdefault("username", USER)
    options.setdefault("password", PASSWORD)
    options.setdefault("fault_seed", 5)
    app = create_app(**options)
    with serve_in_thread(app, timeout_graceful_shutdown=1) as server:
        yield PingSim(url=server.url, app=app)


def ping_client(url: str, **overrides: Any) -> PingClient:
    """A client of the simulator at ``url``; any argument can be overridden."""
    arguments: dict[str, Any] = {
        "token_url": url,
        "token_path": DEFAULT_TOKEN_PATH,
        "client_id": CLIENT_ID,
        "username": USER,
        "password": PASSWORD,
        "scope": DEFAULT_SCOPE,
        "subscription_key": KEY,
        "partner_id": PARTNER,
        "interop_id": INTEROP,
        "shipping_processes": SHIPPING,
        "timeout": 10.0,
    }
    arguments.update(overrides)
    return PingClient(url, **arguments)
