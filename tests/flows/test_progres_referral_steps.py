"""Flow 1's steps against in-memory fakes: fan-out, delivery, refusals, feedback."""

from __future__ import annotations

from typing import Any

import pytest
from flow_fakes import FakeGateway, FakePrimero, FakeStore, make_job

from primero_progres import demo_data
from primero_progres.errors import InvalidInputError
from primero_progres.flows import progres_referral as flow1
from primero_progres.flows.primero_access import PrimeroAccessError
from primero_progres.peers.primero_errors import (
    AuthenticationError,
    InvalidRecordError,
    UnexpectedResponseError,
)
from primero_progres.profiles.schema import ExistingCase
from primero_progres.store import LeaseBusy

FLOW = "progres-referral"
NUMBER = "DEMO-26-PRTITV-0000001"
LEASE = "individual:DEMO-00000001"
FOCAL_POINT = "progresv4_primero_intake@cpims-gambella.primero.org"


def deliver_job(intervention: dict[str, Any], fingerprint: str = "fp-1") -> Any:
    return make_job(
        flow1.DELIVER,
        {"intervention": intervention, "fingerprint": fingerprint},
        refs={"progres_interventionnumber": intervention.get("progres_interventionnumber")},
        message_id="m-1",
    )


async def test_receive_fans_out_one_delivery_per_intervention(
    run: Any, fake_store: FakeStore
) -> None:
    first, second = demo_data.intervention(NUMBER), demo_data.intervention("DEMO-26-PRTITV-2")
    fake_store.messages.payloads["m-1"] = demo_data.referral_message(first, second)
    job = make_job(flow1.RECEIVE, message_id="m-1")
    await run(flow1.receive, job)
    await run(flow1.receive, job)  # the same message again: nothing new

    delivers = fake_store.jobs_of(flow1.DELIVER)
    fingerprints = [await fake_store.fingerprint(item) for item in (first, second)]
    assert [(d.key, d.message_id, dict(d.refs)) for d in delivers] == [
        (
            f"{flow1.DELIVER}:{item['progres_interventionnumber']}:{fingerprints[index]}",
            "m-1",
            {
                "progres_interventionnumber": item["progres_interventionnumber"],
                "message_id": "m-1",
                "index": index,
            },
        )
        for index, item in enumerate((first, second))
    ]
    assert delivers[0].payload == {
        "intervention": first,
        "fingerprint": fingerprints[0],
    }
    assert fake_store.audit_of("message_fanned_out")[0] == {"message_id": "m-1", "count": 2}


async def test_an_unreadable_message_is_invalid_input_and_writes_nothing(
    run: Any, fake_store: FakeStore
) -> None:
    fake_store.messages.payloads["m-1"] = {"interventions": "not a list"}
    with pytest.raises(InvalidInputError) as caught:
        await run(flow1.receive, make_job(flow1.RECEIVE, message_id="m-1"))
    assert caught.value.reason == "invalid_data"
    assert fake_store.jobs == [] and fake_store.audit == []


async def test_deliver_creates_the_case_under_the_childs_lease_and_queues_the_feedback(
    run: Any, fake_store: FakeStore, primero: FakePrimero
) -> None:
    await run(flow1.deliver, deliver_job(demo_data.intervention(NUMBER)))

    assert fake_store.held == [LEASE]
    [created] = primero.calls_of("create_case")
    assert created["unhcr_individual_no"] == "DEMO-00000001"
    exchange = await fake_store.ledger.get(flow1.FLOW, NUMBER)
    assert exchange is not None
    assert (exchange.state, exchange.case_record_id, exchange.case_id) == (
        "delivered",
        "rec-1",
        "case-1",
    )
    assert (exchange.service_unique_id, exchange.content_fingerprint) == ("svc-1-0", "fp-1")
    assert [event for _, _, event, _ in fake_store.ledger.history] == ["case_created"]
    [feedback] = fake_store.jobs_of(flow1.FEEDBACK)
    assert feedback.key == f"{flow1.FEEDBACK}:{NUMBER}:fp-1"
    assert feedback.payload == {
        "message": {
            "status": "Pending Acknowledgement",
            "primero_user": FOCAL_POINT,
            "case_id": "case-1",
            "progres_interventionnumber": NUMBER,
        }
    }


