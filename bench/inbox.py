"""The inbox's latency while the worker of the same ``serve`` drains a backlog.

Run with ``make bench`` (or ``.venv/bin/python bench/inbox.py [--backlog B] [--seconds S]
[--rate R] [--setup sqlite|postgresql]``; default a backlog of 300 referrals, then 10 s of
100 requests/s). Real processes: ``simulate primero``, ``simulate dtp`` and one ``serve``
(inbox + worker + scheduler), on SQLite, then on PostgreSQL (skipped, with a note, when
PRIMERO_PROGRES_TEST_POSTGRES_URL does not answer).

The backlog's referrals are posted first, as fast as the inbox takes them; then one-
intervention referrals (each a new child) are posted at a steady rate, each on time whatever
the answers before it (an open loop), and each answer's latency is kept. Printed: p50, p99,
max, how many answers took over 250 ms, and how many cases and feedback messages the worker
wrote meanwhile (it must have been busy: it takes the receive jobs, then the deliveries, then
the feedback, in the order they fall due). Issue 9's goal: p99 ≤ 50 ms and nothing over 250 ms, on
both databases. The client runs on the same (2-core, shared) machine: its own delays count.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import _procs
import httpx2 as httpx

from e2e import delivered, interventions
from primero_progres import demo_data


async def post_all(http: httpx.AsyncClient, inbox: str, messages: list[dict[str, object]],
                   posters: int = 8) -> None:
    headers = {"Authorization": f"Bearer {demo_data.INBOX_TOKEN}"}
    queue = list(reversed(messages))

    async def poster() -> None:
        while queue:
            answer = await http.post(inbox, json=queue.pop(), headers=headers)
            answer.raise_for_status()

    await asyncio.gather(*(poster() for _ in range(posters)))


async def steady_load(http: httpx.AsyncClient, inbox: str, messages: list[dict[str, object]],
                      rate: float) -> list[float]:
    """Each message at its own moment (``n / rate`` after the start); the latencies (s)."""
    headers = {"Authorization": f"Bearer {demo_data.INBOX_TOKEN}"}
    latencies: list[float] = []
    failures = 0
    started = time.perf_counter()

    async def one(n: int, message: dict[str, object]) -> None:
        nonlocal failures
        delay = started + n / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        sent = time.perf_counter()
        answer = await http.post(inbox, json=message, headers=headers)
        latencies.append(time.perf_counter() - sent)
        if answer.status_code not in (200, 201, 202):
            failures += 1

    await asyncio.gather(*(one(n, m) for n, m in enumerate(messages)))
    if failures:
        print(f"  {failures} requests were refused")
    return latencies


async def case_writes(http: httpx.AsyncClient, primero: _procs.Proc) -> int:
    """Cases written to the Primero simulator so far (its journal of requests)."""
    journal = (await http.get(f"{primero.url}/_sim/journal")).json()
    return sum(1 for entry in journal if entry["method"] == "POST"
               and entry["path"] == "/api/v2/cases")


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def one_setup(name: str, database_url: str, args: argparse.Namespace, logs: Path) -> None:
    primero = _procs.start_primero(logs)
    dtp = _procs.start_dtp(logs)
    bridge: list[_procs.Proc] = []
    try:
        env = _procs.bridge_env(database_url, primero, dtp, _procs.reserve_port())
        bridge = _procs.start_bridge(env, logs)
        inbox = f"{bridge[0].url}/api/v1/dtp/messages"
        limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
        async with httpx.AsyncClient(timeout=60, limits=limits) as http:
            backlog = [demo_data.referral_message(i)
                       for i in interventions(f"K{name[0]}", args.backlog)]
            load = [demo_data.referral_message(i)
                    for i in interventions(f"L{name[0]}", int(args.seconds * args.rate))]
            await post_all(http, inbox, backlog)
            before = await case_writes(http, primero), await delivered(http, dtp)
            latencies = await steady_load(http, inbox, load, args.rate)
            after = await case_writes(http, primero), await delivered(http, dtp)
        ms = [1000 * s for s in latencies]
        slow = sum(1 for v in ms if v > 250)
        print(
            f"{name}: {len(ms)} inbox POSTs at {args.rate:.0f}/s while the worker drained a "
            f"backlog of {args.backlog}: p50 {statistics.median(ms):.1f} ms, "
            f"p99 {percentile(ms, 0.99):.1f} ms, max {max(ms):.1f} ms, {slow} over 250 ms; "
            f"meanwhile the worker wrote {after[0] - before[0]} cases to Primero and sent "
            f"{after[1] - before[1]} feedback messages to DTP"
        )
    finally:
        _procs.stop_all(bridge)
        _procs.stop_all([primero, dtp])


async def main_async(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-inbox-") as workdir:
        logs = Path(workdir)
        if "sqlite" in args.setup:
            await one_setup("SQLite, one serve", f"sqlite:///{logs / 'bridge.db'}", args, logs)
        if "postgresql" in args.setup:
            why = _procs.postgres_reachable()
            if why:
                print(f"PostgreSQL skipped: {why} (set PRIMERO_PROGRES_TEST_POSTGRES_URL)")
            else:
                with _procs.postgres_database() as url:
                    await one_setup("PostgreSQL, one serve", url, args, logs)
    print("goal (issue 9): p99 <= 50 ms and no request over 250 ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backlog", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--setup", action="append", choices=["sqlite", "postgresql"])
    args = parser.parse_args()
    args.setup = args.setup or ["sqlite", "postgresql"]
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
