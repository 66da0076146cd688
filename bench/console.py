"""The operator console's overview with a large history: how long the page takes.

Run with ``make bench`` (or ``.venv/bin/python bench/console.py [JOBS]``; default 100,000 jobs
on a fresh SQLite file; ``--database-url`` for PostgreSQL). The history is spread over 30
days: per item a job of each step of its flow, a ledger event per delivery, an audit entry,
and 1% dead letters; 200 jobs are waiting. The figures are the store's overview queries alone
and the whole page (``GET /admin/`` through the app, logged in), median and worst of 20 runs.
The target is 200 ms for the page.

Rows are seeded with bulk INSERTs straight into the store's tables (through the store's own
writes 100,000 jobs take minutes); the measured reads go through the store API and the app.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx2
import sqlalchemy as sa

from primero_progres.logging import configure_logging
from primero_progres.operators import hash_password
from primero_progres.settings import Settings
from primero_progres.store import Cipher, Flow, Role, Store
from primero_progres.store.schema import audit_events, exchange_events, exchanges, jobs
from primero_progres.web import create_app

SEED_BATCH = 5_000
RUNS = 20
DEAD = {"failure_class": "permanent", "reason": "http_400", "message": "x"}
STEPS = {
    Flow.PROGRES_REFERRAL: ("receive", "deliver", "feedback"),
    Flow.PRIMERO_DECISION: ("poll", "send"),
    Flow.PRIMERO_REFERRAL: ("poll", "send"),
    Flow.PROGRES_DECISION: ("receive", "apply"),
}
DELIVERED = {
    Flow.PROGRES_REFERRAL: "case_created",
    Flow.PRIMERO_DECISION: "decision_sent",
    Flow.PRIMERO_REFERRAL: "referral_sent",
    Flow.PROGRES_DECISION: "referral_patched",
}


async def seed(store: Store, total: int) -> None:
    rng = random.Random(7)
    now = store.now()
    job_rows: list[dict[str, Any]] = []
    exchange_rows: list[dict[str, Any]] = []
    event_rows: list[dict[str, Any]] = []
    audit_rows: list[dict[str, Any]] = []
    flows = list(STEPS)
    made = 0
    while made < total:
        flow = flows[made % len(flows)]
        at = now - timedelta(seconds=rng.uniform(0, 30 * 86400))
        exchange_id = str(uuid.uuid4())
        for step in STEPS[flow]:
            state = "done"
            if made < 200:
                state = "pending"
            elif rng.random() < 0.01:
                state = "dead"
            job_rows.append(
                {
                    "id": str(uuid.uuid4()),
                    "kind": f"{flow.value}.{step}",
                    "key": None,
                    "state": state,
                    "attempts": 1,
                    "next_attempt_at": at,
                    "dead_reason": {
                        "failure_class": "permanent",
                        "reason": "http_400",
                        "message": "x",
                    }
                    if state == "dead"
                    else None,
                    "refs": {"case_id": exchange_id},
                    "created_at": at,
                    "updated_at": at,
                }
            )
            made += 1
        exchange_rows.append(
            {
                "id": exchange_id,
                "flow": flow.value,
                "key": exchange_id,
                "state": "sent",
                "case_id": exchange_id,
                "created_at": at,
                "updated_at": at,
            }
        )
        event_rows.append(
            {"exchange_id": exchange_id, "at": at, "event": DELIVERED[flow], "detail": {}}
        )
        audit_rows.append({"at": at, "event": "feedback_sent", "flow": flow.value, "ids": {}})
        if len(job_rows) >= SEED_BATCH:
            await _insert(store, job_rows, exchange_rows, event_rows, audit_rows)
    await _insert(store, job_rows, exchange_rows, event_rows, audit_rows)


async def _insert(store: Store, *batches: list[dict[str, Any]]) -> None:
    tables = (jobs, exchanges, exchange_events, audit_events)
    async with store.engine.begin() as conn:
        for table, rows in zip(tables, batches, strict=True):
            if rows:
                await conn.execute(sa.insert(table), rows)
                rows.clear()


def _figures(label: str, timings: list[float]) -> str:
    ms = sorted(t * 1000 for t in timings)
    return f"{label:<34} median {statistics.median(ms):7.1f} ms   worst {ms[-1]:7.1f} ms"


async def measure_store(store: Store, settings: Settings) -> list[float]:
    from primero_progres import flows

    timings = []
    for _ in range(RUNS):
        started = time.perf_counter()
        await store.reports.overview()
        await store.peers.all()
        await store.polls.status(flows.poll_triggers(settings))
        timings.append(time.perf_counter() - started)
    return timings


async def measure_page(settings: Settings, store: Store) -> list[float]:
    app = create_app(settings, store)
    transport = httpx2.ASGITransport(app=app)
    timings = []
    async with httpx2.AsyncClient(transport=transport, base_url="http://bridge.test") as client:
        page = await client.get("/admin/login")
        csrf = page.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
        answer = await client.post(
            "/admin/login",
            data={"csrf": csrf, "name": "bench", "password": "bench password 2026"},
        )
        assert answer.status_code == 303, answer.status_code
        for _ in range(RUNS):
            started = time.perf_counter()
            answer = await client.get("/admin/")
            timings.append(time.perf_counter() - started)
            assert answer.status_code == 200
    return timings


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("jobs", nargs="?", type=int, default=100_000)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    configure_logging(level="WARNING", json=False)
    with tempfile.TemporaryDirectory() as workdir:
        url = args.database_url or f"sqlite:///{Path(workdir) / 'bench.db'}"
        key = Cipher.throwaway()
        settings = Settings.for_tests(database_url=url)
        store = await Store.open(url, encryption=key)
        await store.upgrade()
        started = time.perf_counter()
        await seed(store, args.jobs)
        await store.accounts.add(
            "bench", Role.VIEWER, hash_password("bench password 2026"), account=None
        )
        seconds = time.perf_counter() - started
        print(f"seeded {args.jobs:,} jobs in {seconds:.1f} s ({url.split(':')[0]})")
        print(_figures("overview queries (store)", await measure_store(store, settings)))
        print(_figures("GET /admin/ (whole page)", await measure_page(settings, store)))
        await store.close()


if __name__ == "__main__":
    asyncio.run(main())
