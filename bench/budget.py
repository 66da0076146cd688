"""What issue 9's goals leave the bridge per referral, against what its parts cost at least.

Run with ``make bench`` (or ``.venv/bin/python bench/budget.py [--count N] [--rounds R]``;
default 300 referrals, 3 rounds). ``bench/e2e.py`` measures the whole bridge against the
goals; this one asks whether a goal can be met at all on this machine, by the bridge as
designed (the durable pipeline in SQLAlchemy, the inbox in FastAPI/uvicorn, the peers through
httpx2), by measuring in one run:

- the budgets: the direct client's rate (the same three requests per referral straight to
  ``simulate primero`` and ``simulate dtp``, as ``bench/e2e.py`` sends them, at each
  setup's concurrency) and the simulators' CPU per referral serving it. A goal of ``k x
  direct`` leaves the bridge ``1000 / (k x rate)`` CPU ms per referral in one interpreter
  (``serve`` on SQLite: its inbox and worker share one interpreter lock), and
  ``cores x 1000 / (k x rate) - simulators`` on the machine's cores (the simulators run
  beside it; the poster's and PostgreSQL's own CPU are left out, which favours the bridge);
  "bridge CPU <= the simulators'" leaves it what the simulators spend.
- the floor: three parts the bridge cannot do without, each measured alone, with nothing
  else: the peer clients' three calls (``bench/http_side.py``), the inbox's web stack
  without its socket (``bench/http_side.py``), and the durable store path of flow 1's
  steps with no peer (``bench/store_path.py``, inbox and worker sides). It leaves out
  uvicorn's socket and HTTP parsing, the mapping, logging and metrics: the bridge costs
  more than its floor, never less.

A goal whose budget is below the floor cannot be met by tuning: it needs a change of design
(or of goal). Printed: each round, the medians, and per goal its budget, the floor, and
whether the floor fits.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import _procs
import http_side
import httpx2 as httpx
import store_path

import e2e
from primero_progres.logging import configure_logging
from primero_progres.profiles import load_profile
from primero_progres.sim.primero_config import profile_users

#: issue 9's goals: (setup, bridge/direct at least, worker processes beside ``serve``)
THROUGHPUT_GOALS = (("SQLite, one serve", 0.6, 0), ("PostgreSQL, serve + 2 workers", 0.8, 2))


async def direct_round(
    http: httpx.AsyncClient,
    primero: _procs.Proc,
    dtp: _procs.Proc,
    users: list[dict[str, Any]],
    tag: str,
    count: int,
    concurrency: int,
) -> tuple[float, float]:
    """Referrals/s of the direct client, and the simulators' CPU seconds per referral."""
    await e2e.reset(http, primero, dtp, users)
    items = e2e.interventions(tag, count)
    before = _procs.cpu([primero, dtp])
    seconds = await e2e.direct_run(http, primero, dtp, items, concurrency)
    return count / seconds, (_procs.cpu([primero, dtp]) - before) / count