async def test_deliver_updates_the_case_that_already_holds_the_intervention(
    run: Any, fake_store: FakeStore, primero: FakePrimero
) -> None:
    primero.cases["rec-9"] = {
        "id": "rec-9",
        "case_id": "case-9",
        "unhcr_individual_no": "DEMO-00000001",
        "owned_by": "someone_else",
        "services_section": [{"unique_id": "svc-9", "progres_interventionnumber": NUMBER}],
    }
    await run(flow1.deliver, deliver_job(demo_data.intervention(NUMBER)))

    assert primero.calls_of("create_case") == []
    [(record_id, body)] = primero.calls_of("patch_case")
    assert record_id == "rec-9"
    assert [row["unique_id"] for row in body["services_section"]] == ["svc-9"]
    assert "case_id" not in body, "Primero refuses a case_id in a PATCH"
    exchange = await fake_store.ledger.get(flow1.FLOW, NUMBER)
    assert exchange is not None
    assert (exchange.case_id, exchange.service_unique_id) == ("case-9", "svc-9")
    assert [event for _, _, event, _ in fake_store.ledger.history] == ["case_updated"]


async def test_the_feedback_names_the_owner_a_keep_profile_leaves_in_place(
    run: Any, rt: Any, fake_store: FakeStore, primero: FakePrimero
) -> None:
    rt.profile = rt.profile.model_copy(
        update={"existing_case": ExistingCase(owned_by="keep", status="keep")}
    )
    primero.cases["rec-9"] = {
        "id": "rec-9",
        "case_id": "case-9",
        "unhcr_individual_no": "DEMO-00000001",
        "owned_by": "caseworker_9",
    }
    await run(flow1.deliver, deliver_job(demo_data.intervention(NUMBER)))

    [(_, body)] = primero.calls_of("patch_case")
    assert "owned_by" not in body
    [feedback] = fake_store.jobs_of(flow1.FEEDBACK)
    assert dict(feedback.payload or {})["message"]["primero_user"] == "caseworker_9"


async def test_a_busy_child_is_retried_later_without_calling_primero(
    run: Any, fake_store: FakeStore, primero: FakePrimero
) -> None:
    fake_store.busy.add(LEASE)
    with pytest.raises(LeaseBusy) as caught:
        await run(flow1.deliver, deliver_job(demo_data.intervention(NUMBER)))
    assert caught.value.retryable and caught.value.reason == "busy"
    assert primero.calls == [] and fake_store.jobs == []


async def test_an_unmappable_intervention_is_refused_with_a_delivery_fail(
    run: Any, fake_store: FakeStore, primero: FakePrimero
) -> None:
    intervention = demo_data.intervention(NUMBER, **{"individuals.progres_givenname": None})
    await run(flow1.deliver, deliver_job(intervention))

    assert primero.calls == [] and fake_store.held == []
    exchange = await fake_store.ledger.get(flow1.FLOW, NUMBER)
    assert exchange is not None and exchange.state == "refused"
    assert fake_store.ledger.history[0][2:] == (
        "intervention_refused",
        {"reason": "missing_fields"},
    )
    [feedback] = fake_store.jobs_of(flow1.FEEDBACK)
    message = dict(feedback.payload or {})["message"]
    assert message["status"] == "Delivery Fail"
    assert message["closure_reason"].endswith("Missing fields: individuals.progres_givenname")
    [refused] = fake_store.audit_of("intervention_refused")
    assert (refused["reason"], refused["failure_class"], refused["fields"]) == (
        "missing_fields",
        "mapping",
        ["individuals.progres_givenname"],
    )
    [parked] = fake_store.jobs_of(flow1.DELIVER)
    assert parked.dead_reason is not None
    assert (parked.dead_reason.failure_class, parked.dead_reason.reason) == (
        "mapping",
        "missing_fields",
    )


