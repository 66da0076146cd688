"""Each peer's last success, last failure and failures in a row are recorded in the store
(the console's overview reads them; every worker process writes them)."""

from __future__ import annotations

from primero_progres import demo_data
from primero_progres.stack import Stack

FEEDBACK = "/ReceiveDecisionOutgoingReferral"


async def test_peer_outcomes_are_recorded_per_peer(stack: Stack) -> None:
    await stack.set_faults("dtp", [{"path": FEEDBACK, "status": 503, "times": 2}])
    await stack.progres_sends_referral(demo_data.referral_message())
    await stack.settle()
    peers = {p.peer: p for p in await stack.store.peers.all()}
    dtp = peers["dtp"]
    assert (dtp.last_failure_class, dtp.last_failure_reason) == ("transient", "http_503")
    assert dtp.consecutive_failures == 0, "the third attempt succeeded"
    assert dtp.last_success_at is not None and dtp.last_failure_at is not None
    assert dtp.last_success_at >= dtp.last_failure_at
    primero = peers["primero"]
    assert primero.last_success_at is not None
    assert (primero.last_failure_at, primero.consecutive_failures) == (None, 0)

    await stack.set_faults("dtp", [{"path": FEEDBACK, "status": 401}])
    await stack.progres_sends_referral(
        demo_data.referral_message(demo_data.intervention("DEMO-26-PRTITV-0000002"))
    )
    await stack.settle()
    [dtp] = [p for p in await stack.store.peers.all() if p.peer == "dtp"]
    assert (dtp.last_failure_class, dtp.last_failure_reason) == ("permanent", "http_401")
    assert dtp.consecutive_failures == 1
