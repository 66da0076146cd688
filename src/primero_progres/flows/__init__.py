"""The four flows: they orchestrate the mapping, the peers and the store.

``build_handlers`` gives the worker one async handler per job kind;
``poll_triggers`` gives the scheduler the polling flows and their intervals.
The flow modules are imported lazily so that commands which run no flow
(``db upgrade``, ``keygen``, the simulators) do not load the peer clients.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from ..settings import Settings
from ..store import Flow, FlowStore, Handler

if TYPE_CHECKING:
    from .runtime import Runtime

POLLING_FLOWS = (Flow.PRIMERO_DECISION, Flow.PRIMERO_REFERRAL)


class Handlers(dict[str, Handler]):
    """The job handlers of one process, with the runtime they share (closed on shutdown)."""

    def __init__(self, runtime: Runtime) -> None:
        from . import primero_decision, primero_referral, progres_decision, progres_referral

        self.runtime = runtime
        steps = {
            progres_referral.RECEIVE: progres_referral.receive,
            progres_referral.DELIVER: progres_referral.deliver,
            progres_referral.FEEDBACK: progres_referral.feedback,
            primero_decision.POLL: primero_decision.poll,
            primero_decision.SEND: primero_decision.send,
            primero_referral.POLL: primero_referral.poll,
            primero_referral.SEND: primero_referral.send,
            progres_decision.RECEIVE: progres_decision.receive,
            progres_decision.APPLY: progres_decision.apply,
        }
        super().__init__({kind: partial(step, runtime) for kind, step in steps.items()})

    async def aclose(self) -> None:
        await self.runtime.aclose()


def build_handlers(settings: Settings, store: FlowStore) -> Handlers:
    """Job kind -> handler, sharing one runtime (profile, peer clients) for the process."""
    from .runtime import Runtime

    return Handlers(Runtime.from_settings(settings, store))


def poll_triggers(settings: Settings) -> dict[Flow, float]:
    """Polling flow -> interval in seconds."""
    return {flow: settings.poll_interval_seconds for flow in POLLING_FLOWS}
