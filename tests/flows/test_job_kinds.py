"""Every job kind has one step: a kind shared by two steps would lose one of them silently."""

from __future__ import annotations

import pytest

from primero_progres import flows
from primero_progres.flows import _by_kind, _dtp_steps, _ping_steps


@pytest.mark.parametrize("steps", [_dtp_steps, _ping_steps], ids=["dtp", "ping"])
def test_each_gateway_has_one_step_per_job_kind(steps) -> None:  # type: ignore[no-untyped-def]
    """``_by_kind`` raises on a shared kind; the webhook's checks run over both gateways."""
    assert set(flows.webhook_checks()) <= set(steps())


def test_two_steps_under_one_kind_are_refused() -> None:
    async def one(runtime: object, job: object) -> None:
        return None

    async def other(runtime: object, job: object) -> None:
        return None

    with pytest.raises(ValueError, match=r"primero-decision\.send"):
        _by_kind([("primero-decision.send", one), ("primero-decision.send", other)])
