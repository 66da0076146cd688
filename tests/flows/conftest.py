"""Fixtures of the flow step tests: a runtime on in-memory fakes (no database, no server)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from flow_fakes import NOW, FakeGateway, FakePrimero, FakeStore

from primero_progres.flows.runtime import Runtime
from primero_progres.profiles import load_profile
from primero_progres.store import Job, StepBuffer

Step = Callable[[Runtime, Any], Awaitable[None]]


@pytest.fixture
def fake_store() -> FakeStore:
    return FakeStore()


@pytest.fixture
def primero() -> FakePrimero:
    return FakePrimero()


@pytest.fixture
def gateway() -> FakeGateway:
    return FakeGateway()


@pytest.fixture
def rt(fake_store: FakeStore, primero: FakePrimero, gateway: FakeGateway) -> Runtime:
    return Runtime(
        store=fake_store,
        profile=load_profile("gambella"),
        primero=primero,
        dtp=gateway,
        clock=lambda: NOW,
    )


@pytest.fixture
def run(rt: Runtime, fake_store: FakeStore) -> Callable[[Step, Job], Awaitable[StepBuffer]]:
    """Run one step as the worker would; its commands are committed only if it succeeds."""

    async def run_step(step: Step, job: Job) -> StepBuffer:
        ctx = fake_store.context(job)
        await step(rt, ctx)
        fake_store.commit(ctx)
        return ctx

    return run_step


@pytest.fixture
def drain(
    run: Callable[[Step, Job], Awaitable[StepBuffer]], fake_store: FakeStore
) -> Callable[[dict[str, Step]], Awaitable[int]]:
    """Run the jobs the steps queued whose kinds are given (``kind -> step``), oldest first,
    including those they queue in turn, as the worker would; how many ran."""

    async def drain_jobs(steps: dict[str, Step]) -> int:
        ran = 0
        while (job := fake_store.next_job(steps)) is not None:
            await run(steps[job.kind], job)
            ran += 1
        return ran

    return drain_jobs
