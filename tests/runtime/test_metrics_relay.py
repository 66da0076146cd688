"""``serve``'s /metrics on PostgreSQL shows its worker process's counts (``WorkerSideRelay``)."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Counter, generate_latest

from primero_progres.runtime import metrics
from primero_progres.runtime.metrics import WorkerSideRelay, worker_side_samples


def _value(text: str, start: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(start))


def test_the_worker_process_counts_are_added_and_kept_when_it_ends(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    own = CollectorRegistry()
    jobs = Counter("pp_test_jobs", "Jobs.", ["kind", "outcome"], registry=own)
    monkeypatch.setattr(metrics, "WORKER_SIDE", (jobs,))
    jobs.labels("receive", "done").inc()  # this process's own count

    child = CollectorRegistry()
    child_jobs = Counter("pp_test_jobs", "Jobs.", ["kind", "outcome"], registry=child)
    monkeypatch.setattr(metrics, "WORKER_SIDE", (child_jobs,))
    child_jobs.labels("receive", "done").inc(3)
    child_jobs.labels("deliver", "retry").inc()
    sent = worker_side_samples()
    monkeypatch.setattr(metrics, "WORKER_SIDE", (jobs,))

    relay = WorkerSideRelay()
    relay.install(own)
    relay.update(sent)
    shown = generate_latest(own).decode()
    assert _value(shown, 'pp_test_jobs_total{kind="receive",outcome="done"}') == 4
    assert _value(shown, 'pp_test_jobs_total{kind="deliver",outcome="retry"}') == 1
    assert shown.count("# TYPE pp_test_jobs_total counter") == 1

    # the worker process died and a new one started: the counters do not go back
    relay.ended()
    relay.update({"pp_test_jobs": {("pp_test_jobs_total",
                                    (("kind", "receive"), ("outcome", "done"))): 1.0}})
    shown = generate_latest(own).decode()
    assert _value(shown, 'pp_test_jobs_total{kind="receive",outcome="done"}') == 5
    assert _value(shown, 'pp_test_jobs_total{kind="deliver",outcome="retry"}') == 1
