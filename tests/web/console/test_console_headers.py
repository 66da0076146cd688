"""The console's security headers: on every console answer, never overriding a page's own, and
nowhere else (the inbox, health and metrics answers go without them)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx2 as httpx
import pytest

from primero_progres.settings import Settings
from primero_progres.store import Store
from primero_progres.web import create_app
from primero_progres.web.console.routes import SECURITY_HEADERS


@pytest.fixture
async def client(store: Store) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(Settings.for_tests(inbox_tokens="a-token"), store)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bridge") as http:
        yield http


@pytest.mark.parametrize("path", ["/admin", "/admin/", "/admin/login"])
async def test_console_answers_carry_the_security_headers(
    client: httpx.AsyncClient, path: str
) -> None:
    answer = await client.get(path)
    for name, value in SECURITY_HEADERS.items():
        assert answer.headers.get_list(name) == [value], (path, name)


async def test_a_page_keeps_a_header_it_set_itself(client: httpx.AsyncClient) -> None:
    answer = await client.get("/admin/static/console.css")
    assert answer.status_code == 200
    assert answer.headers.get_list("cache-control") == ["max-age=3600"]
    assert answer.headers["x-frame-options"] == "DENY"


@pytest.mark.parametrize("path", ["/healthz", "/metrics", "/api/v1/dtp/messages", "/administer"])
async def test_other_answers_go_without_them(client: httpx.AsyncClient, path: str) -> None:
    answer = await client.get(path)
    assert not set(map(str.lower, SECURITY_HEADERS)) & set(answer.headers.keys())
