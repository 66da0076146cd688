"""The Primero simulator's cost per page of the bridge's walk, as its case count grows.

Run with ``make bench`` (or ``.venv/bin/python bench/sim_index.py [CASES ...]``; default
10,000 and 100,000). The simulator's state is used in this process (no HTTP: the figures
are the simulator's own). For each count: the first page of 1,000 of flow 2's walk
(``last_updated_at=<start>..&order_by=last_updated_at&order=asc``), a page from the middle
of the walk, flow 3's page (the same with ``associated_user_names`` of the UNHCR
caseworkers, 10% of the cases), a batch of 100 ids, and flow 1's search of a child's case
(``unhcr_individual_no``); the median of 9 calls of each, and the ratio to the smallest
count. Issue 9's goal: a page of 1,000 from 100,000 cases costs no more than from 10,000
(ratio ≈ 1).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

from primero_progres import demo_data
from primero_progres.sim.primero_state import PrimeroState

START = "2020-01-01T00:00:00Z"
UNHCR = demo_data.UNHCR_CASEWORKER


def seeded(count: int) -> tuple[PrimeroState, list[str]]:
    """``count`` cases, 10% associated with the UNHCR caseworker, one ms apart."""
    state = PrimeroState()
    cases = []
    for n in range(count):
        case = demo_data.primero_case(
            f"case-{n:07d}", f"rec-{n:07d}", unhcr_individual_no=f"U-{n:08d}"
        )
        case["last_updated_at"] = f"2026-01-01T{n // 3_600_000:02d}:" \
            f"{n // 60_000 % 60:02d}:{n // 1000 % 60:02d}.{n % 1000:03d}Z"
        if n % 10 == 0:
            case["assigned_user_names"] = [UNHCR]
        cases.append(case)
    state.seed({"cases": cases})
    return state, [c["id"] for c in cases]


def median_ms(call: Callable[[], Any], runs: int = 9) -> float:
    seconds = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds) * 1000


def measure(count: int) -> dict[str, float]:
    started = time.perf_counter()
    state, ids = seeded(count)
    seed_s = time.perf_counter() - started
    walk = {"order_by": "last_updated_at", "order": "asc", "per": "1000", "page": "1"}
    middle = state.cases[ids[count // 2]]["last_updated_at"]
    batch = ",".join(ids[count // 2 : count // 2 + 100])
    figures = {
        "first page": median_ms(
            lambda: state.list_cases({**walk, "last_updated_at": f"{START}.."})
        ),
        "middle page": median_ms(
            lambda: state.list_cases({**walk, "last_updated_at": f"{middle}.."})
        ),
        "flow-3 page": median_ms(
            lambda: state.list_cases(
                {**walk, "last_updated_at": f"{START}..", "associated_user_names": UNHCR}
            )
        ),
        "100 ids": median_ms(lambda: state.list_cases({**walk, "id": batch})),
        "flow-1 search": median_ms(
            lambda: state.list_cases({**walk, "unhcr_individual_no": f"U-{count // 2:08d}"})
        ),
    }
    print(f"{count:>7} cases (seeded in {seed_s:5.1f} s): "
          + ", ".join(f"{name} {ms:7.2f} ms" for name, ms in figures.items()))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("counts", nargs="*", type=int, default=[10_000, 100_000])
    args = parser.parse_args()
    results = {count: measure(count) for count in args.counts}
    base = min(results)
    for count in sorted(results):
        if count == base:
            continue
        ratios = ", ".join(
            f"{name} x{results[count][name] / results[base][name]:.2f}" for name in results[base]
        )
        print(f"page cost {count} / {base} cases: {ratios} (goal: about x1)")


if __name__ == "__main__":
    main()
