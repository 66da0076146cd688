"""What one flow-1 referral costs the bridge's core: transactions, statements, throughput and the
inbox's latency while the worker drains a backlog.

Run with ``make bench`` (or ``.venv/bin/python bench/core_profile.py [--referrals N]
[--database-url URL]``; default 300 referrals on a fresh SQLite file; a PostgreSQL URL names a
database this script empties first, never the tests' ``test``).

- counts: the bridge in this process (``Stack``), N/5 referrals through the inbox and the
  worker (run as ``serve`` runs it); SQLAlchemy events count the write transactions
  (commits), the read-only ones (rollbacks) and the statements per referral.
- throughput: a real ``primero-progres serve`` (its own process) against the Primero and DTP
  simulators (one more process); N distinct one-intervention referrals posted to the inbox,
  timed until N feedback messages are at the DTP simulator.
- inbox: N more referrals posted at once (a backlog), then one-intervention POSTs at 100 per
  second for ``--seconds`` while the worker drains it: p50, p99 and the slowest answer.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import _procs
import httpx2 as httpx
import sqlalchemy as sa

from primero_progres import demo_data

TEST_DATABASE = "test"


def referral(n: int, run: str) -> dict[str, Any]:
    """One distinct one-intervention flow-1 message (its own child, its own number)."""
    item = demo_data.intervention(
        f"BENCH-{run}-PRTITV-{n:07d}", **{"individuals.progres_id": f"BENCH-{run}-{n:08d}"}
    )
    return demo_data.referral_message(item)


# ---------------------------------------------------------------------------- the simulators


def run_simulators() -> None:
    """Child mode: the Primero and DTP simulators on loopback; their URLs on stdout."""
    from primero_progres.profiles import load_profile
    from primero_progres.sim import dtp as dtp_sim
    from primero_progres.sim import primero as primero_sim
    from primero_progres.sim.common import ServerThread
    from primero_progres.sim.primero_config import PrimeroSimConfig, profile_users

    profile = load_profile("gambella")
    primero = ServerThread(
        primero_sim.create_app(
            users={demo_data.API_USER: demo_data.API_PASSWORD},
            seed={"users": [*profile_users(profile), *demo_data.PRIMERO_USERS]},
            config=PrimeroSimConfig.for_profile(profile),
        )
    ).start()
    dtp = ServerThread(dtp_sim.create_app(subscription_key=demo_data.DTP_SUBSCRIPTION_KEY)).start()
    print(json.dumps({"primero": primero.url, "dtp": dtp.url}), flush=True)
    sys.stdin.read()
    dtp.stop()
    primero.stop()


# ---------------------------------------------------------------------------- counts, in-process


async def counts(referrals: int, database_url: str | None, workdir: Path) -> dict[str, float]:
    from primero_progres.stack import Stack

    seen: Counter[str] = Counter()
    async with Stack(workdir, database_url=database_url) as stack:
        engine = stack.store.engine.sync_engine

        @sa.event.listens_for(engine, "commit")
        def _commit(_conn: Any) -> None:
            seen["commit"] += 1

        @sa.event.listens_for(engine, "rollback")
        def _rollback(_conn: Any) -> None:
            seen["rollback"] += 1

        @sa.event.listens_for(engine, "before_cursor_execute")
        def _statement(*args: Any) -> None:
            if not str(args[2]).startswith("BEGIN"):
                seen["statements"] += 1

        headers = {"Authorization": f"Bearer {demo_data.INBOX_TOKEN}"}
        for n in range(referrals):
            answer = await stack.http.post(
                stack.inbox_url, json=referral(n, "COUNT"), headers=headers
            )
            assert answer.status_code == 202, answer.text
        # as ``serve`` runs it (``settle`` claims each job on its own)
        stop = asyncio.Event()
        running = asyncio.create_task(stack.worker.run(stop))
        while len(await stack.dtp_messages()) < referrals:
            await asyncio.sleep(0.1)
        stop.set()
        await running
    return {name: value / referrals for name, value in seen.items()}


# ---------------------------------------------------------------------------- a real serve


def prepare_database(url: str | None, workdir: Path) -> str:
    if url is None:
        return f"sqlite:///{workdir / 'serve.db'}"
    parsed = sa.engine.make_url(url)
    if parsed.database == TEST_DATABASE:
        raise SystemExit("--database-url: name a database of its own (this script empties it)")
    admin = sa.create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)'))
        conn.execute(sa.text(f'CREATE DATABASE "{parsed.database}"'))
    admin.dispose()
    return url


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_serve(database_url: str, sims: dict[str, str], port: int, log: Path) -> Any:
    from primero_progres.store import generate_key

    env = {
        **os.environ,
        "PRIMERO_PROGRES_DATABASE_URL": database_url,
        "PRIMERO_PROGRES_ENCRYPTION_KEY": generate_key(),
        "PRIMERO_PROGRES_INBOX_TOKENS": demo_data.INBOX_TOKEN,
        "PRIMERO_PROGRES_PRIMERO_URL": sims["primero"],
        "PRIMERO_PROGRES_PRIMERO_USERNAME": demo_data.API_USER,
        "PRIMERO_PROGRES_PRIMERO_PASSWORD": demo_data.API_PASSWORD,
        "PRIMERO_PROGRES_DTP_URL": sims["dtp"],
        "PRIMERO_PROGRES_DTP_SUBSCRIPTION_KEY": demo_data.DTP_SUBSCRIPTION_KEY,
        "PRIMERO_PROGRES_WORKER_POLL_SECONDS": "0.05",
    }
    command = [sys.executable, "-m", "primero_progres.cli", "serve", "--port", str(port)]
    return subprocess.Popen(command, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)


async def wait_up(url: str, process: Any) -> None:
    async with httpx.AsyncClient() as http:
        for _ in range(300):
            if process.poll() is not None:
                raise SystemExit("serve stopped while starting (see its log)")
            try:
                if (await http.get(f"{url}/healthz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise SystemExit("serve did not start")


async def post_all(http: httpx.AsyncClient, inbox: str, messages: list[dict[str, Any]]) -> None:
    limit = asyncio.Semaphore(8)

    async def one(message: dict[str, Any]) -> None:
        async with limit:
            answer = await http.post(inbox, json=message)
            assert answer.status_code == 202, answer.text

    await asyncio.gather(*(one(m) for m in messages))


async def feedback_count(http: httpx.AsyncClient, dtp: str) -> int:
    return len((await http.get(f"{dtp}/_sim/messages")).json())


async def drain(http: httpx.AsyncClient, dtp: str, target: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while await feedback_count(http, dtp) < target:
        if time.monotonic() > deadline:
            raise SystemExit(f"feedback still missing after {timeout} s")
        await asyncio.sleep(0.1)


class RawPoster:
    """Keep-alive HTTP/1.1 POSTs over plain asyncio streams: a client this cheap measures the
    bridge, not itself (an httpx client at 100 requests/s takes a good part of a core)."""

    def __init__(self, url: str, token: str) -> None:
        parsed = httpx.URL(url)
        self._host, self._port, self._path = parsed.host, parsed.port or 80, parsed.raw_path
        self._token = token
        self._idle: list[tuple[float, asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def post(self, body: bytes) -> int:
        # uvicorn closes a connection idle for 5 s: one idle longer than 2 s is not reused
        while self._idle and self._idle[-1][0] < time.monotonic() - 2:
            self._idle.pop()[2].close()
        if self._idle:
            _at, reader, writer = self._idle.pop()
        else:
            reader, writer = await asyncio.open_connection(self._host, self._port)
        head = (
            f"POST {self._path.decode()} HTTP/1.1\r\nHost: {self._host}\r\n"
            f"Authorization: Bearer {self._token}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        writer.write(head.encode() + body)
        status_line = await reader.readline()
        length = 0
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
        await reader.readexactly(length)
        self._idle.append((time.monotonic(), reader, writer))
        return int(status_line.split()[1])

    def close(self) -> None:
        for _at, _reader, writer in self._idle:
            writer.close()


async def inbox_latency(inbox: str, rate: float, seconds: float) -> list[float]:
    """POSTs at ``rate`` per second (open loop: one is not held back by a slow one)."""
    latencies: list[float] = []
    poster = RawPoster(inbox, demo_data.INBOX_TOKEN)
    bodies = [json.dumps(referral(n, "LOAD")).encode() for n in range(int(rate * seconds))]

    async def one(body: bytes) -> None:
        started = time.perf_counter()
        status = await poster.post(body)
        latencies.append(time.perf_counter() - started)
        assert status == 202, status

    tasks = []
    start = time.perf_counter()
    for n, body in enumerate(bodies):
        delay = start + n / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(body)))
    await asyncio.gather(*tasks)
    poster.close()
    return latencies


async def serve_figures(
    referrals: int,
    database_url: str | None,
    workdir: Path,
    seconds: float,
    rate: float,
    profile: Path | None = None,
) -> dict[str, float]:
    sims_process = subprocess.Popen(
        [sys.executable, __file__, "--simulators"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert sims_process.stdout is not None and sims_process.stdin is not None
    sims = json.loads(sims_process.stdout.readline())
    url = prepare_database(database_url, workdir)
    port = _procs.reserve_port()
    bridge = f"http://127.0.0.1:{port}"
    serve = start_serve(url, sims, port, workdir / "serve.log")
    figures: dict[str, float] = {}
    spy = None
    if profile is not None:
        # py-spy is not a dependency: install it to profile
        spy = subprocess.Popen(
            [
                "py-spy",
                "record",
                "--threads",
                "-r",
                "100",
                "-f",
                "raw",
                "-o",
                str(profile),
                "--pid",
                str(serve.pid),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    try:
        await wait_up(bridge, serve)
        headers = {"Authorization": f"Bearer {demo_data.INBOX_TOKEN}"}
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
        async with httpx.AsyncClient(headers=headers, timeout=60, limits=limits) as http:
            inbox = f"{bridge}/api/v1/dtp/messages"
            started, cpu = time.perf_counter(), cpu_seconds(serve.pid)
            await post_all(http, inbox, [referral(n, "RUN") for n in range(referrals)])
            await drain(http, sims["dtp"], referrals, timeout=900)
            elapsed = time.perf_counter() - started
            figures["referrals_per_s"] = referrals / elapsed
            figures["cpu_ms_per_referral"] = 1000 * (cpu_seconds(serve.pid) - cpu) / referrals
            await post_all(http, inbox, [referral(n, "BACKLOG") for n in range(referrals)])
            cpu = cpu_seconds(serve.pid)
            latencies = await inbox_latency(inbox, rate, seconds)
            figures["load_cpu_share"] = (cpu_seconds(serve.pid) - cpu) / seconds
            left = 2 * referrals + len(latencies) - await feedback_count(http, sims["dtp"])
            figures["backlog_left_after_load"] = left
            ordered = sorted(latencies)
            figures["inbox_p50_ms"] = 1000 * statistics.median(ordered)
            figures["inbox_p99_ms"] = 1000 * ordered[int(0.99 * (len(ordered) - 1))]
            figures["inbox_max_ms"] = 1000 * ordered[-1]
            figures["inbox_over_250ms"] = sum(1 for t in ordered if t > 0.25)
    finally:
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(60)
        serve.terminate()
        serve.wait(30)
        if os.environ.get("CORE_PROFILE_LOG"):
            import shutil

            shutil.copy(workdir / "serve.log", os.environ["CORE_PROFILE_LOG"])
        sims_process.stdin.close()
        sims_process.wait(30)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--referrals", type=int, default=300)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--seconds", type=float, default=10.0, help="inbox load duration")
    parser.add_argument("--rate", type=float, default=100.0, help="inbox requests per second")
    parser.add_argument("--skip-counts", action="store_true")
    parser.add_argument("--profile", type=Path, help="py-spy's raw samples of serve, to this file")
    parser.add_argument("--skip-serve", action="store_true")
    parser.add_argument("--simulators", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.simulators:
        run_simulators()
        return
    from primero_progres.logging import configure_logging

    configure_logging(level="WARNING")
    backend = "postgresql" if args.database_url else "sqlite"
    print(f"core profile, {backend}, {os.cpu_count()} cores (shared: figures vary with load)")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        if not args.skip_counts:
            count_url = prepare_database(args.database_url, workdir / "counts")
            (workdir / "counts").mkdir(exist_ok=True)
            n = max(args.referrals // 5, 1)
            per = asyncio.run(counts(n, count_url if args.database_url else None, workdir))
            print(
                f"per referral ({n} referrals, in-process): "
                f"{per.get('commit', 0):.1f} write transactions, "
                f"{per.get('rollback', 0):.1f} read transactions, "
                f"{per.get('statements', 0):.1f} statements"
            )
        if not args.skip_serve:
            figures = asyncio.run(
                serve_figures(
                    args.referrals,
                    args.database_url,
                    workdir,
                    args.seconds,
                    args.rate,
                    args.profile,
                )
            )
            print(
                f"serve: {figures['referrals_per_s']:.1f} referrals/s "
                f"({args.referrals} referrals, inbox to feedback at DTP), "
                f"{figures['cpu_ms_per_referral']:.1f} ms of serve's CPU per referral"
            )
            print(
                f"inbox at {args.rate:.0f}/s for {args.seconds:.0f} s over a backlog of "
                f"{args.referrals}: p50 {figures['inbox_p50_ms']:.1f} ms, "
                f"p99 {figures['inbox_p99_ms']:.1f} ms, max {figures['inbox_max_ms']:.1f} ms, "
                f"{figures['inbox_over_250ms']:.0f} over 250 ms "
                f"(serve used {figures['load_cpu_share']:.2f} CPU meanwhile; "
                f"backlog left after it: {figures['backlog_left_after_load']:.0f})"
            )


if __name__ == "__main__":
    main()
