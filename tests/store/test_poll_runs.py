"""The console's polls page reads a poll's history in a bounded number of statements, however
many pages the poll had (a 100,000-case poll is 100 pages of 1,000), on both databases."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from primero_progres.store import AuditEvent, Flow, Store
from primero_progres.store.schema import audit_events, jobs

FLOW = Flow.PRIMERO_REFERRAL
POLL, CASE, SEND = "primero-referral.poll", "primero-referral.case", "primero-referral.send"


def _job(kind: str, at: Any, parent_id: str | None, state: str = "done") -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "kind": kind,
        "key": None,
        "state": state,
        "attempts": 1,
        "next_attempt_at": at,
        "refs": {},
        "created_at": at,
        "updated_at": at,
        "parent_id": parent_id,
    }


async def _poll(
    store: Store, pages: int, *, minutes_ago: int, sends_per_page: int, last_state: str = "done"
) -> tuple[list[dict[str, Any]], int]:
    """A poll of ``pages`` chained page jobs, each queuing a case job whose send is done, and
    one more send that failed; its ``poll_finished`` entry on the last page. The pages and the
    number of sends done."""
    at = store.now() - timedelta(minutes=minutes_ago)
    rows: list[dict[str, Any]] = []
    chain: list[dict[str, Any]] = []
    parent: str | None = None
    for n in range(pages):
        state = last_state if n == pages - 1 else "done"
        page = _job(POLL, at + timedelta(seconds=n), parent, state)
        chain.append(page)
        rows.append(page)
        for _ in range(sends_per_page):
            case = _job(CASE, at, page["id"])
            rows += [case, _job(SEND, at, case["id"])]
        rows.append(_job(SEND, at, page["id"], "dead"))
        parent = page["id"]
    finished = {
        "at": at,
        "event": AuditEvent.POLL_FINISHED.value,
        "flow": FLOW.value,
        "ids": {"count": pages * 1000, "total": pages * sends_per_page, "cursor": "2026-12-01"},
        "account": None,
        "job_id": chain[-1]["id"],
    }
    async with store.engine.begin() as conn:
        await conn.execute(sa.insert(jobs), rows)
        await conn.execute(sa.insert(audit_events), [finished])
    return chain, pages * sends_per_page


@contextmanager
def _statements(store: Store) -> Iterator[list[str]]:
    """The queries run on the store's engine meanwhile (the database's network edge)."""
    executed: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith(("SELECT", "WITH")):
            executed.append(statement)

    engine = store.engine.sync_engine
    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        yield executed
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)


async def test_a_long_poll_is_one_run_with_all_its_pages_in_a_few_statements(
    store: Store,
) -> None:
    long, long_sent = await _poll(store, 50, minutes_ago=30, sends_per_page=2)
    short, short_sent = await _poll(store, 3, minutes_ago=10, sends_per_page=1, last_state="dead")
    single, _ = await _poll(store, 1, minutes_ago=5, sends_per_page=0, last_state="running")

    with _statements(store) as executed:
        runs = await store.polls.runs(FLOW)

    assert [run.job_id for run in runs] == [single[0]["id"], short[0]["id"], long[0]["id"]]
    newest, middle, oldest = runs
    assert (oldest.state, oldest.items_sent) == ("done", long_sent) == ("done", 100)
    assert (oldest.cases_read, oldest.items_queued) == (50_000, 100)
    assert oldest.finished_at == long[-1]["updated_at"]
    assert oldest.queued_at == long[0]["created_at"]
    assert (middle.state, middle.items_sent, middle.cases_read) == ("dead", short_sent, 3000)
    assert (newest.state, newest.items_sent, newest.finished_at) == ("running", 0, None)
    assert len(executed) == 4, executed

    with _statements(store) as executed:
        assert [run.job_id for run in await store.polls.runs(FLOW, limit=1, offset=2)] == [
            long[0]["id"]
        ]
    assert len(executed) == 4


async def test_a_flow_that_never_polled_has_no_runs(store: Store) -> None:
    assert await store.polls.runs(Flow.PRIMERO_DECISION) == []
