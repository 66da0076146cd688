"""A polling flow with no cursor never polls without a start point (the first poll of a fresh
bridge would otherwise send proGres years of history), on both databases."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import structlog

from primero_progres.scheduler import Scheduler
from primero_progres.store import (
    BEGINNING,
    AuditEvent,
    Flow,
    NoStartPoint,
    NotARewind,
    Store,
    parse_moment,
)

START = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
FLOW = Flow.PRIMERO_REFERRAL


async def _polls(store: Store) -> int:
    return sum(n for (kind, _), n in (await store.jobs.counts()).items() if kind.endswith(".poll"))


async def test_no_cursor_and_no_start_point_refuses_every_way_a_poll_starts(store: Store) -> None:
    with pytest.raises(NoStartPoint) as refused:
        await store.polls.try_trigger(FLOW, interval=60, owner="m1", lease_seconds=30)
    assert refused.value.reason == "no_start_point"
    assert "PRIMERO_PROGRES_POLL_START_AT" in refused.value.message
    assert f"cursor set {FLOW}" in refused.value.message
    with pytest.raises(NoStartPoint):
        await store.polls.run_now(FLOW)
    with pytest.raises(NoStartPoint):
        await store.polls.run_now(Flow.PRIMERO_DECISION, {"full_scan": True})
    assert await _polls(store) == 0
    assert await store.cursors.all() == {}


async def test_the_refusal_is_audited_once_however_many_ticks(store: Store) -> None:
    for _ in range(3):
        with pytest.raises(NoStartPoint):
            await store.polls.try_trigger(FLOW, interval=0.001, owner="m1", lease_seconds=30)
    entries = await store.audit.list(event=AuditEvent.POLL_NO_START_POINT)
    assert [(e.flow, e.ids) for e in entries] == [(FLOW.value, {"reason": "no_start_point"})]


async def test_the_configured_start_point_becomes_the_cursor(store: Store) -> None:
    job_id = await store.polls.try_trigger(
        FLOW, interval=60, owner="m1", lease_seconds=30, start_at=START
    )
    assert job_id is not None
    assert await store.cursors.get(FLOW) == "2026-11-30T08:00:00Z"
    [entry] = await store.audit.list(event=AuditEvent.CURSOR_SET)
    assert entry.ids == {
        "cursor": "2026-11-30T08:00:00Z",
        "previous_cursor": None,
        "source": "setting",
    }
    assert entry.account is None


async def test_an_existing_cursor_is_never_replaced_by_the_setting(store: Store) -> None:
    await store.polls.set_start(FLOW, START, account="cli:root")
    later = datetime(2027, 1, 1, tzinfo=UTC)
    await store.polls.run_now(FLOW, start_at=later)
    assert await store.cursors.get(FLOW) == "2026-11-30T08:00:00Z"


async def test_from_beginning_polls_once_without_writing_a_cursor(store: Store) -> None:
    job_id = await store.polls.run_now(FLOW, from_beginning=True, account="cli:root")
    assert await store.cursors.get(FLOW) is None
    [entry] = await store.audit.list(event=AuditEvent.POLL_REQUESTED)
    assert (entry.account, entry.ids) == ("cli:root", {"job_id": job_id, "from_beginning": True})
    with pytest.raises(NoStartPoint):
        await store.polls.run_now(FLOW)


async def test_a_start_point_at_the_beginning_lets_the_scheduler_poll(store: Store) -> None:
    assert await store.polls.set_start(FLOW, BEGINNING, account="cli:root") == (
        "1970-01-01T00:00:00Z"
    )
    assert await store.polls.try_trigger(FLOW, interval=60, owner="m1", lease_seconds=30)


async def test_rewind_moves_back_only_and_is_audited(store: Store) -> None:
    with pytest.raises(NoStartPoint):
        await store.polls.rewind(FLOW, START, account="amina")
    await store.polls.set_start(FLOW, START, account="amina", reason="cut-over")
    with pytest.raises(NotARewind):
        await store.polls.rewind(FLOW, datetime(2026, 12, 1, tzinfo=UTC), account="amina")
    value = await store.polls.rewind(
        FLOW, parse_moment("2026-11-29T06:30:00"), account="amina", reason="DTP outage"
    )
    assert value == "2026-11-29T06:30:00Z"
    assert await store.cursors.get(FLOW) == value
    [rewound] = await store.audit.list(event=AuditEvent.CURSOR_REWOUND)
    assert rewound.account == "amina"
    assert rewound.ids == {
        "cursor": "2026-11-29T06:30:00Z",
        "previous_cursor": "2026-11-30T08:00:00Z",
        "reason": "DTP outage",
    }


def test_operators_give_date_times_in_iso_8601() -> None:
    assert parse_moment("2026-11-30T10:00:00+02:00") == START
    assert parse_moment("2026-11-30T08:00Z") == START
    with pytest.raises(Exception, match="ISO 8601"):
        parse_moment("yesterday")


async def test_the_scheduler_logs_the_refusal_once_and_polls_once_a_start_point_exists(
    store: Store,
) -> None:
    scheduler = Scheduler(store, {FLOW: 0.001}, owner="m1", lease_seconds=30)
    with structlog.testing.capture_logs() as captured:
        for _ in range(3):
            assert await scheduler.tick() == []
        await store.polls.set_start(FLOW, START, account="cli:root")
        assert await scheduler.tick() == [FLOW]
    lines = [e["event"] for e in captured if e["event"].startswith("poll.")]
    assert lines == ["poll.no_start_point", "poll.enqueued"]
    [refusal] = [e for e in captured if e["event"] == "poll.no_start_point"]
    assert (refusal["log_level"], refusal["flow"]) == ("error", FLOW.value)