async def test_a_primero_refusal_is_reported_to_dtp_as_a_delivery_fail(
    run: Any, fake_store: FakeStore, primero: FakePrimero
) -> None:
    primero.errors["create_case"] = InvalidRecordError(
        "primero", "create_case", "HTTP 422", status_code=422
    )
    await run(flow1.deliver, deliver_job(demo_data.intervention(NUMBER)))

    assert fake_store.held == [LEASE], "released once the refusal is committed"
    exchange = await fake_store.ledger.get(flow1.FLOW, NUMBER)
    assert exchange is not None and exchange.state == "refused"
    [refused] = fake_store.audit_of("intervention_refused")
    assert (refused["reason"], refused["failure_class"], refused["peer_status"]) == (
        "primero_refused",
        "permanent",
        "http_422",
    )
    [feedback] = fake_store.jobs_of(flow1.FEEDBACK)
    assert dict(feedback.payload or {})["message"]["status"] == "Delivery Fail"


async def test_a_refused_intervention_is_parked_for_a_replay_under_its_own_keys(
    run: Any, fake_store: FakeStore, primero: FakePrimero
) -> None:
    """proGres sending the same intervention again is a duplicate: the dead letter is the only
    way it becomes a case once the cause is fixed. Its Delivery Fail has a key of its own, so
    the success feedback of a replay is not taken for it."""
    primero.errors["create_case"] = InvalidRecordError(
        "primero", "create_case", "HTTP 422", status_code=422
    )
    intervention = demo_data.intervention(NUMBER)
    job = deliver_job(intervention)
    await run(flow1.deliver, job)

    [feedback] = fake_store.jobs_of(flow1.FEEDBACK)
    assert feedback.key == f"{flow1.FEEDBACK}:{NUMBER}:fp-1:refused"
    [parked] = fake_store.jobs_of(flow1.DELIVER)
    assert parked.key == f"{flow1.DELIVER}:{NUMBER}:fp-1:refused:{job.id}"
    assert parked.payload == {"intervention": intervention, "fingerprint": "fp-1", "refused": True}
    assert dict(parked.refs) == dict(job.refs) and parked.message_id == "m-1"
    reason = parked.dead_reason
    assert reason is not None
    assert (reason.failure_class, reason.reason) == ("permanent", "primero_refused")
    assert "http_422" in reason.message and "Delivery Fail" in reason.message
    assert "DEMO-00000001" not in reason.message, "ids and codes only"

    # the replay, refused again: the same Delivery Fail key (nothing more sent), a new dead letter
    replay = fake_store.next_job([flow1.DELIVER])
    assert replay is not None
    await run(flow1.deliver, replay)
    assert len(fake_store.jobs_of(flow1.FEEDBACK)) == 1
    _, second = fake_store.jobs_of(flow1.DELIVER)
    assert second.key == f"{flow1.DELIVER}:{NUMBER}:fp-1:refused:{replay.id}"
    assert second.dead_reason is not None

    # fixed: the next replay delivers, and queues the success feedback under its own key
    del primero.errors["create_case"]
    again = fake_store.next_job([flow1.DELIVER])
    assert again is not None
    await run(flow1.deliver, again)
    assert len(primero.calls_of("create_case")) == 3, "two refused, then written"
    assert primero.cases, "the case is written"
    _, success = fake_store.jobs_of(flow1.FEEDBACK)
    assert success.key == f"{flow1.FEEDBACK}:{NUMBER}:fp-1"
    assert dict(success.payload or {})["message"]["status"] == "Pending Acknowledgement"
    exchange = await fake_store.ledger.get(flow1.FLOW, NUMBER)
    assert exchange is not None and exchange.state == "delivered"


