"""Flow 1 over PING end to end, on loopback: how fast a queue of LP interventions becomes
Primero cases acknowledged in PING.

Run with ``make bench`` (or ``.venv/bin/python bench/ping_flows.py [COUNT ...]``; default
50 and 200). For each count the PING simulator is seeded with that many queued
interventions (invented children); ``progres-referral`` poll rounds run to the end (list
pages of 50, one pull and one write-back job per intervention, the Primero simulator's
writes) until every intervention is acknowledged (rows written back while the list is
paged shift the simulator's pages, so the next round takes what one skips). Printed: the
wall time, the rate, the rounds and the jobs run. The simulators and the bridge share this
machine, so the figures say how the bridge's own work scales, not what a real PING or
Primero would allow.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from primero_progres import demo_data
from primero_progres.logging import configure_logging
from primero_progres.stack import Stack
from primero_progres.store import Flow


async def one_count(count: int) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-ping-") as workdir:
        async with Stack(Path(workdir), gateway="ping", worker_concurrency=2) as stack:
            interventions = [
                demo_data.ping_intervention(f"BENCH-26-PRTITV-{n:07d}", f"BENCH-{n:08d}")
                for n in range(count)
            ]
            await stack.seed_ping(interventions)
            rounds = 0
            started = time.perf_counter()
            jobs = 0
            while True:
                rounds += 1
                await stack.store.polls.run_now(Flow.PROGRES_REFERRAL, from_beginning=True)
                jobs += await stack.settle(timeout=600)
                rows = await stack.ping_sim("GET", "interventions")
                if all(row["transfer_status"] == 125080002 for row in rows):
                    break
            elapsed = time.perf_counter() - started
            cases = len(await stack.primero_cases())
            print(
                f"flow 1 over PING: {count:>5} interventions -> {cases} cases in {elapsed:6.2f} s "
                f"({count / elapsed:6.1f}/s), {rounds} poll round(s), {jobs} jobs"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("counts", nargs="*", type=int, default=[50, 200])
    args = parser.parse_args()
    configure_logging(level="WARNING", json=False)
    for count in args.counts:
        asyncio.run(one_count(count))


if __name__ == "__main__":
    main()
