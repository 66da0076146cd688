"""Commands of the 'service' part: ``serve`` (HTTP + worker + scheduler) and ``worker``."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import signal
import threading
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..errors import ConfigurationError
from .mapping import Gateway
from .store import ConfigOption, load_settings

if TYPE_CHECKING:
    import uvicorn

    from ..flows import Handlers
    from ..settings import Settings
    from ..store import Flow, Store


async def _purge_loop(store: Store, settings: Settings, stop: asyncio.Event) -> None:
    from ..logging import get_logger

    log = get_logger(__name__)
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


async def _work(
    store: Store, settings: Settings, handlers: Handlers, *, scheduler: bool, stop: asyncio.Event
) -> None:
    """The worker, the purge loop and, with ``scheduler``, the polls' trigger and the alert
    check, until ``stop`` is set."""
    from .. import flows
    from ..alerts import Alerter
    from ..scheduler import Scheduler
    from ..worker import Worker

    worker = Worker.from_settings(store, handlers, settings)
    tasks = [
        asyncio.create_task(worker.run(stop)),
        asyncio.create_task(_purge_loop(store, settings, stop)),
    ]
    if scheduler:
        poller = Scheduler(
            store,
            flows.poll_triggers(settings),
            start_at=settings.poll_start_at,
            start_points=flows.start_points(settings),
        )
        tasks.append(asyncio.create_task(poller.run(stop)))
        # the scheduling processes run the alert check (one of them at a time: its lease)
        tasks.append(asyncio.create_task(Alerter(store, settings).run(stop)))
    await asyncio.gather(*tasks, return_exceptions=True)


class WorkerThread:
    """``serve``'s worker side in a thread of its own, with its own event loop and its own
    connections to the store: the inbox's answer never waits behind a step on the event loop,
    nor for a connection a step holds (each side has its pool)."""

    def __init__(self, settings: Settings, *, scheduler: bool) -> None:
        self._settings = settings
        self._scheduler = scheduler
        self._started: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._main, name="worker", daemon=True)

    async def start(self) -> None:
        """Start the thread; raises what stopped it from starting (a configuration error)."""
        self._thread.start()
        await asyncio.wrap_future(self._started)

    async def stop(self) -> None:
        """Let the current jobs finish (or release them), then close the thread's store."""
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None:
            with contextlib.suppress(RuntimeError):  # the thread's loop has already ended
                loop.call_soon_threadsafe(stop.set)
        await asyncio.to_thread(self._thread.join)

    def _main(self) -> None:
        from ..logging import get_logger

        try:
            asyncio.run(self._run())
        except BaseException as exc:
            if not self._started.done():
                self._started.set_exception(exc)
            else:
                get_logger(__name__).error("worker.thread_failed", error=type(exc).__name__)

    async def _run(self) -> None:
        from ..store import Store

        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        settings = self._settings
        store = await Store.open(settings.database_url, encryption=settings.cipher())
        try:
            await _work_in_loop(
                store,
                settings,
                scheduler=self._scheduler,
                stop=self._stop,
                started=lambda: self._started.set_result(None),
            )
        finally:
            await store.close()


#: how long ``serve`` lets running HTTP requests finish once told to stop
HTTP_SHUTDOWN_SECONDS = 10


def worker_pool_size(settings: Settings, *, scheduler: bool) -> int:
    """PostgreSQL connections a worker process keeps open: per slot its step's transaction
    and the lease heartbeat, plus the purge, and with ``scheduler`` its tick and alert check."""
    return 2 * settings.worker_concurrency + 1 + (2 if scheduler else 0)


