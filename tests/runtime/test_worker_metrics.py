"""A ``worker`` process's own /metrics (``runtime.worker_metrics``), on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx2 as httpx
import pytest
from prometheus_client import CollectorRegistry, Counter

from primero_progres.errors import ConfigurationError
from primero_progres.runtime import metrics
from primero_progres.runtime.worker_metrics import (
    STALLED_AFTER_SECONDS,
    LoopBeat,
    WorkerMetricsServer,
    worker_registry,
)
from primero_progres.sim.common import listening_socket


@pytest.fixture
def jobs() -> Iterator[tuple[Counter, str]]:
    """A registry with one job counter, served on a port the system picks."""
    registry = CollectorRegistry()
    counter = Counter("pp_test_jobs", "Jobs.", ["kind", "outcome"], registry=registry)
    server = WorkerMetricsServer("127.0.0.1", 0, registry)
    server.start()
    try:
        yield counter, f"http://127.0.0.1:{server.port}"
    finally:
        server.stop()


def test_metrics_shows_what_the_process_counted_at_each_scrape(
    jobs: tuple[Counter, str],
) -> None:
    counter, base = jobs
    counter.labels("progres-referral.receive", "done").inc()
    assert 'pp_test_jobs_total{kind="progres-referral.receive",outcome="done"} 1.0' in (
        httpx.get(f"{base}/metrics").text
    )
    counter.labels("progres-referral.receive", "done").inc()
    answer = httpx.get(f"{base}/metrics")
    assert answer.headers["content-type"].startswith("text/plain")
    assert 'outcome="done"} 2.0' in answer.text


def test_healthz_answers_and_other_paths_are_not_found(jobs: tuple[Counter, str]) -> None:
    _counter, base = jobs
    health = httpx.get(f"{base}/healthz")
    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    assert httpx.get(f"{base}/").status_code == 404
    assert httpx.get(f"{base}/readyz").status_code == 404
    assert httpx.post(f"{base}/metrics").status_code == 405


def test_stop_frees_the_port() -> None:
    server = WorkerMetricsServer("127.0.0.1", 0, CollectorRegistry())
    server.start()
    port = server.port
    server.stop()
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{port}/healthz")
    again = WorkerMetricsServer("127.0.0.1", port, CollectorRegistry())
    again.stop()  # never started: only the socket to close


def test_a_port_in_use_is_a_configuration_error_naming_the_setting() -> None:
    with listening_socket() as taken:
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigurationError) as raised:
            WorkerMetricsServer("127.0.0.1", port)
    assert raised.value.reason == "worker_metrics_unavailable"
    assert raised.value.message.startswith("PRIMERO_PROGRES_WORKER_METRICS_PORT: cannot listen")


def test_the_worker_registry_holds_the_worker_side_only() -> None:
    """Jobs, peer calls and alert notifications; not the inbox's counters, nor the gauges
    ``serve`` reads from the database (one series per process would repeat every alert)."""
    shown = {family.name for family in worker_registry().collect()}
    assert shown == {family.name for metric in metrics.WORKER_SIDE for family in metric.collect()}
    assert "primero_progres_jobs" in shown
    assert "primero_progres_queue_jobs" not in shown
    assert "primero_progres_inbound_messages" not in shown


async def test_healthz_says_stalled_once_the_loop_stops_beating() -> None:
    """/healthz answers from its own thread, so it must ask the loop: a worker loop stuck in a
    blocking call claims nothing, and its health check has to fail."""
    now = [1000.0]
    beat = LoopBeat(clock=lambda: now[0])
    server = WorkerMetricsServer("127.0.0.1", 0, CollectorRegistry(), beat=beat)
    server.start()
    base = f"http://127.0.0.1:{server.port}"
    beating = asyncio.create_task(beat.run(every=0.01))
    try:
        await asyncio.sleep(0.05)
        async with httpx.AsyncClient() as client:
            assert (await client.get(f"{base}/healthz")).status_code == 200
            beating.cancel()  # the loop no longer beats
            now[0] += STALLED_AFTER_SECONDS + 1
            stalled = await client.get(f"{base}/healthz")
            assert stalled.status_code == 503
            assert stalled.json() == {
                "status": "stalled",
                "loop_idle_seconds": int(STALLED_AFTER_SECONDS + 1),
            }
            assert (await client.get(f"{base}/metrics")).status_code == 200
    finally:
        beating.cancel()
        await asyncio.to_thread(server.stop)
