"""A simulator run in the foreground logs its start-up and what went wrong at INFO, and a line
per request only at DEBUG: a demo or a load test must not bury the log in access lines."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx2 as httpx
import pytest
import structlog

from primero_progres.sim import dtp, ping, primero
from primero_progres.sim.common import serve_in_thread

KEY = "sim-key"
SERVES: dict[str, Callable[..., None]] = {
    "dtp": lambda **kw: dtp.serve(port=0, subscription_key=KEY, **kw),
    "ping": lambda **kw: ping.serve(
        port=0, subscription_key=KEY, client_id="c", username="u", password="p", **kw
    ),
    "primero": lambda **kw: primero.serve(port=0, users={"u": "p"}, **kw),
}
MODULES = {"dtp": dtp, "ping": ping, "primero": primero}


@pytest.mark.parametrize("name", sorted(SERVES))
@pytest.mark.parametrize(("level", "per_request"), [("info", False), ("debug", True)])
def test_a_line_per_request_only_at_debug(
    monkeypatch: pytest.MonkeyPatch, name: str, level: str, per_request: bool
) -> None:
    """uvicorn's access log, and structlog's DEBUG lines (its default lets them all through)."""
    ran: list[dict[str, Any]] = []
    monkeypatch.setattr(MODULES[name].uvicorn, "run", lambda app, **kw: ran.append(kw))
    SERVES[name](log_level=level)
    [options] = ran
    assert (options["log_level"], options["access_log"]) == (level, per_request)
    with structlog.testing.capture_logs() as logs:
        structlog.get_logger("sim").debug("per_request")
        structlog.get_logger("sim").info("went_wrong")
    assert [e["event"] for e in logs] == ["per_request", "went_wrong"][not per_request :]


@pytest.mark.usefixtures("every_level")
def test_the_dtp_gateway_logs_a_message_received_at_debug_and_a_refusal_at_info() -> None:
    app = dtp.create_app(subscription_key=KEY)
    with serve_in_thread(app) as server, structlog.testing.capture_logs() as logs:
        path = f"{server.url}/ReceiveIncomingReferral"
        body = {"progres_interventionnumber": "N-1"}
        httpx.post(path, json=body, headers={"Ocp-Apim-Subscription-Key": KEY}, timeout=5)
        httpx.post(path, json=body, timeout=5)
    levels = {entry["event"]: entry["log_level"] for entry in logs}
    assert levels == {"dtp_sim_received": "debug", "dtp_sim_refused": "info"}