async def test_refused_again_after_the_delivery_fail_went_out_stays_reported(
    run: Any, fake_store: FakeStore, primero: FakePrimero, gateway: FakeGateway
) -> None:
    """A replay refused again queues no Delivery Fail (its key is used): the ledger keeps
    saying DTP was told, rather than "refused", waiting for a feedback that never comes."""
    primero.errors["create_case"] = InvalidRecordError(
        "primero", "create_case", "HTTP 422", status_code=422
    )
    await run(flow1.deliver, deliver_job(demo_data.intervention(NUMBER)))
    feedback = fake_store.next_job([flow1.FEEDBACK])
    assert feedback is not None
    await run(flow1.feedback, feedback)
    replay = fake_store.next_job([flow1.DELIVER])
    assert replay is not None
    await run(flow1.deliver, replay)

    exchange = await fake_store.ledger.get(flow1.FLOW, NUMBER)
    assert exchange is not None and exchange.state == "refused_reported"
    assert len(fake_store.jobs_of(flow1.FEEDBACK)) == 1


async def test_a_success_answer_primero_did_not_write_is_a_dead_letter_not_a_refusal(
    run: Any, fake_store: FakeStore, primero: FakePrimero
) -> None:
    """A 2xx whose body is not Primero's (a proxy's page) after a create: the case may be
    written; a Delivery Fail would be false."""
    primero.errors["create_case"] = UnexpectedResponseError(
        "primero", "create_case", "HTTP 200 with a non-JSON body", reason="bad_response"
    )
    with pytest.raises(UnexpectedResponseError):
        await run(flow1.deliver, deliver_job(demo_data.intervention(NUMBER)))
    assert fake_store.jobs == [] and fake_store.ledger.exchanges == {}


async def test_a_refusal_the_operator_must_fix_is_raised_not_reported(
    run: Any, fake_store: FakeStore, primero: FakePrimero
) -> None:
    primero.errors["create_case"] = AuthenticationError(
        "primero", "create_case", "HTTP 401", status_code=401
    )
    with pytest.raises(AuthenticationError):
        await run(flow1.deliver, deliver_job(demo_data.intervention(NUMBER)))
    assert fake_store.jobs == [] and fake_store.ledger.exchanges == {}


async def test_a_written_case_without_its_case_id_is_an_error_not_a_false_feedback(
    run: Any, fake_store: FakeStore, primero: FakePrimero
) -> None:
    primero.answer_without = ("case_id",)
    with pytest.raises(UnexpectedResponseError) as caught:
        await run(flow1.deliver, deliver_job(demo_data.intervention(NUMBER)))
    assert caught.value.reason == "bad_response"
    assert fake_store.jobs == []


@pytest.mark.parametrize(
    ("status", "state"),
    [("Pending Acknowledgement", "feedback_sent"), ("Delivery Fail", "refused_reported")],
)
async def test_feedback_records_what_dtp_was_told(
    run: Any, fake_store: FakeStore, gateway: FakeGateway, status: str, state: str
) -> None:
    message = {"status": status, "progres_interventionnumber": NUMBER, "case_id": "case-1"}
    await run(flow1.feedback, make_job(flow1.FEEDBACK, {"message": message}))

    assert gateway.sent == [("decision", message)]
    exchange = await fake_store.ledger.get(flow1.FLOW, NUMBER)
    assert exchange is not None and exchange.state == state
    assert fake_store.ledger.history == [
        (FLOW, NUMBER, "feedback_sent", {"dtp_request_id": "req-1"})
    ]
    assert fake_store.audit_of("feedback_sent") == [
        {"progres_interventionnumber": NUMBER, "status": status}
    ]


async def test_a_delivery_fail_overtaken_by_the_replays_delivery_is_not_sent(
    run: Any, fake_store: FakeStore, primero: FakePrimero, gateway: FakeGateway
) -> None:
    """DTP was down when the intervention was refused; the operator fixed Primero and replayed
    the delivery first: proGres gets the success, never a Delivery Fail after it."""
    primero.errors["create_case"] = InvalidRecordError(
        "primero", "create_case", "HTTP 422", status_code=422
    )
    await run(flow1.deliver, deliver_job(demo_data.intervention(NUMBER)))
    del primero.errors["create_case"]
    replay = fake_store.next_job([flow1.DELIVER])
    assert replay is not None
    await run(flow1.deliver, replay)
    for _ in range(2):
        queued = fake_store.next_job([flow1.FEEDBACK])
        assert queued is not None
        await run(flow1.feedback, queued)

    assert [message["status"] for _, message in gateway.sent] == ["Pending Acknowledgement"]
    exchange = await fake_store.ledger.get(flow1.FLOW, NUMBER)
    assert exchange is not None and exchange.state == "feedback_sent"


