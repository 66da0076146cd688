"""Encryption-key rotation on both databases: fingerprints survive it (duplicates stay
duplicates), ``store.keys.rotate`` leaves nothing that only a retired key opens, an interrupted
rotation resumes, and a rotation next to running workers loses or corrupts no payload."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
import sqlalchemy as sa

from primero_progres.errors import PermanentError
from primero_progres.store import (
    Cipher,
    FingerprintKeyUnreadable,
    StepContext,
    Store,
    generate_key,
)
from primero_progres.store.crypto import fingerprint
from primero_progres.store.schema import inbound_messages
from primero_progres.worker import Worker

K1, K2 = generate_key(), generate_key()
OLD = f"k1:{K1}"
BOTH = f"k2:{K2},k1:{K1}"
NEW = f"k2:{K2}"


def referral(number: str) -> dict[str, Any]:
    return {
        "request_type": "PrimeroOutgoingReferral",
        "interventions": [{"progres_interventionnumber": number, "progres_givenname": "Zyxw"}],
    }


@asynccontextmanager
async def opened(db_url: str, ring: str) -> AsyncIterator[Store]:
    """A store on ``db_url`` with the key ring ``ring`` (a process with that configuration)."""
    store = await Store.open(db_url, encryption=Cipher.from_config(ring))
    await store.upgrade()
    try:
        yield store
    finally:
        await store.close()


async def receive(store: Store, number: str) -> Any:
    return await store.messages.receive(
        request_type="PrimeroOutgoingReferral",
        flow="progres-referral",
        message=referral(number),
        intervention_numbers=[number],
    )


async def sealed_with(store: Store) -> Counter[str]:
    """Key ids of every stored payload, read from the database itself: each column named
    ``payload`` of each table there is."""

    def tokens(conn: Any) -> list[str]:
        found = []
        inspector = sa.inspect(conn)
        for table in inspector.get_table_names():
            if "payload" in {c["name"] for c in inspector.get_columns(table)}:
                query = sa.text(f"SELECT payload FROM {table} WHERE payload IS NOT NULL")
                found += [row[0] for row in conn.execute(query)]
        return found

    async with store.engine.connect() as conn:
        return Counter(token.split(":")[1] for token in await conn.run_sync(tokens))


async def every_payload(store: Store) -> dict[str, Any]:
    """Every stored payload, decrypted by ``store``'s ring (raises if one does not open)."""
    out: dict[str, Any] = {}
    for job in await store.jobs.list(limit=10_000):
        if job.has_payload:
            loaded = await store.jobs.get(job.id, decrypt=True)
            assert loaded is not None
            out[f"job:{job.id}"] = loaded.payload
    for message in await store.messages.list(limit=10_000):
        if message.has_payload:
            out[f"message:{message.id}"] = await store.messages.payload(message.id)
    out["fingerprint_key"] = await store.keys.fingerprint_key()
    return out


# ---------------------------------------------------------------------- fingerprints


async def test_a_message_received_before_rotation_is_a_duplicate_after_it(db_url: str) -> None:
    async with opened(db_url, OLD) as store:
        first = await receive(store, "I-1")
        job_key_before = await store.fingerprint({"progres_interventionnumber": "I-1"})
    async with opened(db_url, BOTH) as store:
        again = await receive(store, "I-1")
        assert (again.duplicate, again.message_id) == (True, first.message_id)
        await store.keys.rotate()
    async with opened(db_url, NEW) as store:
        again = await receive(store, "I-1")
        assert (again.duplicate, again.message_id, again.job_id) == (True, first.message_id, None)
        assert not (await receive(store, "I-2")).duplicate
        # the job keys of flows 1 and 4 are fingerprints too: the same after the rotation
        assert await store.fingerprint({"progres_interventionnumber": "I-1"}) == job_key_before
        assert await store.jobs.counts() == {("progres-referral.receive", "pending"): 2}


