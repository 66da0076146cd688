"""Flow 1's store and worker path alone: the CPU a referral costs the bridge's core, no HTTP.

Run with ``.venv/bin/python bench/store_path.py [--referrals N] [--database-url URL]``
(default 1,000 referrals on a fresh SQLite file; a PostgreSQL URL names a database this
script empties first, never the tests' ``test``). In one process: N one-intervention
messages stored as the inbox stores them (``store.messages.receive``), then a ``Worker``
(two slots, run as ``serve`` runs it) drains them through three steps that make flow 1's
store calls with no peer: ``receive`` reads the message and queues ``deliver`` (keyed by
the intervention's fingerprint) with its ``message.fanned_out`` audit entry; ``deliver``
holds the child's lease and records the ledger's ``delivered`` row, then queues
``feedback``; ``feedback`` records ``feedback_sent`` and its audit entry. Printed: the
process's CPU ms per referral for the inbox side and for the worker side, referrals/s of
the worker, and the statements per referral. With no network in the steps, this is the
figure of issue 9 least moved by the machine's load (``bench/e2e.py`` gives the whole).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from core_profile import prepare_database, referral

from primero_progres.flows.progres_referral import DELIVER, FEEDBACK, FLOW, RECEIVE
from primero_progres.store import (
    AuditEvent,
    Cipher,
    LedgerEvent,
    LedgerState,
    StepContext,
    Store,
)


async def receive(store: Store, ctx: StepContext) -> None:
    message = await store.messages.payload(ctx.job.message_id or "")
    assert message is not None
    for index, item in enumerate(message["interventions"]):
        number = item["progres_interventionnumber"]
        fingerprint = await store.fingerprint(item)
        ctx.enqueue(
            DELIVER,
            {"intervention": item, "fingerprint": fingerprint},
            key=f"{DELIVER}:{number}:{fingerprint}",
            refs={"progres_interventionnumber": number, "index": index},
        )
    ctx.audit(AuditEvent.MESSAGE_FANNED_OUT, flow=FLOW, message_id=ctx.job.message_id, count=1)


async def deliver(ctx: StepContext) -> None:
    payload = ctx.job.payload or {}
    item = payload["intervention"]
    number = item["progres_interventionnumber"]
    await ctx.hold(f"individual:{item['individuals.progres_id']}")
    ctx.ledger_record(
        FLOW,
        number,
        state=LedgerState.DELIVERED,
        event=LedgerEvent.CASE_CREATED,
        fingerprint=payload["fingerprint"],
        progres_interventionnumber=number,
        case_record_id=f"rec-{number}",
        case_id=f"case-{number}",
    )
    ctx.enqueue(
        FEEDBACK,
        {"message": {"progres_interventionnumber": number, "status": "Success"}},
        key=f"{FEEDBACK}:{number}:{payload['fingerprint']}",
        refs={"progres_interventionnumber": number, "status": "Success"},
    )


async def feedback(ctx: StepContext) -> None:
    number = (ctx.job.payload or {})["message"]["progres_interventionnumber"]
    ctx.ledger_record(
        FLOW,
        number,
        state=LedgerState.FEEDBACK_SENT,
        event=LedgerEvent.FEEDBACK_SENT,
        progres_interventionnumber=number,
        dtp_request_id=f"req-{number}",
    )
    ctx.audit(AuditEvent.FEEDBACK_SENT, flow=FLOW, progres_interventionnumber=number)


def numbers(message: dict[str, Any]) -> list[str]:
    return [item["progres_interventionnumber"] for item in message["interventions"]]


async def run(referrals: int, url: str) -> dict[str, float]:
    from primero_progres.worker import Worker

    store = await Store.open(url, encryption=Cipher.throwaway())
    await store.upgrade()
    statements = 0

    @sa.event.listens_for(store.engine.sync_engine, "before_cursor_execute")
    def _count(*args: Any) -> None:
        nonlocal statements
        if not str(args[2]).startswith("BEGIN"):
            statements += 1

    messages = [referral(n, "STORE") for n in range(referrals)]
    cpu, started = time.process_time(), time.perf_counter()
    for message in messages:
        await store.messages.receive(
            request_type="ReceiveOutgoingReferral",
            flow=FLOW,
            message=message,
            intervention_numbers=[
                i["progres_interventionnumber"] for i in message["interventions"]
            ],
        )
    inbox_cpu = time.process_time() - cpu

    async def on_receive(ctx: StepContext) -> None:
        await receive(store, ctx)

    handlers = {RECEIVE: on_receive, DELIVER: deliver, FEEDBACK: feedback}
    worker = Worker(store, handlers, concurrency=2, poll_interval=0.05, lease_seconds=60)
    stop = asyncio.Event()
    cpu, started = time.process_time(), time.perf_counter()
    running = asyncio.create_task(worker.run(stop))
    while True:
        counts = await store.jobs.counts()
        if counts.get((FEEDBACK, "done"), 0) >= referrals:
            break
        await asyncio.sleep(0.2)  # this check's own CPU is counted: not too often
    elapsed = time.perf_counter() - started
    worker_cpu = time.process_time() - cpu
    stop.set()
    await running
    await store.close()
    return {
        "inbox_cpu_ms": 1000 * inbox_cpu / referrals,
        "worker_cpu_ms": 1000 * worker_cpu / referrals,
        "worker_rate": referrals / elapsed,
        "statements": statements / referrals,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--referrals", type=int, default=1000)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    from primero_progres.logging import configure_logging

    configure_logging(level="WARNING")
    with tempfile.TemporaryDirectory() as tmp:
        url = prepare_database(args.database_url, Path(tmp))
        figures = asyncio.run(run(args.referrals, url))
    backend = "postgresql" if args.database_url else "sqlite"
    print(
        f"store path, {backend}, {args.referrals} referrals: inbox side "
        f"{figures['inbox_cpu_ms']:.2f} CPU ms/referral; worker side "
        f"{figures['worker_cpu_ms']:.2f} CPU ms/referral, {figures['worker_rate']:.0f} "
        f"referrals/s (two slots, no peers); {figures['statements']:.1f} statements/referral"
    )


if __name__ == "__main__":
    main()
