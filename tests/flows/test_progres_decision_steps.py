"""Flow 4's steps against in-memory fakes: fan-out, resolving the referral, the PATCH."""

from __future__ import annotations

from typing import Any

import pytest
from flow_fakes import FakePrimero, FakeStore, make_job

from primero_progres import demo_data
from primero_progres.errors import FailureClass, InvalidInputError, MappingFailure
from primero_progres.flows import progres_decision as flow4
from primero_progres.store import Flow, LedgerRecord, LedgerState

SERVICE = "0e000000-0000-4000-8000-0000000000a1"
ORG_REFERRAL_ID = f"case-1#{SERVICE[-12:]}"


def apply_job(**fields: Any) -> Any:
    [item] = demo_data.decision_message(ORG_REFERRAL_ID, **fields)["interventions"]
    return make_job(flow4.APPLY, {"decision": item}, refs={"org_referral_id": ORG_REFERRAL_ID})


@pytest.fixture
def referred(primero: FakePrimero) -> None:
    primero.cases = {"rec-1": {"id": "rec-1", "case_id": "case-1"}}
    primero.referrals = {
        "rec-1": [
            {"id": "ref-0", "service_record_id": "another-service", "status": "in_progress"},
            {"id": "ref-1", "service_record_id": SERVICE, "status": "in_progress"},
        ]
    }


async def test_receive_fans_out_one_apply_per_decision(
    run: Any, fake_store: FakeStore
) -> None:
    message = demo_data.decision_message(ORG_REFERRAL_ID)
    message["interventions"].append({"progres_orgreferralid": "not-an-id"})
    fake_store.messages.payloads["m-1"] = message
    await run(flow4.receive, make_job(flow4.RECEIVE, message_id="m-1"))

    applies = fake_store.jobs_of(flow4.APPLY)
    assert [(a.key, dict(a.refs)) for a in applies] == [
        (
            f"{flow4.APPLY}:{await fake_store.fingerprint(item)}",
            {
                "org_referral_id": ORG_REFERRAL_ID if index == 0 else None,
                "message_id": "m-1",
                "index": index,
            },
        )
        for index, item in enumerate(message["interventions"])
    ]
    assert fake_store.audit_of("message_fanned_out") == [{"message_id": "m-1", "count": 2}]


async def test_a_message_that_is_not_a_decision_is_invalid_input(
    run: Any, fake_store: FakeStore
) -> None:
    fake_store.messages.payloads["m-1"] = demo_data.referral_message()
    with pytest.raises(InvalidInputError):
        await run(flow4.receive, make_job(flow4.RECEIVE, message_id="m-1"))
    assert fake_store.jobs == []


@pytest.mark.usefixtures("referred")
async def test_apply_resolves_through_the_ledger_and_patches_the_referral(
    run: Any, fake_store: FakeStore, primero: FakePrimero
) -> None:
    fake_store.ledger.apply(
        LedgerRecord.of(
            Flow.PRIMERO_REFERRAL,
            f"case-1:{SERVICE}",
            state=LedgerState.SENT,
            case_record_id="rec-1",
            service_unique_id=SERVICE,
            org_referral_id=ORG_REFERRAL_ID,
        )
    )
    await run(flow4.apply, apply_job())

    assert primero.calls_of("find_cases") == []
    assert primero.calls_of("update_referral") == [("rec-1", "ref-1", "accepted", None)]
    applied = await fake_store.ledger.get(flow4.FLOW, ORG_REFERRAL_ID)
    assert applied is not None
    assert (applied.state, applied.referral_id, applied.service_unique_id) == (
        "accepted",
        "ref-1",
        SERVICE,
    )
    assert fake_store.audit_of("decision_applied") == [
        {"org_referral_id": ORG_REFERRAL_ID, "referral_id": "ref-1", "status": "accepted"}
    ]


@pytest.mark.usefixtures("referred")
async def test_apply_finds_the_case_in_primero_when_the_ledger_does_not_know_it(
    run: Any, fake_store: FakeStore, primero: FakePrimero
) -> None:
    job = apply_job(
        decision="125080001", progres_interoperabiltyreferralrejectionreason="125080001"
    )
    await run(flow4.apply, job)

    assert primero.calls_of("find_cases") == [("case_id", "case-1")]
    assert primero.calls_of("update_referral") == [
        ("rec-1", "ref-1", "rejected", "Individual Not Match UNHCR ID")
    ]
    applied = await fake_store.ledger.get(flow4.FLOW, ORG_REFERRAL_ID)
    assert applied is not None and applied.state == "rejected"


@pytest.mark.parametrize(("cases", "reason"), [(0, "unknown_case"), (2, "ambiguous_case")])
async def test_a_case_that_cannot_be_told_is_a_dead_letter_with_its_reason(
    run: Any, fake_store: FakeStore, primero: FakePrimero, cases: int, reason: str
) -> None:
    primero.cases = {f"rec-{n}": {"id": f"rec-{n}", "case_id": "case-1"} for n in range(cases)}
    with pytest.raises(flow4.UnresolvedDecision) as caught:
        await run(flow4.apply, apply_job())
    assert caught.value.reason == reason
    assert primero.calls_of("update_referral") == [] and fake_store.ledger.exchanges == {}


async def test_a_decision_the_profile_cannot_map_is_a_mapping_failure(
    run: Any, primero: FakePrimero
) -> None:
    with pytest.raises(MappingFailure) as caught:
        await run(flow4.apply, apply_job(decision="999"))
    assert (caught.value.failure_class, caught.value.reason) == (
        FailureClass.MAPPING,
        "invalid_data",
    )
    assert primero.calls == []
