"""Primero's webhook route fuzzed from its OpenAPI document (schemathesis), over loopback.

Valid and invalid bodies are generated from the schema; every answer must be documented and
none may be a server error. What a valid body queues is tested end to end in
tests/e2e/test_webhooks.py.
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

TOKEN = "fuzz-webhook-token"
REFUSALS = SchemathesisConfig.from_dict(
    {"checks": {"negative_data_rejection": {"expected-statuses": ["400", "401", "413", "422"]}}}
)


async def _migrated(url: str, settings: Settings) -> Store:
    store = await Store.open(url, encryption=settings.cipher())
    await store.upgrade()
    await store.engine.dispose()
    return store


@pytest.fixture
def bridge(tmp_path: Path) -> Iterator[ServerThread]:
    url = f"sqlite:///{tmp_path / 'fuzz.db'}"
    options = Settings.for_tests(database_url=url, webhooks=True, primero_webhook_tokens=TOKEN)
    store = asyncio.run(_migrated(url, options))
    with serve_in_thread(create_app(options, store)) as server:
        yield server


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_webhook_body_is_a_server_error_and_every_answer_is_documented(
    bridge: ServerThread, mode: GenerationMode
) -> None:
    schema = schemathesis.openapi.from_url(f"{bridge.url}/openapi.json", config=REFUSALS)
    operation = schema["/api/v1/primero/webhook"]["POST"]
    statuses: list[int] = []

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=80,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def fuzz(case: Any) -> None:
        # a generated credential is replaced by ours: a wrong token is tested apart (e2e)
        generated = {
            k: v
            for k, v in (case.headers or {}).items()
            if k.lower() not in ("x-api-key", "authorization")
        }
        headers = {**generated, "X-API-Key": TOKEN}
        response = case.call_and_validate(headers=headers)
        statuses.append(response.status_code)
        if response.status_code == 401:
            # negative generation also leaves the security scheme's header out on purpose
            assert "x-api-key" not in {k.lower() for k in response.request.headers}

    fuzz()
    assert statuses and max(statuses) < 500
    assert set(statuses) >= ({202} if mode is GenerationMode.POSITIVE else {400})
