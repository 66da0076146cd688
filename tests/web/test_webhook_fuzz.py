"""Primero's webhook route fuzzed from its OpenAPI document (schemathesis), over loopback.

Valid and invalid bodies are generated from the schema; every answer must be documented and
none may be a server error. What a valid body queues is tested end to end in
tests/e2e/test_webhooks.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fuzz_helpers import bridge_on_loopback, fuzz_post
from schemathesis import GenerationMode

from primero_progres.sim.common import ServerThread

TOKEN = "fuzz-webhook-token"
REFUSALS = ["400", "401", "413", "422"]


@pytest.fixture
def bridge(tmp_path: Path) -> Iterator[ServerThread]:
    with bridge_on_loopback(tmp_path, webhooks=True, primero_webhook_tokens=TOKEN) as server:
        yield server


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_webhook_body_is_a_server_error_and_every_answer_is_documented(
    bridge: ServerThread, mode: GenerationMode
) -> None:
    def call(case: Any) -> Any:
        # a generated credential is replaced by ours: a wrong token is tested apart (e2e)
        generated = {
            k: v
            for k, v in (case.headers or {}).items()
            if k.lower() not in ("x-api-key", "authorization")
        }
        headers = {**generated, "X-API-Key": TOKEN}
        response = case.call_and_validate(headers=headers)
        if response.status_code == 401:
            # negative generation also leaves the security scheme's header out on purpose
            assert "x-api-key" not in {k.lower() for k in response.request.headers}
        return response

    statuses = fuzz_post(
        bridge,
        "/api/v1/primero/webhook",
        mode,
        refusals=REFUSALS,
        max_examples=80,
        call=call,
    )
    assert statuses and max(statuses) < 500
    assert set(statuses) >= ({202} if mode is GenerationMode.POSITIVE else {400})
