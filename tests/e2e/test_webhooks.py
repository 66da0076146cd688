"""Primero's webhooks drive flows 2 and 3; the bridge writes the sync status back (issue 15).

Real loopback servers: the simulated Primero posts its webhooks to the bridge's
``/api/v1/primero/webhook`` as Primero does (fire-and-forget, ``x-api-key`` or Basic or a
token in the path), and the stack's worker runs when the test says (``settle``), so "before
the next poll" means: no poll job ran. Polls are at one hour; none is triggered unless the
test says so.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from primero_progres import demo_data
from primero_progres.logging import configure_logging
from primero_progres.stack import Stack

TOKEN = "webhook-token-7c1e"
OTHER_TOKEN = "webhook-token-second"
CASE_ID = "11111111-2222-4333-8444-555555555555"
RECORD_ID = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"
UNKNOWN_RECORD_ID = "99999999-9999-4999-8999-999999999999"
DECISIONS, REFERRALS = "ReceiveDecisionOutgoingReferral", "ReceiveIncomingReferral"
API_KEY = {"type": "api_key", "secret": TOKEN}
#: values a webhook body carries that must go nowhere
MARKERS = ["ZZWEBHOOK-GIVEN-51d2", "ZZWEBHOOK-FAMILY-51d2", "ZZWEBHOOK-NOTES-51d2"]

SETTINGS: dict[str, Any] = {
    "webhooks": True,
    "primero_webhook_tokens": f"{TOKEN},{OTHER_TOKEN}",
    "mark_synced": True,
    "poll_interval_seconds": 3600.0,
    "webhook_poll_interval_seconds": 3600.0,
}


@pytest.fixture
async def hooked(db_url: str, tmp_path: Path) -> AsyncIterator[Stack]:
    """A stack with webhooks on, on SQLite and on PostgreSQL; Primero posts to the bridge."""
    async with Stack(tmp_path, database_url=db_url, **SETTINGS) as stack:
        await stack.primero_posts_webhooks(auth=API_KEY)
        yield stack


@pytest.fixture
async def hooked_sqlite(tmp_path: Path) -> AsyncIterator[Stack]:
    async with Stack(tmp_path, **SETTINGS) as stack:
        await stack.primero_posts_webhooks(auth=API_KEY)
        yield stack


async def sent(stack: Stack, endpoint: str) -> list[dict[str, Any]]:
    bodies = [m["body"] for m in await stack.dtp_messages(endpoint)]
    return [b for b in bodies if b.get("request_type") == endpoint]


async def journal(stack: Stack) -> list[dict[str, Any]]:
    return await stack.sim_call("GET", f"{stack.primero.url}/_sim/journal")


async def marks(stack: Stack, record_id: str) -> list[dict[str, Any]]:
    """The case's sync-status entries for DTP (its audit also logs each webhook sent)."""
    entries = await stack.sim_call("GET", f"{stack.primero.url}/_sim/cases/{record_id}/audit")
    return [e for e in entries if str(e["resource_url"]).startswith(stack.dtp.url)]


async def polls_run(stack: Stack) -> list[str]:
    return [j.kind for j in await stack.store.jobs.list(limit=10_000) if j.kind.endswith(".poll")]


async def react(stack: Stack) -> None:
    """Primero's webhooks arrive, then the worker does what they queued."""
    await stack.webhooks_delivered()
    await stack.settle()


async def deliver(stack: Stack) -> tuple[dict[str, Any], dict[str, Any]]:
    """Flow 1 creates a case from proGres; its (case, service row)."""
    await stack.progres_sends_referral(demo_data.referral_message(demo_data.intervention()))
    await stack.settle()
    await react(stack)
    [case] = await stack.primero_cases()
    return case, case["services_section"][0]


async def post_hint(stack: Stack, body: Any, *, token: str | None = TOKEN, **kw: Any) -> Any:
    headers = {"x-api-key": token} if token else {}
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return await stack.http.post(stack.webhook_url, content=content, headers=headers, **kw)


def hint(record_id: str, **fields: Any) -> dict[str, Any]:
    return {"data": {"record_id": record_id, "record_type": "case", **fields}}


# --- the flows, within seconds ------------------------------------------------------------


