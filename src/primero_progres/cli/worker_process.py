"""``serve``'s worker side in a child process (PostgreSQL): the inbox's process then runs only
HTTP and its short writes, and never waits for the interpreter lock behind a step.

The child is started with multiprocessing's ``spawn`` (a fresh interpreter: nothing of the
parent's event loop, threads or connections is copied) and gets the parent's ``Settings``
object, so CLI flags, the TOML file and the environment count exactly as in the parent. It
talks back over a pipe: started, a configuration error, and its counters for /metrics.

The child never outlives ``serve``: it watches multiprocessing's parent sentinel, a pipe
whose other end only the parent holds, and stops (releasing its jobs, as on SIGTERM) when
that pipe closes, which the kernel does whenever the parent ends, SIGKILL included. Unlike
``PR_SET_PDEATHSIG`` it does not fire when the thread that started the child ends, has no
window between the start and the watch, and is not Linux-only.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import TYPE_CHECKING, Any

from ..errors import ConfigurationError
from ..logging import get_logger

if TYPE_CHECKING:
    from ..runtime.metrics import WorkerSideRelay
    from ..settings import Settings

log = get_logger(__name__)

#: how often the child sends its counters to the parent's /metrics (when they changed)
METRICS_RELAY_SECONDS = 1.0
#: waits before starting a worker process again after it died: doubled each time, up to the
#: cap, and back to the first once a process has run ``STEADY_SECONDS``
RESTART_FIRST_SECONDS = 1.0
RESTART_CAP_SECONDS = 60.0
STEADY_SECONDS = 60.0
#: the worker process's nice value: below the inbox's for the CPU (raising one's own needs
#: no privilege)
WORKER_NICENESS = 10
#: how long ``stop`` waits for the child (its worker lets current steps finish for up to
#: 30 s, then releases them) before killing it; under systemd's TimeoutStopSec=60
STOP_TIMEOUT_SECONDS = 45.0


class WorkerProcess:
    """Starts, watches, restarts and stops ``serve``'s worker process."""

    def __init__(
        self,
        settings: Settings,
        *,
        scheduler: bool,
        stop: asyncio.Event,
        relay: WorkerSideRelay | None = None,
    ) -> None:
        self._settings = settings
        self._scheduler = scheduler
        #: set when ``serve`` is told to stop: a child that ends then is not started again
        #: (under systemd or in a terminal the signal reaches the child too)
        self._stop = stop
        self._relay = relay
        self._context = multiprocessing.get_context("spawn")
        self._process: BaseProcess | None = None
        self._messages: Connection | None = None
        self._started: asyncio.Future[None] | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._stopping = False

    async def start(self) -> None:
        """Start the child and wait until its worker runs, then watch it (``_supervise``).
        Raises ``ConfigurationError`` for what stopped it (exit code 2, as in the parent),
        ``RuntimeError`` if it died otherwise."""
        await self._spawn()
        self._supervisor = asyncio.create_task(self._supervise())

    def on_failure(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` if watching the child fails (a new one cannot start)."""
        if self._supervisor is not None:
            self._supervisor.add_done_callback(lambda _task: callback())

    async def _spawn(self) -> None:
        loop = asyncio.get_running_loop()
        self._started = loop.create_future()
        reader, writer = self._context.Pipe(duplex=False)
        process = self._context.Process(
            target=child_main,
            args=(self._settings, self._scheduler, writer),
            name="primero-progres worker",
        )
        process.start()
        writer.close()  # the child's end: once the child is gone, reading it finds the end
        self._process, self._messages = process, reader
        loop.add_reader(reader.fileno(), self._receive)
        try:
            await self._started
        except BaseException:
            if process.exitcode is None:
                process.terminate()
            await self._reap()
            raise
        log.info("worker.process_started", process_id=process.pid)

    def _receive(self) -> bool:
        """Read one message of the child; False at the end of the pipe (the child is gone)."""
        messages, started = self._messages, self._started
        if messages is None or started is None:
            return False
        try:
            kind, *rest = messages.recv()
        except (EOFError, OSError):
            asyncio.get_running_loop().remove_reader(messages.fileno())
            if not started.done():
                started.set_exception(RuntimeError("the worker process ended while starting"))
            return False
        if kind == "started" and not started.done():
            started.set_result(None)
        elif kind == "configuration_error" and not started.done():
            message, reason = rest
            started.set_exception(ConfigurationError(message, reason=reason))
        elif kind == "metrics" and self._relay is not None:
            self._relay.update(rest[0])
        return True

    async def _supervise(self) -> None:
        """Start the child again whenever it dies, with a growing wait, until ``stop``.
        Raises ``ConfigurationError`` if a new child cannot start for that reason."""
        delay = RESTART_FIRST_SECONDS
        while True:
            since = time.monotonic()
            code = await self._wait()
            await self._reap()
            if self._stopping or self._stop.is_set():
                return
            if time.monotonic() - since >= STEADY_SECONDS:
                delay = RESTART_FIRST_SECONDS
            log.error("worker.process_died", exit_status=code, retry_in=delay)
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), delay)
                if self._stop.is_set():
                    return
                delay = min(delay * 2, RESTART_CAP_SECONDS)
                try:
                    await self._spawn()
                    break
                except RuntimeError:
                    log.error(
                        "worker.process_died",
                        exit_status=self._exit_code(),
                        retry_in=delay,
                    )

    async def stop(self) -> None:
        """Tell the child to stop (SIGTERM: current steps finish or are released), wait for it
        (at most ``STOP_TIMEOUT_SECONDS``, then kill it), and close the pipe. Raises what made
        watching the child fail, if anything did."""
        self._stopping = True
        supervisor = self._supervisor
        if supervisor is not None and not supervisor.done():
            supervisor.cancel()
            await asyncio.gather(supervisor, return_exceptions=True)
        process = self._process
        if process is not None:
            if process.exitcode is None:
                process.terminate()
                try:
                    await asyncio.wait_for(self._wait(), STOP_TIMEOUT_SECONDS)
                except TimeoutError:
                    stopping_ms = int(STOP_TIMEOUT_SECONDS * 1000)
                    log.error("worker.process_killed", duration_ms=stopping_ms)
                    process.kill()
            await self._reap()
            log.info("worker.process_stopped", exit_status=self._exit_code())
        if supervisor is not None and not supervisor.cancelled():
            failure = supervisor.exception()
            if failure is not None:
                raise failure

    async def _wait(self) -> int | None:
        """Until the child has ended (its sentinel closes); its exit code."""
        process = self._process
        if process is None:
            return None
        loop = asyncio.get_running_loop()
        ended: asyncio.Future[None] = loop.create_future()

        def done() -> None:
            if not ended.done():
                ended.set_result(None)

        loop.add_reader(process.sentinel, done)
        try:
            await ended
        finally:
            loop.remove_reader(process.sentinel)
        await asyncio.to_thread(process.join)
        return process.exitcode

    async def _reap(self) -> None:
        """Collect the ended child (no zombie, even when ``serve`` is PID 1) and its pipe;
        what it had counted stays on /metrics."""
        process, messages = self._process, self._messages
        if process is not None:
            await asyncio.to_thread(process.join)
        if messages is not None:
            with contextlib.suppress(EOFError, OSError):
                while messages.poll() and self._receive():  # its last counts, sent as it ended
                    pass
            with contextlib.suppress(ValueError, OSError):
                asyncio.get_running_loop().remove_reader(messages.fileno())
            messages.close()
            self._messages = None
        if self._relay is not None:
            self._relay.ended()

    def _exit_code(self) -> int | None:
        return self._process.exitcode if self._process is not None else None


def child_main(settings: Settings, scheduler: bool, messages: Connection) -> None:
    """The worker process: the worker side of ``serve``, with the parent's settings."""
    import sys

    from ..logging import configure_logging

    # the inbox first: when the machine is busy the kernel gives the CPU to serve's inbox
    # process before this one (the worker's jobs wait; DTP's answers must not)
    os.nice(WORKER_NICENESS)
    configure_logging(level=settings.log_level)
    try:
        asyncio.run(_child(settings, scheduler, messages))
    except ConfigurationError as exc:
        with contextlib.suppress(OSError):
            messages.send(("configuration_error", exc.message, exc.reason))
        sys.exit(2)
    except Exception as exc:
        log.error("worker.process_failed", error=type(exc).__name__)
        sys.exit(1)


async def _child(settings: Settings, scheduler: bool, messages: Connection) -> None:
    from ..store import Store
    from .service import _stop_on_signals, _work_in_loop, worker_pool_size

    stop = asyncio.Event()
    _stop_on_signals(stop)
    _stop_with_parent(stop)
    relays: list[asyncio.Task[None]] = []

    def started() -> None:
        messages.send(("started",))
        relays.append(asyncio.create_task(_relay_metrics(messages, stop)))

    store = await Store.open(
        settings.database_url,
        encryption=settings.cipher(),
        pool_size=worker_pool_size(settings, scheduler=scheduler),
    )
    try:
        await _work_in_loop(store, settings, scheduler=scheduler, stop=stop, started=started)
        stop.set()
        await asyncio.gather(*relays)
    finally:
        await store.close()


def _stop_with_parent(stop: asyncio.Event) -> None:
    """Stop when ``serve`` is gone: the parent sentinel reads as closed once it has ended."""
    parent = multiprocessing.parent_process()
    if parent is None or parent.sentinel is None:
        return
    loop = asyncio.get_running_loop()
    sentinel = parent.sentinel

    def gone() -> None:
        loop.remove_reader(sentinel)
        log.warning("worker.parent_gone")
        stop.set()

    loop.add_reader(sentinel, gone)


async def _relay_metrics(messages: Connection, stop: asyncio.Event) -> None:
    """Send the worker side's counts to the parent when they change, and once more at the
    end (a closed pipe: the parent is gone, nobody to tell)."""
    from ..runtime.metrics import worker_side_samples

    sent: Any = None
    while True:
        samples = worker_side_samples()
        if samples != sent:
            try:
                messages.send(("metrics", samples))
            except OSError:
                return
            sent = samples
        if stop.is_set():
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), METRICS_RELAY_SECONDS)

