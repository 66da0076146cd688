"""No console page, fragment or header carries personal data, over DTP and over PING.

The four flows run with marker values in every personal field, on happy and failing paths
(tests/e2e/test_personal_data.py and test_ping_personal_data.py play them); then an admin's
browser session crawls every console page, fragment and asset, follows every link it finds
(traces of every ID, filters, pages), and no marker may appear in any response body or
header.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from urllib.parse import urljoin, urlparse

from console_helpers import Console

from e2e import test_ping_personal_data as over_ping
from e2e.test_personal_data import FAMILY, GIVEN, P_GIVEN, P_NOTES, _play_every_flow, leaks
from primero_progres.stack import Stack
from primero_progres.store import Flow

PAGES = [
    "/admin/",
    "/admin/fragments/overview",
    "/admin/dead-letters",
    "/admin/trace",
    "/admin/messages",
    "/admin/polls",
    "/admin/audit",
    "/admin/settings",
    "/admin/accounts",
    "/admin/login",
    "/admin/static/console.css",
    "/admin/static/htmx-2.0.11.min.js",
]
LINK = re.compile(r"""href="([^"]+)\"""")
MAX_REQUESTS = 400


async def test_no_marker_in_any_console_page_fragment_or_header(console: Console) -> None:
    stack = console.stack
    seen = await _play_every_flow(stack)
    assert {GIVEN, FAMILY} <= set(leaks(json.dumps(seen["cases"]))), "the markers crossed"
    assert {P_GIVEN, P_NOTES} <= set(leaks(json.dumps(seen["dtp"])))

    await crawl(console, stack, leaks)


async def test_no_marker_in_any_console_page_fragment_or_header_over_ping(
    ping_console: Console,
) -> None:
    stack = ping_console.stack
    await over_ping._play_every_flow(stack)
    cases = json.dumps(await stack.primero_cases())
    assert {over_ping.GIVEN, over_ping.FAMILY} <= set(over_ping.leaks(cases)), "they crossed"
    referrals = json.dumps(await stack.ping_referrals())
    assert {over_ping.P_GIVEN, over_ping.P_NOTES} <= set(over_ping.leaks(referrals))
    await crawl(ping_console, stack, over_ping.leaks)


async def crawl(console: Console, stack: Stack, leaks: Callable[[str | bytes], list[str]]) -> None:
    """Every page, fragment, trace and link an admin can reach: no marker in any of them."""
    ids: set[str] = set()
    for exchange in await stack.store.ledger.list(limit=1000):
        ids.update(
            v
            for v in (
                exchange.progres_interventionnumber,
                exchange.case_id,
                exchange.case_record_id,
                exchange.org_referral_id,
            )
            if v
        )
    ids.update(m.id for m in await stack.store.messages.list(limit=1000))
    ids.update(j.id for j in await stack.store.jobs.list(limit=1000))
    assert len(ids) > 10
    queue = [*PAGES, *(f"/admin/trace?q={i}" for i in sorted(ids))]
    for flow in Flow:
        queue += [f"/admin/dead-letters?flow={flow}", f"/admin/audit?event=job.dead&flow={flow}"]

    page = await console.page("amina")
    base = stack.bridge_url
    visited: set[str] = set()
    checked = 0
    while queue and checked < MAX_REQUESTS:
        path = queue.pop(0)
        if path in visited:
            continue
        visited.add(path)
        answer = await page.request.get(urljoin(base, path), max_redirects=0)
        checked += 1
        assert answer.status == (303 if path == "/admin/login" else 200), (path, answer.status)
        body = await answer.body()
        assert leaks(body) == [], path
        assert leaks(json.dumps(answer.headers)) == [], path
        if answer.headers.get("content-type", "").startswith("text/html"):
            for href in LINK.findall(body.decode()):
                target = urlparse(href.replace("&amp;", "&"))
                if target.path.startswith("/admin") and not target.path.endswith("/logout"):
                    queue.append(target.path + (f"?{target.query}" if target.query else ""))
    assert checked > 50, checked
    assert not queue or checked == MAX_REQUESTS
