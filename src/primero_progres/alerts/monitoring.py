"""What alerting and the metrics both look at, read from the database (so every worker's work
counts) and the configured client certificate: one read, two readers."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from ..errors import ConfigurationError
from ..logging import get_logger
from ..settings import Settings
from ..store import Flow, PeerStatus, Store, WaitingJobs, flow_of

log = get_logger(__name__)

_NOT_CODE = re.compile(r"[^a-z0-9_.-]+")


def code(value: object, *, limit: int = 64) -> str:
    """A reason or flow as a short safe code (lower case, digits, ``_.-``): fit for a metric
    label and an alert text whatever the database holds."""
    text = _NOT_CODE.sub("_", str(value).lower()).strip("_")
    return text[:limit] or "unknown"


@dataclass(frozen=True)
class Monitoring:
    """The bridge's state as monitoring sees it at ``now``: IDs, codes, counts and times."""

    now: datetime
    peers: list[PeerStatus]
    #: unfinished jobs per flow (count, oldest queued)
    waiting: dict[Flow, WaitingJobs]
    #: polling flow -> its interval in seconds
    poll_intervals: dict[Flow, float]
    #: polling flow -> when its latest poll completed (absent: never)
    last_polls: dict[Flow, datetime]
    #: (flow, reason) -> dead letters
    dead_letters: dict[tuple[str, str], int] = field(default_factory=dict)
    #: when the DTP client certificate expires (None: none configured, or unreadable)
    certificate_expires: datetime | None = None


def poll_intervals(settings: Settings) -> dict[Flow, float]:
    from .. import flows

    return flows.poll_triggers(settings)


def certificate_expiry(settings: Settings) -> datetime | None:
    """When the DTP client certificate expires; None when there is none, when proGres is
    reached through PING (which takes no client certificate: any DTP files left configured are
    not used), or when it cannot be read (the service refuses to start with an unreadable one,
    so this is a file changed since)."""
    if settings.unhcr_gateway == "ping":
        return None
    try:
        certificate = settings.dtp_client_certificate()
    except ConfigurationError as exc:
        log.warning("certificate.unreadable", peer="dtp", reason=exc.reason)
        return None
    return certificate.not_valid_after_utc if certificate is not None else None


def dead_letters_by_flow(counts: Mapping[tuple[str, str], int]) -> dict[tuple[str, str], int]:
    by_flow: dict[tuple[str, str], int] = {}
    for (kind, reason), count in counts.items():
        flow = flow_of(kind)
        key = (flow.value if flow is not None else "other", code(reason))
        by_flow[key] = by_flow.get(key, 0) + count
    return by_flow


async def read(store: Store, settings: Settings, *, dead_letters: bool = True) -> Monitoring:
    intervals = poll_intervals(settings)
    return Monitoring(
        now=store.now(),
        peers=await store.peers.all(),
        waiting=await store.jobs.waiting_by_flow(),
        poll_intervals=intervals,
        last_polls=await store.polls.last_completed(intervals),
        dead_letters=dead_letters_by_flow(await store.jobs.dead_counts()) if dead_letters else {},
        certificate_expires=certificate_expiry(settings),
    )
