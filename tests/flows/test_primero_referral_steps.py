"""Flow 3's steps against in-memory fakes: the poll, unmappable referrals, sending."""

from __future__ import annotations

from typing import Any

import pytest
from flow_fakes import FakeGateway, FakePrimero, FakeStore, make_job

from primero_progres import demo_data
from primero_progres.errors import TransientError
from primero_progres.flows import primero_referral as flow3
from primero_progres.flows.primero_access import PrimeroAccessError
from primero_progres.profiles import load_profile

SERVICE = "0e000000-0000-4000-8000-0000000000a1"
OTHER_SERVICE = "0e000000-0000-4000-8000-0000000000b2"


def referred_case(record_id: str, service: str, stamp: str, **fields: Any) -> dict[str, Any]:
    row = {
        "unique_id": service,
        "service_type": "alternative_care",
        "service_implementing_agency": "UNHCR",
    }
    return demo_data.primero_case(
        f"case-{record_id}",
        record_id,
        associated_user_names=[demo_data.PRIMERO_CASEWORKER, demo_data.UNHCR_CASEWORKER],
        services_section=[row],
        last_updated_at=stamp,
        **fields,
    )


@pytest.fixture
def two_referred(primero: FakePrimero) -> None:
    primero.cases = {
        "rec-1": referred_case("rec-1", SERVICE, "2026-11-29T10:00:00Z"),
        "rec-2": referred_case("rec-2", OTHER_SERVICE, "2026-11-29T10:05:00Z"),
        "rec-3": demo_data.primero_case("case-rec-3", "rec-3"),  # not associated with UNHCR
    }
    primero.referrals = {
        "rec-1": [{"id": "ref-1", "service_record_id": SERVICE}],
        "rec-2": [{"id": "ref-2", "service_record_id": OTHER_SERVICE}],
    }
    primero.users = {u["user_name"]: u for u in demo_data.PRIMERO_USERS}


async def poll_through(run: Any, drain: Any) -> None:
    """A poll and every job it leads to, up to the ``send`` jobs (not run)."""
    await run(flow3.poll, make_job(flow3.POLL, {}))
    await drain({flow3.POLL: flow3.poll, flow3.CASE: flow3.examine})


@pytest.mark.usefixtures("two_referred")
async def test_the_poll_queues_one_referral_per_referred_unhcr_service(
    run: Any, drain: Any, fake_store: FakeStore, primero: FakePrimero
) -> None:
    await run(flow3.poll, make_job(flow3.POLL, {}))
    # the page queues one job per case that holds a UNHCR service, nothing else
    assert [j.key for j in fake_store.jobs] == [
        f"{flow3.CASE}:rec-1:2026-11-29T10:00:00Z",
        f"{flow3.CASE}:rec-2:2026-11-29T10:05:00Z",
    ]
    assert primero.calls_of("list_referrals") == []
    assert fake_store.cursors.values == {"primero-referral": "2026-11-29T10:05:00Z"}
    assert await drain({flow3.POLL: flow3.poll, flow3.CASE: flow3.examine}) == 2

    [listing] = primero.calls_of("case_window")
    assert listing["filters"] == {"associated_user_names": [demo_data.UNHCR_CASEWORKER]}
    assert primero.calls_of("list_referrals") == ["rec-1", "rec-2"]
    assert primero.calls_of("get_user") == [demo_data.PRIMERO_CASEWORKER], "once per process"
    sends = fake_store.jobs_of(flow3.SEND)
    assert [s.key for s in sends] == [
        f"{flow3.SEND}:case-rec-1:{SERVICE}",
        f"{flow3.SEND}:case-rec-2:{OTHER_SERVICE}",
    ]
    assert dict(sends[0].payload or {})["message"]["id"] == f"case-rec-1#{SERVICE[-12:]}"
    queued = await fake_store.ledger.get(flow3.FLOW, f"case-rec-1:{SERVICE}")
    assert queued is not None
    assert (queued.state, queued.referral_id, queued.org_referral_id) == (
        "queued",
        "ref-1",
        f"case-rec-1#{SERVICE[-12:]}",
    )
    assert fake_store.cursors.values == {"primero-referral": "2026-11-29T10:05:00Z"}


@pytest.mark.usefixtures("two_referred")
async def test_a_referral_is_queued_once_however_often_it_is_read(
    run: Any, drain: Any, fake_store: FakeStore, primero: FakePrimero
) -> None:
    await poll_through(run, drain)
    await poll_through(run, drain)
    # an edited case whose UNHCR services the ledger has all queued needs no new look
    primero.cases["rec-1"]["last_updated_at"] = "2026-11-29T10:30:00Z"
    await poll_through(run, drain)
    assert len(fake_store.jobs_of(flow3.CASE)) == 2
    assert len(fake_store.jobs_of(flow3.SEND)) == 2


@pytest.mark.usefixtures("two_referred")
async def test_a_case_primero_fails_on_is_retried_alone(
    run: Any, drain: Any, fake_store: FakeStore, primero: FakePrimero
) -> None:
    """One case's ``list_referrals`` failing used to discard the whole poll (issue 10, 3)."""
    await run(flow3.poll, make_job(flow3.POLL, {}))
    first, second = fake_store.next_job({flow3.CASE}), fake_store.next_job({flow3.CASE})
    assert first is not None and second is not None
    primero.errors["list_referrals"] = TransientError("primero: 503", reason="http_503")
    with pytest.raises(TransientError):
        await run(flow3.examine, first)
    del primero.errors["list_referrals"]
    await run(flow3.examine, second)
    assert [s.key for s in fake_store.jobs_of(flow3.SEND)] == [
        f"{flow3.SEND}:case-rec-2:{OTHER_SERVICE}"
    ]
    assert fake_store.cursors.values == {"primero-referral": "2026-11-29T10:05:00Z"}
    await run(flow3.examine, first)
    assert len(fake_store.jobs_of(flow3.SEND)) == 2


