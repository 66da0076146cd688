"""What the peer clients share: one HTTP connection pool, closed by ``aclose`` or ``async with``."""

from __future__ import annotations

from types import TracebackType
from typing import Self

import httpx2 as httpx


class PooledClient:
    """Base of a peer client holding its ``httpx2.AsyncClient`` as ``_http``."""

    _http: httpx.AsyncClient

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()
