"""Real processes for the end-to-end benchmarks: ``primero-progres simulate primero``,
``simulate dtp``, ``serve`` and ``worker``, each on a free loopback port, with its CPU time
read from ``/proc`` (Linux), and a fresh PostgreSQL database when one is reachable.

Shared by bench/e2e.py, bench/inbox.py and bench/polling.py (not a benchmark: its name starts
with ``_`` and ``make bench`` runs it as a script that does nothing).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx2 as httpx

from primero_progres import demo_data
from primero_progres.sim.common import reserved_port

POSTGRES_ADMIN_URL = os.environ.get(
    "PRIMERO_PROGRES_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
#: a fixed key: the benchmarks' databases are thrown away
ENCRYPTION_KEY = "YmVuY2gtYmVuY2gtYmVuY2gtYmVuY2gtYmVuY2gtMDA="
#: the ports the children of this run listen on, held until it ends
_PORTS = ExitStack()


def reserve_port() -> int:
    """A port for a child to listen on, held until this run ends (``reserved_port``): nothing
    else on the machine takes it before the child binds it."""
    return int(_PORTS.enter_context(reserved_port()))


class Proc:
    """A child process of the benchmark, its URL (if it serves) and its CPU seconds."""

    def __init__(self, name: str, args: list[str], env: Mapping[str, str], log: Path,
                 url: str | None = None) -> None:
        self.name = name
        self.url = url
        self.log = log
        with log.open("ab") as out:
            self.popen = subprocess.Popen(
                [sys.executable, "-m", "primero_progres.cli", *args],
                env=dict(env),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    def cpu_seconds(self) -> float:
        """User + system CPU of the process and of its children so far (``serve``'s worker
        process on PostgreSQL), running or ended."""
        return tree_cpu_seconds(self.popen.pid)

    def rss_peak_mb(self) -> float:
        """VmHWM: the peak resident set size so far."""
        for line in Path(f"/proc/{self.popen.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def wait_ready(self, path: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.popen.poll() is not None:
                raise RuntimeError(f"{self.name} exited: see {self.log}")
            try:
                httpx.get(f"{self.url}{path}", timeout=2)
                return
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{self.name} did not start: see {self.log}") from None
                time.sleep(0.1)

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(30)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(10)


def tree_cpu_seconds(pid: int) -> float:
    """CPU of ``pid``, of the children it has waited for, and of those still running."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except FileNotFoundError:  # ended meanwhile: its parent counts it once it has waited
        return 0.0
    # after the name: state is fields[0], utime fields[11], stime [12], cutime [13], cstime [14]
    own = sum(int(v) for v in fields[11:15]) / CLOCK_TICKS
    return own + sum(tree_cpu_seconds(int(child)) for child in children)


def base_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("PRIMERO_PROGRES_")}


def start_primero(logs: Path) -> Proc:
    """The Primero simulator of the Gambella profile (its users seeded), the demo API user."""
    port = reserve_port()
    proc = Proc(
        "simulate primero",
        ["simulate", "primero", "--port", str(port), "--user", demo_data.API_USER,
         "--password", demo_data.API_PASSWORD],
        base_env(), logs / "primero.log", url=f"http://127.0.0.1:{port}",
    )
    proc.wait_ready("/_sim/journal")
    return proc


def start_dtp(logs: Path) -> Proc:
    port = reserve_port()
    proc = Proc(
        "simulate dtp",
        ["simulate", "dtp", "--port", str(port),
         "--subscription-key", demo_data.DTP_SUBSCRIPTION_KEY],
        base_env(), logs / "dtp.log", url=f"http://127.0.0.1:{port}",
    )
    proc.wait_ready("/_sim/bridge")
    return proc


def bridge_env(database_url: str, primero: Proc, dtp: Proc, port: int,
               **extra: str) -> dict[str, str]:
    """The bridge's settings for these simulators (no polls: flows 2 and 3 stay idle)."""
    settings = {
        "DATABASE_URL": database_url,
        "ENCRYPTION_KEY": ENCRYPTION_KEY,
        "INBOX_TOKENS": demo_data.INBOX_TOKEN,
        "PRIMERO_URL": str(primero.url),
        "PRIMERO_USERNAME": demo_data.API_USER,
        "PRIMERO_PASSWORD": demo_data.API_PASSWORD,
        "DTP_URL": str(dtp.url),
        "DTP_SUBSCRIPTION_KEY": demo_data.DTP_SUBSCRIPTION_KEY,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "LOG_LEVEL": "WARNING",
        **extra,
    }
    return {**base_env(), **{f"PRIMERO_PROGRES_{k}": v for k, v in settings.items()}}


def start_bridge(env: Mapping[str, str], logs: Path, workers: int = 0) -> list[Proc]:
    """``serve`` (inbox + worker + scheduler) and ``workers`` more ``worker`` processes."""
    url = f"http://127.0.0.1:{env['PRIMERO_PROGRES_PORT']}"
    serve = Proc("serve", ["serve"], env, logs / "serve.log", url=url)
    serve.wait_ready("/healthz")
    procs = [serve]
    for n in range(workers):
        procs.append(Proc(f"worker {n}", ["worker", "--no-scheduler"], env,
                          logs / f"worker-{n}.log"))
    return procs


def stop_all(procs: list[Proc]) -> None:
    for proc in reversed(procs):
        proc.stop()


def cpu(procs: list[Proc]) -> float:
    return sum(p.cpu_seconds() for p in procs)


def _plain_dsn(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def postgres_reachable() -> str | None:
    """Why PostgreSQL cannot be used (None when it can)."""
    try:
        import psycopg

        with psycopg.connect(_plain_dsn(POSTGRES_ADMIN_URL), connect_timeout=3):
            return None
    except Exception as exc:
        return f"{type(exc).__name__} at {POSTGRES_ADMIN_URL.rpartition('@')[2]}"


@contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh, empty database, dropped afterwards."""
    import psycopg

    name = f"pp_bench_{uuid.uuid4().hex[:12]}"
    admin = _plain_dsn(POSTGRES_ADMIN_URL)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = POSTGRES_ADMIN_URL.rpartition("/")
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    print("bench/_procs.py: helpers of the end-to-end benchmarks, nothing to measure")
