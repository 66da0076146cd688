"""Personal values are never readable in the database files or a dump, before or after purge."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx2 as httpx
import pytest
import sqlalchemy as sa

from primero_progres.errors import PermanentError
from primero_progres.settings import Settings
from primero_progres.store import StepContext, Store
from primero_progres.web import create_app
from primero_progres.worker import Worker

MARKERS = ("Zyxwvutsrq", "Qwertyuiop", "2019-07-14", "+251911000111")


def _message(number: str) -> dict[str, object]:
    return {
        "request_type": "PrimeroOutgoingReferral",
        "interventions": [
            {
                "progres_interventionnumber": number,
                "individuals.progres_givenname": MARKERS[0],
                "individuals.progres_familyname": MARKERS[1],
                "individuals.progres_dateofbirth": MARKERS[2],
                "progres_reasonforreferral": f"call {MARKERS[3]}",
            }
        ],
    }


def _readable(store: Store, db_url: str) -> bytes:
    """Everything an attacker with the files (SQLite) or a dump (PostgreSQL) could read."""
    if store.dialect == "sqlite":
        path = Path(db_url.split(":///", 1)[1])
        return b"".join(
            p.read_bytes() for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")) if p.exists()
        )
    dsn = db_url.replace("postgresql+psycopg://", "postgresql://", 1)
    return subprocess.run(["pg_dump", dsn], check=True, capture_output=True).stdout


async def _all_rows_as_text(store: Store) -> str:
    from primero_progres.store.schema import metadata

    chunks = []
    async with store.engine.connect() as conn:
        for table in metadata.sorted_tables:
            chunks.extend(str(tuple(r)) for r in (await conn.execute(sa.select(table))).all())
    return "\n".join(chunks)


async def test_markers_never_readable_before_or_after_purge(store: Store, db_url: str) -> None:
    app = create_app(Settings.for_tests(inbox_tokens="t"), store)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://bridge"
    ) as http:
        for number in ("I-1", "I-2"):
            response = await http.post(
                "/api/v1/dtp/messages", json=_message(number), headers={"X-API-Key": "t"}
            )
            assert response.status_code == 202

    async def receive(ctx: StepContext) -> None:
        assert ctx.job.message_id is not None
        message = await store.messages.payload(ctx.job.message_id)
        assert message is not None
        for item in message["interventions"]:
            number = item["progres_interventionnumber"]
            ctx.enqueue(
                "progres-referral.deliver",
                item,
                key=number,
                refs={"progres_interventionnumber": number},
            )

    async def deliver(ctx: StepContext) -> None:
        assert ctx.job.payload is not None
        assert ctx.job.payload["individuals.progres_givenname"] == MARKERS[0]
        number = ctx.job.refs["progres_interventionnumber"]
        if number == "I-2":
            raise PermanentError(f"primero create_case {number}: http 422", reason="http_422")
        ctx.ledger_record(
            "progres-referral",
            number,
            state="delivered",
            progres_interventionnumber=number,
            case_id="c-1",
        )
        ctx.audit("delivered", flow="progres-referral", progres_interventionnumber=number)

    await Worker(
        store, {"progres-referral.receive": receive, "progres-referral.deliver": deliver}
    ).run_until_idle()
    dead = await store.jobs.list(state="dead")
    assert [j.key for j in dead] == ["I-2"] and dead[0].has_payload

    for marker in MARKERS:
        assert marker.encode() not in _readable(store, db_url), marker
        assert marker not in await _all_rows_as_text(store), marker

    result = await store.purge(retention_days=0)
    assert result.jobs == 1
    assert not (await store.jobs.get(dead[0].id)).has_payload  # type: ignore[union-attr]
    for marker in MARKERS:
        assert marker.encode() not in _readable(store, db_url), marker
        assert marker not in await _all_rows_as_text(store), marker


async def test_purge_keeps_dead_letters_until_the_retention_period(store: Store) -> None:
    async def refuses(ctx: StepContext) -> None:
        raise PermanentError("refused", reason="http_422")

    job_id = (await store.jobs.enqueue("toy.step", {"n": 1})).id
    await Worker(store, {"toy.step": refuses}).run_until_idle()
    assert (await store.purge(retention_days=30)).jobs == 0
    job = await store.jobs.get(job_id, decrypt=True)
    assert job is not None and job.payload == {"n": 1}
    assert (await store.purge(retention_days=0)).jobs == 1
    job = await store.jobs.get(job_id)
    assert job is not None and not job.has_payload
    assert (await store.audit.list(event="payloads.purged"))[0].ids == {
        "jobs_count": 1,
        "messages_count": 0,
    }


async def test_purge_keeps_a_message_whose_work_is_unfinished(store: Store) -> None:
    receipt = await store.messages.receive(
        request_type="PrimeroOutgoingReferral",
        flow="progres-referral",
        message=_message("I-9"),
        intervention_numbers=["I-9"],
    )
    assert (await store.purge(retention_days=0)).messages == 0
    assert await store.messages.payload(receipt.message_id) == _message("I-9")


async def test_upgrade_works_from_any_directory_and_twice(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from alembic.script import ScriptDirectory

    from primero_progres.store import Cipher
    from primero_progres.store.schema import metadata
    from primero_progres.store.store import MIGRATIONS

    monkeypatch.chdir(tmp_path)
    store = await Store.open(db_url, encryption=Cipher.throwaway())
    await store.upgrade()
    await store.upgrade()
    async with store.engine.connect() as conn:
        version = await conn.scalar(sa.text("SELECT version_num FROM alembic_version"))
        tables = await conn.run_sync(lambda c: set(sa.inspect(c).get_table_names()))
        drift = await conn.run_sync(
            lambda c: compare_metadata(MigrationContext.configure(c), metadata)
        )
    assert version == ScriptDirectory(str(MIGRATIONS)).get_current_head()
    assert drift == [], "the migrations do not create the schema of schema.py"
    assert {
        "inbound_messages",
        "jobs",
        "exchanges",
        "exchange_events",
        "cursors",
        "leases",
        "audit_events",
        "store_keys",
        "operator_accounts",
        "operator_sessions",
        "peer_status",
        "alert_state",
        "alert_outbox",
    } <= tables
    await store.close()


async def test_job_keys_are_unique_forever(store: Store) -> None:
    first = await store.jobs.enqueue("toy.step", {"n": 1}, key="svc-1:accepted")
    await Worker(store, {"toy.step": _noop}).run_until_idle()
    again = await store.jobs.enqueue("toy.step", {"n": 2}, key="svc-1:accepted")
    assert (again.id, again.created) == (first.id, False)
    assert await store.jobs.counts() == {("toy.step", "done"): 1}


async def test_leases_exclude_other_owners_until_expiry(store: Store) -> None:
    assert await store.leases.acquire("individual:803-1", "a", ttl=60) is True
    assert await store.leases.acquire("individual:803-1", "b", ttl=60) is False
    assert await store.leases.acquire("individual:803-1", "a", ttl=60) is True, "renewal"
    await store.leases.release("individual:803-1", "a")
    assert await store.leases.acquire("individual:803-1", "b", ttl=60) is True
    assert await store.leases.holder("individual:803-1") == "b"


async def _noop(ctx: StepContext) -> None:
    return None