async def _write_as_before(store: Store, number: str, *, purged: bool) -> None:
    """A message as versions without a stored fingerprint key wrote it: fingerprint under a key
    derived from the current encryption key."""
    message = referral(number)
    cipher = store.cipher
    async with store.engine.begin() as conn:
        await conn.execute(
            sa.insert(inbound_messages).values(
                id=f"m-{number}",
                request_type="PrimeroOutgoingReferral",
                flow="progres-referral",
                fingerprint=fingerprint(cipher.derived_fingerprint_key(cipher.current), message),
                intervention_numbers=[number],
                org_referral_ids=[],
                received_at=store.now(),
                payload=None
                if purged
                else cipher.encrypt(message, context="inbound_messages", row_id=f"m-{number}"),
            )
        )


@pytest.mark.parametrize(
    ("purged", "ring_at_upgrade"),
    [(True, OLD), (False, OLD), (False, BOTH)],
    ids=["payload-purged", "payload-kept", "upgraded-and-rotated-at-once"],
)
async def test_an_existing_deployment_keeps_recognising_its_messages(
    db_url: str, purged: bool, ring_at_upgrade: str
) -> None:
    store = await Store.open(db_url, encryption=Cipher.from_config(OLD))
    await store.upgrade("0001")
    await _write_as_before(store, "I-1", purged=purged)
    await store.close()

    async with opened(db_url, ring_at_upgrade) as store:
        again = await receive(store, "I-1")
        assert (again.duplicate, again.message_id) == (True, "m-I-1")
        created = await store.audit.list(event="fingerprint_key.created")
        assert [entry.ids for entry in created] == [{"derived_from_key_id": "k1"}]
    async with opened(db_url, BOTH) as store:
        await store.keys.rotate()
    async with opened(db_url, NEW) as store:
        assert (await receive(store, "I-1")).duplicate


async def test_a_new_database_gets_one_random_fingerprint_key_for_every_process(
    db_url: str,
) -> None:
    async with opened(db_url, OLD) as one, opened(db_url, OLD) as two:
        first, second = await asyncio.gather(
            one.keys.fingerprint_key(), two.keys.fingerprint_key()
        )
        assert first == second
        assert first != one.cipher.derived_fingerprint_key("k1")
        created = await one.audit.list(event="fingerprint_key.created")
        assert [entry.ids for entry in created] == [{"derived_from_key_id": None}]
    async with opened(db_url, BOTH) as store:
        assert await store.keys.fingerprint_key() == first
        assert await sealed_with(store) == Counter({"k1": 1})


async def test_a_lost_fingerprint_key_stops_until_it_is_replaced(db_url: str) -> None:
    async with opened(db_url, OLD) as store:
        await receive(store, "I-1")
        assert await store.keys.replace_lost_fingerprint_key() is False, "nothing was lost"
        before = await store.keys.fingerprint_key()
    async with opened(db_url, NEW) as store:  # k1 lost, never rotated
        with pytest.raises(FingerprintKeyUnreadable, match="'k1'"):
            await store.keys.fingerprint_key()
        with pytest.raises(FingerprintKeyUnreadable):
            await receive(store, "I-2")
        with pytest.raises(FingerprintKeyUnreadable):
            await store.keys.rotate()
        assert await store.keys.replace_lost_fingerprint_key() is True
        after = await store.keys.fingerprint_key()
        assert after != before
        assert not (await receive(store, "I-1")).duplicate, "duplicate detection restarted"
        replaced = await store.audit.list(event="fingerprint_key.replaced")
        assert [entry.ids for entry in replaced] == [{"lost_key_id": "k1"}]


# ---------------------------------------------------------------------- rotate


async def _fails(ctx: StepContext) -> None:
    raise PermanentError("primero create_case: http 422", reason="http_422")


