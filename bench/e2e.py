"""Flow 1 end to end, the bridge against the same requests sent straight to the simulators.

Run with ``make bench`` (or ``.venv/bin/python bench/e2e.py [--count N] [--runs R]
[--setup sqlite|postgresql]``; default 200 referrals, 3 runs; issue 9's measure is
``--count 500``). Real processes, as deployed: ``primero-progres simulate primero`` (the
Gambella instance), ``simulate dtp``, and the bridge: SQLite with one ``serve``, then
PostgreSQL with ``serve`` + two ``worker`` processes (skipped, with a note, when
PRIMERO_PROGRES_TEST_POSTGRES_URL does not answer).

- bridge: N distinct flow-1 referrals (one intervention each, a new child each) are posted
  to the inbox as DTP would; the time runs until all N feedback messages are at the DTP
  simulator.
- direct: a small async client sends the same request mix straight to the simulators, per
  referral: the case search the bridge makes (``unhcr_individual_no``), the case creation
  (the body the mapping makes), the feedback POST to DTP; as many referrals at once as the
  bridge's workers run (``WORKER_CONCURRENCY`` x worker processes).

After a warm-up round (20 referrals each way, not counted), bridge and direct alternate, R
times each (the simulators reset before each run); printed:
each run, then the medians: referrals/s, bridge/direct, and CPU seconds per referral of the
bridge's processes and of the simulators' (user + system from /proc). Issue 9's goals:
bridge/direct ≥ 0.6 on SQLite, ≥ 0.8 on PostgreSQL; bridge CPU per referral ≤ the
simulators'. The machine is shared with the simulators (and whatever else runs): compare
figures of one run, not across machines.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import _procs
import httpx2 as httpx

from primero_progres import demo_data
from primero_progres.mapping import progres_referral as mapping
from primero_progres.profiles import load_profile
from primero_progres.sim.primero_config import profile_users

FEEDBACK = "ReceiveDecisionOutgoingReferral"
WORKER_CONCURRENCY = 2
#: inbox POSTs in flight at once (proGres, through DTP)
POSTERS = 8
#: referrals of the warm-up round before the measured runs
WARM_UP = 20


@dataclass
class Run:
    what: str
    seconds: float
    count: int
    #: CPU seconds of the bridge's processes, of the simulators, of this client
    bridge_cpu: float
    sims_cpu: float
    client_cpu: float
    #: bridge runs: seconds from the first POST to the first feedback at DTP, and the median
    #: of each referral's POST to its feedback (under the backlog the posters build)
    first_feedback: float | None = None
    median_latency: float | None = None

    @property
    def rate(self) -> float:
        return self.count / self.seconds


def interventions(tag: str, count: int) -> list[dict[str, Any]]:
    return [
        demo_data.intervention(
            f"{tag}-26-PRTITV-{n:07d}", **{"individuals.progres_id": f"{tag}-{n:08d}"}
        )
        for n in range(count)
    ]


async def reset(http: httpx.AsyncClient, primero: _procs.Proc, dtp: _procs.Proc,
                users: list[dict[str, Any]]) -> None:
    """Empty simulators (the profile's users seeded again), so runs do not grow their state."""
    for url in (f"{primero.url}/_sim/reset", f"{dtp.url}/_sim/reset"):
        (await http.post(url)).raise_for_status()
    (await http.post(f"{primero.url}/_sim/seed", json={"users": users})).raise_for_status()


async def delivered(http: httpx.AsyncClient, dtp: _procs.Proc) -> int:
    answer = await http.get(f"{dtp.url}/_sim/messages/count", params={"endpoint": FEEDBACK})
    return int(answer.json()["count"])


async def bridge_run(http: httpx.AsyncClient, inbox: str, dtp: _procs.Proc,
                     items: list[dict[str, Any]], timeout: float,
                     posted: dict[str, datetime]) -> datetime:
    """Post every referral to the inbox and wait until every feedback is at DTP (checked
    twice a second: the end is the last feedback's ``received_at``, see ``feedback_times``);
    the moment the first POST left. ``posted``: intervention number -> when its POST left."""
    headers = {"Authorization": f"Bearer {demo_data.INBOX_TOKEN}"}
    messages = [demo_data.referral_message(item) for item in items]
    started_at = datetime.now(UTC)
    started = time.perf_counter()
    queue = list(reversed(messages))

    async def poster() -> None:
        while queue:
            message = queue.pop()
            for item in message["interventions"]:
                posted[item["progres_interventionnumber"]] = datetime.now(UTC)
            answer = await http.post(inbox, json=message, headers=headers)
            if answer.status_code not in (200, 201, 202):
                raise RuntimeError(f"inbox answered {answer.status_code}")

    await asyncio.gather(*(poster() for _ in range(POSTERS)))
    while await delivered(http, dtp) < len(items):
        if time.perf_counter() - started > timeout:
            raise TimeoutError(f"feedback incomplete after {timeout:.0f} s")
        await asyncio.sleep(0.5)
    return started_at


async def feedback_times(http: httpx.AsyncClient, dtp: _procs.Proc) -> dict[str, datetime]:
    """Intervention number -> when the DTP simulator received its feedback (its clock is
    this machine's)."""
    answer = await http.get(f"{dtp.url}/_sim/messages", params={"endpoint": FEEDBACK})
    return {
        m["body"]["progres_interventionnumber"]: datetime.fromisoformat(
            m["received_at"].replace("Z", "+00:00")
        )
        for m in answer.json()
    }


async def direct_run(http: httpx.AsyncClient, primero: _procs.Proc, dtp: _procs.Proc,
                     items: list[dict[str, Any]], concurrency: int) -> float:
    """The bridge's requests for each referral, straight to the simulators."""
    profile = load_profile("gambella")
    today = date.today()
    plans = []
    for item in items:
        mapped = mapping.map_intervention(item, profile, today)
        assert isinstance(mapped, mapping.MappedIntervention), mapped
        plans.append((mapped, mapping.plan_upsert([], mapped)))
    auth = (demo_data.API_USER, demo_data.API_PASSWORD)
    dtp_headers = {"Ocp-Apim-Subscription-Key": demo_data.DTP_SUBSCRIPTION_KEY}
    started = time.perf_counter()
    queue = list(reversed(plans))

    async def client() -> None:
        while queue:
            mapped, plan = queue.pop()
            search = {"unhcr_individual_no": mapped.unhcr_individual_no,
                      "order_by": "last_updated_at", "order": "asc", "per": "1000", "page": "1"}
            found = await http.get(f"{primero.url}/api/v2/cases", params=search, auth=auth)
            found.raise_for_status()
            written = await http.post(f"{primero.url}/api/v2/cases", json={"data": plan.body},
                                      auth=auth)
            written.raise_for_status()
            case = written.json()["data"]
            feedback = mapping.success_feedback(
                case_id=case["case_id"], primero_user=str(case.get("owned_by")),
                intervention_number=mapped.progres_interventionnumber,
            )
            sent = await http.post(
                f"{dtp.url}/{FEEDBACK}", json=feedback,
                headers={**dtp_headers, "Idempotency-Key": mapped.progres_interventionnumber},
            )
            sent.raise_for_status()

    await asyncio.gather(*(client() for _ in range(concurrency)))
    return time.perf_counter() - started


async def one_setup(name: str, database_url: str, workers: int, args: argparse.Namespace,
                    logs: Path) -> list[Run]:
    users = profile_users(load_profile("gambella"))
    primero = _procs.start_primero(logs)
    dtp = _procs.start_dtp(logs)
    sims = [primero, dtp]
    port = _procs.reserve_port()
    env = _procs.bridge_env(database_url, primero, dtp, port,
                            WORKER_CONCURRENCY=str(WORKER_CONCURRENCY))
    bridge: list[_procs.Proc] = []
    runs: list[Run] = []
    concurrency = WORKER_CONCURRENCY * (1 + workers)
    try:
        bridge = _procs.start_bridge(env, logs, workers=workers)
        inbox = f"{bridge[0].url}/api/v1/dtp/messages"
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
        async with httpx.AsyncClient(timeout=60, limits=limits) as http:
            # a warm-up, not counted: the workers started, connections and caches filled
            await reset(http, primero, dtp, users)
            await bridge_run(http, inbox, dtp, interventions(f"W{name[0]}", WARM_UP),
                             args.timeout, {})
            await direct_run(http, primero, dtp, interventions(f"X{name[0]}", WARM_UP),
                             concurrency)
            for run in range(args.runs):
                for what in ("bridge", "direct"):
                    await reset(http, primero, dtp, users)
                    items = interventions(f"{what[0].upper()}{run}{name[0].upper()}", args.count)
                    before = (_procs.cpu(bridge), _procs.cpu(sims), time.process_time())
                    posted: dict[str, datetime] = {}
                    seconds = 0.0  # a bridge run's: until the last feedback, set below
                    if what == "bridge":
                        started_at = await bridge_run(http, inbox, dtp, items, args.timeout,
                                                      posted)
                    else:
                        seconds = await direct_run(http, primero, dtp, items, concurrency)
                    after = (_procs.cpu(bridge), _procs.cpu(sims), time.process_time())
                    used = [b - a for a, b in zip(before, after, strict=True)]
                    result = Run(what, seconds, args.count, *used)
                    latency = ""
                    if what == "bridge":
                        fed = await feedback_times(http, dtp)
                        result.seconds = (max(fed.values()) - started_at).total_seconds()
                        result.first_feedback = (min(fed.values()) - started_at).total_seconds()
                        result.median_latency = statistics.median(
                            (fed[n] - posted[n]).total_seconds() for n in fed
                        )
                        latency = (f"; first feedback after {result.first_feedback:.1f} s, "
                                   f"median POST to feedback {result.median_latency:.1f} s")
                    runs.append(result)
                    print(f"  {name} run {run + 1} {what:<6}: {result.rate:6.1f} referrals/s "
                          f"({result.seconds:5.1f} s); CPU ms/referral: bridge "
                          f"{1000 * result.bridge_cpu / args.count:5.1f}, simulators "
                          f"{1000 * result.sims_cpu / args.count:5.1f}{latency}", flush=True)
    finally:
        _procs.stop_all(bridge)
        _procs.stop_all(sims)
    summarize(name, runs, args.count, concurrency)
    return runs


def summarize(name: str, runs: list[Run], count: int, concurrency: int) -> None:
    def median(what: str, value: Any) -> float:
        return statistics.median(value(r) for r in runs if r.what == what)

    bridge_rate = median("bridge", lambda r: r.rate)
    direct_rate = median("direct", lambda r: r.rate)
    per = 1000 / count
    print(
        f"{name}: {count} referrals, median of {len(runs) // 2}: bridge {bridge_rate:.1f}/s, "
        f"direct {direct_rate:.1f}/s ({concurrency} at once), bridge/direct "
        f"{bridge_rate / direct_rate:.2f}; bridge: first feedback after "
        f"{median('bridge', lambda r: r.first_feedback):.1f} s, median POST to feedback "
        f"{median('bridge', lambda r: r.median_latency):.1f} s"
    )
    print(
        f"{name}: CPU ms per referral (median): bridge processes "
        f"{median('bridge', lambda r: r.bridge_cpu) * per:.1f}, simulators serving the bridge "
        f"{median('bridge', lambda r: r.sims_cpu) * per:.1f}, simulators serving the direct "
        f"client {median('direct', lambda r: r.sims_cpu) * per:.1f}, the direct client "
        f"{median('direct', lambda r: r.client_cpu) * per:.1f}; bridge / simulators "
        f"{median('bridge', lambda r: r.bridge_cpu) / median('bridge', lambda r: r.sims_cpu):.2f}"
    )


async def main_async(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-e2e-") as workdir:
        logs = Path(workdir)
        if "sqlite" in args.setup:
            await one_setup("SQLite, one serve", f"sqlite:///{logs / 'bridge.db'}", 0, args,
                            logs)
        if "postgresql" in args.setup:
            why = _procs.postgres_reachable()
            if why:
                print(f"PostgreSQL skipped: {why} (set PRIMERO_PROGRES_TEST_POSTGRES_URL)")
                return
            with _procs.postgres_database() as url:
                await one_setup("PostgreSQL, serve + 2 workers", url, 2, args, logs)
    print("goals (issue 9): bridge/direct >= 0.6 (SQLite), >= 0.8 (PostgreSQL); "
          "bridge CPU per referral <= the simulators'")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--setup", action="append", choices=["sqlite", "postgresql"])
    args = parser.parse_args()
    args.setup = args.setup or ["sqlite", "postgresql"]
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
