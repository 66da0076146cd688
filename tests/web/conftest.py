"""A migrated Store on the database under test, with a throwaway key."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from primero_progres.store import Cipher, Store


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[Store]:
    opened = await Store.open(db_url, encryption=Cipher.throwaway())
    await opened.upgrade()
    try:
        yield opened
    finally:
        await opened.close()