async def test_after_rotation_nothing_needs_the_retired_key(db_url: str) -> None:
    async with opened(db_url, OLD) as store:
        messages = [(await receive(store, f"I-{n}")).message_id for n in range(3)]
        toys = [(await store.jobs.enqueue("toy.step", {"n": n})).id for n in range(5)]
        dead = (await store.jobs.enqueue("toy.fail", {"n": "dead"})).id
        await Worker(store, {"toy.fail": _fails}).run_until_idle()
        done = (await store.jobs.enqueue("toy.done", {"n": "done"})).id
        await Worker(store, {"toy.done": _noop}).run_until_idle()
        before = await every_payload(store)
        # 3 messages, 5 toy jobs, the dead letter, the fingerprint key (done jobs keep none)
        assert await sealed_with(store) == Counter({"k1": 10})

    async with opened(db_url, BOTH) as store:
        usage = await store.keys.usage()
        assert (usage.done, usage.retired, usage.removable) == (False, {"k1": 10}, [])
        result = await store.keys.rotate(batch_size=2)
        assert result.resealed == {"inbound_messages": 3, "jobs": 6, "store_keys": 1}
        assert result.unreadable == {"inbound_messages": 0, "jobs": 0, "store_keys": 0}
        assert (result.usage.done, result.usage.removable) == (True, ["k1"])
        assert await sealed_with(store) == Counter({"k2": 10})
        again = await store.keys.rotate()
        assert sum(again.resealed.values()) == 0
        audit = await store.audit.list(event="payloads.resealed")
        assert [entry.ids for entry in audit] == [
            {"key_id": "k2", "inbound_messages_count": 3, "jobs_count": 6, "store_keys_count": 1}
        ]

    async with opened(db_url, NEW) as store:  # k1 removed from the configuration
        assert await every_payload(store) == before
        assert len(before) == 10 and {f"message:{m}" for m in messages} <= before.keys()
        assert {f"job:{j}" for j in (*toys, dead)} <= before.keys() and f"job:{done}" not in before
        assert await store.jobs.replay(dead)
        seen: list[Any] = []

        async def succeeds(ctx: StepContext) -> None:
            seen.append(ctx.job.payload)

        await Worker(store, {"toy.fail": succeeds}).run_until_idle()
        assert seen == [{"n": "dead"}]
        job = await store.jobs.get(dead)
        assert job is not None and job.state == "done"


async def test_payloads_under_an_unknown_key_are_reported_and_left_alone(db_url: str) -> None:
    async with opened(db_url, OLD) as store:
        job = (await store.jobs.enqueue("toy.step", {"n": 1})).id
        await store.keys.fingerprint_key()
    async with opened(db_url, NEW) as store:  # k1 lost
        await store.keys.replace_lost_fingerprint_key()
        result = await store.keys.rotate()
        assert result.unreadable == {"inbound_messages": 0, "jobs": 1, "store_keys": 0}
        assert result.usage.unknown == {"inbound_messages": 0, "jobs": 1, "store_keys": 0}
        assert result.usage.done
    async with opened(db_url, BOTH) as store:  # the key found again: the payload is intact
        loaded = await store.jobs.get(job, decrypt=True)
        assert loaded is not None and loaded.payload == {"n": 1}