# ----------------------------------------------------------------------------- Primero's strictness


@pytest.mark.parametrize(
    ("scope", "forbidden", "reason", "names"),
    [
        ("self", False, "primero_scope_self", "'all' scope"),
        ("all", True, "primero_users_forbidden", "users permission"),
    ],
)
async def test_a_role_that_cannot_see_every_case_stops_flow_1_before_it_writes(
    run: Any,
    fake_store: FakeStore,
    primero: FakePrimero,
    scope: str,
    forbidden: bool,
    reason: str,
    names: str,
) -> None:
    """Under the ``self`` scope the search misses the child's existing case: creating one
    would be a duplicate. Without the users permission the scope cannot be read."""
    primero.scope, primero.users_forbidden = scope, forbidden
    with pytest.raises(PrimeroAccessError) as caught:
        await run(flow1.deliver, deliver_job(demo_data.intervention(NUMBER)))
    assert caught.value.failure_class == "permanent"
    assert caught.value.reason == reason
    assert names in caught.value.message
    assert primero.calls_of("create_case") == primero.calls_of("patch_case") == []
    assert fake_store.jobs == []


@pytest.mark.parametrize(
    "dropped",
    ["services_section.progres_interventionnumber", "unhcr_individual_no"],
)
async def test_fields_primero_did_not_keep_stop_the_delivery_naming_them(
    run: Any, fake_store: FakeStore, primero: FakePrimero, dropped: str
) -> None:
    """Without them the next delivery cannot find this case or row: it would add another."""
    primero.not_writable = (dropped,)
    with pytest.raises(flow1.FieldsNotKept) as caught:
        await run(flow1.deliver, deliver_job(demo_data.intervention(NUMBER)))
    assert caught.value.failure_class == "permanent"
    assert caught.value.reason == "primero_fields_not_kept"
    assert caught.value.fields == (dropped,)
    assert dropped in caught.value.message and "rec-1" in caught.value.message
    assert primero.calls_of("get_case") == ["rec-1"], "read again before judging"
    assert len(primero.calls_of("create_case")) == 1
    assert fake_store.jobs == [] and fake_store.ledger.exchanges == {}


async def test_a_partial_answer_is_checked_against_the_case_read_again(
    run: Any, fake_store: FakeStore, primero: FakePrimero
) -> None:
    primero.answer_without = ("services_section",)
    await run(flow1.deliver, deliver_job(demo_data.intervention(NUMBER)))
    assert primero.calls_of("get_case") == ["rec-1"]
    exchange = await fake_store.ledger.get(flow1.FLOW, NUMBER)
    assert exchange is not None and exchange.service_unique_id == "svc-1-0"


async def test_a_new_row_on_an_existing_case_is_checked_a_known_row_is_not(
    run: Any, fake_store: FakeStore, primero: FakePrimero
) -> None:
    """A PATCH answers only what changed: the new row is looked for in the case read again; a
    row the plan found already holds the number, so a repeated delivery reads nothing more."""
    await run(flow1.deliver, deliver_job(demo_data.intervention(NUMBER)))
    await run(flow1.deliver, deliver_job(demo_data.intervention("DEMO-26-PRTITV-2"), "fp-2"))
    assert primero.calls_of("get_case") == ["rec-1"]
    [case] = primero.cases.values()
    assert [r["progres_interventionnumber"] for r in case["services_section"]] == [
        NUMBER,
        "DEMO-26-PRTITV-2",
    ]
    await run(flow1.deliver, deliver_job(demo_data.intervention(NUMBER), "fp-3"))
    assert primero.calls_of("get_case") == ["rec-1"]
    assert len(case["services_section"]) == 2
