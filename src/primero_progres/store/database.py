"""What every part of the store shares: the engine, the key ring and the clock."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from .crypto import Cipher

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Database:
    engine: AsyncEngine
    cipher: Cipher
    clock: Clock = utcnow

    def now(self) -> datetime:
        return self.clock()
