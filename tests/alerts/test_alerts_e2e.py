"""Alerts end to end: the flows fail for real against the simulators, the alert check runs as
the scheduler's process runs it, and the notices arrive over real SMTP and a real webhook; each
console link they carry is followed, logged in, to the page showing what the alert is about."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx2
import pytest
import trustme
from prometheus_client.parser import text_string_to_metric_families

from alert_receivers import BlackHole, SmtpReceiver, WebhookReceiver
from console_client import console_session
from e2e.test_four_flows import _play
from e2e.test_personal_data import _play_every_flow, leaks, marked_intervention
from primero_progres import demo_data
from primero_progres.alerts import Alerter
from primero_progres.alerts.conditions import dead_letter_cursor
from primero_progres.stack import Gateway, Stack
from primero_progres.store import Flow, Store

CASES = "/api/v2/cases"
FEEDBACK = "/ReceiveDecisionOutgoingReferral"
PING_FETCH = "/primes/fetch"
NUMBERS = ["DEMO-26-PRTITV-0000011", "DEMO-26-PRTITV-0000012", "DEMO-26-PRTITV-0000013"]
DEAD_LETTERS = "dead letter(s) in progres-referral: http_403"
CONSOLE_LINK = re.compile(r"https?://[^\s]+/admin/[^\s]*")


async def check_until(
    stack: Stack, done: Callable[[], bool], *, timeout: float = 60.0, alerter: Alerter | None = None
) -> None:
    """Run the alert check until ``done`` (dead letters are read two seconds after they die)."""
    deadline = time.monotonic() + timeout
    while True:
        await (alerter or stack.alerter).check()
        if done():
            return
        assert time.monotonic() < deadline, "no alert in time"
        await asyncio.sleep(0.1)


async def checked_past_the_latest_dead_letter(stack: Stack) -> None:
    """Run checks until the dead-letter reader has read every dead letter there is."""
    [latest] = await stack.store.audit.list(event="job.dead", limit=1)
    deadline = time.monotonic() + 60
    while dead_letter_cursor(await stack.store.alerts.states()) < latest.id:
        assert time.monotonic() < deadline
        await stack.check_alerts()
        await asyncio.sleep(0.1)


async def refused_referrals(stack: Stack, numbers: list[str], *, first_individual: int = 1) -> None:
    """proGres sends these interventions; Primero refuses to create their cases (403)."""
    await stack.set_faults("primero", [{"method": "POST", "path": CASES, "status": 403}])
    interventions = [
        demo_data.intervention(number, **{"individuals.progres_id": f"DEMO-0000009{index}"})
        for index, number in enumerate(numbers, start=first_individual)
    ]
    await stack.progres_sends_referral(demo_data.referral_message(*interventions))
    await stack.settle()


def alert_urls(*urls: str) -> str:
    return ",".join(urls)


async def follow(stack: Stack, console: httpx2.AsyncClient, text: str) -> dict[str, str]:
    """Open every console link of an alert text as the logged-in ``console``: link -> page."""
    pages: dict[str, str] = {}
    for link in CONSOLE_LINK.findall(text):
        assert link.startswith(f"{stack.bridge_url}/admin/"), link
        answer = await console.get(link)
        assert answer.status_code == 200, (link, answer.status_code)
        assert 'action="/admin/logout"' in answer.text, "a console page, not the login form"
        pages[link] = answer.text
    assert pages, "the alert links to the console"
    return pages


def metric(text: str, name: str, **labels: str) -> float | None:
    """The value of the ``/metrics`` sample ``name`` with these labels (None: not exported)."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return None


def peer_row(page: str, peer: str) -> list[str]:
    """The cells of the overview's row of ``peer``."""
    row = re.search(rf'<tr data-peer="{peer}">(.*?)</tr>', page, re.DOTALL)
    assert row, f"no row of {peer} on the page"
    return [
        re.sub(r"<[^>]+>", "", cell).strip()
        for cell in re.findall(r"<td[^>]*>(.*?)</td>", row.group(1), re.DOTALL)
    ]


