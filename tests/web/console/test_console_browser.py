"""The operator console as an operator uses it: in Chromium, against the running bridge."""

from __future__ import annotations

import re
from datetime import timedelta

from console_helpers import PASSWORD, Console, post_form
from playwright.async_api import Page

from primero_progres import demo_data
from primero_progres.demo import REFERRED_CASE_ID, REFERRED_RECORD_ID, Timeline, play
from primero_progres.operators import LOGIN_REFUSED
from primero_progres.store import AuditEvent, Flow

FEEDBACK = "/ReceiveDecisionOutgoingReferral"
REFERRAL = "/ReceiveIncomingReferral"
NUMBER = "DEMO-26-PRTITV-0000001"
ACCEPTED_REJECTED = ("accepted", "rejected")


async def _dead_feedback(console: Console) -> str:
    """A flow-1 feedback DTP refuses for good (a revoked key): a dead letter; its job id."""
    stack = console.stack
    await stack.set_faults("dtp", [{"path": FEEDBACK, "status": 401}])
    await stack.progres_sends_referral(demo_data.referral_message())
    await stack.settle()
    [dead] = await stack.store.jobs.list(state="dead")
    assert dead.kind == "progres-referral.feedback"
    await stack.set_faults("dtp", [])
    return dead.id


async def test_login_wrong_password_lockout_and_logout(console: Console) -> None:
    page = await console.page()
    await page.goto(f"{console.url}/")
    assert "/admin/login" in page.url, "no session: to the login page"
    await console.shot(page, "login")

    await console.log_in(page, "omar", "not the password at all")
    wrong = await page.locator("p.error").inner_text()
    await console.log_in(page, "nobody-here", PASSWORD)
    unknown = await page.locator("p.error").inner_text()
    assert wrong == unknown == LOGIN_REFUSED

    for _ in range(4):
        await console.log_in(page, "omar", "not the password at all")
    await console.log_in(page, "omar", PASSWORD)
    assert "/admin/login" in page.url, "five failures lock the account, even for the password"
    assert await page.locator("p.error").inner_text() == LOGIN_REFUSED
    account = await console.stack.store.accounts.get("omar")
    assert account is not None and account.locked_until is not None
    lock = account.locked_until - console.stack.store.now()
    assert timedelta(minutes=14) < lock <= timedelta(minutes=15)
    events = [e.event for e in await console.stack.store.audit.list(account=None, limit=20)]
    assert AuditEvent.ACCOUNT_LOCKED.value in events

    await console.log_in(page, "amina", PASSWORD)
    assert page.url.endswith("/admin/")
    assert await page.locator("h1").inner_text() == "Overview"
    cookie = next(c for c in await page.context.cookies() if c["name"] == "pp_console")
    assert (cookie["httpOnly"], cookie["sameSite"], cookie["path"]) == (True, "Strict", "/admin")
    assert cookie["secure"] is False, "PUBLIC_URL is not https here"
    await page.click("header button:has-text('Log out')")
    assert "/admin/login" in page.url
    await page.goto(f"{console.url}/dead-letters")
    assert "/admin/login" in page.url, "the session ended with the logout"


