"""What the schemathesis fuzz tests of the bridge's routes share: a migrated bridge on
loopback, and one POST route fuzzed from the bridge's own OpenAPI document."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.config import SchemathesisConfig

from primero_progres.settings import Settings
from primero_progres.sim.common import ServerThread, serve_in_thread
from primero_progres.store import Store
from primero_progres.web import create_app


async def _migrated(url: str, options: Settings) -> Store:
    """A migrated store whose pool is empty again: the server's own loop opens connections."""
    store = await Store.open(url, encryption=options.cipher())
    await store.upgrade()
    await store.engine.dispose()
    return store


@contextmanager
def bridge_on_loopback(tmp_path: Path, **options: Any) -> Iterator[ServerThread]:
    """The bridge's app on a fresh SQLite file, served in a thread of its own."""
    url = f"sqlite:///{tmp_path / 'fuzz.db'}"
    bridge = Settings.for_tests(database_url=url, **options)
    store = asyncio.run(_migrated(url, bridge))
    with serve_in_thread(create_app(bridge, store)) as server:
        yield server


def fuzz_post(
    server: ServerThread,
    path: str,
    mode: GenerationMode,
    *,
    refusals: list[str],
    max_examples: int,
    call: Callable[[Any], Any],
) -> list[int]:
    """The statuses of ``max_examples`` generated requests to ``POST path``; ``call`` sends a
    case (and validates its answer against the document); a body breaking the schema must
    get one of the ``refusals``."""
    config = SchemathesisConfig.from_dict(
        {"checks": {"negative_data_rejection": {"expected-statuses": refusals}}}
    )
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json", config=config)
    operation = schema[path]["POST"]
    statuses: list[int] = []

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=max_examples,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def fuzz(case: Any) -> None:
        statuses.append(call(case).status_code)

    fuzz()
    return statuses
