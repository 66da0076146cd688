"""The operator console in a real browser: Debian's Chromium driven by Playwright, against the
bridge and both simulated peers on loopback (``primero_progres.stack.Stack``). The fixtures
are registered by conftest.py.

Never ``playwright install``: the browser is ``/usr/bin/chromium`` (the Makefile's
``chromium`` target and ``.ci/run`` install it). Screenshots of each page go to a temporary
directory, or to ``$PRIMERO_PROGRES_SCREENSHOTS`` (``make screenshots``: docs/console/).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, async_playwright

from console_client import PASSWORD
from primero_progres.operators import hash_password
from primero_progres.stack import Stack
from primero_progres.store import Role

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ACCOUNTS = {"amina": Role.ADMIN, "omar": Role.OPERATOR, "vera": Role.VIEWER}


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    assert os.access(CHROMIUM, os.X_OK), f"{CHROMIUM} is missing: run `make chromium`"
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True
        )
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    target = os.environ.get("PRIMERO_PROGRES_SCREENSHOTS")
    path = Path(target) if target else tmp_path / "screenshots"
    path.mkdir(parents=True, exist_ok=True)
    return path


@dataclass
class Console:
    """A running bridge with three accounts, and a browser to use its console."""

    stack: Stack
    browser: Browser
    shots: Path

    @property
    def url(self) -> str:
        return f"{self.stack.bridge_url}/admin"

    async def page(self, name: str | None = None) -> Page:
        """A fresh browser context (no cookies), logged in as ``name`` if given."""
        context = await self.browser.new_context(viewport={"width": 1400, "height": 900})
        page = await context.new_page()
        page.set_default_timeout(20_000)
        if name is not None:
            await self.log_in(page, name)
        return page

    async def log_in(self, page: Page, name: str, password: str = PASSWORD) -> None:
        await page.goto(f"{self.url}/login")
        await page.fill("input[name=name]", name)
        await page.fill("input[name=password]", password)
        await page.click("button[type=submit]")

    async def shot(self, page: Page, name: str) -> None:
        await page.screenshot(path=str(self.shots / f"{name}.png"), full_page=True)

    async def figures(self, page: Page) -> dict[str, dict[str, str]]:
        """The overview's last-7-days figures: flow -> figure -> text."""
        out: dict[str, dict[str, str]] = {}
        # the login's redirect may still be loading: ``all()`` does not wait
        await page.locator("table.figures tbody tr").first.wait_for()
        for row in await page.locator("table.figures tbody tr").all():
            flow = await row.get_attribute("data-flow")
            cells = row.locator("td[data-figure]")
            names = [await c.get_attribute("data-figure") for c in await cells.all()]
            texts = [(await c.inner_text()).strip() for c in await cells.all()]
            # today's four, then the week's four, then in flight
            week = dict(zip(names[4:8], texts[4:8], strict=True))
            week["in_flight"] = texts[8]
            assert flow is not None
            out[flow] = week
        return out


@pytest.fixture
async def console(tmp_path: Path, browser: Browser, shots: Path) -> AsyncIterator[Console]:
    async with Stack(tmp_path) as stack:
        for name, role in ACCOUNTS.items():
            await stack.store.accounts.add(name, role, hash_password(PASSWORD), account=None)
        yield Console(stack, browser, shots)


@pytest.fixture
async def ping_console(tmp_path: Path, browser: Browser, shots: Path) -> AsyncIterator[Console]:
    """The same, with ``UNHCR_GATEWAY=ping`` (the PING simulator instead of DTP)."""
    async with Stack(tmp_path, gateway="ping") as stack:
        for name, role in ACCOUNTS.items():
            await stack.store.accounts.add(name, role, hash_password(PASSWORD), account=None)
        yield Console(stack, browser, shots)


async def post_form(page: Page, path: str, form: dict[str, Any]) -> tuple[int, str]:
    """A form POST from the page's session (its cookies), as a hand-made request would be."""
    answer = await page.request.post(
        f"{page.url.split('/admin')[0]}{path}", form=form, max_redirects=0
    )
    return answer.status, await answer.text()
