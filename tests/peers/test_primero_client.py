"""PrimeroClient against the Primero simulator over loopback HTTP: all operations and errors."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any
from urllib.parse import parse_qsl

import pytest
import trustme

from primero_progres.errors import FailureClass
from primero_progres.peers.errors import PermanentPeerError, TransientPeerError
from primero_progres.peers.primero import (
    AuthenticationError,
    ConflictError,
    FilterIgnoredError,
    ForbiddenError,
    InvalidRecordError,
    NotFoundError,
    PrimeroClient,
    PrimeroPermanentError,
    ReferralNotUpdatedError,
    TokenNotIssuedError,
    UnexpectedResponseError,
    format_watermark,
    tls_failure,
)
from primero_progres.peers.primero_errors import retry_after_seconds
from primero_progres.sim.common import FaultRule, serve_in_thread
from primero_progres.sim.primero import PrimeroSimConfig, create_app

CP = "primeromodule-cp"
ROW = "aaaaaaaa-0000-4000-8000-000000000001"


@pytest.fixture
async def client(primero_sim: Any) -> AsyncIterator[PrimeroClient]:
    """The client as the bridge configures it (the default timeout): a loaded test machine
    never turns a slow answer into a timeout. The timeout tests use ``impatient_client``."""
    async with PrimeroClient(
        primero_sim.url, username=primero_sim.user, password=primero_sim.password
    ) as primero:
        yield primero


@pytest.fixture
async def impatient_client(primero_sim: Any) -> AsyncIterator[PrimeroClient]:
    """A short timeout, for the tests of a server that stalls (hangs, or answers after 2 s)."""
    async with PrimeroClient(
        primero_sim.url, username=primero_sim.user, password=primero_sim.password, timeout=0.5
    ) as primero:
        yield primero


def journal(sim: Any, path: str = "/api/v2/cases") -> list[dict[str, Any]]:
    return [entry for entry in sim.state.journal if entry["path"] == path]


def query_of(entry: dict[str, Any]) -> dict[str, str]:
    return dict(parse_qsl(entry["query"]))


def fault(sim: Any, **rule: Any) -> None:
    sim.app.state.faults.set([FaultRule(**rule)])


# ---------------------------------------------------------------- operations


async def test_create_get_and_patch_a_case(client: PrimeroClient) -> None:
    created = await client.create_case(
        {
            "module_id": CP,
            "unhcr_individual_no": "ETH-1",
            "services_section": [{"service_type": "x"}],
        }
    )
    assert created["id"] != created["case_id"]
    assert created["services_section"][0]["unique_id"]
    fetched = await client.get_case(created["id"])
    assert fetched["unhcr_individual_no"] == "ETH-1"
    patched = await client.patch_case(created["id"], {"age": 12})
    assert patched["age"] == 12 and patched["id"] == created["id"]
    assert patched["last_updated_at"] > created["last_updated_at"]


async def test_create_with_client_id_returns_the_stored_case(client: PrimeroClient) -> None:
    record_id = "0b6f1a3c-1111-4222-8333-444455556666"
    created = await client.create_case({"module_id": CP, "id": record_id, "sex": "female"})
    assert created["id"] == record_id and created["sex"] == "female"


async def test_find_cases_by_exact_id_field(client: PrimeroClient) -> None:
    wanted = await client.create_case({"module_id": CP, "unhcr_individual_no": "ETH-1"})
    await client.create_case({"module_id": CP, "unhcr_individual_no": "ETH-10"})
    found = await client.find_cases("unhcr_individual_no", "ETH-1")
    assert [case["id"] for case in found] == [wanted["id"]]
    assert await client.find_cases("case_id", wanted["case_id"]) == found
    assert await client.find_cases("unhcr_individual_no", "nobody") == []


async def test_find_cases_detects_a_silently_dropped_filter(
    primero_sim: Any, client: PrimeroClient
) -> None:
    await client.create_case({"module_id": CP, "unhcr_individual_no": "ETH-1"})
    await client.create_case({"module_id": CP, "unhcr_individual_no": "ETH-2"})
    # the role may not read unhcr_individual_no: Primero drops the filter
    primero_sim.state.configure(PrimeroSimConfig(readable_fields=["case_id", "last_updated_at"]))
    with pytest.raises(FilterIgnoredError) as caught:
        await client.find_cases("unhcr_individual_no", "ETH-1")
    assert caught.value.failure_class is FailureClass.PERMANENT
    assert caught.value.reason == "filter_ignored"
    assert caught.value.details == ("field=unhcr_individual_no",)
    assert "ETH-1" not in str(caught.value)


async def test_iter_cases_pages_with_bounded_memory(
    primero_sim: Any, client: PrimeroClient
) -> None:
    stamps = [
        f"2024-01-01T{n // 3600:02d}:{n // 60 % 60:02d}:{n % 60:02d}.000Z" for n in range(2500)
    ]
    primero_sim.state.seed({"cases": [{"last_updated_at": s} for s in reversed(stamps)]})
    seen = [case["last_updated_at"] async for case in client.iter_cases()]
    assert seen == stamps  # every case once, oldest update first
    requests = journal(primero_sim)
    assert len(requests) == 3
    for entry in requests:
        params = query_of(entry)
        assert params["per"] == "1000"
        assert params["order_by"] == "last_updated_at" and params["order"] == "asc"


async def test_iter_cases_walks_many_cases_in_one_second(primero_sim: Any) -> None:
    stamps = [f"2024-01-01T00:00:00.{n:03d}Z" for n in range(25)] + ["2024-01-01T00:00:01.000Z"]
    primero_sim.state.seed({"cases": [{"last_updated_at": s} for s in stamps]})
    async with PrimeroClient(
        primero_sim.url, username=primero_sim.user, password=primero_sim.password, page_size=10
    ) as client:
        seen = [case["id"] async for case in client.iter_cases()]
    assert len(seen) == 26 and len(set(seen)) == 26
    assert all(query_of(e)["per"] == "10" for e in journal(primero_sim))


async def test_iter_cases_caps_page_size_at_1000(primero_sim: Any) -> None:
    async with PrimeroClient(
        primero_sim.url, username=primero_sim.user, password=primero_sim.password, page_size=5000
    ) as client:
        assert [c async for c in client.iter_cases()] == []
    assert query_of(journal(primero_sim)[0])["per"] == "1000"


async def test_iter_cases_sends_watermark_and_indexed_user_names(
    primero_sim: Any, client: PrimeroClient
) -> None:
    primero_sim.state.seed(
        {
            "cases": [
                {"owned_by": "unhcr_cw", "last_updated_at": "2024-01-01T00:00:00.000Z"},
                {"owned_by": "unhcr_cw", "last_updated_at": "2024-06-01T00:00:00.400Z"},
                {"owned_by": "other", "last_updated_at": "2024-06-02T00:00:00.000Z"},
                {"owned_by": "unhcr_cw2", "last_updated_at": "2024-06-03T00:00:00.000Z"},
            ]
        }
    )
    since = datetime(2024, 6, 1, 0, 0, 0, 900000, tzinfo=UTC)
    found = [
        case["last_updated_at"]
        async for case in client.iter_cases(
            filters={"associated_user_names": ["unhcr_cw", "unhcr_cw2"]}, updated_since=since
        )
    ]
    assert found == ["2024-06-01T00:00:00.400Z", "2024-06-03T00:00:00.000Z"]
    first = query_of(journal(primero_sim)[0])
    assert first["last_updated_at"] == "2024-06-01T00:00:00Z.."
    assert first["associated_user_names[0]"] == "unhcr_cw"
    assert first["associated_user_names[1]"] == "unhcr_cw2"


async def test_iter_cases_by_ids_in_batches(primero_sim: Any, client: PrimeroClient) -> None:
    primero_sim.state.seed({"cases": [{} for _ in range(150)]})
    ids = [case["id"] for case in primero_sim.state.all_cases()]
    got = {case["id"] async for case in client.iter_cases(ids=ids)}
    assert got == set(ids)
    batches = [query_of(e)["id"].split(",") for e in journal(primero_sim)]
    assert [len(batch) for batch in batches] == [100, 50]


async def test_iter_cases_detects_a_dropped_watermark(
    primero_sim: Any, client: PrimeroClient
) -> None:
    primero_sim.state.seed({"cases": [{"last_updated_at": "2020-01-01T00:00:00.000Z"}]})
    # the role may not filter on last_updated_at: Primero drops the filter
    primero_sim.state.configure(PrimeroSimConfig(readable_fields=["case_id"]))
    since = datetime(2024, 1, 1, tzinfo=UTC)
    with pytest.raises(FilterIgnoredError) as caught:
        [case async for case in client.iter_cases(updated_since=since)]
    assert caught.value.details == ("field=last_updated_at",)


def test_watermark_is_utc_floored_to_the_second() -> None:
    assert format_watermark(datetime(2024, 6, 1, 12, 0, 5, 999000)) == "2024-06-01T12:00:05Z"
    moment = datetime.fromisoformat("2024-06-01T14:00:05.5+02:00")
    assert format_watermark(moment) == "2024-06-01T12:00:05Z"


async def test_list_and_update_referrals(primero_sim: Any, client: PrimeroClient) -> None:
    case = await client.create_case({"module_id": CP, "services_section": [{"unique_id": ROW}]})
    action = primero_sim.state.refer_to_unhcr(case["id"], "unhcr_cw", {"service_type": "legal"})
    referrals = await client.list_referrals(case["id"])
    assert [r["id"] for r in referrals] == [action["referral_id"]]
    accepted = await client.update_referral(case["id"], action["referral_id"], status="accepted")
    assert accepted["status"] == "accepted"
    done = await client.update_referral(
        case["id"], action["referral_id"], status="done", rejection_note="closed"
    )
    assert done["rejection_note"] == "closed"


async def test_update_referral_detects_an_illegal_transition(
    primero_sim: Any, client: PrimeroClient
) -> None:
    case = await client.create_case({"module_id": CP})
    action = primero_sim.state.refer_to_unhcr(case["id"], "unhcr_cw", {})
    with pytest.raises(ReferralNotUpdatedError) as caught:
        await client.update_referral(case["id"], action["referral_id"], status="done")
    assert caught.value.failure_class is FailureClass.PERMANENT
    assert caught.value.details == ("status=in_progress",)


async def test_rejecting_a_referral_sends_reason(primero_sim: Any, client: PrimeroClient) -> None:
    case = await client.create_case({"module_id": CP})
    action = primero_sim.state.refer_to_unhcr(case["id"], "unhcr_cw", {})
    rejected = await client.update_referral(
        case["id"], action["referral_id"], status="rejected", rejected_reason="not_eligible"
    )
    assert rejected["rejected_reason"] == "not_eligible"


async def test_get_user_by_exact_user_name(primero_sim: Any, client: PrimeroClient) -> None:
    primero_sim.state.seed(
        {
            "users": [
                {"user_name": "unhcr_cw", "email": "cw@example.org"},
                {"user_name": "unhcr_cw2"},
            ]
        }
    )
    user = await client.get_user("unhcr_cw")
    assert user is not None and user["email"] == "cw@example.org"
    assert await client.get_user("unhcr") is None


# ---------------------------------------------------------------- permanent errors


async def test_404_is_not_found_with_no_echoed_text(client: PrimeroClient) -> None:
    with pytest.raises(NotFoundError) as caught:
        await client.get_case("00000000-0000-4000-8000-000000000000")
    error = caught.value
    assert error.status_code == 404 and error.peer == "primero" and error.reason == "http_404"
    assert error.details == ("message=Not Found",)
    assert "Couldn't find" not in str(error)


async def test_409_is_conflict(client: PrimeroClient) -> None:
    case_id = "f59e880e-d58f-4b68-ba6e-e0616a49aefd"
    await client.create_case({"module_id": CP, "case_id": case_id})
    with pytest.raises(ConflictError) as caught:
        await client.create_case({"module_id": CP, "case_id": case_id})
    assert caught.value.status_code == 409
    assert isinstance(caught.value, PermanentPeerError)


async def test_422_keeps_json_pointers(client: PrimeroClient) -> None:
    with pytest.raises(InvalidRecordError) as caught:
        await client.create_case({"module_id": CP, "services_section": [{"unique_id": "BAD"}]})
    assert caught.value.details == (
        "message=Invalid Record JSON",
        "detail=/services_section/0/unique_id",
    )


async def test_422_model_validation_keeps_codes_and_field(
    primero_sim: Any, client: PrimeroClient
) -> None:
    body = {
        "errors": [
            {
                "status": 422,
                "resource": "/api/v2/cases",
                "detail": "transitioned_to",
                "message": ["transition.errors.to_user_can_receive"],
            }
        ]
    }
    fault(primero_sim, path="/api/v2/cases", status=422, body=body)
    with pytest.raises(InvalidRecordError) as caught:
        await client.get_case("x")
    assert caught.value.details == (
        "message=transition.errors.to_user_can_receive",
        "detail=transitioned_to",
    )


async def test_free_text_in_an_error_never_reaches_the_exception(
    primero_sim: Any, client: PrimeroClient
) -> None:
    body = {
        "errors": [
            {
                "status": 400,
                "resource": "/api/v2/cases",
                "detail": "Aicha Diallo born 2008-01-01",
                "message": "Aicha Diallo is not valid",
            }
        ]
    }
    fault(primero_sim, path="/api/v2/cases", status=400, body=body)
    with pytest.raises(PrimeroPermanentError) as caught:
        await client.create_case({"module_id": CP, "name": "Aicha Diallo"})
    assert caught.value.status_code == 400 and caught.value.details == ()
    assert "Aicha" not in str(caught.value) and "2008" not in str(caught.value)


async def test_401_wrong_password_is_authentication_error(primero_sim: Any) -> None:
    async with PrimeroClient(primero_sim.url, username=primero_sim.user, password="bad") as client:
        with pytest.raises(AuthenticationError) as caught:
            await client.get_user("x")
    assert caught.value.status_code == 401
    assert caught.value.details == ("error=Invalid User name or password.",)


async def test_403_is_forbidden(primero_sim: Any, client: PrimeroClient) -> None:
    body = {"errors": [{"status": 403, "resource": "/api/v2/cases", "message": "Forbidden"}]}
    fault(primero_sim, path="/api/v2/cases", status=403, body=body)
    with pytest.raises(ForbiddenError) as caught:
        [case async for case in client.iter_cases()]
    assert caught.value.details == ("message=Forbidden",)


# ---------------------------------------------------------------- transient errors


async def test_503_honours_retry_after(primero_sim: Any, client: PrimeroClient) -> None:
    body = {
        "errors": [
            {
                "status": 503,
                "resource": "/api/v2/cases",
                "detail": "Retry-After: 60",
                "message": "Service Unavailable",
            }
        ]
    }
    fault(primero_sim, path="/api/v2/cases", status=503, retry_after=60, body=body)
    with pytest.raises(TransientPeerError) as caught:
        await client.get_case("x")
    assert caught.value.retry_after == 60.0
    assert caught.value.status_code == 503 and caught.value.reason == "http_503"
    assert caught.value.failure_class is FailureClass.TRANSIENT


async def test_503_retry_after_from_the_envelope_only(
    primero_sim: Any, client: PrimeroClient
) -> None:
    body = {
        "errors": [{"status": 503, "resource": "/", "detail": "Retry-After: 7", "message": "x"}]
    }
    fault(primero_sim, path="/api/v2/cases", status=503, body=body)
    with pytest.raises(TransientPeerError) as caught:
        await client.get_case("x")
    assert caught.value.retry_after == 7.0


@pytest.mark.parametrize("status", [429, 500, 502])
async def test_429_and_5xx_are_transient(
    primero_sim: Any, client: PrimeroClient, status: int
) -> None:
    fault(primero_sim, path="/api/v2/cases", status=status)
    with pytest.raises(TransientPeerError) as caught:
        await client.patch_case("x", {"age": 1})
    assert caught.value.status_code == status and caught.value.retryable


async def test_a_hanging_server_is_a_transient_timeout(
    primero_sim: Any, impatient_client: PrimeroClient
) -> None:
    fault(primero_sim, path="/api/v2/cases", hang=True, times=1)
    with pytest.raises(TransientPeerError) as caught:
        await impatient_client.list_referrals("x")
    assert caught.value.reason == "timeout" and caught.value.status_code is None


async def test_latency_beyond_the_timeout_is_transient(
    primero_sim: Any, impatient_client: PrimeroClient
) -> None:
    fault(primero_sim, path="/api/v2/users", latency=2.0, status=200, rate=0.0)
    with pytest.raises(TransientPeerError) as caught:
        await impatient_client.get_user("x")
    assert caught.value.reason == "timeout"


async def test_connection_refused_is_transient(refused_url: str) -> None:
    async with PrimeroClient(refused_url, username="u", password="p") as client:
        with pytest.raises(TransientPeerError) as caught:
            await client.get_case("x")
    assert caught.value.reason == "connection"


# ---------------------------------------------------------------- token mode


async def test_token_mode_logs_in_once_and_again_after_expiry(primero_sim: Any) -> None:
    async with PrimeroClient(
        primero_sim.url, username=primero_sim.user, password=primero_sim.password, auth="token"
    ) as client:
        await client.create_case({"module_id": CP})
        await client.get_user(primero_sim.user)
        assert len(journal(primero_sim, "/api/v2/tokens")) == 1
        primero_sim.app.state.auth.expire_tokens()
        assert await client.get_user(primero_sim.user) is not None
    logins = journal(primero_sim, "/api/v2/tokens")
    assert [entry["method"] for entry in logins] == ["POST", "POST"]
    assert [e["status"] for e in journal(primero_sim, "/api/v2/users")] == [200, 401, 200]


async def test_token_mode_relogs_only_once(primero_sim: Any) -> None:
    async with PrimeroClient(
        primero_sim.url, username=primero_sim.user, password=primero_sim.password, auth="token"
    ) as client:
        await client.get_user(primero_sim.user)
        fault(
            primero_sim, path="/api/v2/users", status=401, body={"error": "Your account is locked."}
        )
        with pytest.raises(AuthenticationError) as caught:
            await client.get_user(primero_sim.user)
    assert caught.value.details == ("error=Your account is locked.",)
    assert len(journal(primero_sim, "/api/v2/tokens")) == 2


async def test_token_mode_with_wrong_password(primero_sim: Any) -> None:
    async with PrimeroClient(
        primero_sim.url, username=primero_sim.user, password="bad", auth="token"
    ) as client:
        with pytest.raises(AuthenticationError):
            await client.get_case("x")


async def test_token_mode_against_a_sessions_era_primero() -> None:
    app = create_app(users={"u": "p"}, token_login=False)
    with serve_in_thread(app) as server:
        async with PrimeroClient(server.url, username="u", password="p", auth="token") as client:
            with pytest.raises(TokenNotIssuedError) as caught:
                await client.get_case("x")
    assert caught.value.reason == "token_not_issued"


async def test_login_throttled_is_transient(primero_sim: Any) -> None:
    fault(primero_sim, path="/api/v2/tokens", status=429)
    async with PrimeroClient(
        primero_sim.url, username=primero_sim.user, password=primero_sim.password, auth="token"
    ) as client:
        with pytest.raises(TransientPeerError) as caught:
            await client.get_case("x")
    assert caught.value.status_code == 429 and caught.value.operation == "login"


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError):
        PrimeroClient("http://x", username="u", password="p", auth="digest")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        PrimeroClient("http://x", username="u", password="p", page_size=0)


async def test_concurrent_calls_share_one_login(primero_sim: Any) -> None:
    async with PrimeroClient(
        primero_sim.url, username=primero_sim.user, password=primero_sim.password, auth="token"
    ) as client:
        await asyncio.gather(*(client.get_user(primero_sim.user) for _ in range(10)))
        primero_sim.app.state.auth.expire_tokens()
        await asyncio.gather(*(client.get_user(primero_sim.user) for _ in range(10)))
    assert len(journal(primero_sim, "/api/v2/tokens")) == 2


def test_retry_after_as_an_http_date() -> None:
    later = datetime.now(UTC) + timedelta(seconds=120)
    seconds = retry_after_seconds(format_datetime(later, usegmt=True), None)
    assert seconds is not None and 100 < seconds <= 120
    assert retry_after_seconds("soon", None) is None


async def test_a_case_updated_while_paging_does_not_hide_another(primero_sim: Any) -> None:
    stamps = [f"2024-01-01T00:00:{n:02d}.000Z" for n in range(30)]
    primero_sim.state.seed({"cases": [{"last_updated_at": s} for s in stamps]})
    seen: list[str] = []
    async with PrimeroClient(
        primero_sim.url, username=primero_sim.user, password=primero_sim.password, page_size=10
    ) as client:
        async for case in client.iter_cases():
            seen.append(case["id"])
            if len(seen) == 10:  # first page read: the oldest case changes and moves to the end
                await client.patch_case(seen[0], {"age": 5})
    all_ids = {case["id"] for case in primero_sim.state.all_cases()}
    assert set(seen) == all_ids
    assert seen.count(seen[0]) == 2 and len(seen) == 31


async def test_https_primero_verified_with_a_ca_bundle_path(tmp_path: Any) -> None:
    ca = trustme.CA()
    server_cert = ca.issue_cert("127.0.0.1")
    cert_file, key_file, ca_file = (
        tmp_path / "server.pem",
        tmp_path / "server.key",
        tmp_path / "ca.pem",
    )
    server_cert.cert_chain_pems[0].write_to_path(str(cert_file))
    server_cert.private_key_pem.write_to_path(str(key_file))
    ca.cert_pem.write_to_path(str(ca_file))
    app = create_app(users={"u": "p"})
    with serve_in_thread(app, ssl_certfile=str(cert_file), ssl_keyfile=str(key_file)) as server:
        assert server.url.startswith("https://")
        async with PrimeroClient(server.url, username="u", password="p", verify=str(ca_file)) as ok:
            assert (await ok.get_user("u") or {}).get("user_name") == "u"
        async with PrimeroClient(server.url, username="u", password="p", timeout=2) as untrusted:
            with pytest.raises(TransientPeerError) as caught:
                await untrusted.get_user("u")
    assert caught.value.reason == "connection"


# ---------------------------------------------------------------- what doctor asks


async def test_search_cases_answers_one_page_unchecked(
    primero_sim: Any, client: PrimeroClient
) -> None:
    await client.create_case({"module_id": CP, "unhcr_individual_no": "ETH-1"})
    await client.create_case({"module_id": CP, "unhcr_individual_no": "ETH-2"})
    page = await client.search_cases([("per", "1")])
    assert (page.total, page.per, page.page, len(page.cases)) == (2, 1, 1, 1)
    primero_sim.state.configure(PrimeroSimConfig(readable_fields=["case_id"]))
    dropped = await client.search_cases([("unhcr_individual_no", "nobody"), ("per", "5")])
    assert dropped.total == 2  # the filter was dropped and nothing complained
    assert [e["query"] for e in journal(primero_sim)][-1] == "unhcr_individual_no=nobody&per=5"


async def test_search_cases_without_metadata_is_an_unexpected_response(
    primero_sim: Any, client: PrimeroClient
) -> None:
    fault(primero_sim, path="/api/v2/cases", status=200, body={"data": []})
    with pytest.raises(UnexpectedResponseError):
        await client.search_cases([])


async def test_list_lookups_reads_every_page(primero_sim: Any) -> None:
    primero_sim.state.configure(
        PrimeroSimConfig(lookups={f"lookup-{n}": [f"v{n}"] for n in range(5)})
    )
    async with PrimeroClient(
        primero_sim.url, username=primero_sim.user, password=primero_sim.password, page_size=2
    ) as client:
        lookups = await client.list_lookups()
    assert [lookup["unique_id"] for lookup in lookups] == [f"lookup-{n}" for n in range(5)]
    assert lookups[0]["values"][0]["id"] == "v0"
    pages = [query_of(e)["page"] for e in journal(primero_sim, "/api/v2/lookups")]
    assert pages == ["1", "2", "3"]


async def test_list_forms_of_the_module(primero_sim: Any, client: PrimeroClient) -> None:
    forms = await client.list_forms(module_id=CP)
    assert "basic_identity" in {form["unique_id"] for form in forms}
    assert await client.list_forms(module_id="primeromodule-x") == []
    [entry] = journal(primero_sim, "/api/v2/forms")[:1]
    assert query_of(entry) == {"record_type": "case", "module_id": CP}


async def test_own_user_in_basic_mode_reads_the_role(
    primero_sim: Any, client: PrimeroClient
) -> None:
    primero_sim.state.configure(PrimeroSimConfig(scope="group"))
    me = await client.own_user()
    assert me["user_name"] == primero_sim.user
    assert me["role_group_permission"] == "group"
    assert "basic_identity" in me["permitted_form"]
    other = await client.get_user_by_id(me["id"])
    assert "permitted_form" not in other


async def test_own_user_needs_the_users_permission_in_basic_mode(
    primero_sim: Any, client: PrimeroClient
) -> None:
    primero_sim.state.configure(PrimeroSimConfig(users_permission=False))
    with pytest.raises(ForbiddenError):
        await client.own_user()


async def test_own_user_in_token_mode_uses_the_login_id(primero_sim: Any) -> None:
    primero_sim.state.configure(PrimeroSimConfig(users_permission=False, scope="self"))
    async with PrimeroClient(
        primero_sim.url,
        username=primero_sim.user,
        password=primero_sim.password,
        auth="token",
    ) as client:
        me = await client.own_user()
    assert me["role_group_permission"] == "self"
    assert journal(primero_sim, "/api/v2/users") == []


async def test_tls_failure_tells_a_certificate_problem_from_a_refused_connection(
    tmp_path: Any, refused_url: str
) -> None:
    ca = trustme.CA()
    server_cert = ca.issue_cert("127.0.0.1")
    cert_file, key_file = tmp_path / "server.pem", tmp_path / "server.key"
    server_cert.cert_chain_pems[0].write_to_path(str(cert_file))
    server_cert.private_key_pem.write_to_path(str(key_file))
    app = create_app(users={"u": "p"})
    with serve_in_thread(app, ssl_certfile=str(cert_file), ssl_keyfile=str(key_file)) as server:
        async with PrimeroClient(server.url, username="u", password="p", timeout=2) as untrusted:
            with pytest.raises(TransientPeerError) as caught:
                await untrusted.search_cases([])
    assert tls_failure(caught.value)
    async with PrimeroClient(refused_url, username="u", password="p") as refused:
        with pytest.raises(TransientPeerError) as caught:
            await refused.search_cases([])
    assert not tls_failure(caught.value)


async def test_a_primero_behind_a_path_prefix_gets_each_call_under_it() -> None:
    """The client resolves each path against the base URL itself (once per path): a prefix
    and a trailing slash are kept, a record id is quoted, the query stays the filters."""
    seen: list[tuple[str, str, str]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        seen.append((scope["method"], scope["raw_path"].decode(), scope["query_string"].decode()))
        while (await receive()).get("more_body"):
            pass
        single = scope["method"] != "GET" or scope["path"] != "/prefix/api/v2/cases"
        data = b'{"data": {"id": "r/1"}}' if single else b'{"data": [], "metadata": {}}'
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": data})

    with serve_in_thread(app) as server:
        async with PrimeroClient(f"{server.url}/prefix/", username="u", password="p") as client:
            for _ in range(2):
                assert await client.find_cases("unhcr_individual_no", "ETH-1") == []
                await client.create_case({"module_id": CP})
                await client.get_case("r/1")
    query = "unhcr_individual_no=ETH-1&order_by=last_updated_at&order=asc&per=1000&page=1"
    assert seen == 2 * [
        ("GET", "/prefix/api/v2/cases", query),
        ("POST", "/prefix/api/v2/cases", ""),
        ("GET", "/prefix/api/v2/cases/r%2F1", ""),
    ]