async def test_the_overview_counts_what_the_simulators_hold(console: Console) -> None:
    stack = console.stack
    await play(stack, Timeline(lambda _line: None))
    refused = demo_data.intervention(
        "DEMO-26-PRTITV-0000009", **{"individuals.progres_sex": "999"}
    )
    await stack.progres_sends_referral(demo_data.referral_message(refused))
    await stack.settle()

    page = await console.page("vera")
    figures = await console.figures(page)
    await console.shot(page, "overview")

    sent_to_dtp = await stack.dtp_messages()
    feedback = [m["body"] for m in sent_to_dtp if m["endpoint"] == FEEDBACK.lstrip("/")]
    journal = await stack.sim_call("GET", f"{stack.primero.url}/_sim/journal")
    written = [
        e
        for e in journal
        if e["method"] in ("POST", "PATCH")
        and re.fullmatch(r"/api/v2/cases(/[^/]+)?", e["path"])
        and 200 <= e["status"] < 300
    ]
    decided = [r for r in await stack.primero_referrals() if r["status"] in ACCEPTED_REJECTED]
    # what proGres sent the bridge (one intervention or decision per message here)
    forwarded = await stack.sim_call("GET", f"{stack.dtp.url}/_sim/forwarded")
    queued = [f["route"] for f in forwarded if f["status_code"] == 202]

    flow1 = figures["progres-referral"]
    assert int(flow1["received"]) == queued.count("send-referral") == 2
    assert int(flow1["delivered"]) == len(written) == 1
    assert int(flow1["refused"]) == sum(f.get("status") == "Delivery Fail" for f in feedback) == 1
    flow2 = figures["primero-decision"]
    decisions = [f for f in feedback if f.get("status") == "acknowledged"]
    assert int(flow2["delivered"]) == int(flow2["received"]) == len(decisions) == 1
    assert flow2["refused"] == "—"
    flow3 = figures["primero-referral"]
    sent = [m for m in sent_to_dtp if m["endpoint"] == REFERRAL.lstrip("/")]
    assert int(flow3["delivered"]) == int(flow3["received"]) == len(sent) == 1
    flow4 = figures["progres-decision"]
    assert int(flow4["received"]) == queued.count("send-decision") == 1
    assert int(flow4["delivered"]) == len(decided) == 1
    # the refused intervention waits as a dead letter, for a replay or a discard
    dead = await stack.store.jobs.list(state="dead")
    assert [job.kind for job in dead] == ["progres-referral.deliver"]
    assert flow1["dead"] == "1"
    assert all(
        f["dead"] == "0" for flow, f in figures.items() if flow != "progres-referral"
    )
    assert all(f["in_flight"] == "0" for f in figures.values())

    for peer in ("primero", "dtp"):
        row = page.locator(f"tr[data-peer={peer}] td")
        assert re.match(r"\d{4}-\d\d-\d\d ", await row.nth(0).inner_text()), "a last success"
        assert await row.nth(4).inner_text() == "0", "no failure in a row"
    polls = page.locator("table.polls tr[data-flow=primero-referral] td")
    assert re.match(r"\d{4}-", await polls.nth(0).inner_text()), "last completed poll"


async def test_replay_a_dead_letter_from_the_page_reaches_dtp_once(console: Console) -> None:
    job_id = await _dead_feedback(console)
    page = await console.page("omar")
    await page.goto(f"{console.url}/dead-letters?flow=progres-referral&reason=http_401")
    row = page.locator(f"tr[data-job='{job_id}']")
    assert "http_401" in await row.inner_text()
    await console.shot(page, "dead-letters")

    await row.locator("button:has-text('Replay')").click()
    assert "Queued again: 1 job(s)" in await page.locator("p.notice").inner_text()
    await console.stack.settle()
    [arrived] = await console.stack.dtp_messages(FEEDBACK.lstrip("/"))
    assert arrived["body"]["status"] == "Pending Acknowledgement"

    status, _ = await post_form(
        page,
        "/admin/dead-letters/replay",
        {"csrf": await _csrf(page), "job_id": job_id, "back": "/admin/dead-letters"},
    )
    assert status == 303
    await console.stack.settle()
    assert len(await console.stack.dtp_messages(FEEDBACK.lstrip("/"))) == 1, "replayed once"
    [entry] = await console.stack.store.audit.list(event=AuditEvent.JOB_REPLAYED)
    assert (entry.account, entry.ids["job_id"]) == ("omar", job_id)