async def run_service(settings: Settings, *, http: bool, scheduler: bool = True) -> None:
    """Open the store, migrate, and run worker (+ scheduler, purge, HTTP) until a signal.

    With ``http`` the worker side runs apart from the inbox: in a thread of its own on SQLite
    (``WorkerThread``), in a child process on PostgreSQL (``WorkerProcess``)."""
    from ..alerts.notify import targets
    from ..logging import get_logger
    from ..store import Store
    from .worker_process import WorkerProcess

    tls = tls_options(settings) if http else {}
    targets(settings)  # an alert URL apprise cannot use stops the start (exit 2), like TLS files
    # serve's inbox keeps SQLAlchemy's pool (5 open, 10 more in a burst): its transactions
    # are short, and 10 kept open measured no better (bench/inbox.py); a worker's is sized
    # (on PostgreSQL: SQLite's engine has no pool to size)
    store = await Store.open(
        settings.database_url,
        encryption=settings.cipher(),
        pool_size=None if http else worker_pool_size(settings, scheduler=scheduler),
    )
    try:
        await store.upgrade()
        # an unreadable fingerprint key stops the start (exit 2), not each message later
        await store.keys.fingerprint_key()
    except BaseException:
        await store.close()
        raise
    stop = asyncio.Event()
    # Also under uvicorn: it handles SIGTERM/SIGINT itself, then hands the signal back to the
    # previous handler, this one; without it the default action would end the process before
    # the worker, scheduler and store below are stopped.
    _stop_on_signals(stop)
    if not http:
        try:
            async with _worker_metrics(settings):
                await _work_in_loop(store, settings, scheduler=scheduler, stop=stop)
        finally:
            await store.close()
        return
    background: WorkerThread | WorkerProcess
    if store.dialect != "sqlite":
        # a thread's Python work would compete with the inbox for the interpreter lock on
        # every round trip (measured: bench/inbox.py); a process does not
        from ..runtime.metrics import WorkerSideRelay

        relay = WorkerSideRelay()
        relay.install()
        background = WorkerProcess(settings, scheduler=scheduler, stop=stop, relay=relay)
    else:
        background = WorkerThread(settings, scheduler=scheduler)
    log = get_logger(__name__)
    try:
        await background.start()
        server = _http_server(settings, store, tls)
        # A signal that came while the worker side started and the app was built, before
        # uvicorn took the signals over, only set ``stop``: it must end the HTTP side too.
        stopping = asyncio.ensure_future(stop.wait())
        stopping.add_done_callback(lambda _: setattr(server, "should_exit", True))
        if isinstance(background, WorkerProcess):
            # a worker process that can no longer start stops serve (its error, exit code 2)
            background.on_failure(lambda: setattr(server, "should_exit", True))
        try:
            await _serve_http(server, settings, tls)
        finally:
            stopping.cancel()
    finally:
        log.info("serve.stopping")
        stop.set()
        try:
            await background.stop()
        finally:
            await store.close()
    log.info("serve.stopped")


@contextlib.asynccontextmanager
async def _worker_metrics(settings: Settings) -> AsyncIterator[None]:
    """``worker``'s own /metrics while the block runs, with ``WORKER_METRICS_PORT``; a port it
    cannot listen on stops the start (exit 2) before the worker claims a job."""
    if settings.worker_metrics_port is None:
        yield
        return
    from ..logging import get_logger
    from ..runtime.worker_metrics import LoopBeat, WorkerMetricsServer

    host, port = settings.worker_metrics_host, settings.worker_metrics_port
    beat = LoopBeat()
    server = WorkerMetricsServer(host, port, beat=beat)
    server.start()
    beating = asyncio.create_task(beat.run())
    get_logger(__name__).info("worker.metrics_started", host=host, port=port)
    try:
        yield
    finally:
        beating.cancel()
        await asyncio.to_thread(server.stop)


async def _work_in_loop(
    store: Store,
    settings: Settings,
    *,
    scheduler: bool,
    stop: asyncio.Event,
    started: Callable[[], None] | None = None,
) -> None:
    """The worker side on this event loop until ``stop``; ``started`` is called once the
    flows' handlers are built (building them is what may refuse the settings)."""
    from .. import flows

    handlers = flows.build_handlers(settings, store)
    try:
        if started is not None:
            started()
        await _work(store, settings, handlers, scheduler=scheduler, stop=stop)
    finally:
        await handlers.aclose()


