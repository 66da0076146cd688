"""Flow 2's steps against in-memory fakes: the paged poll, queueing once, sending."""

from __future__ import annotations

from typing import Any

import pytest
from flow_fakes import FakeGateway, FakePrimero, FakeStore, make_job

from primero_progres.errors import TransientError
from primero_progres.flows import primero_decision as flow2


def case(record_id: str, stamp: str, *rows: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {
        "id": record_id,
        "case_id": f"case-{record_id}",
        "owned_by": "focal_point",
        "last_updated_at": stamp,
        "services_section": list(rows),
        **fields,
    }


def decided(unique_id: str, number: str, status: str) -> dict[str, Any]:
    return {
        "unique_id": unique_id,
        "progres_interventionnumber": number,
        "service_referral": "external_referral",
        "unhcr_referral_status": status,
    }


@pytest.fixture
def three_waiting(fake_store: FakeStore, primero: FakePrimero) -> None:
    fake_store.ledger.waiting = ["rec-3", "rec-1", "rec-2"]
    primero.cases = {
        "rec-1": case("rec-1", "2026-11-29T10:00:00.250Z", decided("svc-1", "N-1", "accepted")),
        "rec-2": case("rec-2", "2026-11-29T11:30:00.000Z"),
        "rec-3": case("rec-3", "2026-11-29T09:00:00.000Z", decided("svc-3", "N-3", "rejected")),
    }


@pytest.mark.usefixtures("three_waiting")
async def test_the_poll_reads_only_waiting_cases_a_page_at_a_time(
    run: Any,
    drain: Any,
    fake_store: FakeStore,
    primero: FakePrimero,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(flow2, "WAITING_PAGE", 2)
    await run(flow2.poll, make_job(flow2.POLL, {}))
    # one page per job: the next page is queued, the cursor waits for the last page
    [following] = fake_store.jobs_of(flow2.POLL)
    assert dict(following.payload or {})["poll"]["after"] == "rec-2"
    assert fake_store.cursors.values == {}
    assert fake_store.audit_of("poll_finished") == []
    assert await drain({flow2.POLL: flow2.poll}) == 1

    assert fake_store.ledger.waiting_calls == [(None, 2), ("rec-2", 2)]
    assert [call["ids"] for call in primero.calls_of("case_window")] == [
        ["rec-1", "rec-2"],
        ["rec-3"],
    ]
    first, second = primero.calls_of("case_window")
    assert first["position"].since == second["position"].since, "one lower bound per poll"
    sends = fake_store.jobs_of(flow2.SEND)
    assert [(s.key, dict(s.payload or {})["message"]["status"]) for s in sends] == [
        (f"{flow2.SEND}:svc-1:accepted", "acknowledged"),
        (f"{flow2.SEND}:svc-3:rejected", "rejected"),
    ]
    queued = await fake_store.ledger.get(flow2.FLOW, "svc-1:accepted")
    assert queued is not None
    assert (queued.state, queued.case_record_id, queued.progres_interventionnumber) == (
        "queued",
        "rec-1",
        "N-1",
    )
    assert fake_store.cursors.values == {"primero-decision": "2026-11-29T11:30:00Z"}
    assert fake_store.audit_of("poll_finished") == [
        {"count": 3, "total": 2, "cursor": "2026-11-29T11:30:00Z"}
    ]


@pytest.mark.usefixtures("three_waiting")
async def test_a_decision_is_queued_once_however_often_the_case_is_read(
    run: Any, fake_store: FakeStore
) -> None:
    await run(flow2.poll, make_job(flow2.POLL, {}))
    await run(flow2.poll, make_job(flow2.POLL, {}))
    assert len(fake_store.jobs_of(flow2.SEND)) == 2


@pytest.mark.usefixtures("three_waiting")
async def test_a_full_scan_reads_every_updated_case_without_the_ledger(
    run: Any, fake_store: FakeStore, primero: FakePrimero
) -> None:
    fake_store.cursors.values["primero-decision"] = "2026-11-29T08:00:00Z"
    await run(flow2.poll, make_job(flow2.POLL, {"full_scan": True}))

    assert fake_store.ledger.waiting_calls == []
    [call] = primero.calls_of("case_window")
    assert call["ids"] is None
    assert call["position"].since == "2026-11-29T07:59:00Z", "cursor minus the overlap"
    assert len(fake_store.jobs_of(flow2.SEND)) == 2


@pytest.mark.usefixtures("three_waiting")
async def test_a_full_scan_moves_the_cursor_page_by_page(
    run: Any, drain: Any, fake_store: FakeStore, primero: FakePrimero
) -> None:
    primero.window = 1
    await run(flow2.poll, make_job(flow2.POLL, {"full_scan": True}))
    assert fake_store.cursors.values == {"primero-decision": "2026-11-29T09:00:00Z"}
    [following] = fake_store.jobs_of(flow2.POLL)
    assert dict(following.payload or {})["full_scan"] is True
    assert await drain({flow2.POLL: flow2.poll}) == 2
    assert fake_store.cursors.values == {"primero-decision": "2026-11-29T11:30:00Z"}
    assert [s.key for s in fake_store.jobs_of(flow2.SEND)] == [
        f"{flow2.SEND}:svc-3:rejected",
        f"{flow2.SEND}:svc-1:accepted",
    ]
    assert fake_store.audit_of("poll_finished") == [
        {"count": 3, "total": 2, "cursor": "2026-11-29T11:30:00Z"}
    ]


@pytest.mark.usefixtures("three_waiting")
async def test_a_failing_page_is_retried_alone(
    run: Any, drain: Any, fake_store: FakeStore, primero: FakePrimero
) -> None:
    """A page that fails discards only its own work: the pages before it stay committed and
    its retry reads its own page again, not a window grown since (issue 10, 3)."""
    primero.window = 1
    await run(flow2.poll, make_job(flow2.POLL, {"full_scan": True}))
    retried = fake_store.next_job({flow2.POLL})
    assert retried is not None
    primero.errors["case_window"] = TransientError("primero list_cases: 503", reason="http_503")
    with pytest.raises(TransientError):
        await run(flow2.poll, retried)
    assert [s.key for s in fake_store.jobs_of(flow2.SEND)] == [f"{flow2.SEND}:svc-3:rejected"]
    assert fake_store.cursors.values == {"primero-decision": "2026-11-29T09:00:00Z"}

    del primero.errors["case_window"]
    await run(flow2.poll, retried)
    positions = [call["position"] for call in primero.calls_of("case_window")]
    assert positions[1] == positions[2], "the retry reads the page that failed"
    assert await drain({flow2.POLL: flow2.poll}) == 1
    assert len(fake_store.jobs_of(flow2.SEND)) == 2


async def test_nothing_waiting_means_no_call_to_primero(
    run: Any, fake_store: FakeStore, primero: FakePrimero
) -> None:
    await run(flow2.poll, make_job(flow2.POLL, {}))
    assert primero.calls == []
    assert fake_store.cursors.values == {}
    assert fake_store.audit_of("poll_finished") == [{"count": 0, "total": 0, "cursor": None}]


async def test_an_unmappable_decision_is_audited_and_not_sent(
    run: Any, fake_store: FakeStore, primero: FakePrimero
) -> None:
    fake_store.ledger.waiting = ["rec-1"]
    primero.cases = {
        "rec-1": case("rec-1", "2026-11-29T10:00:00Z", decided("svc-1", "N-1", "accepted"))
    }
    del primero.cases["rec-1"]["owned_by"]
    await run(flow2.poll, make_job(flow2.POLL, {}))

    assert fake_store.jobs == [] and fake_store.ledger.exchanges == {}
    assert fake_store.audit_of("decision_not_mappable") == [
        {
            "case_id": "case-rec-1",
            "service_unique_id": "svc-1",
            "progres_interventionnumber": "N-1",
            "reason": "missing_fields",
        }
    ]


async def test_a_decided_row_without_a_unique_id_is_audited_and_never_keyed(
    run: Any, fake_store: FakeStore, primero: FakePrimero
) -> None:
    """Keyed ``None:<status>``, only the first such decision would ever be sent: the row
    cannot be addressed anyway, so it is skipped, each one, and its neighbour still sent."""
    without = {**decided("svc-x", "N-1", "accepted"), "unique_id": None}
    other = {**decided("svc-x", "N-2", "accepted")}
    del other["unique_id"]
    primero.cases = {
        "rec-1": case(
            "rec-1", "2026-11-29T10:00:00Z", without, decided("svc-3", "N-3", "accepted")
        ),
        "rec-2": case("rec-2", "2026-11-29T10:00:01Z", other),
    }
    await run(flow2.poll, make_job(flow2.POLL, {"full_scan": True}))

    assert [s.key for s in fake_store.jobs_of(flow2.SEND)] == [f"{flow2.SEND}:svc-3:accepted"]
    assert list(fake_store.ledger.exchanges) == [(flow2.FLOW, "svc-3:accepted")]
    assert fake_store.audit_of("decision_not_mappable") == [
        {
            "case_id": f"case-{record_id}",
            "service_unique_id": None,
            "progres_interventionnumber": number,
            "reason": "no_unique_id",
        }
        for record_id, number in (("rec-1", "N-1"), ("rec-2", "N-2"))
    ]


async def test_send_delivers_the_decision_and_records_it(
    run: Any, fake_store: FakeStore, gateway: FakeGateway
) -> None:
    message = {"case_id": "case-1", "status": "acknowledged", "progres_interventionnumber": "N-1"}
    refs = {
        "case_id": "case-1",
        "service_unique_id": "svc-1",
        "progres_interventionnumber": "N-1",
        "status": "accepted",
    }
    await run(flow2.send, make_job(flow2.SEND, {"message": message}, refs=refs))

    assert gateway.sent == [("decision", message)]
    sent = await fake_store.ledger.get(flow2.FLOW, "svc-1:accepted")
    assert sent is not None and (sent.state, sent.case_id) == ("sent", "case-1")
    assert fake_store.audit_of("decision_sent") == [
        {"case_id": "case-1", "service_unique_id": "svc-1", "status": "accepted"}
    ]