async def test_a_permanent_primero_refusal_gives_one_grouped_alert_on_each_target(
    tmp_path: Path, smtp: SmtpReceiver, webhook: WebhookReceiver
) -> None:
    async with Stack(tmp_path, alert_urls=alert_urls(smtp.url, webhook.url)) as stack:
        await refused_referrals(stack, NUMBERS)
        dead = await stack.store.jobs.list(state="dead")
        assert len(dead) == 3

        await check_until(
            stack, lambda: bool(smtp.about(DEAD_LETTERS) and webhook.about(DEAD_LETTERS))
        )
        [mail] = smtp.about(DEAD_LETTERS)
        [post] = webhook.about(DEAD_LETTERS)
        title = f"[primero-progres] 3 new {DEAD_LETTERS}"
        assert (mail.subject, post.title, post.notice["type"]) == (title, title, "failure")
        console = f"{stack.bridge_url}/admin/dead-letters?flow=progres-referral&reason=http_403"
        trace = f"{stack.bridge_url}/admin/trace?q="
        for text in (mail.body, post.notice["message"]):
            assert "3 job(s) of flow progres-referral became dead letters with reason http_403" in (
                text
            )
            for number in NUMBERS:
                assert f"progres_interventionnumber {number}: {trace}{number}" in text
            for job in dead:
                assert f"job {job.id} (progres-referral.deliver)" in text
            assert f"Console: {console}\n" in text
        link = urlsplit(console)
        assert (link.path, parse_qs(link.query)) == (
            "/admin/dead-letters",
            {"flow": ["progres-referral"], "reason": ["http_403"]},
        )
        # Primero refusing the bridge's permissions is a peer alert too, at once
        [refused] = smtp.about("primero refuses the bridge's permissions (HTTP 403)")

        async with console_session(stack) as session:
            pages = await follow(stack, session, mail.body)
            assert await follow(stack, session, post.notice["message"]) == pages
            listed = pages[console]
            assert "http_403" in listed
            for job in dead:
                assert f'data-job="{job.id}"' in listed
            for job_id, number in re.findall(
                r"- job (\S+) \(progres-referral.deliver\), progres_interventionnumber (\S+):",
                mail.body,
            ):
                timeline = pages[f"{trace}{number}"]
                assert "Nothing found" not in timeline
                assert number in timeline and job_id in timeline
            # the peer panel the refusal links to shows Primero failing since the alert's time
            [overview] = (await follow(stack, session, refused.body)).values()
            row = peer_row(overview, "primero")
            failing_since = re.search(r"Failing since: (\S+ \S+) UTC", refused.body)
            assert failing_since and row[5].startswith(failing_since.group(1))
            assert (row[2], row[3]) == ("permanent", "http_403") and int(row[4]) >= 1

        await checked_past_the_latest_dead_letter(stack)
        assert len(smtp.about(DEAD_LETTERS)) == len(webhook.about(DEAD_LETTERS)) == 1


async def test_dead_letters_within_the_repeat_window_give_no_second_alert(
    tmp_path: Path, smtp: SmtpReceiver
) -> None:
    """(Announcing them once the window has passed is tested with a clock in test_conditions.)"""
    async with Stack(tmp_path, alert_urls=smtp.url) as stack:
        await refused_referrals(stack, NUMBERS[:1])
        await check_until(stack, lambda: bool(smtp.about(DEAD_LETTERS)))

        await refused_referrals(stack, NUMBERS[1:2], first_individual=2)
        await checked_past_the_latest_dead_letter(stack)
        assert len(smtp.about(DEAD_LETTERS)) == 1
        group = (await stack.store.alerts.states())["dead_letters:progres-referral:http_403"]
        assert group.data["count"] == 1, "kept for the notice after the window"
        assert group.data["ids"][0]["id"] == NUMBERS[1]


async def _dtp_fails_every_call(stack: Stack) -> None:
    await stack.set_faults("dtp", [{"path": FEEDBACK, "status": 503}])
    await stack.progres_sends_referral(demo_data.referral_message())
    await stack.settle()


async def _ping_fails_every_call(stack: Stack) -> None:
    await stack.seed_ping([demo_data.ping_intervention()])
    await stack.set_faults("ping", [{"path": PING_FETCH, "status": 503}])
    await stack.poll(Flow.PROGRES_REFERRAL)


