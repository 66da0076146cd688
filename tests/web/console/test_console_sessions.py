"""Session cookie attributes and the idle timeout, over plain HTTP (no browser needed)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx2
import time_machine

from console_client import PASSWORD, log_in
from primero_progres.operators import dummy_hash, hash_password
from primero_progres.stack import Stack
from primero_progres.store import Role


def _attributes(answer: httpx2.Response, name: str) -> tuple[str, set[str]]:
    cookie = next(c for c in answer.headers.get_list("set-cookie") if c.startswith(name + "="))
    value, *attributes = cookie.split(";")
    return value.split("=", 1)[1], {part.strip().lower() for part in attributes}


async def test_the_cookies_are_secure_behind_an_https_public_url(tmp_path: Path) -> None:
    """A browser sends them back over HTTPS only (this plain-HTTP client, by hand)."""
    async with Stack(tmp_path, public_url="https://bridge.example.org") as stack:
        await stack.store.accounts.add("amina", Role.ADMIN, hash_password(PASSWORD), account=None)
        async with httpx2.AsyncClient(base_url=stack.bridge_url) as client:
            page = await client.get("/admin/login")
            token, attributes = _attributes(page, "pp_console_login")
            assert {"httponly", "secure", "samesite=strict", "path=/admin"} <= attributes
            match = re.search(r'name="csrf" value="([^"]+)"', page.text)
            assert match and match.group(1) == token
            answer = await client.post(
                "/admin/login",
                data={"csrf": token, "name": "amina", "password": PASSWORD},
                headers={"Cookie": f"pp_console_login={token}"},
            )
    assert answer.status_code == 303
    _session, attributes = _attributes(answer, "pp_console")
    assert {"httponly", "secure", "samesite=strict", "path=/admin"} <= attributes


async def test_a_session_ends_after_the_idle_timeout(tmp_path: Path) -> None:
    async with Stack(tmp_path, admin_session_idle_minutes=1) as stack:
        await stack.store.accounts.add("amina", Role.ADMIN, hash_password(PASSWORD), account=None)
        async with httpx2.AsyncClient(base_url=stack.bridge_url) as client:
            assert (await log_in(client, "amina")).status_code == 303
            assert (await client.get("/admin/")).status_code == 200
            # the clock moves past the timeout rather than the test waiting it out: with a
            # timeout of a second, a loaded machine can take longer than that between two requests
            with time_machine.travel(datetime.now(UTC) + timedelta(minutes=1, seconds=5)):
                answer = await client.get("/admin/")
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/admin/login")


async def test_the_console_makes_the_dummy_hash_as_it_is_built(tmp_path: Path) -> None:
    """The first login to an unknown account takes as long as the next ones: the hash it is
    verified against exists before the console answers (``operators.dummy_hash``)."""
    dummy_hash.cache_clear()
    async with Stack(tmp_path):
        assert dummy_hash.cache_info().currsize == 1
