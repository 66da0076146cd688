"""What every part of the store shares: the engine, the key ring, the clock, and how a part
opens a transaction (``db.write()``, ``db.read()``)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from .crypto import Cipher
from .engine import is_sqlite
from .inline_sqlite import READ_ONLY

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


Waiter = tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]


class WriteGate:
    """SQLite lets one writer in at a time and makes the others retry with growing sleeps, in
    no order: under load a writer waits seconds while later ones pass. The store's writers in
    one process queue here instead, on whichever thread and event loop they run (``serve``'s
    inbox and worker each have theirs): first come first served, except that an ``urgent``
    writer (the inbox, whose peer waits for the answer) goes before the others waiting."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._held = False
        self._urgent: deque[Waiter] = deque()
        self._waiters: deque[Waiter] = deque()

    async def acquire(self, *, urgent: bool = False) -> None:
        loop = asyncio.get_running_loop()
        queue = self._urgent if urgent else self._waiters
        with self._mutex:
            if not self._held:
                self._held = True
                return
            waiter = (loop, loop.create_future())
            queue.append(waiter)
        try:
            await waiter[1]
        except asyncio.CancelledError:
            with self._mutex:
                queued = waiter in queue
                if queued:
                    queue.remove(waiter)
            if not queued:  # the gate was handed over meanwhile: hand it on
                self.release()
            raise

    def release(self) -> None:
        with self._mutex:
            for queue in (self._urgent, self._waiters):
                while queue:
                    loop, future = queue.popleft()
                    with contextlib.suppress(RuntimeError):  # that loop has ended
                        loop.call_soon_threadsafe(_wake, future)
                        return
            self._held = False


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


_GATES: dict[str, WriteGate] = {}
_GATES_MUTEX = threading.Lock()


def write_gate(engine: AsyncEngine) -> WriteGate | None:
    """The gate of an SQLite database file, shared by every engine of this process on it."""
    if not is_sqlite(engine):
        return None
    with _GATES_MUTEX:
        return _GATES.setdefault(str(engine.url.database), WriteGate())


@dataclass(frozen=True)
class Database:
    engine: AsyncEngine
    cipher: Cipher
    clock: Clock = utcnow
    _gate: WriteGate | None = field(init=False, repr=False, compare=False)
    _reader: AsyncEngine = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_gate", write_gate(self.engine))
        object.__setattr__(self, "_reader", self.engine.execution_options(**{READ_ONLY: True}))

    def now(self) -> datetime:
        return self.clock()

    @contextlib.asynccontextmanager
    async def write(self, *, urgent: bool = False) -> AsyncIterator[AsyncConnection]:
        """A write transaction (``engine.begin()``), behind this process's other writers on
        SQLite (``urgent``: before those not urgent)."""
        if self._gate is None:
            async with self.engine.begin() as conn:
                yield conn
            return
        await self._gate.acquire(urgent=urgent)
        try:
            async with self.engine.begin() as conn:
                yield conn
        finally:
            self._gate.release()

    def read(self) -> contextlib.AbstractAsyncContextManager[AsyncConnection]:
        """A connection for reads only (on SQLite its transaction does not take the write
        lock: no writer waits for it)."""
        return self._reader.connect()