def _http_server(settings: Settings, store: Store, tls: dict[str, Any]) -> uvicorn.Server:
    import uvicorn

    from ..web import create_app

    config = uvicorn.Config(
        create_app(settings, store),
        host=settings.host,
        port=settings.port,
        log_level="warning",
        access_log=False,
        # no handlers of its own: its records go through the redacting root handler
        log_config=None,
        # on a signal, a request still running after this long is cancelled (answered 500
        # if its answer had not begun; the inbox's write is one transaction: its sender sends
        # again, and is told duplicate if the write had been made)
        timeout_graceful_shutdown=HTTP_SHUTDOWN_SECONDS,
        **tls,
    )
    return uvicorn.Server(config)


async def _serve_http(server: uvicorn.Server, settings: Settings, tls: dict[str, Any]) -> None:
    from ..logging import get_logger

    scheme = "https" if tls else "http"
    get_logger(__name__).info(
        "serve.started", host=settings.host, port=settings.port, scheme=scheme
    )
    await server.serve()


def tls_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's HTTPS options from TLS_CERT / TLS_KEY; the files are checked before anything
    starts, so a wrong path or a key that does not match stops ``serve`` with exit code 2."""
    if settings.tls_cert is None:
        if settings.tls_key is not None:
            raise ConfigurationError(
                "PRIMERO_PROGRES_TLS_KEY is set without PRIMERO_PROGRES_TLS_CERT",
                reason="tls_key_without_cert",
            )
        return {}
    from ..peers.tls import uvicorn_tls_options

    return uvicorn_tls_options(cert=settings.tls_cert, key=settings.tls_key)


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
        tls_cert: Annotated[
            Path | None,
            typer.Option(help="Serve HTTPS with this certificate chain (PEM; may hold the key)."),
        ] = None,
        tls_key: Annotated[Path | None, typer.Option(help="The certificate's key (PEM).")] = None,
    ) -> None:
        """HTTP API + worker + scheduler (on PostgreSQL the worker side in a child process)."""
        from ..logging import configure_logging

        settings = load_settings(config)
        given = {"host": host, "port": port, "tls_cert": tls_cert, "tls_key": tls_key}
        overrides = {name: value for name, value in given.items() if value is not None}
        if overrides:
            settings = settings.model_copy(update=overrides)
        configure_logging(level=settings.log_level)
        _run(run_service(settings, http=True))

    @app.command()
    def healthcheck(
        config: ConfigOption = None,
        worker: Annotated[
            bool,
            typer.Option(
                "--worker",
                help="Ask this host's worker process instead (its WORKER_METRICS_PORT): "
                "healthy while its event loop turns.",
            ),
        ] = False,
    ) -> None:
        """Exit 0 if the serve process on this host answers GET /healthz (container, monitor)."""
        settings = load_settings(config, require_encryption_key=False)
        if worker and settings.worker_metrics_port is None:
            typer.echo(
                "configuration error: healthcheck --worker needs "
                "PRIMERO_PROGRES_WORKER_METRICS_PORT (without it a worker answers on no port)",
                err=True,
            )
            raise typer.Exit(2)
        healthy = probe_worker_health(settings) if worker else probe_health(settings)
        if not healthy:
            raise typer.Exit(1)

    @app.command()
    def worker(
        config: ConfigOption = None,
        no_scheduler: Annotated[
            bool, typer.Option("--no-scheduler", help="Only process jobs, never trigger polls.")
        ] = False,
    ) -> None:
        """A worker only (several may run against one PostgreSQL database); with
        PRIMERO_PROGRES_WORKER_METRICS_PORT, its own GET /metrics."""
        from ..logging import configure_logging

        settings = load_settings(config)
        configure_logging(level=settings.log_level)
        _run(run_service(settings, http=False, scheduler=not no_scheduler))

    @app.command()
    def poll(
        flow: Annotated[
            str,
            typer.Argument(
                help="primero-decision or primero-referral; over PING also progres-referral "
                "or progres-decision"
            ),
        ],
        config: ConfigOption = None,
        full_scan: Annotated[
            bool,
            typer.Option(
                "--full-scan",
                help="primero-decision: read every case updated since the cursor, not only "
                "those the ledger knows (for referrals made before the bridge ran).",
            ),
        ] = False,
        from_beginning: Annotated[
            bool,
            typer.Option(
                "--from-beginning",
                help="With no cursor yet: read every case Primero holds, on purpose (this "
                "poll only; without it, a flow with no start point refuses to poll).",
            ),
        ] = False,
    ) -> None:
        """Run one polling cycle of FLOW now, and send what it finds.

        A flow that never polled needs a start point (PRIMERO_PROGRES_POLL_START_AT or
        `cursor set`), else this exits 2 and reads nothing.
        """
        from .. import flows
        from ..logging import configure_logging
        from ..store import Flow

        # which flows poll depends on the gateway; the encryption key is checked just after
        polling = flows.polling_flows(load_settings(config, require_encryption_key=False))
        if flow not in polling:
            typer.echo(f"unknown polling flow {flow!r}: one of {', '.join(polling)}")
            raise typer.Exit(2)
        settings = load_settings(config)
        configure_logging(level=settings.log_level)
        _run(run_poll(settings, Flow(flow), full_scan=full_scan, from_beginning=from_beginning))

    @app.command()
    def demo(
        gateway: Annotated[
            Gateway,
            typer.Option("--gateway", help="The way to proGres the demo plays through."),
        ] = Gateway.dtp,
    ) -> None:
        """Play all four flows against the simulators, on loopback, with a throwaway database."""
        from ..demo import run_demo
        from ..logging import configure_logging

        configure_logging(level="WARNING", json=False)
        played = run_demo(typer.echo, gateway="ping" if gateway is Gateway.ping else "dtp")
        if not asyncio.run(played):
            raise typer.Exit(1)


def probe_health(settings: Settings, *, timeout: float = 5.0) -> bool:
    """GET /healthz of the ``serve`` these settings describe, over loopback.

    With built-in TLS the certificate is not verified: it names the public host, and this
    only asks whether the process answers, not whom it talks to.
    """
    tls = settings.tls_cert is not None
    return _healthz(settings.host, settings.port, tls=tls, timeout=timeout)


def probe_worker_health(settings: Settings, *, timeout: float = 5.0) -> bool:
    """GET /healthz of the ``worker`` these settings describe (``WORKER_METRICS_PORT``): 200
    only while its event loop turns; False without the port (the worker answers on none)."""
    port = settings.worker_metrics_port
    if port is None:
        return False
    return _healthz(settings.worker_metrics_host, port, tls=False, timeout=timeout)


def _healthz(host: str, port: int, *, tls: bool, timeout: float) -> bool:
    """Whether GET /healthz on this host's ``host:port`` (a wildcard address: loopback)
    answers 200."""
    import ssl
    import urllib.error
    import urllib.request

    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    scheme = "https" if tls else "http"
    context = None
    if tls:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    url = f"{scheme}://{host}:{port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=context) as answer:
            return bool(answer.status == 200)
    except (OSError, urllib.error.URLError):
        return False


async def run_poll(
    settings: Settings, flow: Flow, *, full_scan: bool, from_beginning: bool = False
) -> None:
    """Queue one poll of ``flow`` and process it and the jobs it queues, nothing else."""
    from .. import flows
    from ..operators import command_line_account
    from ..store import Store, flow_of
    from ..worker import Worker

    store = await Store.open(settings.database_url, encryption=settings.cipher())
    handlers = flows.build_handlers(settings, store)
    try:
        await store.upgrade()
        await store.keys.fingerprint_key()
        mine = {kind: h for kind, h in handlers.items() if flow_of(kind) is flow}
        await store.polls.run_now(
            flow,
            {"full_scan": True} if full_scan else None,
            start_at=flows.start_at(settings, flow),
            from_beginning=from_beginning,
            account=command_line_account(),
        )
        worker = Worker.from_settings(
            store, mine, settings, concurrency=1, on_dead=handlers.on_dead
        )
        processed = await worker.run_until_idle()
        typer.echo(f"{flow}: {processed} job(s) processed")
    finally:
        await handlers.aclose()
        await store.close()