async def measure(args: argparse.Namespace, workdir: Path) -> dict[str, list[float]]:
    """Every figure, ``args.rounds`` times (the store path's on a fresh database each)."""
    figures: dict[str, list[float]] = {}

    def keep(name: str, value: float) -> float:
        figures.setdefault(name, []).append(value)
        return value

    app, bodies = await http_side.warm_inbox("B", args.count)
    users = profile_users(load_profile("gambella"))
    primero, dtp = _procs.start_primero(workdir), _procs.start_dtp(workdir)
    postgres = _procs.postgres_reachable() is None
    try:
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
        async with httpx.AsyncClient(timeout=60, limits=limits) as http:
            await direct_round(http, primero, dtp, users, "WB", e2e.WARM_UP, 2)
            for round_ in range(args.rounds):
                line = [f"  round {round_ + 1}:"]
                for name, _ratio, workers in THROUGHPUT_GOALS:
                    concurrency = e2e.WORKER_CONCURRENCY * (1 + workers)
                    rate, sims = await direct_round(
                        http, primero, dtp, users, f"D{round_}{workers}", args.count, concurrency
                    )
                    keep(f"direct {name}", rate)
                    keep(f"simulators {name}", sims)
                    line.append(f"direct {rate:5.0f}/s ({concurrency} at once),")
                inbox = keep("inbox web stack", await http_side.inbox_round(app, bodies))
                clients, _ = await http_side.clients_round(
                    primero, dtp, f"C{round_}", args.count + 1
                )
                keep("peer clients", clients)
                sqlite = await store_path.run(
                    args.count, f"sqlite:///{workdir / f'store-{round_}.db'}"
                )
                keep("store path SQLite", _store_seconds(sqlite))
                line.append(
                    f"inbox {1e3 * inbox:.2f} ms, clients {1e3 * clients:.2f} ms, "
                    f"store SQLite {1e3 * _store_seconds(sqlite):.2f} ms"
                )
                if postgres:
                    with _procs.postgres_database() as url:
                        pg = await store_path.run(args.count, url)
                    keep("store path PostgreSQL", _store_seconds(pg))
                    line[-1] += f", PostgreSQL {1e3 * _store_seconds(pg):.2f} ms"
                print(" ".join(line), flush=True)
    finally:
        _procs.stop_all([primero, dtp])
    return figures


def _store_seconds(figures: dict[str, float]) -> float:
    return (figures["inbox_cpu_ms"] + figures["worker_cpu_ms"]) / 1000


def verdicts(figures: dict[str, list[float]], cores: int) -> list[str]:
    """A line per goal: its budget for the bridge, the floor, whether the floor fits."""

    def median(name: str) -> float:
        return 1000 * statistics.median(figures[name])

    http_floor = median("peer clients") + median("inbox web stack")
    lines = [
        f"floor parts (CPU ms per referral, medians): peer clients {median('peer clients'):.2f}"
        f", inbox web stack {median('inbox web stack'):.2f}, store path SQLite "
        f"{median('store path SQLite'):.2f}"
        + (
            f", store path PostgreSQL {median('store path PostgreSQL'):.2f}"
            if "store path PostgreSQL" in figures
            else " (PostgreSQL not reachable: set PRIMERO_PROGRES_TEST_POSTGRES_URL)"
        )
    ]

    def verdict(goal: str, budget: float, store: str) -> str:
        if store not in figures:
            return f"{goal}: budget {budget:.2f} ms; floor not measured"
        floor = http_floor + median(store)
        fits = "fits" if floor <= budget else f"does not fit: floor / budget {floor / budget:.1f}"
        return f"{goal}: budget {budget:.2f} ms, floor {floor:.2f} ms: {fits}"

    sims = median(f"simulators {THROUGHPUT_GOALS[0][0]}")
    lines.append(
        verdict(
            f"bridge CPU <= the simulators' ({sims:.2f} ms serving the same requests)",
            sims,
            "store path SQLite",
        )
    )
    for name, ratio, workers in THROUGHPUT_GOALS:
        target = ratio * median(f"direct {name}") / 1000
        simulators = median(f"simulators {name}")
        on_cores = cores * 1000 / target - simulators
        budget = on_cores if workers else min(1000 / target, on_cores)
        store = "store path SQLite" if "SQLite" in name else "store path PostgreSQL"
        lines.append(verdict(f"{name}, >= {ratio} x direct ({target:.0f}/s)", budget, store))
    return lines


async def main_async(args: argparse.Namespace) -> None:
    configure_logging(level="WARNING")
    with tempfile.TemporaryDirectory(prefix="bench-budget-") as workdir:
        started = time.perf_counter()
        figures = await measure(args, Path(workdir))
        seconds = time.perf_counter() - started
    cores = os.cpu_count() or 1
    print(f"{args.rounds} rounds, {args.count} referrals each, {cores} cores, {seconds:.0f} s")
    for line in verdicts(figures, cores):
        print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
