"""Driving the simulated world from outside, over HTTP: the ``/_sim/`` controls of both
simulators, and plain requests such as a peer would make. The demo stack and the tests use it."""

from __future__ import annotations

from typing import Any

import httpx2 as httpx


class SimControl:
    """One HTTP client for the simulators' controls; closed with ``aclose``."""

    def __init__(self, *, timeout: float = 30.0) -> None:
        #: a plain client, for calls made the way a peer would make them
        self.http = httpx.AsyncClient(timeout=timeout)

    async def call(self, method: str, url: str, **kwargs: Any) -> Any:
        """A control call; its JSON answer (an error status raises)."""
        response = await self.http.request(method, url, **kwargs)
        response.raise_for_status()
        return response.json()

    async def aclose(self) -> None:
        await self.http.aclose()