async def test_an_interrupted_rotation_resumes_where_it_stopped(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with opened(db_url, OLD) as store:
        for n in range(30):
            await store.jobs.enqueue("toy.step", {"n": n})
        before = await every_payload(store)

    async with opened(db_url, BOTH) as store:
        original = store.cipher.reseal
        calls = 0

        def crashes_at_the_12th(token: str, *, context: str, row_id: str) -> str | None:
            nonlocal calls
            calls += 1
            if calls == 12:
                raise RuntimeError("the process dies here")
            return original(token, context=context, row_id=row_id)

        monkeypatch.setattr(store.cipher, "reseal", crashes_at_the_12th)
        with pytest.raises(RuntimeError):
            await store.keys.rotate(batch_size=5)
        # the first two batches are committed, the third rolled back
        assert await sealed_with(store) == Counter({"k2": 10, "k1": 21})
        assert await every_payload(store) == before

    async with opened(db_url, BOTH) as store:
        result = await store.keys.rotate(batch_size=5)
        assert result.resealed == {"inbound_messages": 0, "jobs": 20, "store_keys": 1}
        assert result.usage.done
    async with opened(db_url, NEW) as store:
        assert await every_payload(store) == before


async def test_rotation_while_workers_process_jobs_loses_and_corrupts_nothing(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    count = 60

    def toy(n: int) -> dict[str, Any]:
        return {"n": n, "text": f"payload {n} " * 40}

    async with opened(db_url, OLD) as store:
        for n in range(count):
            await store.jobs.enqueue("toy.step", toy(n), refs={"index": n})
        for n in range(5):
            await store.jobs.enqueue("toy.fail", toy(-n), refs={"index": -n})
        messages = {(await receive(store, f"I-{n}")).message_id: f"I-{n}" for n in range(10)}

    seen: Counter[str] = Counter()
    wrong: list[str] = []
    started = asyncio.Event()

    async with opened(db_url, BOTH) as workers, opened(db_url, BOTH) as rotation:

        async def step(ctx: StepContext) -> None:
            await asyncio.wait_for(started.wait(), timeout=120)
            n = ctx.job.refs["index"]
            if ctx.job.payload != toy(n):
                wrong.append(ctx.job.id)
            ctx.enqueue("toy.next", toy(n + 1000), refs={"index": n + 1000})
            seen["toy.step"] += 1

        async def next_step(ctx: StepContext) -> None:
            if ctx.job.payload != toy(ctx.job.refs["index"]):
                wrong.append(ctx.job.id)
            seen["toy.next"] += 1

        async def read_message(ctx: StepContext) -> None:
            assert ctx.job.message_id is not None
            message = await workers.messages.payload(ctx.job.message_id)
            if message != referral(messages[ctx.job.message_id]):
                wrong.append(ctx.job.id)
            seen["message"] += 1

        handlers: dict[str, Callable[[StepContext], Awaitable[None]]] = {
            "toy.step": step,
            "toy.next": next_step,
            "toy.fail": _fails,
            "progres-referral.receive": read_message,
        }
        reseal_batch = rotation.keys._reseal_batch

        async def signalling(*args: Any) -> tuple[int, int, str | None]:
            done = await reseal_batch(*args)
            started.set()
            return done

        monkeypatch.setattr(rotation.keys, "_reseal_batch", signalling)
        worker = Worker(workers, handlers, concurrency=2)

        async def purge_meanwhile() -> None:
            while not all(t.done() for t in busy):
                await workers.purge(retention_days=30)
                await asyncio.sleep(0.01)

        busy = [
            asyncio.create_task(worker.run_until_idle()),
            asyncio.create_task(rotation.keys.rotate(batch_size=3)),
        ]
        await asyncio.gather(*busy, purge_meanwhile())
        first_run = busy[1].result()
        assert sum(first_run.resealed.values()) > 0

        assert wrong == []
        assert seen == {"toy.step": count, "toy.next": count, "message": 10}
        counts = await workers.jobs.counts()
        assert counts == {
            ("toy.step", "done"): count,
            ("toy.next", "done"): count,
            ("toy.fail", "dead"): 5,
            ("progres-referral.receive", "done"): 10,
        }
        # an operator runs it again until it says done (a pass skips rows workers hold)
        final = await rotation.keys.rotate()
        assert final.usage.done and final.unreadable == dict.fromkeys(final.unreadable, 0)

    async with opened(db_url, NEW) as store:
        payloads = await every_payload(store)
        dead = [p for key, p in payloads.items() if key.startswith("job:")]
        assert sorted(p["n"] for p in dead) == [-4, -3, -2, -1, 0]
        assert all(p == toy(p["n"]) for p in dead)


async def _noop(ctx: StepContext) -> None:
    return None
