"""Commands of the 'service' part: ``serve`` (HTTP + worker + scheduler) and ``worker``."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Coroutine
from typing import Annotated, Any

import typer

from ..errors import ConfigurationError
from ..logging import configure_logging, get_logger
from ..settings import Settings
from ..store import Flow, Store, flow_of
from .store import ConfigOption, load_settings

log = get_logger(__name__)


async def _purge_loop(store: Store, settings: Settings, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            await store.purge(retention_days=settings.dead_letter_retention_days)
        except Exception as exc:
            log.warning("purge.failed", error=type(exc).__name__)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=settings.purge_interval_seconds)


def _stop_on_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)


async def run_service(settings: Settings, *, http: bool, scheduler: bool = True) -> None:
    """Open the store, migrate, and run worker (+ scheduler, purge, HTTP) until a signal."""
    import uvicorn

    from .. import flows
    from ..scheduler import Scheduler
    from ..web import create_app
    from ..worker import Worker

    store = await Store.open(settings.database_url, encryption=settings.cipher())
    await store.upgrade()
    stop = asyncio.Event()
    handlers = flows.build_handlers(settings, store)
    worker = Worker.from_settings(store, handlers, settings)
    tasks = [
        asyncio.create_task(worker.run(stop)),
        asyncio.create_task(_purge_loop(store, settings, stop)),
    ]
    if scheduler:
        tasks.append(asyncio.create_task(Scheduler(store, flows.poll_triggers(settings)).run(stop)))
    try:
        if http:
            config = uvicorn.Config(
                create_app(settings, store),
                host=settings.host,
                port=settings.port,
                log_level="warning",
                access_log=False,
            )
            server = uvicorn.Server(config)
            log.info("serve.started", host=settings.host, port=settings.port)
            await server.serve()
        else:
            _stop_on_signals(stop)
            await stop.wait()
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        await handlers.aclose()
        await store.close()


def _run(service: Coroutine[Any, Any, None]) -> None:
    """Run the service; a configuration problem found while starting exits with code 2."""
    try:
        asyncio.run(service)
    except ConfigurationError as exc:
        typer.echo(f"configuration error: {exc.message}", err=True)
        raise typer.Exit(2) from None


def register(app: typer.Typer) -> None:
    """Add this part's commands to the root app."""

    @app.command()
    def serve(
        config: ConfigOption = None,
        host: Annotated[str | None, typer.Option(help="Listen address.")] = None,
        port: Annotated[int | None, typer.Option(help="Listen port.")] = None,
    ) -> None:
        """HTTP API + worker + scheduler in one process (the embedded default)."""
        settings = load_settings(config)
        if host is not None or port is not None:
            settings = settings.model_copy(
                update={
                    "host": host or settings.host,
                    "port": settings.port if port is None else port,
                }
            )
        configure_logging(level=settings.log_level)
        _run(run_service(settings, http=True))

    @app.command()
    def worker(
        config: ConfigOption = None,
        no_scheduler: Annotated[
            bool, typer.Option("--no-scheduler", help="Only process jobs, never trigger polls.")
        ] = False,
    ) -> None:
        """A worker only (several may run against one PostgreSQL database)."""
        settings = load_settings(config)
        configure_logging(level=settings.log_level)
        _run(run_service(settings, http=False, scheduler=not no_scheduler))

    @app.command()
    def poll(
        flow: Annotated[str, typer.Argument(help="primero-decision or primero-referral")],
        config: ConfigOption = None,
        full_scan: Annotated[
            bool,
            typer.Option(
                "--full-scan",
                help="primero-decision: read every case updated since the cursor, not only "
                "those the ledger knows (for referrals made before the bridge ran).",
            ),
        ] = False,
    ) -> None:
        """Run one polling cycle of FLOW now, and send what it finds."""
        from .. import flows

        if flow not in flows.POLLING_FLOWS:
            typer.echo(f"unknown polling flow {flow!r}: one of {', '.join(flows.POLLING_FLOWS)}")
            raise typer.Exit(2)
        settings = load_settings(config)
        configure_logging(level=settings.log_level)
        _run(run_poll(settings, Flow(flow), full_scan=full_scan))

    @app.command()
    def demo() -> None:
        """Play all four flows against the simulators, on loopback, with a throwaway database."""
        from ..demo import run_demo

        configure_logging(level="WARNING", json=False)
        if not asyncio.run(run_demo(typer.echo)):
            raise typer.Exit(1)


async def run_poll(settings: Settings, flow: Flow, *, full_scan: bool) -> None:
    """Queue one poll of ``flow`` and process it and the jobs it queues, nothing else."""
    from .. import flows
    from ..worker import Worker

    store = await Store.open(settings.database_url, encryption=settings.cipher())
    handlers = flows.build_handlers(settings, store)
    try:
        await store.upgrade()
        mine = {kind: h for kind, h in handlers.items() if flow_of(kind) is flow}
        await store.polls.run_now(flow, {"full_scan": True} if full_scan else None)
        worker = Worker.from_settings(store, mine, settings, concurrency=1)
        processed = await worker.run_until_idle()
        typer.echo(f"{flow}: {processed} job(s) processed")
    finally:
        await handlers.aclose()
        await store.close()
