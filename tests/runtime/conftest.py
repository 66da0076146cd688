"""Fixtures shared by the worker and scheduler tests: a store on a clock the test moves."""

from __future__ import annotations

import pytest
from toy_handlers import FakeClock

from primero_progres.store import Cipher, Store


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def timed_store(db_url: str, clock: FakeClock):  # type: ignore[no-untyped-def]
    store = await Store.open(db_url, encryption=Cipher.throwaway(), clock=clock)
    await store.upgrade()
    yield store
    await store.close()
