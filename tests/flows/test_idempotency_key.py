"""Every message to proGres carries an ``Idempotency-Key`` that a retry repeats (issue 10, 2).

Delivery to DTP is at-least-once: a worker killed between the send and its commit sends the
message again. The key is derived from the job key, so every attempt of one job carries the
same one and two jobs never share one.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from flow_fakes import FakeGateway, make_job

from primero_progres.errors import TransientError
from primero_progres.flows import primero_decision as flow2
from primero_progres.flows import primero_referral as flow3
from primero_progres.flows import progres_referral as flow1

REFS = {
    "case_record_id": "rec-1",
    "case_id": "case-1",
    "service_unique_id": "svc-1",
    "referral_id": "ref-1",
    "org_referral_id": "case-1#svc-1",
    "progres_interventionnumber": "N-1",
    "status": "accepted",
}
SENDS = [
    pytest.param(flow1.feedback, flow1.FEEDBACK, {"progres_interventionnumber": "N-1"}, id="flow1"),
    pytest.param(flow2.send, flow2.SEND, {"status": "acknowledged"}, id="flow2"),
    pytest.param(flow3.send, flow3.SEND, {"id": "case-1#svc-1"}, id="flow3"),
]


def _refs(kind: str) -> dict[str, Any]:
    if kind == flow1.FEEDBACK:
        return {"progres_interventionnumber": "N-1", "status": "Pending Acknowledgement"}
    if kind == flow2.SEND:
        return {k: REFS[k] for k in ("case_id", "service_unique_id", "status")}
    return {k: REFS[k] for k in ("case_record_id", "case_id", "service_unique_id", "referral_id")}


@pytest.mark.parametrize(("step", "kind", "message"), SENDS)
async def test_a_retried_send_repeats_its_key_and_another_job_has_another(
    run: Any, gateway: FakeGateway, step: Any, kind: str, message: dict[str, Any]
) -> None:
    job = make_job(kind, {"message": message}, refs=_refs(kind), key=f"{kind}:N-1:one")
    gateway.error = TransientError("dtp send: timeout", reason="timeout")
    with pytest.raises(TransientError):
        await run(step, job)
    gateway.error = None
    await run(step, job)
    await run(step, make_job(kind, {"message": message}, refs=_refs(kind), key=f"{kind}:N-2:two"))

    first, retried, other = gateway.keys
    assert first is not None and other is not None
    assert first == retried, "every attempt of one job sends the same key"
    assert other != first
    assert uuid.UUID(first).version == 5, "a hash of the job key, no ID in clear"
    assert "N-1" not in first
    assert len(gateway.sent) == 2