async def test_a_focal_points_decision_reaches_dtp_and_the_case_shows_synced(
    hooked: Stack,
) -> None:
    case, row = await deliver(hooked)
    await hooked.focal_point_decides(case["id"], row["unique_id"], "rejected", "Not in camp")
    await react(hooked)

    [decision] = await sent(hooked, DECISIONS)
    assert (decision["status"], decision["closure_reason"]) == ("rejected", "Not in camp")
    assert await polls_run(hooked) == []
    await react(hooked)  # the mark's own webhook: read again, nothing sent again
    assert len(await sent(hooked, DECISIONS)) == 1
    [mark] = await marks(hooked, case["id"])
    assert mark["webhook_status"] == "synced"
    assert mark["resource_url"] == f"{hooked.dtp.url}/{DECISIONS}"
    assert mark["timestamp"]


async def test_a_referral_to_unhcr_reaches_dtp_and_the_case_shows_synced(hooked: Stack) -> None:
    await hooked.seed_primero(cases=[demo_data.primero_case(CASE_ID, RECORD_ID)])
    await hooked.caseworker_refers_to_unhcr(RECORD_ID)
    await react(hooked)

    [referral] = await sent(hooked, REFERRALS)
    assert referral["id"].startswith(f"{CASE_ID}#")
    assert await polls_run(hooked) == []
    await react(hooked)
    assert len(await sent(hooked, REFERRALS)) == 1
    [mark] = await marks(hooked, RECORD_ID)
    assert (mark["webhook_status"], mark["resource_url"]) == (
        "synced",
        f"{hooked.dtp.url}/{REFERRALS}",
    )
    assert mark["timestamp"]


async def test_a_dead_letter_marks_the_case_failed(hooked_sqlite: Stack) -> None:
    stack = hooked_sqlite
    await stack.set_faults("dtp", [{"method": "POST", "path": f"/{REFERRALS}", "status": 400}])
    await stack.seed_primero(cases=[demo_data.primero_case(CASE_ID, RECORD_ID)])
    await stack.caseworker_refers_to_unhcr(RECORD_ID)
    await react(stack)

    [dead] = await stack.store.jobs.list(state="dead")
    assert dead.kind == "primero-referral.send"
    [mark] = await marks(stack, RECORD_ID)
    assert (mark["webhook_status"], mark["resource_url"]) == (
        "failed",
        f"{stack.dtp.url}/{REFERRALS}",
    )

    # replayed once DTP takes it: synced, and the stale "failed" is not written again
    await stack.set_faults("dtp", [])
    await stack.store.jobs.replay(dead.id, account="ops", reason="dtp fixed")
    await react(stack)
    assert len(await sent(stack, REFERRALS)) == 1
    statuses = [e["webhook_status"] for e in await marks(stack, RECORD_ID)]
    assert statuses == ["failed", "synced"]


async def test_a_mark_primero_refuses_is_retried_alone_and_never_repeats_the_send(
    hooked_sqlite: Stack,
) -> None:
    stack = hooked_sqlite
    await stack.seed_primero(cases=[demo_data.primero_case(CASE_ID, RECORD_ID)])
    await stack.caseworker_refers_to_unhcr(RECORD_ID)
    await stack.webhooks_delivered()
    await stack.set_faults(
        "primero",
        [{"method": "PATCH", "path": f"/api/v2/cases/{RECORD_ID}", "status": 503, "times": 2}],
    )
    await stack.settle()
    await react(stack)

    assert len(await sent(stack, REFERRALS)) == 1
    jobs = [j for j in await stack.store.jobs.list(limit=100) if j.kind.endswith(".mark")]
    assert [(j.state, j.attempts) for j in jobs] == [("done", 3)]
    [mark] = await marks(stack, RECORD_ID)
    assert mark["webhook_status"] == "synced"


# --- lost, forged, repeated ---------------------------------------------------------------


async def test_a_dropped_webhook_is_caught_by_the_next_poll(hooked_sqlite: Stack) -> None:
    stack = hooked_sqlite
    await stack.set_faults("primero", [{"method": "WEBHOOK", "path": stack.webhook_url}])
    await stack.seed_primero(cases=[demo_data.primero_case(CASE_ID, RECORD_ID)])
    await stack.caseworker_refers_to_unhcr(RECORD_ID)
    await react(stack)
    deliveries = await stack.sim_call("GET", f"{stack.primero.url}/_sim/webhooks/deliveries")
    assert {d["outcome"] for d in deliveries} == {"dropped"}
    assert await sent(stack, REFERRALS) == []

    await stack.poll("primero-referral")
    assert len(await sent(stack, REFERRALS)) == 1


