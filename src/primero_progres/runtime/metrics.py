"""Prometheus metrics. Labels carry flow names, job kinds and outcomes only: never IDs."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

REGISTRY = CollectorRegistry(auto_describe=True)

INBOUND_MESSAGES = Counter(
    "primero_progres_inbound_messages",
    "Messages received on the DTP inbox, by flow and outcome.",
    ["flow", "outcome"],
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
