"""The four flows: they orchestrate the mapping, the peers and the store.

``build_handlers`` gives the worker one async handler per job kind;
``poll_triggers`` gives the scheduler the polling flows and their intervals.
Which handlers and polls depends on the UNHCR gateway
(``PRIMERO_PROGRES_UNHCR_GATEWAY``): over DTP, flows 1 and 4 start from the
inbox; over PING, all four start with a poll. The flow modules are imported
lazily so that commands which run no flow (``db upgrade``, ``keygen``, the
simulators) do not load the peer clients.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any

from ..settings import Settings
from ..store import BEGINNING, Command, Flow, FlowStore, Handler, Job

if TYPE_CHECKING:
    from .runtime import Runtime

#: the flows a schedule starts over DTP (flows 1 and 4 start when DTP posts to the inbox)
POLLING_FLOWS = (Flow.PRIMERO_DECISION, Flow.PRIMERO_REFERRAL)
#: over PING nothing calls the bridge: every flow starts with a poll
PING_POLLING_FLOWS = (
    Flow.PROGRES_REFERRAL,
    Flow.PRIMERO_DECISION,
    Flow.PRIMERO_REFERRAL,
    Flow.PROGRES_DECISION,
)

#: over PING, flows 1 and 4 read PING's queues, which hold only what waits: no history
QUEUE_FLOWS = (Flow.PROGRES_REFERRAL, Flow.PROGRES_DECISION)

Step = Callable[["Runtime", Any], Awaitable[None]]


def _by_kind(steps: Sequence[tuple[str, Step]]) -> dict[str, Step]:
    """Job kind -> step; two steps under one kind would silently replace each other's handler."""
    by_kind: dict[str, Step] = {}
    for kind, step in steps:
        if kind in by_kind:
            raise ValueError(f"two flow steps share the job kind {kind!r}")
        by_kind[kind] = step
    return by_kind


def _dtp_steps() -> dict[str, Step]:
    from . import (
        primero_decision,
        primero_referral,
        progres_decision,
        progres_referral,
        sync_status,
    )

    return _by_kind(
        [
            (primero_decision.CHECK, primero_decision.check),
            (primero_referral.CHECK, primero_referral.check),
            *[(kind, sync_status.mark) for kind in sync_status.MARKS.values()],
            (progres_referral.RECEIVE, progres_referral.receive),
            (progres_referral.DELIVER, progres_referral.deliver),
            (progres_referral.FEEDBACK, progres_referral.feedback),
            (primero_decision.POLL, primero_decision.poll),
            (primero_decision.SEND, primero_decision.send),
            (primero_referral.POLL, primero_referral.poll),
            (primero_referral.CASE, primero_referral.examine),
            (primero_referral.SEND, primero_referral.send),
            (progres_decision.RECEIVE, progres_decision.receive),
            (progres_decision.APPLY, progres_decision.apply),
        ]
    )


def _ping_steps() -> dict[str, Step]:
    from . import (
        ping_outbound,
        ping_progres_decision,
        ping_progres_referral,
        primero_decision,
        primero_referral,
    )

    return _by_kind(
        [
            (primero_decision.CHECK, primero_decision.check),
            (primero_referral.CHECK, primero_referral.check),
            (ping_progres_referral.POLL, ping_progres_referral.poll),
            (ping_progres_referral.PULL, ping_progres_referral.pull),
            (ping_progres_referral.WRITE_BACK, ping_progres_referral.write_back),
            # flows 2 and 3 poll Primero as over DTP; what they queue goes to PING
            (primero_decision.POLL, primero_decision.poll),
            (primero_decision.SEND, ping_outbound.send_decision),
            (primero_referral.POLL, primero_referral.poll),
            (primero_referral.CASE, primero_referral.examine),
            (primero_referral.INGEST, ping_outbound.ingest),
            (ping_outbound.CHECK, ping_outbound.check),
            (ping_outbound.RESOLVE, ping_outbound.resolve),
            (ping_progres_decision.POLL, ping_progres_decision.poll),
            (ping_progres_decision.PULL, ping_progres_decision.pull),
            (ping_progres_decision.WRITE_BACK, ping_progres_decision.write_back),
        ]
    )


class Handlers(dict[str, Handler]):
    """The job handlers of one process, with the runtime they share (closed on shutdown)."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        steps = _ping_steps() if runtime.unhcr_gateway == "ping" else _dtp_steps()
        super().__init__({kind: partial(step, runtime) for kind, step in steps.items()})
        #: job kind -> what the worker commits with a dead letter of that kind
        self.on_dead: dict[str, Callable[[Job], Sequence[Command]]] = (
            _dead_follow_ups(runtime) if runtime.unhcr_gateway == "dtp" else {}
        )

    async def aclose(self) -> None:
        await self.runtime.aclose()


def _dead_follow_ups(runtime: Runtime) -> dict[str, Callable[[Job], Sequence[Command]]]:
    """A flow-2/3 send that dies marks its case ``failed`` in Primero (``MARK_SYNCED``)."""
    from . import primero_decision, primero_referral, sync_status

    return {
        primero_decision.SEND: sync_status.failed_follow_up(
            runtime, Flow.PRIMERO_DECISION, primero_decision.ledger_key
        ),
        primero_referral.SEND: sync_status.failed_follow_up(
            runtime, Flow.PRIMERO_REFERRAL, primero_referral.ledger_key
        ),
    }


def build_handlers(settings: Settings, store: FlowStore) -> Handlers:
    """Job kind -> handler, sharing one runtime (profile, peer clients) for the process."""
    from .runtime import Runtime

    return Handlers(Runtime.from_settings(settings, store))


def polling_flows(settings: Settings) -> tuple[Flow, ...]:
    """The flows a schedule starts with this gateway."""
    return PING_POLLING_FLOWS if settings.unhcr_gateway == "ping" else POLLING_FLOWS


#: the flows Primero's webhooks drive (``webhooks``): their polls become the safety net
WEBHOOK_FLOWS = (Flow.PRIMERO_DECISION, Flow.PRIMERO_REFERRAL)


def webhook_checks() -> tuple[str, ...]:
    """The job kinds a Primero webhook queues for its case: flow 2's check, then flow 3's."""
    from . import primero_decision, primero_referral

    return (primero_decision.CHECK, primero_referral.CHECK)


def poll_interval(settings: Settings, flow: Flow) -> float:
    """How often ``flow`` polls: with webhooks on, flows 2 and 3 poll only to catch what a
    lost webhook left behind (Primero never retries one), so less often."""
    if settings.webhooks and flow in WEBHOOK_FLOWS:
        return settings.webhook_poll_interval_seconds
    return settings.poll_interval_seconds


def poll_triggers(settings: Settings) -> dict[Flow, float]:
    """Polling flow -> interval in seconds."""
    return {flow: poll_interval(settings, flow) for flow in polling_flows(settings)}


def start_at(settings: Settings, flow: Flow) -> datetime | None:
    """Where the first poll of ``flow`` starts when it has no cursor (``store.polls``).

    A Primero poll reads history, so it needs ``POLL_START_AT`` (or an operator's start
    point). A PING queue holds only what waits for the bridge: its flows start at the
    beginning, and their cursor stays there (they keep no watermark).
    """
    if settings.unhcr_gateway == "ping" and flow in QUEUE_FLOWS:
        return BEGINNING
    return settings.poll_start_at


def start_points(settings: Settings) -> dict[Flow, datetime | None]:
    """``start_at`` of every polling flow, for the scheduler."""
    return {flow: start_at(settings, flow) for flow in polling_flows(settings)}