@pytest.mark.parametrize(
    ("gateway", "fail_every_call"),
    [("dtp", _dtp_fails_every_call), ("ping", _ping_fails_every_call)],
)
async def test_a_peer_down_for_the_configured_time_gives_one_alert_then_one_recovery(
    tmp_path: Path,
    smtp: SmtpReceiver,
    webhook: WebhookReceiver,
    gateway: Gateway,
    fail_every_call: Callable[[Stack], Awaitable[None]],
) -> None:
    """The UNHCR gateway, DTP or PING, is watched like any peer. Over PING a DTP client
    certificate left configured is not used: neither announced nor exported."""
    down = f"{gateway} is down"
    unused = (
        {"dtp_client_cert": _expiring_certificate(tmp_path, days=10)} if gateway == "ping" else {}
    )
    async with Stack(
        tmp_path,
        gateway=gateway,
        alert_urls=alert_urls(smtp.url, webhook.url),
        alert_peer_down_minutes=0.05,
        **unused,
    ) as stack:
        await fail_every_call(stack)
        [job] = await stack.store.jobs.list(state="dead")

        await check_until(stack, lambda: bool(smtp.about(down) and webhook.about(down)))
        [health] = [p for p in await stack.store.peers.all() if p.peer == gateway]
        state = (await stack.store.alerts.states())[f"peer_down:{gateway}"]
        assert health.failing_since is not None and state.notified_at is not None
        assert state.notified_at - health.failing_since >= timedelta(minutes=0.05)
        assert "Last failure: server_error" in smtp.about(down)[0].body
        async with console_session(stack) as session:
            [overview] = (await follow(stack, session, smtp.about(down)[0].body)).values()
            # the console's peer panel says what the alert says
            row = peer_row(overview, gateway)
            assert (row[2], row[3]) == ("transient", "http_503")
            assert int(row[4]) >= 1
            assert row[5].startswith(health.failing_since.strftime("%Y-%m-%d %H:%M"))
            settings_page = (await session.get(f"{stack.bridge_url}/admin/settings")).text
        # and so do the metrics
        metrics = (await stack.http.get(f"{stack.bridge_url}/metrics")).text
        since = metric(
            metrics, "primero_progres_peer_failing_since_timestamp_seconds", peer=gateway
        )
        assert since == health.failing_since.timestamp()
        errors = metric(
            metrics, "primero_progres_peer_errors_total", peer=gateway, failure="server_error"
        )
        assert errors is not None and errors >= 1
        if gateway == "ping":
            assert "DTP client certificate</dt><dd>not used" in settings_page
            expiry = "primero_progres_client_certificate_expiry_timestamp_seconds"
            assert metric(metrics, expiry) is None

        await stack.set_faults(gateway, [])
        assert await stack.store.jobs.replay(job.id)
        await stack.settle()
        recovered = f"recovered: {gateway} answers again"
        await check_until(stack, lambda: bool(smtp.about(recovered) and webhook.about(recovered)))
        for _ in range(3):
            await stack.check_alerts()
        for receiver in (smtp, webhook):
            assert len(receiver.about(down)) == len(receiver.about(recovered)) == 1
            assert receiver.about("certificate") == []
        assert webhook.about(recovered)[0].notice["type"] == "success"
        assert not any(alert.active for alert in (await stack.store.alerts.states()).values())
        async with console_session(stack) as session:
            [overview] = (await follow(stack, session, smtp.about(recovered)[0].body)).values()
            row = peer_row(overview, gateway)
            assert (row[4], row[5]) == ("0", "—"), "no failure in a row, not failing"


async def test_two_workers_checking_at_once_send_one_alert_and_one_takes_over(
    tmp_path: Path, postgres_url: str, smtp: SmtpReceiver, webhook: WebhookReceiver
) -> None:
    async with Stack(
        tmp_path,
        database_url=postgres_url,
        alert_urls=alert_urls(smtp.url, webhook.url),
        alert_check_seconds=0.1,
    ) as stack:
        second_store = await Store.open(postgres_url, encryption=stack.store.cipher)
        second = Alerter(second_store, stack.settings, owner="second")
        try:
            await refused_referrals(stack, NUMBERS[:1])
            deadline = time.monotonic() + 60
            while not (smtp.about(DEAD_LETTERS) and webhook.about(DEAD_LETTERS)):
                assert time.monotonic() < deadline
                ran = await asyncio.gather(stack.alerter.check(), second.check())
                assert sorted(ran) == [False, True], "exactly one process checks"
                await asyncio.sleep(0.1)

            # both run their loops; the first stops, and the second takes over at once
            stop_first, stop_second = asyncio.Event(), asyncio.Event()
            loops = [
                asyncio.create_task(stack.alerter.run(stop_first)),
                asyncio.create_task(second.run(stop_second)),
            ]
            await asyncio.sleep(0.5)
            stop_first.set()
            await loops[0]
            await stack.set_faults("primero", [{"method": "GET", "path": CASES, "status": 400}])
            await stack.progres_sends_referral(
                demo_data.referral_message(demo_data.intervention(NUMBERS[1]))
            )
            await stack.settle()
            other = "dead letter(s) in progres-referral: http_400"
            deadline = time.monotonic() + 60
            while not (smtp.about(other) and webhook.about(other)):
                assert time.monotonic() < deadline
                await asyncio.sleep(0.1)
            assert await stack.store.leases.holder("alerts") == "second"
            stop_second.set()
            await loops[1]
        finally:
            await second_store.close()
        for receiver in (smtp, webhook):
            assert len(receiver.about(DEAD_LETTERS)) == len(receiver.about(other)) == 1


