"""The operator console over plain HTTP, for tests that read its pages without a browser: an
account, and a client logged in as it (the login form's CSRF token, then the session cookie)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx2

from primero_progres.operators import hash_password
from primero_progres.stack import Stack
from primero_progres.store import Role

PASSWORD = "a long pass phrase 2026"


async def log_in(
    client: httpx2.AsyncClient, name: str, password: str = PASSWORD
) -> httpx2.Response:
    page = await client.get("/admin/login")
    match = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert match
    return await client.post(
        "/admin/login", data={"csrf": match.group(1), "name": name, "password": password}
    )


@asynccontextmanager
async def console_session(
    stack: Stack, name: str = "vera", role: Role = Role.VIEWER
) -> AsyncIterator[httpx2.AsyncClient]:
    """A client of ``stack``'s bridge logged in to the console as ``name`` (made at first)."""
    if await stack.store.accounts.get(name) is None:
        await stack.store.accounts.add(name, role, hash_password(PASSWORD), account=None)
    async with httpx2.AsyncClient(base_url=stack.bridge_url) as client:
        answer = await log_in(client, name)
        assert answer.status_code == 303, answer.text
        yield client
