"""The store parts alerting reads and writes, on both databases: peer status merged from several
processes, alert states and the outbox, and the reads the checks and metrics make (waiting
jobs, dead letters by reason, the last completed poll, new audit entries)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from primero_progres.errors import FailureClass
from primero_progres.store import (
    AlertNotice,
    AlertState,
    AuditEvent,
    DeadReason,
    Flow,
    PeerOutcomes,
    PeerStatus,
    Store,
)
from primero_progres.store.peers import merge

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


async def test_peer_status_keeps_the_first_failure_after_the_latest_success(store: Store) -> None:
    health = store.peers
    await health.record([PeerOutcomes("primero", succeeded_at=at(0))])
    await health.record(
        [PeerOutcomes("primero", first_failed_at=at(10), failed_at=at(20), failure="timeout")]
    )
    # another process, later, saw only failures: failing_since stays the first one
    await health.record(
        [PeerOutcomes("primero", first_failed_at=at(30), failed_at=at(40), failure="server_error")]
    )
    [row] = await health.all()
    assert (row.peer, row.last_success_at, row.failing_since) == ("primero", at(0), at(10))
    assert (row.last_failure_at, row.last_failure_kind) == (at(40), "server_error")
    assert row.consecutive_failures == 2

    await health.record([PeerOutcomes("primero", succeeded_at=at(50))])
    [row] = await health.all()
    assert (row.failing_since, row.last_success_at, row.last_failure_at) == (None, at(50), at(40))
    assert (row.consecutive_failures, row.last_failure_kind) == (0, "server_error")


async def test_peer_status_of_several_peers_in_one_report(store: Store) -> None:
    await store.peers.record(
        [
            PeerOutcomes("dtp", first_failed_at=at(1), failed_at=at(1), failure="unauthorized"),
            PeerOutcomes("primero", succeeded_at=at(2)),
        ]
    )
    rows = {row.peer: row for row in await store.peers.all()}
    assert rows["dtp"].failing_since == at(1) and rows["dtp"].last_failure_kind == "unauthorized"
    assert rows["primero"].failing_since is None and rows["primero"].last_failure_kind is None


def test_a_late_report_of_an_older_failure_does_not_hide_a_newer_success() -> None:
    row = PeerStatus("dtp", last_success_at=at(100), updated_at=at(100))
    late = PeerOutcomes("dtp", first_failed_at=at(10), failed_at=at(20), failure="timeout")
    assert merge(row, late)["failing_since"] is None
    # a success reported late, between two failures: failing since the later failure only
    failing = PeerStatus(
        "dtp",
        last_success_at=at(0),
        last_failure_at=at(40),
        last_failure_kind="timeout",
        consecutive_failures=3,
        failing_since=at(10),
        updated_at=at(40),
    )
    merged = merge(failing, PeerOutcomes("dtp", succeeded_at=at(20)))
    assert (merged["failing_since"], merged["last_success_at"]) == (at(40), at(20))
    assert merged["consecutive_failures"] == 1, "only the failure at 40 follows that success"


_moments = st.integers(min_value=0, max_value=100).map(at)


@st.composite
def _reports(draw: st.DrawFn) -> PeerOutcomes:
    """What one process may report: a success and/or failures after it, in any order of
    arrival."""
    succeeded = draw(st.none() | _moments)
    failures = draw(st.integers(min_value=0, max_value=3))
    if failures == 0:
        return PeerOutcomes("dtp", succeeded_at=succeeded or at(0))
    first = draw(_moments.filter(lambda m: succeeded is None or m > succeeded))
    last = draw(_moments.filter(lambda m: m >= first))
    kind = draw(st.sampled_from(["timeout", "unauthorized", "server_error"]))
    return PeerOutcomes(
        "dtp", succeeded, first, last, kind, "transient", "timeout", failures=failures
    )


@given(st.lists(_reports(), min_size=1, max_size=8))
def test_the_console_and_the_alerts_read_the_same_failing_run(reports: list[PeerOutcomes]) -> None:
    """Whatever the order reports arrive in, "failures in a row" (the console) is above zero
    exactly while ``failing_since`` (the peer-down alert) is set, after the latest success."""
    row: PeerStatus | None = None
    for report in reports:
        row = PeerStatus("dtp", **merge(row, report))
        failing = row.failing_since is not None
        assert (row.consecutive_failures > 0) == failing
        if failing:
            assert row.last_failure_at is not None and row.failing_since <= row.last_failure_at
            assert row.last_success_at is None or row.failing_since > row.last_success_at
        else:
            assert row.last_failure_at is None or (
                row.last_success_at is not None and row.last_success_at >= row.last_failure_at
            )


async def test_alert_states_and_the_outbox_round_trip(store: Store) -> None:
    state = AlertState("peer_down:dtp", "peer_down", True, at(0), at(5), {"failure": "timeout"})
    notice = AlertNotice("peer_down:dtp", "peer_down", "failure", "title", "body")
    await store.alerts.commit([state], [notice], targets={"t2", "t1"})
    assert await store.alerts.states() == {"peer_down:dtp": state}

    [entry] = await store.alerts.outbox()
    assert (entry.notice, entry.pending, entry.attempts) == (notice, ["t1", "t2"], 0)
    await store.alerts.attempted(entry.id, pending={"t2"})
    [entry] = await store.alerts.outbox()
    assert (entry.pending, entry.attempts) == (["t2"], 1)
    await store.alerts.attempted(entry.id, pending=set())
    assert await store.alerts.outbox() == []

    recovered = AlertState("peer_down:dtp", "peer_down", False, None, at(5), {})
    await store.alerts.commit([recovered], [notice], targets=set())
    assert await store.alerts.states() == {"peer_down:dtp": recovered}
    assert await store.alerts.outbox() == [], "nobody to tell: nothing queued"


async def _dead(store: Store, kind: str, reason: str, **refs: str) -> str:
    job_id = (await store.jobs.enqueue(kind, {"x": 1}, refs=refs)).id
    job = await store.jobs.claim("w", kinds=[kind], lease_seconds=30)
    assert job is not None and job.id == job_id
    await store.jobs.kill(job, "w", DeadReason(FailureClass.PERMANENT, reason, "m"))
    return job_id


async def test_dead_letters_waiting_jobs_and_new_audit_entries(store: Store) -> None:
    deliver = "progres-referral.deliver"
    first = await _dead(store, deliver, "http_403", progres_interventionnumber="I-1")
    await _dead(store, "progres-referral.deliver", "http_403")
    await _dead(store, "primero-decision.send", "http_400")
    await store.jobs.enqueue("progres-decision.apply", {"x": 1})
    await store.jobs.enqueue("progres-decision.apply", {"x": 2})

    assert await store.jobs.dead_counts() == {
        ("progres-referral.deliver", "http_403"): 2,
        ("primero-decision.send", "http_400"): 1,
    }
    waiting = await store.jobs.waiting()
    assert list(waiting) == ["progres-decision.apply"]
    assert waiting["progres-decision.apply"].count == 2
    assert waiting["progres-decision.apply"].oldest_created_at <= store.now()

    entries = await store.audit.after(AuditEvent.JOB_DEAD, after_id=0, until=store.now())
    assert [(e.flow, e.ids["reason"]) for e in entries] == [
        ("progres-referral", "http_403"),
        ("progres-referral", "http_403"),
        ("primero-decision", "http_400"),
    ]
    assert entries[0].ids["job_id"] == first
    assert entries[0].ids["progres_interventionnumber"] == "I-1"
    later = await store.audit.after(AuditEvent.JOB_DEAD, after_id=entries[1].id, until=store.now())
    assert [e.id for e in later] == [entries[2].id]
    assert await store.audit.after(
        AuditEvent.JOB_DEAD, after_id=0, until=entries[0].at - timedelta(seconds=1)
    ) == []


async def test_the_last_completed_poll_of_each_flow(store: Store) -> None:
    flows = [Flow.PRIMERO_DECISION, Flow.PRIMERO_REFERRAL]
    assert await store.polls.last_completed(flows) == {}
    await store.polls.run_now(Flow.PRIMERO_DECISION, from_beginning=True)
    job = await store.jobs.claim("w", kinds=["primero-decision.poll"], lease_seconds=30)
    assert job is not None
    assert await store.polls.last_completed(flows) == {}, "a running poll has not completed"
    await store.jobs.commit_step(job, "w", [])
    finished = await store.polls.last_completed(flows)
    assert list(finished) == [Flow.PRIMERO_DECISION]
    assert abs(finished[Flow.PRIMERO_DECISION] - store.now()) < timedelta(seconds=30)
