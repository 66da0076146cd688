"""How long ``primero-progres --help`` (and a few sub-command helps) take from a cold start.

Run with ``make bench`` (or ``.venv/bin/python bench/startup.py [--runs N]``). Each line is
the median and the best of N runs of a fresh interpreter (the ``primero-progres`` console
script of this virtualenv), then what the command line imports for ``--help`` (the
``-X importtime`` total and the heaviest top-level packages). The goal of issue 9 is
``--help`` ≤ 0.25 s; tests/cli/test_startup.py checks, without timing, that ``--help`` loads
no database, web or profile library.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

COMMANDS = (["--help"], ["db", "--help"], ["map", "--help"], ["serve", "--help"])


def _script() -> list[str]:
    script = Path(sys.executable).with_name("primero-progres")
    return [str(script)] if script.exists() else [sys.executable, "-m", "primero_progres.cli"]


def timed(args: list[str], runs: int) -> list[float]:
    seconds = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([*_script(), *args], capture_output=True, check=True)
        seconds.append(time.perf_counter() - started)
    return seconds


def import_profile() -> tuple[float, list[tuple[str, float]]]:
    """The ``-X importtime`` total of ``--help`` and its heaviest top-level packages (s)."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "primero_progres.cli", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    per_package: dict[str, float] = defaultdict(float)
    total = 0.0
    for line in done.stderr.splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+\d+ \| (\s*)(\S+)", line)
        if not match:
            continue
        own = int(match[1]) / 1e6
        total += own
        per_package[match[3].split(".")[0]] += own
    heaviest = sorted(per_package.items(), key=lambda item: -item[1])[:6]
    return total, heaviest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    for command in COMMANDS:
        seconds = timed(command, args.runs)
        print(
            f"primero-progres {' '.join(command):<14} median {statistics.median(seconds):.3f} s, "
            f"best {min(seconds):.3f} s ({args.runs} runs)"
        )
    total, heaviest = import_profile()
    listed = ", ".join(f"{name} {seconds:.3f}" for name, seconds in heaviest)
    print(f"--help imports: {total:.3f} s in all; heaviest (s): {listed}")
    print("goal (issue 9): --help <= 0.25 s")


if __name__ == "__main__":
    main()
