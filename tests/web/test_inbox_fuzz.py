"""The inbox fuzzed from its own OpenAPI document (schemathesis) over real loopback HTTP.

Valid and invalid bodies, headers and tokens are generated from the schema; every answer must
be documented (status, content type, body shape) and none may be a server error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.config import SchemathesisConfig

from primero_progres.settings import Settings
from primero_progres.sim.common import ServerThread, serve_in_thread
from primero_progres.store import Store
from primero_progres.web import create_app

TOKEN = "fuzz-token"
#: the inbox's documented refusals: a body breaking the schema must get one of these (413 is
#: its answer to more interventions than ``maxItems``)
REFUSALS = SchemathesisConfig.from_dict(
    {"checks": {"negative_data_rejection": {"expected-statuses": ["400", "401", "413", "415"]}}}
)


async def _migrated(url: str, settings: Settings) -> Store:
    """A migrated store whose pool is empty again: the server's own loop opens connections."""
    store = await Store.open(url, encryption=settings.cipher())
    await store.upgrade()
    await store.engine.dispose()
    return store


@pytest.fixture
def inbox_server(tmp_path: Path) -> Iterator[ServerThread]:
    url = f"sqlite:///{tmp_path / 'fuzz.db'}"
    bridge = Settings.for_tests(database_url=url, inbox_tokens=TOKEN, inbox_max_interventions=20)
    store = asyncio.run(_migrated(url, bridge))
    with serve_in_thread(create_app(bridge, store)) as server:
        yield server


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_input_is_a_server_error_and_every_answer_is_documented(
    inbox_server: ServerThread, mode: GenerationMode
) -> None:
    schema = schemathesis.openapi.from_url(f"{inbox_server.url}/openapi.json", config=REFUSALS)
    operation = schema["/api/v1/dtp/messages"]["POST"]
    statuses: list[int] = []

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=120,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def fuzz(case: Any) -> None:
        # the generated headers may hold a random token: ours goes last, so most cases pass
        # authentication and reach the body's validation (a wrong token is tested apart)
        headers = {**(case.headers or {}), "Authorization": f"Bearer {TOKEN}"}
        response = case.call_and_validate(headers=headers)
        statuses.append(response.status_code)

    fuzz()
    assert statuses and max(statuses) < 500
    assert 401 not in statuses
    assert set(statuses) >= ({202} if mode is GenerationMode.POSITIVE else {400})
