"""``rotate-key`` over many stored payloads: its time, rate and peak memory per batch size.

Run with ``make bench`` (or ``.venv/bin/python bench/rotate_key.py [PAYLOADS ...]``; default
20,000 dead letters of about 2 KB each, on a fresh SQLite file; ``--database-url`` for an empty
PostgreSQL database). The payloads are sealed with an old key and seeded with bulk INSERTs
straight into the jobs table (through ``store.jobs.enqueue`` one transaction per job would
dominate the run); the rotation then goes through ``store.keys.rotate`` only, with a ring
whose first key is new. The peak (tracemalloc) should follow the batch size, not the table.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import tracemalloc
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from primero_progres.logging import configure_logging
from primero_progres.store import Cipher, Store, generate_key
from primero_progres.store.schema import jobs, store_keys

SEED_BATCH = 5_000
BATCH_SIZES = (100, 1_000)


def dead_letters(count: int, cipher: Cipher) -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    rows: list[dict[str, Any]] = []
    for n in range(count):
        job_id = str(uuid.uuid4())
        intervention = {"progres_interventionnumber": f"I-{n:07d}", "notes": "x" * 2000}
        payload = {"intervention": intervention}
        rows.append(
            {
                "id": job_id,
                "kind": "progres-referral.deliver",
                "key": None,
                "state": "dead",
                "attempts": 1,
                "next_attempt_at": now,
                "payload": cipher.encrypt(payload, context="jobs", row_id=job_id),
                "message_id": None,
                "refs": {},
                "created_at": now,
                "updated_at": now,
            }
        )
    return rows


async def measure(count: int, batch_size: int, database_url: str | None) -> None:
    old, new = generate_key(), generate_key()
    with tempfile.TemporaryDirectory(prefix="pp-bench-") as workdir:
        url = database_url or f"sqlite:///{Path(workdir) / 'bench.db'}"
        store = await Store.open(url, encryption=Cipher.from_config(f"old:{old}"))
        try:
            await store.upgrade()
            records = dead_letters(count, store.cipher)
            async with store.engine.begin() as conn:
                # a --database-url run reuses the database
                await conn.execute(sa.delete(jobs))
                await conn.execute(sa.delete(store_keys))
                for start in range(0, len(records), SEED_BATCH):
                    await conn.execute(sa.insert(jobs), records[start : start + SEED_BATCH])
            del records
        finally:
            await store.close()
        store = await Store.open(url, encryption=Cipher.from_config(f"new:{new},old:{old}"))
        try:
            tracemalloc.start()
            started = time.perf_counter()
            result = await store.keys.rotate(batch_size=batch_size)
            seconds = time.perf_counter() - started
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
        finally:
            await store.close()
    resealed = result.resealed["jobs"]
    assert resealed == count and result.usage.done, result.as_json()
    print(
        f"{count:>9,} payloads ({store.dialect}), batches of {batch_size:>5,}: "
        f"{seconds:6.2f} s, {resealed / seconds:8,.0f} payloads/s, peak {peak / 2**20:6.2f} MiB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("payloads", nargs="*", type=int, default=[20_000])
    parser.add_argument("--database-url", default=None, help="an empty database (else SQLite)")
    args = parser.parse_args()
    configure_logging(level="WARNING", json=False)
    print("rotate-key: re-sealing stored payloads under a new key")
    for count in args.payloads:
        for batch_size in BATCH_SIZES:
            asyncio.run(measure(count, batch_size, args.database_url))


if __name__ == "__main__":
    main()