async def test_a_webhook_for_an_unknown_or_unrelated_case_sends_nothing(
    hooked_sqlite: Stack,
) -> None:
    stack = hooked_sqlite
    await stack.seed_primero(cases=[demo_data.primero_case(CASE_ID, RECORD_ID)])
    for record_id in (UNKNOWN_RECORD_ID, RECORD_ID):
        answer = await post_hint(stack, hint(record_id))
        assert answer.status_code == 202, answer.text
    await stack.settle()

    assert await stack.dtp_messages() == []
    reads = [e for e in await journal(stack) if e["path"] == "/api/v2/cases"]
    # flow 3 read each once; flow 2 read neither (no proGres referral in the ledger)
    assert len(reads) == 2
    assert await stack.store.ledger.find() == []


async def test_a_flood_of_webhooks_for_one_case_reads_it_a_few_times_and_sends_once(
    hooked: Stack,
) -> None:
    await hooked.seed_primero(cases=[demo_data.primero_case(CASE_ID, RECORD_ID)])
    await hooked.caseworker_refers_to_unhcr(RECORD_ID)
    await hooked.webhooks_delivered()
    before = len(await journal(hooked))
    gate = asyncio.Semaphore(50)

    async def one() -> int:
        async with gate:
            return (await post_hint(hooked, hint(RECORD_ID, name_first=MARKERS[0]))).status_code

    assert set(await asyncio.gather(*(one() for _ in range(1000)))) == {202}
    checks = [j for j in await hooked.store.jobs.list(limit=10_000) if j.kind.endswith(".webhook")]
    assert len(checks) <= 4  # one pending per flow, whatever came before the flood
    await hooked.settle()
    await react(hooked)

    reads = [e for e in (await journal(hooked))[before:] if e["path"] == "/api/v2/cases"]
    assert 1 <= len(reads) <= 4
    assert len(await sent(hooked, REFERRALS)) == 1


# --- the door ----------------------------------------------------------------------------


async def test_each_way_primero_presents_the_token_is_accepted(hooked_sqlite: Stack) -> None:
    stack = hooked_sqlite
    body = json.dumps(hint(UNKNOWN_RECORD_ID)).encode()
    basic = base64.b64encode(f"primero:{OTHER_TOKEN}".encode()).decode()
    ways = [
        await stack.http.post(stack.webhook_url, content=body, headers={"x-api-key": TOKEN}),
        await stack.http.post(
            stack.webhook_url, content=body, headers={"Authorization": f"Basic {basic}"}
        ),
        await stack.http.post(f"{stack.webhook_url}/{TOKEN}", content=body),
    ]
    assert [w.status_code for w in ways] == [202, 202, 202]
    assert [w.json()["status"] for w in ways] == ["queued", "pending", "pending"]
    metrics = (await stack.http.get(f"{stack.bridge_url}/metrics")).text
    assert 'primero_progres_primero_webhooks_total{outcome="pending"}' in metrics


async def test_a_wrong_or_missing_token_is_401(hooked_sqlite: Stack) -> None:
    stack = hooked_sqlite
    body = json.dumps(hint(RECORD_ID)).encode()
    basic = base64.b64encode(f"{TOKEN}:wrong".encode()).decode()
    answers = [
        await stack.http.post(stack.webhook_url, content=body),
        await stack.http.post(stack.webhook_url, content=body, headers={"x-api-key": "wrong"}),
        await stack.http.post(
            stack.webhook_url, content=body, headers={"Authorization": f"Basic {basic}"}
        ),
        await stack.http.post(
            stack.webhook_url, content=body, headers={"Authorization": "Basic %%"}
        ),
        await stack.http.post(f"{stack.webhook_url}/wrong", content=body),
    ]
    assert [a.status_code for a in answers] == [401] * 5
    assert {a.json()["error"]["code"] for a in answers} == {"unauthorized"}
    assert await stack.store.jobs.list(limit=100) == []


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"{not json", 400, "malformed_json"),
        (b"[1, 2]", 400, "not_a_webhook"),
        (b'{"data": "x"}', 400, "not_a_webhook"),
        (b'{"data": {"record_type": "case"}}', 422, "missing_record"),
        (b'{"data": {"record_type": "case", "record_id": 7}}', 422, "missing_record"),
        (
            b'{"data": {"record_type": "incident", "record_id": "a"}}',
            422,
            "unsupported_record_type",
        ),
        (b'{"data": {"record_type": "case", "record_id": "../x"}}', 422, "bad_record_id"),
        (b'{"data": {"record_type": "case", "record_id": "a:b"}}', 422, "bad_record_id"),
        (json.dumps(hint("a" * 65)).encode(), 422, "bad_record_id"),
        (
            b'{"data": {"record_type": "case", "record_id": "a", "x": ' + b"1" * 2_000_000 + b"}}",
            413,
            "too_large",
        ),
    ],
)
async def test_bad_input_is_a_clear_4xx_and_queues_nothing(
    hooked_sqlite: Stack, body: bytes, status: int, code: str
) -> None:
    answer = await post_hint(hooked_sqlite, body)
    assert (answer.status_code, answer.json()["error"]["code"]) == (status, code)
    assert await hooked_sqlite.store.jobs.list(limit=100) == []


