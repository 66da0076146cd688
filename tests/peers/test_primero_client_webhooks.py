"""PrimeroClient's webhook registration and sync status, against the simulator over loopback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from primero_progres.peers.primero import (
    ConflictError,
    ForbiddenError,
    InvalidRecordError,
    NotFoundError,
    PrimeroClient,
    PrimeroTransientError,
)
from primero_progres.sim.common import FaultRule

ROLE = "role-primero-progres-api"
HOOK = "https://bridge.example.org/api/v1/primero/webhook"
DTP = "https://dtp.example.org/ReceiveIncomingReferral"


@pytest.fixture
async def client(primero_sim: Any) -> AsyncIterator[PrimeroClient]:
    async with PrimeroClient(
        primero_sim.url, username=primero_sim.user, password=primero_sim.password, timeout=5
    ) as primero:
        yield primero


def configure(sim: Any, **changes: Any) -> None:
    state = sim.state
    state.configure(state.config.merged(changes))


async def test_register_creates_once_then_finds_the_same_webhook(
    client: PrimeroClient, primero_sim: Any
) -> None:
    first = await client.register_webhook(url=HOOK, role_unique_id=ROLE)
    again = await client.register_webhook(url=HOOK, role_unique_id=ROLE)
    assert first.created and not again.created
    assert again.webhook == first.webhook
    assert first.webhook["events"] == "case.update"
    assert first.webhook["role_unique_id"] == ROLE
    assert await client.list_webhooks() == [first.webhook]


async def test_register_keeps_an_existing_webhook_as_it_is(client: PrimeroClient) -> None:
    other = await client.create_webhook(url=HOOK, role_unique_id="role-other", event="case.create")
    found = await client.register_webhook(url=HOOK, role_unique_id=ROLE)
    assert not found.created
    assert found.webhook == other


async def test_two_registrations_racing_end_with_one_webhook(
    client: PrimeroClient, primero_sim: Any
) -> None:
    # both listings are held until both have arrived, so both answer empty: both create,
    # and one create is a 409, after which that registration finds the winner
    primero_sim.app.state.faults.set(
        [FaultRule(method="GET", path="/api/v2/webhooks", rate=0.0, together=2)]
    )
    first, second = await asyncio.gather(
        client.register_webhook(url=HOOK, role_unique_id=ROLE),
        client.register_webhook(url=HOOK, role_unique_id=ROLE),
    )
    assert sorted([first.created, second.created]) == [False, True]
    assert first.webhook["id"] == second.webhook["id"]
    assert len(primero_sim.state.webhooks) == 1
    creates = [e for e in primero_sim.state.journal if e["method"] == "POST"]
    assert sorted(e["status"] for e in creates) == [200, 409]


async def test_create_webhook_errors_are_typed(client: PrimeroClient, primero_sim: Any) -> None:
    await client.create_webhook(url=HOOK, role_unique_id=ROLE)
    with pytest.raises(ConflictError):
        await client.create_webhook(url=HOOK, role_unique_id=ROLE)
    with pytest.raises(InvalidRecordError) as invalid:
        await client.create_webhook(url=HOOK + "/2", role_unique_id=" ")
    assert invalid.value.details == ("detail=role_unique_id",)
    configure(primero_sim, webhook_permissions=[])
    with pytest.raises(ForbiddenError):
        await client.list_webhooks()
    with pytest.raises(ForbiddenError):
        await client.register_webhook(url=HOOK, role_unique_id=ROLE)


async def test_delete_webhook(client: PrimeroClient, primero_sim: Any) -> None:
    webhook = await client.create_webhook(url=HOOK, role_unique_id=ROLE, metadata={"by": "cli"})
    assert webhook["metadata"] == {"by": "cli"}
    await client.delete_webhook(webhook["id"])
    assert await client.list_webhooks() == []
    with pytest.raises(NotFoundError):
        await client.delete_webhook(webhook["id"])


async def test_a_busy_primero_is_transient(client: PrimeroClient, primero_sim: Any) -> None:
    primero_sim.app.state.faults.set([FaultRule(path="/api/v2/webhooks", status=503)])
    with pytest.raises(PrimeroTransientError):
        await client.register_webhook(url=HOOK, role_unique_id=ROLE)


async def test_mark_synced_lands_in_the_case_audit_with_url_and_status(
    client: PrimeroClient, primero_sim: Any
) -> None:
    case = await client.create_case({"module_id": "primeromodule-cp"})
    answer = await client.mark_synced(case["id"], url=DTP)
    assert answer["id"] == case["id"]
    await client.mark_synced(case["id"], url=DTP, status="failed")
    audit = primero_sim.state.audit_of(case["id"])
    assert [(e["resource_url"], e["webhook_status"]) for e in audit] == [
        (DTP, "synced"),
        (DTP, "failed"),
    ]
    shown = await client.get_case(case["id"])
    assert shown["sync_status"] == "failed"
    # only the latest entry per destination counts: the earlier synced time is gone
    assert "synced_at" not in shown


async def test_mark_synced_without_sync_external_is_silently_dropped(
    client: PrimeroClient, primero_sim: Any
) -> None:
    case = await client.create_case({"module_id": "primeromodule-cp"})
    configure(primero_sim, sync_external=False)
    await client.mark_synced(case["id"], url=DTP)  # Primero answers 200 all the same
    assert primero_sim.state.audit_of(case["id"]) == []
    me = await client.own_user()
    cases = next(p for p in me["permissions"]["list"] if p["resource"] == "cases")
    assert "sync_external" not in cases["actions"]


async def test_mark_synced_of_an_unknown_case_is_not_found(client: PrimeroClient) -> None:
    with pytest.raises(NotFoundError):
        await client.mark_synced("5f0c1e52-0000-4000-8000-000000000000", url=DTP)