async def test_discard_a_dead_letter_with_a_reason(console: Console) -> None:
    job_id = await _dead_feedback(console)
    page = await console.page("omar")
    await page.goto(f"{console.url}/dead-letters")
    status, _ = await post_form(
        page,
        "/admin/dead-letters/discard",
        {"csrf": await _csrf(page), "job_id": job_id, "back": "/admin/dead-letters"},
    )
    assert status == 303
    job = await console.stack.store.jobs.get(job_id)
    assert job is not None and job.state == "dead", "no reason, nothing discarded"

    row = page.locator(f"tr[data-job='{job_id}']")
    await row.locator("input[name=reason]").fill("DTP closed the intervention by hand")
    await row.locator("button:has-text('Discard')").click()
    assert "Discarded" in await page.locator("p.notice").inner_text()
    assert await page.locator(f"tr[data-job='{job_id}']").count() == 0
    job = await console.stack.store.jobs.get(job_id)
    assert job is not None
    assert (job.state, job.has_payload, job.dead_reason is not None) == ("discarded", False, True)
    [entry] = await console.stack.store.audit.list(event=AuditEvent.JOB_DISCARDED)
    assert entry.account == "omar"
    assert entry.ids == {
        "job_id": job_id,
        "kind": "progres-referral.feedback",
        "reason": "DTP closed the intervention by hand",
    }


async def test_rewinding_a_cursor_rereads_without_a_second_send(console: Console) -> None:
    stack = console.stack
    await stack.seed_primero(
        cases=[demo_data.primero_case(REFERRED_CASE_ID, REFERRED_RECORD_ID)]
    )
    await stack.caseworker_refers_to_unhcr(REFERRED_RECORD_ID)
    an_hour_ago = stack.store.now() - timedelta(hours=1)
    await stack.store.polls.set_start(Flow.PRIMERO_REFERRAL, an_hour_ago, account="cli:test")
    page = await console.page("omar")
    await page.goto(f"{console.url}/polls")
    section = page.locator("section[data-flow=primero-referral]")
    await section.locator("button:has-text('Poll now')").click()
    await stack.settle()
    assert len(await stack.dtp_messages(REFERRAL.lstrip("/"))) == 1
    cursor = await stack.store.cursors.get(Flow.PRIMERO_REFERRAL)
    assert cursor is not None

    await page.goto(f"{console.url}/polls")
    await section.locator("input[name=to]").fill("2020-01-01T00:00:00Z")
    await section.locator("input[name=reason]").fill("re-read after DTP outage")
    await section.locator("button:has-text('Rewind')").click()
    assert "Cursor moved back" in await page.locator("p.notice").inner_text()
    await section.locator("button:has-text('Poll now')").click()
    await stack.settle()
    await page.goto(f"{console.url}/polls")
    await console.shot(page, "polls")

    assert len(await stack.dtp_messages(REFERRAL.lstrip("/"))) == 1, "nothing sent twice"
    runs = await stack.store.polls.runs(Flow.PRIMERO_REFERRAL)
    assert [r.state for r in runs] == ["done", "done"]
    assert runs[0].cases_read == runs[1].cases_read == 1, "the rewind re-read the case"
    assert (runs[0].items_queued, runs[1].items_queued) == (0, 1)
    assert await stack.store.cursors.get(Flow.PRIMERO_REFERRAL) == cursor
    [rewound] = await stack.store.audit.list(event=AuditEvent.CURSOR_REWOUND)
    assert rewound.account == "omar"
    assert rewound.ids["reason"] == "re-read after DTP outage"

    await section.locator("input[name=to]").fill("2999-01-01T00:00:00Z")
    await section.locator("button:has-text('Rewind')").click()
    assert "only moves the cursor back" in await page.locator("p[role=alert]").inner_text()


async def test_trace_an_intervention_through_all_its_steps(console: Console) -> None:
    await play(console.stack, Timeline(lambda _line: None))
    page = await console.page("vera")
    await page.goto(f"{console.url}/trace")
    await page.fill("input[name=q]", NUMBER)
    await page.click("button:has-text('Trace')")
    await console.shot(page, "trace")
    rows = [await r.inner_text() for r in await page.locator("table.timeline tbody tr").all()]
    text = "\n".join(rows)
    for step in (
        "PrimeroOutgoingReferral received",
        "progres-referral.receive done",
        "progres-referral.deliver done",
        "case_created",
        "progres-referral.feedback done",
        "feedback_sent",
        "dtp_request_id",
        "primero-decision.send done",
        "decision_sent",
    ):
        assert step in text, step
    steps = ("received", "case_created", "decision_sent")
    order = [next(i for i, r in enumerate(rows) if step in r) for step in steps]
    assert order == sorted(order), "oldest first"


