"""Prometheus metrics. Labels carry flow names, job kinds, peer names, outcomes, failure classes
and reason codes only: never an ID or a personal value.

Counters and histograms count what this process did (a worker's peer calls are counted by that
worker, through ``flows.observed``); ``serve`` on PostgreSQL adds what its worker process counted
(``WorkerSideRelay``). The gauges ``set_gauges`` sets are read from the database at each scrape,
so they hold for every process together.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, get_args

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

from .._compat import Peer
from ..peers.errors import REFUSALS, CallFailure

if TYPE_CHECKING:
    from ..alerts.monitoring import Monitoring

REGISTRY = CollectorRegistry(auto_describe=True)

INBOUND_MESSAGES = Counter(
    "primero_progres_inbound_messages",
    "Messages received on the DTP inbox, by flow and outcome.",
    ["flow", "outcome"],
    registry=REGISTRY,
)
WEBHOOKS = Counter(
    "primero_progres_primero_webhooks",
    "Primero webhooks received, by outcome (queued, pending, unauthorized, a refusal code).",
    ["outcome"],
    registry=REGISTRY,
)
JOBS = Counter(
    "primero_progres_jobs",
    "Job attempts finished by the worker, by kind and outcome (done, retry, dead, released).",
    ["kind", "outcome"],
    registry=REGISTRY,
)
QUEUE_DEPTH = Gauge(
    "primero_progres_queue_jobs",
    "Jobs in the queue by kind and state, read from the database at scrape time.",
    ["kind", "state"],
    registry=REGISTRY,
)
PEER_REQUEST_DURATION = Histogram(
    "primero_progres_peer_request_duration_seconds",
    "Calls the flows make to a peer (primero, dtp, ping), whatever their outcome, in seconds "
    "(a paged read of cases is one call: the time spent waiting for its pages).",
    ["peer"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
    registry=REGISTRY,
)
PEER_ERRORS = Counter(
    "primero_progres_peer_errors",
    "Failed calls to a peer, by how they failed (timeout, connection, tls, unauthorized, "
    "forbidden, rate_limited, server_error, client_error).",
    ["peer", "failure"],
    registry=REGISTRY,
)
PEER_FAILING_SINCE = Gauge(
    "primero_progres_peer_failing_since_timestamp_seconds",
    "Since when every call to the peer has failed (Unix time; 0 while the latest call worked).",
    ["peer"],
    registry=REGISTRY,
)
PEER_REFUSED = Gauge(
    "primero_progres_peer_refused",
    "1 while the latest call to the peer was refused (401, 403, TLS handshake), else 0.",
    ["peer"],
    registry=REGISTRY,
)
OLDEST_WAITING_JOB = Gauge(
    "primero_progres_oldest_waiting_job_age_seconds",
    "Age of the oldest unfinished (pending or running) job of the flow, since it was queued "
    "(0: none).",
    ["flow"],
    registry=REGISTRY,
)
LAST_POLL = Gauge(
    "primero_progres_last_poll_completed_timestamp_seconds",
    "When the polling flow's latest poll completed (Unix time; absent until one has).",
    ["flow"],
    registry=REGISTRY,
)
POLL_INTERVAL = Gauge(
    "primero_progres_poll_interval_seconds",
    "The polling flow's configured interval.",
    ["flow"],
    registry=REGISTRY,
)
DEAD_LETTERS = Gauge(
    "primero_progres_dead_letters",
    "Dead letters (jobs that will not be retried by themselves), by flow and reason code.",
    ["flow", "reason"],
    registry=REGISTRY,
)
CERTIFICATE_EXPIRY = Gauge(
    "primero_progres_client_certificate_expiry_timestamp_seconds",
    "When the client certificate the bridge presents to the peer expires (Unix time).",
    ["peer"],
    registry=REGISTRY,
)
ALERT_NOTIFICATIONS = Counter(
    "primero_progres_alert_notifications",
    "Alert notifications handed to an alert target, by event and outcome (sent, failed).",
    ["event", "outcome"],
    registry=REGISTRY,
)

for _peer in get_args(Peer):
    PEER_REQUEST_DURATION.labels(_peer)
    for _failure in CallFailure:
        PEER_ERRORS.labels(_peer, _failure.value)


def observe_peer_call(peer: str, seconds: float, failure: CallFailure | None) -> None:
    """One call the flows made to ``peer`` (``flows.observed``)."""
    PEER_REQUEST_DURATION.labels(peer).observe(seconds)
    if failure is not None:
        PEER_ERRORS.labels(peer, failure.value).inc()


#: the gauges read from the database at each scrape
DATABASE_GAUGES = (
    QUEUE_DEPTH,
    PEER_FAILING_SINCE,
    PEER_REFUSED,
    OLDEST_WAITING_JOB,
    LAST_POLL,
    POLL_INTERVAL,
    DEAD_LETTERS,
    CERTIFICATE_EXPIRY,
)


def clear_gauges() -> None:
    """Drop the database-derived series (the database could not be read: none is current)."""
    for gauge in DATABASE_GAUGES:
        gauge.clear()


def set_gauges(state: Monitoring, counts: dict[tuple[str, str], int]) -> None:
    """The database-derived gauges, from one monitoring read and the queue counts."""
    from ..store import Flow

    refused = {failure.value for failure in REFUSALS}
    clear_gauges()
    for (kind, job_state), count in counts.items():
        if job_state in ("pending", "running", "dead"):
            QUEUE_DEPTH.labels(kind, job_state).set(count)
    for peer in state.peers:
        since = peer.failing_since
        PEER_FAILING_SINCE.labels(peer.peer).set(since.timestamp() if since else 0)
        refusing = since is not None and peer.last_failure_kind in refused
        PEER_REFUSED.labels(peer.peer).set(int(refusing))
    for flow in Flow:
        waiting = state.waiting.get(flow)
        age = (state.now - waiting.oldest_created_at).total_seconds() if waiting else 0.0
        OLDEST_WAITING_JOB.labels(flow.value).set(max(age, 0.0))
    for flow, interval in state.poll_intervals.items():
        POLL_INTERVAL.labels(flow.value).set(interval)
        finished = state.last_polls.get(flow)
        if finished is not None:
            LAST_POLL.labels(flow.value).set(finished.timestamp())
    for (flow_name, reason), count in state.dead_letters.items():
        DEAD_LETTERS.labels(flow_name, reason).set(count)
    if state.certificate_expires is not None:
        CERTIFICATE_EXPIRY.labels("dtp").set(state.certificate_expires.timestamp())


#: what the worker side (worker, scheduler, alert check) counts; the inbox counts the rest
WORKER_SIDE = (JOBS, PEER_REQUEST_DURATION, PEER_ERRORS, ALERT_NOTIFICATIONS)

#: one metric family's samples: (sample name, sorted labels) -> value
SampleKey = tuple[str, tuple[tuple[str, str], ...]]
Samples = dict[SampleKey, float]


def _key(sample: Sample) -> SampleKey:
    return sample.name, tuple(sorted(sample.labels.items()))


def worker_side_samples() -> dict[str, Samples]:
    """What this process's worker side has counted so far, by metric family (``_created``
    samples left out: they belong to the process that shows them)."""
    found: dict[str, Samples] = {}
    for metric in WORKER_SIDE:
        for family in metric.collect():
            found[family.name] = {
                _key(sample): sample.value
                for sample in family.samples
                if not sample.name.endswith("_created")
            }
    return found


class WorkerSideRelay(Collector):
    """``serve``'s /metrics on PostgreSQL, where its worker side is a process of its own: the
    worker-side counters and histograms are this process's plus what the worker process sent
    (``update``). What a worker process that ended had counted is kept (``ended``), so a
    restart does not make the counters go back."""

    def __init__(self) -> None:
        self._ended: dict[str, Samples] = {}
        self._current: dict[str, Samples] = {}

    def install(self, registry: CollectorRegistry = REGISTRY) -> None:
        """Show the worker side through this relay instead of the metrics themselves."""
        for metric in WORKER_SIDE:
            registry.unregister(metric)
        registry.register(self)

    def update(self, samples: dict[str, Samples]) -> None:
        """The worker process's latest counts (since it started)."""
        self._current = samples

    def ended(self) -> None:
        """The worker process ended: its last counts stay."""
        for name, samples in self._current.items():
            kept = self._ended.setdefault(name, {})
            for key, value in samples.items():
                kept[key] = kept.get(key, 0.0) + value
        self._current = {}

    def collect(self) -> Iterator[Metric]:
        for metric in WORKER_SIDE:
            for family in metric.collect():
                totals: Samples = {_key(sample): sample.value for sample in family.samples}
                for relayed in (self._ended, self._current):
                    for key, value in relayed.get(family.name, {}).items():
                        totals[key] = totals.get(key, 0.0) + value
                merged = Metric(family.name, family.documentation, family.type, family.unit)
                for (name, labels), value in totals.items():
                    merged.add_sample(name, dict(labels), value)
                yield merged