@pytest.mark.usefixtures("two_referred")
async def test_the_cursor_moves_page_by_page(
    run: Any, drain: Any, fake_store: FakeStore, primero: FakePrimero
) -> None:
    primero.window = 1
    await run(flow3.poll, make_job(flow3.POLL, {}))
    assert fake_store.cursors.values == {"primero-referral": "2026-11-29T10:00:00Z"}
    assert fake_store.audit_of("poll_finished") == []
    await drain({flow3.POLL: flow3.poll})
    assert fake_store.cursors.values == {"primero-referral": "2026-11-29T10:05:00Z"}
    assert fake_store.audit_of("poll_finished") == [
        {"count": 2, "total": 2, "cursor": "2026-11-29T10:05:00Z"}
    ]
    assert len(fake_store.jobs_of(flow3.CASE)) == 2


@pytest.mark.usefixtures("two_referred")
async def test_an_unmappable_referral_is_recorded_then_sent_once_fixed(
    run: Any, drain: Any, fake_store: FakeStore, primero: FakePrimero
) -> None:
    primero.cases["rec-1"]["language"] = ["language99"]
    await poll_through(run, drain)

    key = f"case-rec-1:{SERVICE}"
    unmappable = await fake_store.ledger.get(flow3.FLOW, key)
    assert unmappable is not None and unmappable.state == "unmappable"
    assert fake_store.ledger.history[0][1:] == (
        key,
        "referral_not_mappable",
        {"reason": "unknown_code"},
    )
    [reported] = fake_store.audit_of("referral_not_mappable")
    assert (reported["reason"], reported["fields"]) == ("unknown_code", ["language"])
    assert [s.key for s in fake_store.jobs_of(flow3.SEND)] == [
        f"{flow3.SEND}:case-rec-2:{OTHER_SERVICE}"
    ]

    primero.cases["rec-1"]["language"] = ["language2"]
    primero.cases["rec-1"]["last_updated_at"] = "2026-11-29T10:10:00Z"  # Primero's, on edit
    await poll_through(run, drain)
    fixed = await fake_store.ledger.get(flow3.FLOW, key)
    assert fixed is not None and fixed.state == "queued"
    assert len(fake_store.jobs_of(flow3.SEND)) == 2


async def test_send_delivers_the_referral_and_records_it(
    run: Any, fake_store: FakeStore, gateway: FakeGateway
) -> None:
    refs = {
        "case_record_id": "rec-1",
        "case_id": "case-1",
        "service_unique_id": SERVICE,
        "referral_id": "ref-1",
        "org_referral_id": f"case-1#{SERVICE[-12:]}",
    }
    message = {"id": refs["org_referral_id"], "request_type": "ReceiveIncomingReferral"}
    await run(flow3.send, make_job(flow3.SEND, {"message": message}, refs=refs))

    assert gateway.sent == [("referral", message)]
    sent = await fake_store.ledger.get(flow3.FLOW, f"case-1:{SERVICE}")
    assert sent is not None and (sent.state, sent.org_referral_id) == (
        "sent",
        refs["org_referral_id"],
    )
    assert fake_store.audit_of("referral_sent") == [refs]


@pytest.mark.usefixtures("two_referred")
async def test_under_the_self_scope_the_poll_stops_naming_the_scope(
    run: Any, fake_store: FakeStore, primero: FakePrimero
) -> None:
    """Primero would hide every referral from a ``self``-scoped API user, without a word."""
    primero.scope = "self"
    with pytest.raises(PrimeroAccessError) as caught:
        await run(flow3.poll, make_job(flow3.POLL, {}))
    assert caught.value.reason == "primero_scope_self"
    assert "'all' scope" in caught.value.message
    assert fake_store.jobs == [] and fake_store.cursors.values == {}


@pytest.mark.usefixtures("two_referred")
async def test_without_the_users_permission_referrals_go_with_the_default_contact(
    run: Any, drain: Any, fake_store: FakeStore, primero: FakePrimero
) -> None:
    primero.users_forbidden = True
    await poll_through(run, drain)

    sends = fake_store.jobs_of(flow3.SEND)
    assert len(sends) == 2
    default = load_profile("gambella").default_contact
    for send in sends:
        message = dict(send.payload or {})["message"]
        assert (message["position"], message["email"], message["phone"]) == (
            default.position,
            default.email,
            default.phone,
        )
    audited = fake_store.audit_of("contact_defaulted")
    assert [(a["case_id"], a["reason"]) for a in audited] == [
        ("case-rec-1", "primero_users_forbidden"),
        ("case-rec-2", "primero_users_forbidden"),
    ]
    # read again, nothing is queued or audited twice
    primero.cases["rec-1"]["last_updated_at"] = "2026-11-29T11:00:00Z"
    await poll_through(run, drain)
    assert len(fake_store.audit_of("contact_defaulted")) == 2