async def test_personal_values_of_failing_flows_never_reach_an_alert(
    tmp_path: Path, smtp: SmtpReceiver, webhook: WebhookReceiver
) -> None:
    async with Stack(tmp_path, alert_urls=alert_urls(smtp.url, webhook.url)) as stack:
        await _play_every_flow(stack)
        # and Primero refusing a marked child's case for good (a dead letter, payload marked)
        await stack.set_faults("primero", [{"method": "POST", "path": CASES, "status": 403}])
        marked = marked_intervention("DEMO-26-PRTITV-0000031", "DEMO-00000031")
        await stack.progres_sends_referral(demo_data.referral_message(marked))
        await stack.settle()
        dead = await stack.store.jobs.list(state="dead")
        payloads = [await stack.store.jobs.get(job.id, decrypt=True) for job in dead]
        assert leaks(repr([job.payload for job in payloads if job])), "the dead work is marked"

        expected = ["progres-decision: unknown_case", DEAD_LETTERS, "primero-decision: http_400"]
        await check_until(stack, lambda: all(smtp.about(e) and webhook.about(e) for e in expected))
        wire = [mail.raw for mail in smtp.mails] + [post.text for post in webhook.posts]
        assert len(wire) >= 2 * len(expected)
        assert leaks("\n".join(wire)) == []


async def test_an_unreachable_alert_target_leaves_the_flows_unaffected(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], refused_url: str
) -> None:
    hole = BlackHole().start()
    refused = refused_url.replace("http://", "json://alerts:S3CRET-TOKEN@") + "/alerts"
    # something to announce at the first check that is not a failing flow
    certificate = _expiring_certificate(tmp_path, days=10)
    try:
        async with Stack(
            tmp_path,
            alert_urls=alert_urls(hole.url, refused),
            alert_check_seconds=0.1,
            dtp_client_cert=certificate,
        ) as stack:
            stop = asyncio.Event()
            alerting = asyncio.create_task(stack.alerter.run(stop))
            assert await asyncio.to_thread(hole.accepted.wait, 60)

            # a notice is stuck on its way to the black hole: the flows go on regardless
            await _play(stack)
            assert not alerting.done()
            hole.release()
            stop.set()
            await alerting
            [entry] = await stack.store.alerts.outbox()
            assert entry.notice.event == "certificate_expiry"
            assert (len(entry.pending), entry.attempts >= 1) == (2, True)
    finally:
        hole.release()
    logged = capfd.readouterr().err
    assert "alert.send_failed" in logged
    assert "S3CRET-TOKEN" not in logged


async def test_a_target_that_failed_gets_the_notice_at_the_next_check_and_only_it(
    tmp_path: Path, smtp: SmtpReceiver, webhook: WebhookReceiver
) -> None:
    webhook.failures = 1
    async with Stack(tmp_path, alert_urls=alert_urls(smtp.url, webhook.url)) as stack:
        await refused_referrals(stack, NUMBERS[:1])
        await check_until(stack, lambda: bool(smtp.about(DEAD_LETTERS)))
        await check_until(stack, lambda: bool(webhook.about(DEAD_LETTERS)))
        assert len(smtp.about(DEAD_LETTERS)) == len(webhook.about(DEAD_LETTERS)) == 1
        assert webhook.failures == 0
        assert await stack.store.alerts.outbox() == []


def _expiring_certificate(directory: Path, days: int) -> Path:
    ca = trustme.CA()
    leaf = ca.issue_cert("bridge.example.org", not_after=datetime.now(UTC) + timedelta(days=days))
    path = directory / "client.pem"
    leaf.private_key_and_cert_chain_pem.write_to_path(str(path))
    return path


async def test_the_dtp_client_certificate_expiring_is_announced_once_a_day(
    tmp_path: Path, smtp: SmtpReceiver
) -> None:
    certificate = _expiring_certificate(tmp_path, days=10)
    async with Stack(tmp_path, alert_urls=smtp.url, dtp_client_cert=certificate) as stack:
        for _ in range(3):
            await stack.check_alerts()
        [mail] = smtp.about("the DTP client certificate expires on")
        day = (datetime.now(UTC) + timedelta(days=10)).strftime("%Y-%m-%d")
        assert day in mail.subject
        assert "days left" in mail.body
        async with console_session(stack) as session:
            [settings_page] = (await follow(stack, session, mail.body)).values()
        assert re.search(rf"DTP client certificate</dt><dd>valid until {day} ", settings_page)
        assert "<code>PRIMERO_PROGRES_ALERT_URLS</code></td><td>••••" in settings_page
        assert smtp.url not in settings_page, "alert URLs hold credentials: never shown"


async def test_alerts_are_off_without_alert_urls(tmp_path: Path) -> None:
    async with Stack(tmp_path) as stack:
        await refused_referrals(stack, NUMBERS[:1])
        assert await stack.check_alerts() is False
        assert await stack.store.alerts.states() == {}
        stop = asyncio.Event()
        await asyncio.wait_for(stack.alerter.run(stop), timeout=10)
