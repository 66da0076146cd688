"""What one ``/metrics`` scrape and one alert check read from the database, as the queue grows.

Run with ``make bench`` (or ``.venv/bin/python bench/monitoring_read.py [JOBS ...]``; default
10,000 and 100,000 jobs on a fresh SQLite file; ``--database-url`` for PostgreSQL). The jobs
are 98 % done, 1 % dead (four reasons) and 1 % waiting, across the four flows' kinds, with a
poll of each polling flow done. The figures: the monitoring read (peer status, waiting jobs
per flow, last polls, dead letters by reason, the certificate) plus the queue counts, as the
scrape does them, and the alert check's own reads (alert states, new dead letters), median
of five.

The rows are seeded with bulk INSERTs straight into the jobs table; the reads go through
the store's API only.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from primero_progres.alerts import monitoring
from primero_progres.logging import configure_logging
from primero_progres.settings import Settings
from primero_progres.store import AuditEvent, Cipher, JobState, Store
from primero_progres.store.schema import jobs

SEED_BATCH = 10_000
KINDS = (
    "progres-referral.deliver",
    "progres-referral.feedback",
    "primero-decision.send",
    "primero-referral.send",
    "progres-decision.apply",
    "primero-decision.poll",
    "primero-referral.poll",
)
REASONS = ("http_403", "http_400", "connection", "unknown_case")


def _rows(count: int, start: int, now: datetime) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for n in range(start, start + count):
        kind = KINDS[n % len(KINDS)]
        if n % 100 == 0:
            state, reason = JobState.DEAD, REASONS[(n // 100) % len(REASONS)]
        elif n % 100 == 1:
            state, reason = JobState.PENDING, None
        else:
            state, reason = JobState.DONE, None
        created = now - timedelta(seconds=count - n)
        rows.append(
            {
                "id": str(uuid.uuid4()),
                "kind": kind,
                "key": None,
                "state": state.value,
                "attempts": 1,
                "next_attempt_at": created,
                "dead_reason": (
                    {"failure_class": "permanent", "reason": reason, "message": "m"}
                    if reason
                    else None
                ),
                "refs": {},
                "created_at": created,
                "updated_at": created,
            }
        )
    return rows


async def _seed(store: Store, count: int) -> None:
    now = store.now()
    async with store.engine.begin() as conn:
        for start in range(0, count, SEED_BATCH):
            await conn.execute(sa.insert(jobs), _rows(min(SEED_BATCH, count - start), start, now))


async def _median(action: Callable[[], Awaitable[None]], repeat: int = 5) -> float:
    timings = []
    for _ in range(repeat):
        started = time.perf_counter()
        await action()
        timings.append(time.perf_counter() - started)
    return statistics.median(timings)


async def _one(url: str, count: int) -> None:
    store = await Store.open(url, encryption=Cipher.throwaway())
    try:
        await store.upgrade()
        await _seed(store, count)
        settings = Settings.for_tests(database_url=url)

        async def scrape() -> None:
            await store.jobs.counts()
            await monitoring.read(store, settings)

        async def check_reads() -> None:
            await store.alerts.states()
            await monitoring.read(store, settings, dead_letters=False)
            await store.audit.after(AuditEvent.JOB_DEAD, after_id=0, until=datetime.now(UTC))

        state = await monitoring.read(store, settings)
        waiting = sum(w.count for w in state.waiting.values())
        dead = sum(state.dead_letters.values())
        print(
            f"{count:>8} jobs ({waiting} waiting, {dead} dead): "
            f"scrape {await _median(scrape) * 1000:7.1f} ms, "
            f"alert check reads {await _median(check_reads) * 1000:7.1f} ms"
        )
    finally:
        await store.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("jobs", nargs="*", type=int, default=[10_000, 100_000])
    parser.add_argument("--database-url", help="a PostgreSQL URL (default: fresh SQLite files)")
    args = parser.parse_args()
    configure_logging(level="WARNING", json=False)
    for count in args.jobs:
        if args.database_url:
            await _one(args.database_url, count)
            continue
        with tempfile.TemporaryDirectory() as directory:
            await _one(f"sqlite:///{Path(directory) / 'bench.db'}", count)


if __name__ == "__main__":
    asyncio.run(main())
