"""The inbox fuzzed from its own OpenAPI document (schemathesis) over real loopback HTTP.

Valid and invalid bodies, headers and tokens are generated from the schema; every answer must
be documented (status, content type, body shape) and none may be a server error.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fuzz_helpers import bridge_on_loopback, fuzz_post
from schemathesis import GenerationMode

from primero_progres.sim.common import ServerThread

TOKEN = "fuzz-token"
#: the inbox's documented refusals: a body breaking the schema must get one of these (413 is
#: its answer to more interventions than ``maxItems``)
REFUSALS = ["400", "401", "413", "415"]


@pytest.fixture
def inbox_server(tmp_path: Path) -> Iterator[ServerThread]:
    with bridge_on_loopback(tmp_path, inbox_tokens=TOKEN, inbox_max_interventions=20) as server:
        yield server


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_input_is_a_server_error_and_every_answer_is_documented(
    inbox_server: ServerThread, mode: GenerationMode
) -> None:
    def call(case: Any) -> Any:
        # the generated headers may hold a random token: ours goes last, so most cases pass
        # authentication and reach the body's validation (a wrong token is tested apart)
        headers = {**(case.headers or {}), "Authorization": f"Bearer {TOKEN}"}
        return case.call_and_validate(headers=headers)

    statuses = fuzz_post(
        inbox_server,
        "/api/v1/dtp/messages",
        mode,
        refusals=REFUSALS,
        max_examples=120,
        call=call,
    )
    assert statuses and max(statuses) < 500
    assert 401 not in statuses
    assert set(statuses) >= ({202} if mode is GenerationMode.POSITIVE else {400})
