"""Flow 2's poll over a large ledger: its time and peak memory as history grows.

Run with ``make bench`` (or ``.venv/bin/python bench/flow2_poll.py [ROWS ...]``; default
10,000 and 100,000 ledger rows, on a fresh SQLite file; ``--database-url`` for PostgreSQL).
Half the rows are flow-1 deliveries, one case each; the other half are flow-2 decisions,
both statuses for half of those services, so a quarter of the cases still wait for a
decision. Primero is a stub that answers every id batch with no updated case, so the
figures are the bridge's own: asking the ledger for the waiting ids page by page, and
handing each page to the client. Each page is its own poll job (the chain a worker would
run, each page's state carried to the next in its payload). The peak (tracemalloc) should
not grow with the rows.
For reference, the last line loads every flow-1 and flow-2 row, as the poll did before
the store query existed.

The rows are seeded with bulk INSERTs straight into the store's tables: through the store's
own writes (a select and two inserts per row) 100,000 rows take minutes on SQLite. The poll
and the reference read through the store's API only.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from primero_progres.flows import primero_decision as flow2
from primero_progres.flows.runtime import Runtime
from primero_progres.logging import configure_logging
from primero_progres.peers.primero import CasePosition, CaseWindow
from primero_progres.profiles import load_profile
from primero_progres.store import (
    Cipher,
    Enqueue,
    Flow,
    Job,
    JobState,
    StepBuffer,
    Store,
    decision_key,
)
from primero_progres.store.schema import exchanges

SEED_BATCH = 10_000


class StubPrimero:
    """Answers every case listing with nothing; counts the ids it was asked for."""

    def __init__(self) -> None:
        self.batches = 0
        self.ids = 0

    async def case_window(
        self,
        position: CasePosition,
        *,
        filters: Mapping[str, str | Sequence[str]] | None = None,
        ids: Sequence[str] | None = None,
    ) -> CaseWindow:
        self.batches += 1
        self.ids += len(ids or ())
        return CaseWindow([], None)

    async def aclose(self) -> None:
        return None


def ledger_rows(rows: int) -> list[dict[str, Any]]:
    """``rows`` exchanges: deliveries (case ``rec-N``, service ``svc-N``), then decisions."""
    now = datetime.now(UTC)
    cases = rows // 2
    out = []
    for n in range(rows):
        row: dict[str, Any] = dict.fromkeys(c.name for c in exchanges.c)
        row.update(id=str(uuid.uuid4()), created_at=now, updated_at=now)
        if n < cases:
            row.update(
                flow=Flow.PROGRES_REFERRAL.value,
                key=f"I-{n:07d}",
                state="feedback_sent",
                progres_interventionnumber=f"I-{n:07d}",
                case_record_id=f"rec-{n:07d}",
                case_id=f"case-{n:07d}",
                service_unique_id=f"svc-{n:07d}",
            )
        else:
            service = f"svc-{(n - cases) // 2:07d}"
            status = ("accepted", "rejected")[(n - cases) % 2]
            row.update(
                flow=Flow.PRIMERO_DECISION.value,
                key=decision_key(service, status),
                state="sent",
                service_unique_id=service,
            )
        out.append(row)
    return out


def poll_job(page: int, payload: Mapping[str, Any]) -> Job:
    now = datetime.now(UTC)
    return Job(
        f"bench-{page}", flow2.POLL, None, JobState.RUNNING, 1, now, "bench/0", now, None, None,
        {}, now, now, True, dict(payload),
    )


async def poll_to_the_end(rt: Runtime) -> int:
    """Run a poll's pages one after the other, as the worker would; how many there were."""
    payload: Mapping[str, Any] | None = {}
    pages = 0
    while payload is not None:
        ctx = StepBuffer(poll_job(pages, payload))
        await flow2.poll(rt, ctx)
        pages += 1
        following = [c for c in ctx.commands if isinstance(c, Enqueue) and c.kind == flow2.POLL]
        payload = following[0].payload if following else None
    return pages


async def measure(rows: int, database_url: str | None) -> None:
    with tempfile.TemporaryDirectory(prefix="pp-bench-") as workdir:
        url = database_url or f"sqlite:///{Path(workdir) / 'bench.db'}"
        store = await Store.open(url, encryption=Cipher.throwaway())
        try:
            await store.upgrade()
            records = ledger_rows(rows)
            async with store.engine.begin() as conn:
                await conn.execute(sa.delete(exchanges))  # a --database-url run reuses it
                for start in range(0, len(records), SEED_BATCH):
                    await conn.execute(sa.insert(exchanges), records[start : start + SEED_BATCH])
            del records
            primero = StubPrimero()
            rt = Runtime(
                store=store, profile=load_profile(), primero=primero, dtp=None  # type: ignore[arg-type]
            )

            tracemalloc.start()
            started = time.perf_counter()
            jobs = await poll_to_the_end(rt)
            seconds = time.perf_counter() - started
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.reset_peak()

            started = time.perf_counter()
            loaded = len(await store.ledger.find(flow=Flow.PROGRES_REFERRAL))
            loaded += len(await store.ledger.find(flow=Flow.PRIMERO_DECISION))
            load_seconds = time.perf_counter() - started
            load_peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
        finally:
            await store.close()
    print(
        f"{rows:>9,} ledger rows ({store.dialect}): poll "
        f"{seconds * 1000:7.0f} ms, peak {peak / 2**20:6.2f} MiB, "
        f"{primero.ids:,} waiting ids in {primero.batches} pages ({jobs} poll jobs)"
    )
    print(
        f"{'':>9}   reference, loading all {loaded:,} rows as before: "
        f"{load_seconds * 1000:7.0f} ms, peak {load_peak / 2**20:6.2f} MiB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rows", nargs="*", type=int, default=[10_000, 100_000])
    parser.add_argument("--database-url", default=None, help="an empty database (else SQLite)")
    args = parser.parse_args()
    configure_logging(level="WARNING", json=False)
    print(f"flow 2 poll (waiting ids read {flow2.WAITING_PAGE} at a time)")
    for rows in args.rows:
        asyncio.run(measure(rows, args.database_url))


if __name__ == "__main__":
    main()
