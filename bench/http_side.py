"""The HTTP side of a flow-1 referral on its own: the inbox's web stack and the peer clients.

Run with ``make bench`` (or ``.venv/bin/python bench/http_side.py [--count N] [--rounds R]``;
default 300 referrals, 3 rounds). ``bench/e2e.py`` measures the whole bridge, where the
store's share hides a change of this side; this one isolates it (issue 9):

- inbox: CPU µs per ``POST /api/v1/dtp/messages`` through the app's whole ASGI stack
  (middleware, routing, token check, body limit, JSON and envelope checks, answer), called
  in process without a socket, with a store that takes every message at no cost;
- peer clients: CPU ms per referral of the three calls the bridge makes for it (the case
  search, the case creation, the feedback to DTP) with its own ``PrimeroClient`` and
  ``DTPClient``, against ``simulate primero`` and ``simulate dtp`` (real processes), and the
  simulators' CPU for the same calls: clients / simulators.

Printed: each round, then the medians. The machine is shared: compare figures of one run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from datetime import date
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import _procs

from primero_progres import demo_data
from primero_progres.logging import configure_logging
from primero_progres.mapping import progres_referral as mapping
from primero_progres.peers.dtp import DTPClient
from primero_progres.peers.primero import PrimeroClient
from primero_progres.profiles import load_profile
from primero_progres.settings import Settings
from primero_progres.store import Store
from primero_progres.web import create_app

INBOX = "/api/v1/dtp/messages"


class _Messages:
    async def receive(self, **_message: Any) -> SimpleNamespace:
        return SimpleNamespace(duplicate=False, message_id="m-1", job_id="j-1")


class _Store:
    """Takes every message; the app reads nothing else of it on the inbox's path."""

    messages = _Messages()

    def __getattr__(self, _name: str) -> Any:
        return SimpleNamespace()


def _items(tag: str, count: int) -> list[dict[str, Any]]:
    return [
        demo_data.intervention(
            f"{tag}-26-PRTITV-{n:07d}", **{"individuals.progres_id": f"{tag}-{n:08d}"}
        )
        for n in range(count)
    ]


async def inbox_round(app: Any, bodies: list[bytes]) -> float:
    """CPU seconds per POST, as uvicorn would call the app (the client gone once answered)."""
    headers = [
        (b"host", b"bridge"),
        (b"authorization", f"Bearer {demo_data.INBOX_TOKEN}".encode()),
        (b"content-type", b"application/json"),
    ]

    async def post(body: bytes) -> None:
        answered = asyncio.Event()
        pending = [{"type": "http.request", "body": body, "more_body": False}]
        status: list[int] = []

        async def receive() -> dict[str, Any]:
            if pending:
                return pending.pop()
            await answered.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])
            elif not message.get("more_body"):
                answered.set()

        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": "POST", "scheme": "http", "path": INBOX, "raw_path": INBOX.encode(),
            "query_string": b"", "root_path": "", "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8000), "state": {},
            "headers": [*headers, (b"content-length", str(len(body)).encode())],
        }
        await app(scope, receive, send)
        if status != [202]:
            raise RuntimeError(f"the inbox answered {status}")

    started = time.process_time()
    for body in bodies:
        await post(body)
    return (time.process_time() - started) / len(bodies)


async def clients_round(primero: _procs.Proc, dtp: _procs.Proc, tag: str,
                        count: int) -> tuple[float, float]:
    """CPU seconds per referral of the clients (this process) and of the simulators."""
    profile, today = load_profile("gambella"), date.today()
    plans = []
    for item in _items(tag, count):
        mapped = mapping.map_intervention(item, profile, today)
        assert isinstance(mapped, mapping.MappedIntervention), mapped
        plans.append((mapped, mapping.plan_upsert([], mapped)))
    feedback = mapping.success_feedback(case_id="c", primero_user="u", intervention_number="n")
    async with (
        PrimeroClient(str(primero.url), username=demo_data.API_USER,
                      password=demo_data.API_PASSWORD) as cases,
        DTPClient(str(dtp.url), subscription_key=demo_data.DTP_SUBSCRIPTION_KEY) as gateway,
    ):
        # one referral first: connections open, caches filled
        for at, (mapped, plan) in enumerate(plans):
            if at == 1:
                started, sims = time.process_time(), _procs.cpu([primero, dtp])
            await cases.find_cases("unhcr_individual_no", mapped.unhcr_individual_no)
            await cases.create_case(plan.body)
            await gateway.send_decision(feedback, idempotency_key=f"{tag}-{at}")
        used = time.process_time() - started
        sims_used = _procs.cpu([primero, dtp]) - sims
    return used / (count - 1), sims_used / (count - 1)


async def warm_inbox(tag: str, count: int) -> tuple[Any, list[bytes]]:
    """The inbox's app over a store that takes every message, ``count`` distinct POST bodies,
    and a first round of 20 (imports, caches) not counted."""
    store = cast(Store, _Store())
    app = create_app(Settings.for_tests(inbox_tokens=demo_data.INBOX_TOKEN), store)
    bodies = [json.dumps(demo_data.referral_message(item)).encode()
              for item in _items(tag, count)]
    await inbox_round(app, bodies[:20])
    return app, bodies


async def main_async(args: argparse.Namespace) -> None:
    configure_logging(level="WARNING")
    app, bodies = await warm_inbox("I", args.count)
    inbox, clients, sims = [], [], []
    with tempfile.TemporaryDirectory(prefix="bench-http-") as workdir:
        primero, dtp = _procs.start_primero(Path(workdir)), _procs.start_dtp(Path(workdir))
        try:
            for round_ in range(args.rounds):
                inbox.append(await inbox_round(app, bodies))
                own, theirs = await clients_round(primero, dtp, f"H{round_}", args.count + 1)
                clients.append(own)
                sims.append(theirs)
                print(f"  round {round_ + 1}: inbox {1e6 * inbox[-1]:6.0f} µs CPU per POST; "
                      f"peer clients {1e3 * own:5.2f} ms CPU per referral, simulators "
                      f"{1e3 * theirs:5.2f} ms", flush=True)
        finally:
            _procs.stop_all([primero, dtp])
    median = statistics.median
    print(f"inbox web stack: {1e6 * median(inbox):.0f} µs CPU per POST (median of "
          f"{args.rounds}, {args.count} POSTs each, no database)")
    print(f"peer clients: {1e3 * median(clients):.2f} ms CPU per referral (3 calls), "
          f"simulators {1e3 * median(sims):.2f} ms; clients / simulators "
          f"{median(clients) / median(sims):.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
