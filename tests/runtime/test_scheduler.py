"""Polling triggers: one process at a time per flow, every interval, never overlapping."""

from __future__ import annotations

from datetime import UTC, datetime

from toy_handlers import FakeClock

from primero_progres.scheduler import Scheduler
from primero_progres.store import StepContext, Store
from primero_progres.worker import Worker

START = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)


async def test_only_the_lease_holder_triggers_a_poll(timed_store: Store, clock: FakeClock) -> None:
    triggers = {"primero-decision": 60.0, "primero-referral": 60.0}
    one = Scheduler(timed_store, triggers, owner="machine-1", lease_seconds=30, start_at=START)
    two = Scheduler(timed_store, triggers, owner="machine-2", lease_seconds=30, start_at=START)
    assert await one.tick() == ["primero-decision", "primero-referral"]
    assert await two.tick() == []
    assert await timed_store.leases.holder("poll:primero-decision") == "machine-1"
    counts = await timed_store.jobs.counts()
    assert counts == {
        ("primero-decision.poll", "pending"): 1,
        ("primero-referral.poll", "pending"): 1,
    }


async def test_no_new_poll_while_one_is_unfinished_or_before_the_interval(
    timed_store: Store, clock: FakeClock
) -> None:
    scheduler = Scheduler(
        timed_store, {"primero-decision": 60.0}, owner="m1", lease_seconds=30, start_at=START
    )
    assert await scheduler.tick() == ["primero-decision"]
    clock.advance(120)
    assert await scheduler.tick() == [], "the first poll is still pending"

    async def poll(ctx: StepContext) -> None:
        ctx.set_cursor("primero-decision", "w1")

    await Worker(timed_store, {"primero-decision.poll": poll}).run_until_idle()
    assert await scheduler.tick() == ["primero-decision"]
    await Worker(timed_store, {"primero-decision.poll": poll}).run_until_idle()
    clock.advance(59)
    assert await scheduler.tick() == [], "interval not elapsed since the last poll"
    clock.advance(1)
    assert await scheduler.tick() == ["primero-decision"]


async def test_lease_passes_to_another_process_when_the_holder_stops(
    timed_store: Store, clock: FakeClock
) -> None:
    one = Scheduler(
        timed_store, {"primero-referral": 10.0}, owner="m1", lease_seconds=30, start_at=START
    )
    two = Scheduler(
        timed_store, {"primero-referral": 10.0}, owner="m2", lease_seconds=30, start_at=START
    )
    assert await one.tick() == ["primero-referral"]
    await Worker(timed_store, {"primero-referral.poll": _noop}).run_until_idle()
    clock.advance(20)
    assert await two.tick() == [], "m1 still holds the lease"
    clock.advance(11)
    assert await two.tick() == ["primero-referral"]
    assert await timed_store.leases.holder("poll:primero-referral") == "m2"
    assert await one.tick() == []


async def _noop(ctx: StepContext) -> None:
    return None


async def test_over_ping_the_queue_flows_start_without_a_start_point(
    timed_store: Store, clock: FakeClock
) -> None:
    """PING's queues hold only what waits: flows 1 and 4 need no POLL_START_AT, while the
    Primero polls (flows 2 and 3) still refuse to read history without one."""
    from primero_progres import flows
    from primero_progres.settings import Settings
    from primero_progres.store import BEGINNING

    settings = Settings.for_tests(unhcr_gateway="ping")
    points = flows.start_points(settings)
    assert points == {
        "progres-referral": BEGINNING,
        "primero-decision": None,
        "primero-referral": None,
        "progres-decision": BEGINNING,
    }
    dtp = Settings.for_tests(poll_start_at="2026-11-30T08:00:00Z")
    assert flows.start_points(dtp) == {"primero-decision": START, "primero-referral": START}
    scheduler = Scheduler(
        timed_store, flows.poll_triggers(settings), owner="m1", lease_seconds=30,
        start_points=points,
    )
    assert await scheduler.tick() == ["progres-referral", "progres-decision"]
    assert await timed_store.cursors.get("progres-referral") == "1970-01-01T00:00:00Z"
    assert await timed_store.cursors.get("primero-referral") is None