async def test_a_viewer_is_refused_actions_and_a_post_without_csrf_is_refused(
    console: Console,
) -> None:
    job_id = await _dead_feedback(console)
    viewer = await console.page("vera")
    await viewer.goto(f"{console.url}/dead-letters")
    assert await viewer.locator("button:has-text('Replay')").count() == 0
    status, _ = await post_form(
        viewer, "/admin/dead-letters/replay", {"csrf": await _csrf(viewer), "job_id": job_id}
    )
    assert status == 403
    answer = await viewer.goto(f"{console.url}/accounts")
    assert answer is not None and answer.status == 403

    admin = await console.page("amina")
    status, _ = await post_form(admin, "/admin/dead-letters/replay", {"job_id": job_id})
    assert status == 403, "no CSRF token"
    status, _ = await post_form(
        admin, "/admin/dead-letters/replay", {"csrf": "forged", "job_id": job_id}
    )
    assert status == 403
    job = await console.stack.store.jobs.get(job_id)
    assert job is not None and job.state == "dead", "nothing replayed"

    anonymous = await console.page()
    await anonymous.goto(f"{console.url}/login")
    answer = await anonymous.request.post(
        f"{console.url}/dead-letters/replay", form={"job_id": job_id}, max_redirects=0
    )
    assert answer.status == 303 and "/admin/login" in answer.headers["location"]


async def test_messages_audit_settings_and_accounts_pages(console: Console) -> None:
    await _dead_feedback(console)
    page = await console.page("amina")
    await page.goto(f"{console.url}/messages")
    assert "dead letter" in await page.locator("table").inner_text()
    await console.shot(page, "messages")
    await page.goto(f"{console.url}/audit?event=job.dead")
    assert "job.dead" in await page.locator("table").inner_text()
    await console.shot(page, "audit")
    await page.goto(f"{console.url}/settings")
    settings_text = await page.locator("main").inner_text()
    assert "••••" in settings_text and demo_data.DTP_SUBSCRIPTION_KEY not in settings_text
    assert re.search(r"profile SHA-256\s+[0-9a-f]{64}", settings_text)
    assert re.search(r"PRIMERO_PROGRES_ALERT_URLS\s+not set", settings_text)
    assert f"{newest_migration()} (the newest this version ships)" in settings_text
    await console.shot(page, "settings")

    await page.goto(f"{console.url}/accounts")
    form = page.locator("form[action='/admin/accounts']")
    await form.locator("input[name=name]").fill("lina")
    await form.locator("select[name=role]").select_option("operator")
    await form.locator("input[name=password]").fill("lina's own pass phrase")
    await form.locator("button").click()
    assert "Account created" in await page.locator("p.notice").inner_text()
    row = page.locator("tr[data-account=lina]")
    await row.locator("select[name=role]").select_option("viewer")
    await row.locator("button:has-text('Set role')").click()
    await page.locator("tr[data-account=lina] button:has-text('Disable')").click()
    assert "disabled" in await page.locator("tr[data-account=lina]").inner_text()
    await console.shot(page, "accounts")
    account = await console.stack.store.accounts.get("lina")
    assert account is not None and (account.role, account.disabled) == ("viewer", True)
    events = [e.event for e in await console.stack.store.audit.list(account="amina")]
    for done in ("account.created", "account.role_changed", "account.disabled"):
        assert done in events


async def _csrf(page: Page) -> str:
    value = await page.locator("input[name=csrf]").first.get_attribute("value")
    assert value
    return value


def newest_migration() -> str:
    """The head revision of the migrations this version ships (branches add their own)."""
    from alembic.script import ScriptDirectory

    from primero_progres.store.store import MIGRATIONS

    head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
    assert head is not None
    return head
