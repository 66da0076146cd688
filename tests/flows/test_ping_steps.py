"""The PING steps' decisions that end-to-end runs cannot force: a worker dying while it posts,
PING answers after which the item may or may not be queued, a write-back overtaken by a
later delivery, a list that pages in circles. On in-memory fakes (``flow_fakes``)."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from flow_fakes import NOW, FakePrimero, FakeStore, make_job

from primero_progres.flows import ping_outbound, ping_progres_referral
from primero_progres.flows.ping_polling import poll_page
from primero_progres.flows.runtime import Runtime
from primero_progres.peers.ping import (
    IngestionReceipt,
    PingAuthenticationError,
    PingPage,
    PingPermanentError,
    PingTransientError,
    PingUnexpectedResponseError,
    ShippingProcesses,
    TransactionItem,
    TransactionStatus,
)
from primero_progres.profiles import load_profile
from primero_progres.sim.ping_state import DEFAULT_SHIPPING_PROCESSES
from primero_progres.store import Flow, LedgerRecord, LedgerState

ITEM = {"ExternalId": "case-1", "Fields": [{"Name": "progres_orgreferralid", "Value": "svc-1"}]}
REFS = {"case_id": "case-1", "service_unique_id": "svc-1", "case_record_id": "rec-1"}
KEY = "case-1:svc-1"


@dataclass
class FakePing:
    """``PingApi`` answering from lists; ``errors`` makes an operation raise."""

    pages: list[PingPage] = field(default_factory=list)
    #: decision-detail rows by interoperability referral id
    details: dict[str, dict[str, Any]] = field(default_factory=dict)
    statuses: list[TransactionStatus] = field(default_factory=list)
    errors: dict[str, Exception] = field(default_factory=dict)
    calls: list[tuple[str, Any]] = field(default_factory=list)
    shipping_processes: ShippingProcesses = field(
        default_factory=lambda: ShippingProcesses(**DEFAULT_SHIPPING_PROCESSES)
    )

    def _call(self, operation: str, argument: Any) -> None:
        self.calls.append((operation, copy.deepcopy(argument)))
        if operation in self.errors:
            raise self.errors[operation]

    def calls_of(self, operation: str) -> list[Any]:
        return [argument for name, argument in self.calls if name == operation]

    async def retrieve_page(
        self,
        shipping_process_id: str,
        *,
        record_ids: str | Sequence[str] | None = None,
        page_number: int = 1,
        paging_cookie: str | None = None,
    ) -> PingPage:
        self._call("retrieve_page", (shipping_process_id, page_number, paging_cookie))
        return self.pages[page_number - 1]

    async def referral_detail(self, lp_intervention_id: str) -> list[dict[str, Any]]:
        self._call("referral_detail", lp_intervention_id)
        return []

    async def update_intervention(self, item: Mapping[str, Any]) -> IngestionReceipt:
        self._call("update_intervention", item)
        return IngestionReceipt("tx-data", 1)

    async def create_referral(self, item: Mapping[str, Any]) -> IngestionReceipt:
        self._call("create_referral", item)
        return IngestionReceipt("tx-1", 1)

    async def referral_create_status(self, transaction_id: str) -> TransactionStatus:
        self._call("referral_create_status", transaction_id)
        return self.statuses.pop(0)

    async def decision_detail(self, referral_id: str) -> list[dict[str, Any]]:
        self._call("decision_detail", referral_id)
        return [self.details[referral_id]] if referral_id in self.details else []

    async def update_referral(self, item: Mapping[str, Any]) -> IngestionReceipt:
        self._call("update_referral", item)
        return IngestionReceipt("tx-data", 1)

    async def aclose(self) -> None:
        return None


@pytest.fixture
def ping() -> FakePing:
    return FakePing()


@pytest.fixture
def ping_rt(fake_store: FakeStore, primero: FakePrimero, ping: FakePing) -> Runtime:
    return Runtime(
        store=fake_store,
        profile=load_profile("gambella"),
        primero=primero,
        clock=lambda: NOW,
        unhcr_gateway="ping",
        ping_client=ping,
        ping_status_check=7.0,
        retry_delay=lambda attempt, retry_after: 10.0 * attempt + (retry_after or 0.0),
        max_attempts=3,
    )


async def run(rt: Runtime, store: FakeStore, step: Any, job: Any) -> Any:
    ctx = store.context(job)
    await step(rt, ctx)
    store.commit(ctx)
    return ctx


def ingest_job(attempts: int = 1, **payload: Any) -> Any:
    job = make_job(
        "primero-referral.ingest", {"message": ITEM, **payload}, refs=REFS,
        key=f"primero-referral.ingest:{KEY}",
    )
    return type(job)(**{**job.__dict__, "attempts": attempts})


def record(store: FakeStore, state: LedgerState) -> None:
    store.ledger.apply(LedgerRecord.of(Flow.PRIMERO_REFERRAL, KEY, state=state, **REFS))


def resolve_queued(store: FakeStore, job: Any, why: str, lookups: int = 0) -> None:
    """The step queued the look-up of the referral its post may have created, and nothing
    else."""
    [resolve] = store.jobs
    assert (resolve.kind, resolve.key) == (
        "primero-referral.resolve", f"primero-referral.resolve:{KEY}:{job.id}"
    )
    assert resolve.payload == {"message": ITEM, "why": why, "lookups": lookups}
    assert (resolve.refs, resolve.delay, resolve.dead_reason) == (REFS, 7.0, None)


async def test_an_ingest_claimed_again_after_a_crash_never_posts(
    ping_rt: Runtime, fake_store: FakeStore, ping: FakePing
) -> None:
    job = ingest_job(attempts=2)
    await run(ping_rt, fake_store, ping_outbound.ingest, job)
    assert ping.calls == []
    resolve_queued(fake_store, job, "worker_stopped")


@pytest.mark.parametrize("state", [LedgerState.INGESTING, LedgerState.SENT])
async def test_an_item_ping_already_has_is_never_posted_again(
    ping_rt: Runtime, fake_store: FakeStore, ping: FakePing, state: LedgerState
) -> None:
    record(fake_store, state)
    await run(ping_rt, fake_store, ping_outbound.ingest, ingest_job())
    assert ping.calls == [] and fake_store.jobs == []


async def test_an_item_whose_ingestion_failed_is_posted_again_on_replay(
    ping_rt: Runtime, fake_store: FakeStore, ping: FakePing
) -> None:
    record(fake_store, LedgerState.INGESTION_FAILED)
    await run(ping_rt, fake_store, ping_outbound.ingest, ingest_job())
    assert ping.calls_of("create_referral") == [ITEM]
    assert fake_store.ledger.exchanges[("primero-referral", KEY)].state == "ingesting"
    [check] = fake_store.jobs
    assert (check.kind, check.key, check.delay) == (
        "primero-referral.check", "primero-referral.check:tx-1", 7.0
    )
    assert check.refs["transaction_id"] == "tx-1"


@pytest.mark.parametrize(
    "error",
    [
        PingTransientError("ping", "ingest_async", "refused", reason="connection",
                           request_sent=False),
        PingTransientError("ping", "token", "HTTP 503", status_code=503),
        PingTransientError("ping", "ingest_async", "HTTP 429", status_code=429, retry_after=5.0),
    ],
)
async def test_a_post_ping_cannot_have_received_is_queued_again_later(
    ping_rt: Runtime, fake_store: FakeStore, ping: FakePing, error: PingTransientError
) -> None:
    ping.errors["create_referral"] = error
    job = ingest_job()
    await run(ping_rt, fake_store, ping_outbound.ingest, job)
    [again] = fake_store.jobs
    assert again.kind == "primero-referral.ingest"
    assert again.key == f"primero-referral.ingest:{KEY}:after:{job.id}"
    assert again.payload == {"message": ITEM, "tries": 2}
    assert again.delay == 10.0 + (error.retry_after or 0.0)
    assert fake_store.ledger.exchanges == {}


@pytest.mark.parametrize(
    "error",
    [
        PingTransientError("ping", "ingest_async", "timed out", reason="timeout"),
        PingTransientError("ping", "ingest_async", "HTTP 500", status_code=500),
        PingUnexpectedResponseError("ping", "ingest_async", "no id", reason="no_transaction_id"),
    ],
)
async def test_a_post_ping_may_have_received_is_looked_for_never_posted_again(
    ping_rt: Runtime, fake_store: FakeStore, ping: FakePing, error: Exception
) -> None:
    ping.errors["create_referral"] = error
    job = ingest_job()
    await run(ping_rt, fake_store, ping_outbound.ingest, job)
    assert len(ping.calls_of("create_referral")) == 1
    resolve_queued(fake_store, job, getattr(error, "reason", ""))
    assert fake_store.ledger.exchanges == {}


def listed(*referral_ids: str) -> list[dict[str, Any]]:
    return [{"progres_interoperabilityreferralid": i,
             "progres_interoperabilityreferralstatus": 125080000} for i in referral_ids]


def detail(referral_id: str, org_referral_id: str) -> dict[str, Any]:
    return {"progres_interoperabilityreferralid": referral_id,
            "progres_orgreferralid": org_referral_id, "progres_offlineid": "case-x"}


def resolve_job(lookups: int = 0) -> Any:
    return make_job(
        "primero-referral.resolve", {"message": ITEM, "why": "timeout", "lookups": lookups},
        refs=REFS, key=f"primero-referral.resolve:{KEY}:job-0",
    )


async def test_a_referral_found_in_ping_is_recorded_sent_and_the_look_up_stops(
    ping_rt: Runtime, fake_store: FakeStore, ping: FakePing
) -> None:
    ping.pages = [
        page(listed("ir-1", "ir-2"), more=True, cookie="c1"),
        page(listed("ir-3", "ir-4"), more=True, cookie="c2"),
        page(listed("ir-5"), more=False),
    ]
    ping.details = {"ir-1": detail("ir-1", "svc-0"), "ir-2": detail("ir-2", "svc-9"),
                    "ir-3": detail("ir-3", "svc-1"), "ir-4": detail("ir-4", "svc-2")}
    await run(ping_rt, fake_store, ping_outbound.resolve, resolve_job())

    exchange = fake_store.ledger.exchanges[("primero-referral", KEY)]
    assert exchange.state == "sent"
    assert exchange.interoperability_referral_id == "ir-3"
    assert [c[1:] for c in ping.calls_of("retrieve_page")] == [(1, None), (2, "c1")]
    assert ping.calls_of("decision_detail") == ["ir-1", "ir-2", "ir-3"]
    assert ping.calls_of("create_referral") == [] and fake_store.jobs == []
    [audited] = fake_store.audit
    assert audited.ids["interoperability_referral_id"] == "ir-3"


async def test_a_referral_not_listed_yet_is_looked_for_again_later(
    ping_rt: Runtime, fake_store: FakeStore, ping: FakePing
) -> None:
    ping.pages = [page(listed("ir-1"), more=False)]
    ping.details = {"ir-1": detail("ir-1", "svc-0")}
    job = resolve_job(lookups=0)
    await run(ping_rt, fake_store, ping_outbound.resolve, job)
    [again] = fake_store.jobs
    assert (again.kind, again.key) == (
        "primero-referral.resolve", f"primero-referral.resolve:{KEY}:{job.id}"
    )
    assert again.payload == {"message": ITEM, "why": "timeout", "lookups": 1}
    assert (again.delay, again.dead_reason) == (7.0, None)
    assert fake_store.ledger.exchanges == {}


async def test_a_referral_never_found_is_a_dead_letter_that_replays_as_a_post(
    ping_rt: Runtime, fake_store: FakeStore, ping: FakePing
) -> None:
    ping.pages = [page([], more=False)]
    job = resolve_job(lookups=ping_rt.max_attempts - 1)
    await run(ping_rt, fake_store, ping_outbound.resolve, job)
    [parked] = fake_store.jobs
    assert (parked.kind, parked.key) == (
        "primero-referral.ingest", f"primero-referral.ingest:{KEY}:unknown:{job.id}"
    )
    assert (parked.payload, parked.refs) == ({"message": ITEM}, REFS)
    assert parked.dead_reason is not None
    assert parked.dead_reason.reason == "ingestion_outcome_unknown"
    assert "after 3 look-ups" in parked.dead_reason.message
    assert ping.calls_of("create_referral") == []


async def test_a_look_up_stops_after_its_page_cap_and_leaves_it_to_an_operator(
    ping_rt: Runtime, fake_store: FakeStore, ping: FakePing
) -> None:
    ping.pages = [page(listed(f"ir-{n}"), more=True, cookie=f"c{n}") for n in range(100)]
    await run(ping_rt, fake_store, ping_outbound.resolve, resolve_job())
    assert len(ping.calls_of("retrieve_page")) == ping_outbound.RESOLVE_MAX_PAGES
    [parked] = fake_store.jobs
    assert parked.dead_reason is not None
    assert parked.dead_reason.reason == "ingestion_outcome_unknown"
    assert f"after {ping_outbound.RESOLVE_MAX_PAGES} pages" in parked.dead_reason.message


async def test_a_look_up_ping_answers_wrongly_is_left_to_an_operator(
    ping_rt: Runtime, fake_store: FakeStore, ping: FakePing
) -> None:
    ping.errors["retrieve_page"] = PingUnexpectedResponseError(
        "ping", "retrieve", "Data is not a list", reason="bad_response"
    )
    await run(ping_rt, fake_store, ping_outbound.resolve, resolve_job())
    [parked] = fake_store.jobs
    assert parked.dead_reason is not None
    assert parked.dead_reason.reason == "ingestion_outcome_unknown"
    assert "look-up bad_response" in parked.dead_reason.message


@pytest.mark.parametrize(
    "refusal",
    [
        PingAuthenticationError("ping", "retrieve", "APIM refused the subscription key",
                                status_code=401, reason="subscription_key_refused"),
        PingAuthenticationError("ping", "token", "the token endpoint refused the credentials",
                                status_code=400, reason="token_refused"),
        PingPermanentError("ping", "retrieve", "HTTP 403", status_code=403),
    ],
    ids=["subscription_key", "token", "forbidden"],
)
async def test_a_look_up_ping_refuses_the_bridge_is_the_dead_letter_itself(
    ping_rt: Runtime, fake_store: FakeStore, ping: FakePing, refusal: PingPermanentError
) -> None:
    """Fixed by an operator, then replayed: it looks again; a parked ``ingest`` would post."""
    ping.errors["retrieve_page"] = refusal
    with pytest.raises(PingPermanentError) as raised:
        await run(ping_rt, fake_store, ping_outbound.resolve, resolve_job())
    assert raised.value is refusal
    assert fake_store.jobs == [] and fake_store.ledger.exchanges == {}
    assert ping.calls_of("create_referral") == []


@pytest.mark.parametrize("state", [LedgerState.INGESTING, LedgerState.SENT])
async def test_a_look_up_after_the_item_was_posted_does_nothing(
    ping_rt: Runtime, fake_store: FakeStore, ping: FakePing, state: LedgerState
) -> None:
    record(fake_store, state)
    await run(ping_rt, fake_store, ping_outbound.resolve, resolve_job())
    assert ping.calls == [] and fake_store.jobs == []


async def test_ping_unreachable_every_try_is_a_dead_letter_that_sent_nothing(
    ping_rt: Runtime, fake_store: FakeStore, ping: FakePing
) -> None:
    ping.errors["create_referral"] = PingTransientError(
        "ping", "ingest_async", "refused", reason="connection", request_sent=False
    )
    with pytest.raises(ping_outbound.IngestionNotSent) as raised:
        await run(ping_rt, fake_store, ping_outbound.ingest, ingest_job(tries=3))
    assert raised.value.reason == "ingestion_not_sent"


def status(state: str, word: str) -> TransactionStatus:
    item = TransactionItem("case-1", state, word, "echo of the item")  # type: ignore[arg-type]
    return TransactionStatus("tx-1", state, (item,), repaired=True, unreadable=False)  # type: ignore[arg-type]


def check_job() -> Any:
    return make_job(
        "primero-referral.check", {"message": ITEM}, refs={**REFS, "transaction_id": "tx-1"}
    )


async def test_an_unfinished_transaction_is_asked_again_later(
    ping_rt: Runtime, fake_store: FakeStore, ping: FakePing
) -> None:
    ping.statuses.append(status("processing", "Processing"))
    with pytest.raises(ping_outbound.IngestionPending) as raised:
        await run(ping_rt, fake_store, ping_outbound.check, check_job())
    assert (raised.value.retryable, raised.value.retry_after) == (True, 7.0)
    assert raised.value.reason == "ingestion_processing"


async def test_a_failed_transaction_is_recorded_and_parked_for_replay(
    ping_rt: Runtime, fake_store: FakeStore, ping: FakePing
) -> None:
    ping.statuses.append(status("failed", "Failed"))
    await run(ping_rt, fake_store, ping_outbound.check, check_job())
    assert fake_store.ledger.exchanges[("primero-referral", KEY)].state == "ingestion_failed"
    [parked] = fake_store.jobs
    assert (parked.kind, parked.key) == (
        "primero-referral.ingest", f"primero-referral.ingest:{KEY}:failed:tx-1"
    )
    assert parked.payload == {"message": ITEM}
    assert parked.dead_reason is not None and parked.dead_reason.reason == "ingestion_failed"
    assert "echo" not in parked.dead_reason.message  # PING's message is never kept
    assert "transaction_id" not in parked.refs


async def test_a_write_back_overtaken_by_a_later_delivery_writes_nothing(
    ping_rt: Runtime, fake_store: FakeStore, ping: FakePing
) -> None:
    fake_store.ledger.apply(
        LedgerRecord.of(Flow.PROGRES_REFERRAL, "NUM-1", state=LedgerState.DELIVERED,
                        fingerprint="newer")
    )
    job = make_job(
        "progres-referral.write_back",
        {"item": {"Fields": []}, "ledger_key": "NUM-1", "fingerprint": "older", "refused": True},
        refs={"lp_intervention_id": "lp-1", "business_unit_id": "bu-1"},
    )
    await run(ping_rt, fake_store, ping_progres_referral.write_back, job)
    assert ping.calls == []
    assert fake_store.ledger.exchanges[("progres-referral", "NUM-1")].state == "delivered"


def page(rows: list[dict[str, Any]], *, more: bool, cookie: str | None = "c") -> PingPage:
    return PingPage(rows, 1, more, cookie, None, len(rows))


async def test_a_page_announcing_more_rows_but_holding_none_is_an_error(
    ping_rt: Runtime, fake_store: FakeStore, ping: FakePing
) -> None:
    ping.pages = [page([], more=True)]

    async def never(rt: Runtime, ctx: Any, row: dict[str, Any], round_id: str) -> int:
        raise AssertionError("no row")

    ctx = fake_store.context(make_job("progres-referral.poll", {}))
    with pytest.raises(PingUnexpectedResponseError) as raised:
        await poll_page(ping_rt, ctx, Flow.PROGRES_REFERRAL, "SHP-2747", never)
    assert raised.value.reason == "paging_stalled"


async def test_each_page_queues_the_next_with_the_cookie_and_the_round(
    ping_rt: Runtime, fake_store: FakeStore, ping: FakePing
) -> None:
    ping.pages = [page([{"n": 1}], more=True, cookie="cookie-1"), page([{"n": 2}], more=False)]
    seen: list[tuple[Any, str]] = []

    async def on_row(rt: Runtime, ctx: Any, row: dict[str, Any], round_id: str) -> int:
        seen.append((row["n"], round_id))
        return 1

    first = make_job("progres-referral.poll", {})
    await run_page(ping_rt, fake_store, first, on_row)
    [second_page] = fake_store.jobs
    assert second_page.payload == {"page": 2, "cookie": "cookie-1", "round": first.id,
                                   "seen": 1, "queued": 1}
    assert second_page.key == f"progres-referral.poll:{first.id}:2"
    second = make_job("progres-referral.poll", dict(second_page.payload or {}))
    await run_page(ping_rt, fake_store, second, on_row)
    assert ping.calls_of("retrieve_page") == [("SHP-2747", 1, None), ("SHP-2747", 2, "cookie-1")]
    assert seen == [(1, first.id), (2, first.id)]
    [finished] = fake_store.audit_of("poll_finished")
    assert finished == {"count": 2, "total": 2, "page": 2}


async def run_page(rt: Runtime, store: FakeStore, job: Any, on_row: Any) -> None:
    ctx = store.context(job)
    await poll_page(rt, ctx, Flow.PROGRES_REFERRAL, "SHP-2747", on_row)
    store.commit(ctx)