async def test_what_a_webhook_carries_is_never_logged_or_stored(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    configure_logging(level="DEBUG", json=True)
    caplog.set_level(logging.DEBUG)
    async with Stack(tmp_path, **SETTINGS) as stack:
        await stack.seed_primero(cases=[demo_data.primero_case(CASE_ID, RECORD_ID)])
        await stack.caseworker_refers_to_unhcr(RECORD_ID)
        marked = hint(
            RECORD_ID, name_first=MARKERS[0], name_last=MARKERS[1], notes_section=MARKERS[2]
        )
        assert (await post_hint(stack, marked)).status_code == 202
        assert (await post_hint(stack, marked, token="wrong")).status_code == 401
        assert (await post_hint(stack, {**marked, "bad": float("nan")})).status_code == 400
        bad_type = {"data": {**marked["data"], "record_type": "incident"}}
        assert (await post_hint(stack, bad_type)).status_code == 422
        await stack.settle()
        assert len(await sent(stack, REFERRALS)) == 1
        rows = repr(
            [
                await stack.store.audit.list(limit=10_000),
                await stack.store.ledger.list(limit=10_000),
                await stack.store.jobs.list(limit=10_000),
            ]
        )
        metrics = (await stack.http.get(f"{stack.bridge_url}/metrics")).text
    stored = b"".join(p.read_bytes() for p in sorted(tmp_path.glob("bridge.db*")))
    out, err = capfd.readouterr()
    logged = out + err + caplog.text
    assert "webhook.received" in logged and "webhook.rejected" in logged
    for marker in MARKERS:
        for where in (logged, rows, metrics, stored.decode("latin-1")):
            assert marker not in where


@pytest.mark.parametrize(
    ("auth", "path_token"),
    [({"type": "basic_auth", "secret": f"primero:{TOKEN}"}, False), ({}, True)],
    ids=["basic-auth", "token-in-path"],
)
async def test_primero_authenticating_by_basic_auth_or_the_path_drives_flow_3(
    tmp_path: Path, auth: dict[str, Any], path_token: bool
) -> None:
    async with Stack(tmp_path, **SETTINGS) as stack:
        url = f"{stack.webhook_url}/{TOKEN}" if path_token else stack.webhook_url
        await stack.primero_posts_webhooks(url, auth=auth)
        await stack.seed_primero(cases=[demo_data.primero_case(CASE_ID, RECORD_ID)])
        await stack.caseworker_refers_to_unhcr(RECORD_ID)
        await react(stack)
        assert len(await sent(stack, REFERRALS)) == 1
        deliveries = await stack.sim_call("GET", f"{stack.primero.url}/_sim/webhooks/deliveries")
        assert {d["status_code"] for d in deliveries} == {202}


async def test_a_dead_decision_marks_the_case_failed(hooked_sqlite: Stack) -> None:
    stack = hooked_sqlite
    case, row = await deliver(stack)
    await stack.set_faults("dtp", [{"method": "POST", "path": f"/{DECISIONS}", "status": 422}])
    await stack.focal_point_decides(case["id"], row["unique_id"], "accepted")
    await react(stack)

    [dead] = await stack.store.jobs.list(state="dead")
    assert dead.kind == "primero-decision.send"
    [mark] = await marks(stack, case["id"])
    assert (mark["webhook_status"], mark["resource_url"]) == (
        "failed",
        f"{stack.dtp.url}/{DECISIONS}",
    )


async def test_over_ping_a_webhook_drives_flow_3_and_nothing_is_marked(tmp_path: Path) -> None:
    async with Stack(tmp_path, gateway="ping", **SETTINGS) as stack:
        await stack.primero_posts_webhooks(auth=API_KEY)
        await stack.seed_primero(cases=[demo_data.primero_case(CASE_ID, RECORD_ID)])
        # a service type the profile's PING tables know
        await stack.caseworker_refers_to_unhcr(
            RECORD_ID, {"service_type": "basic_psychosocial_support"}
        )
        await react(stack)
        assert len(await stack.ping_ingestions("asyncdata")) == 1
        assert await polls_run(stack) == []
        entries = await stack.sim_call("GET", f"{stack.primero.url}/_sim/cases/{RECORD_ID}/audit")
        assert {e["resource_url"] for e in entries} == {stack.webhook_url}  # webhook sends only
