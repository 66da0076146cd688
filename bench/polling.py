"""Flows 2 and 3's polls over a large Primero: their time and the bridge's peak memory.

Run with ``make bench`` (or ``.venv/bin/python bench/polling.py [CASES ...]``; default 1,000
and 10,000 cases; ``--full`` for issue 9's 10,000 and 100,000). For each count the Primero
simulator (``simulate primero --seed``, a real process) holds that many cases: 10% with a
focal point's decision on a proGres referral (flow 2), another 10% referred to the UNHCR
caseworker (flow 3), the rest with nothing to send. Each poll is the real command, on a fresh
SQLite database: ``primero-progres poll primero-decision --full-scan --from-beginning`` (every
case read, the decisions sent) then ``poll primero-referral --from-beginning`` (the cases of
the UNHCR caseworker read, their referrals sent), each to the end, every message at the DTP
simulator. Printed per poll: seconds, messages sent, the bridge process's peak RSS (VmHWM,
read every 50 ms), and the
CPU seconds of the poll and of the Primero simulator; then the growth from the smallest
count. Issue 9's goals: time grows linearly with the cases (x10 cases, about x10 time) and
the peak RSS stays under 150 MB at 100,000.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _procs
import httpx2 as httpx

from primero_progres import demo_data
from primero_progres.profiles import load_profile
from primero_progres.sim.primero_state import PrimeroState

DECISION, REFERRAL = "ReceiveDecisionOutgoingReferral", "ReceiveIncomingReferral"


def seed_file(count: int, path: Path) -> int:
    """``count`` cases (10% decided, 10% referred to UNHCR) as the simulator's seed file; how
    many messages each poll should send."""
    profile = load_profile("gambella")
    tables = profile.primero_decision
    status = next(iter(tables.statuses))
    state = PrimeroState()
    cases = []
    for n in range(count):
        case = demo_data.primero_case(f"case-{n:07d}", f"00000000-0000-4000-8000-{n:012d}")
        if n % 10 == 0:
            case["services_section"] = [{
                "unique_id": f"00000000-0000-4000-9000-{n:012d}",
                "progres_interventionnumber": f"PB-26-PRTITV-{n:07d}",
                "service_referral": tables.service_referral,
                "service_type": "alternative_care",
                "unhcr_referral_status": status,
            }]
        cases.append(case)
    state.seed({"users": demo_data.PRIMERO_USERS, "cases": cases})
    for n in range(5, count, 10):
        state.refer_to_unhcr(
            f"00000000-0000-4000-8000-{n:012d}", demo_data.UNHCR_CASEWORKER,
            {"service_type": "alternative_care"}, demo_data.PRIMERO_CASEWORKER,
        )
    document = {
        "users": demo_data.PRIMERO_USERS,
        "cases": list(state.cases.values()),
        "referrals": list(state.referrals.values()),
    }
    path.write_text(json.dumps(document))
    return len(range(0, count, 10))


def start_primero(seed: Path, logs: Path) -> _procs.Proc:
    port = _procs.reserve_port()
    proc = _procs.Proc(
        "simulate primero",
        ["simulate", "primero", "--port", str(port), "--user", demo_data.API_USER,
         "--password", demo_data.API_PASSWORD, "--seed", str(seed)],
        _procs.base_env(), logs / "primero.log", url=f"http://127.0.0.1:{port}",
    )
    proc.wait_ready("/_sim/journal", timeout=600)
    return proc


def run_poll(env: dict[str, str], flow: str, *extra: str) -> tuple[float, float, float]:
    """``primero-progres poll FLOW``: seconds, CPU seconds, peak RSS (MB) of its process."""
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "primero_progres.cli", "poll", flow, "--from-beginning", *extra],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    # VmHWM of its own memory: wait4's ru_maxrss would count this process's memory at the fork
    peak_kb = 0
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            break
        try:
            status_lines = Path(f"/proc/{process.pid}/status").read_text().splitlines()
        except OSError:
            status_lines = []
        for line in status_lines:
            if line.startswith("VmHWM:"):
                peak_kb = max(peak_kb, int(line.split()[1]))
        time.sleep(0.05)
    seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        error = process.stderr.read().decode(errors="replace") if process.stderr else ""
        raise RuntimeError(f"poll {flow} exited {process.returncode}: {error[-2000:]}")
    return seconds, usage.ru_utime + usage.ru_stime, peak_kb / 1024


def one_count(count: int, workdir: Path) -> dict[str, tuple[float, float]]:
    logs = workdir / str(count)
    logs.mkdir()
    started = time.perf_counter()
    expected = seed_file(count, logs / "seed.json")
    primero = start_primero(logs / "seed.json", logs)
    dtp = _procs.start_dtp(logs)
    print(f"{count:>7} cases: simulators up in {time.perf_counter() - started:.1f} s", flush=True)
    results = {}
    try:
        env = _procs.bridge_env(f"sqlite:///{logs / 'bridge.db'}", primero, dtp,
                                _procs.reserve_port())
        for flow, endpoint, extra in (("primero-decision", DECISION, ("--full-scan",)),
                                      ("primero-referral", REFERRAL, ())):
            sim_before = primero.cpu_seconds()
            seconds, cpu, rss = run_poll(env, flow, *extra)
            sim_cpu = primero.cpu_seconds() - sim_before
            sent = httpx.get(f"{dtp.url}/_sim/messages/count",
                             params={"endpoint": endpoint}).json()["count"]
            results[flow] = (seconds, rss)
            print(f"{count:>7} cases: poll {flow:<16} {seconds:6.1f} s, {sent}/{expected} sent, "
                  f"peak RSS {rss:5.1f} MB, CPU: poll {cpu:5.1f} s, Primero simulator "
                  f"{sim_cpu:5.1f} s", flush=True)
    finally:
        _procs.stop_all([primero, dtp])
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("counts", nargs="*", type=int)
    parser.add_argument("--full", action="store_true", help="10,000 and 100,000 cases")
    args = parser.parse_args()
    counts = args.counts or ([10_000, 100_000] if args.full else [1_000, 10_000])
    with tempfile.TemporaryDirectory(prefix="bench-polling-") as workdir:
        results: dict[int, Any] = {count: one_count(count, Path(workdir)) for count in counts}
    base = min(results)
    for count in sorted(results):
        if count == base:
            continue
        for flow, (seconds, rss) in results[count].items():
            first, first_rss = results[base][flow]
            print(f"{flow}: x{count / base:.0f} cases -> time x{seconds / first:.1f}, "
                  f"peak RSS {first_rss:.0f} -> {rss:.0f} MB")
    print("goals (issue 9): time about linear in the cases; peak RSS < 150 MB at 100,000")


if __name__ == "__main__":
    main()
