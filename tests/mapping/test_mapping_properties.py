"""Property tests: any JSON value into a transform gives results or typed errors, never raises."""

from __future__ import annotations

from datetime import UTC, date, datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from primero_progres.mapping import primero_decision as flow2
from primero_progres.mapping import primero_referral as flow3
from primero_progres.mapping import progres_decision as flow4
from primero_progres.mapping import progres_referral as flow1
from primero_progres.mapping.errors import KINDS, MappingError
from primero_progres.profiles import load_profile

PROFILE = load_profile()
TODAY = date(2026, 11, 29)
SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.sampled_from(
        ["", "125080000", "125080001", "BIA", "Alternative Care", "2020-01-01T00:00:00Z",
         "2030-02-30", "UNHCR", "unhcr", "accepted", "rejected", "external_referral",
         "language1", "a#b", "#", "[{\"Text\": 1}]", "[", "<p>x</p>"]
    )
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                  max_size=4),
    max_leaves=12,
)

INTERVENTION_KEYS = [
    flow1.F_SERVICE_TYPE, flow1.F_INDIVIDUAL, flow1.F_GROUP, flow1.F_GIVEN, flow1.F_MIDDLE,
    flow1.F_FAMILY, flow1.F_NICKNAME, flow1.F_BIRTH, flow1.F_SEX, flow1.F_PHONE, *flow1.F_LOCATIONS,
    flow1.F_LOCATION_6, flow1.F_LANGUAGE, flow1.F_NUMBER, flow1.F_START, flow1.F_DESCRIPTION,
    flow1.F_REASON, flow1.F_PRIMERO_ID, flow1.F_USER_TITLE, flow1.F_USER_PARTNER,
    flow1.F_USER_PHONE, flow1.F_USER_EMAIL, "progres_businessunit",
]
VALID = {
    flow1.F_SERVICE_TYPE: "BIA",
    flow1.F_INDIVIDUAL: "803-100000519",
    flow1.F_GROUP: {"Name": "803-23-1000552"},
    flow1.F_GIVEN: "G",
    flow1.F_FAMILY: "F",
    flow1.F_BIRTH: "2020-01-01T00:00:00Z",
    flow1.F_SEX: "125080000",
    flow1.F_NUMBER: "N-1",
}
lookups = st.fixed_dictionaries({}, optional={"Name": json_values, "Id": scalars})
interventions = st.builds(
    lambda base, extra: {**base, **extra},
    st.sampled_from([{}, VALID]),
    st.dictionaries(st.sampled_from(INTERVENTION_KEYS), json_values | lookups, max_size=8),
)

ROW_KEYS = ["unique_id", "service_type", "service_implementing_agency", "service_referral",
            "unhcr_referral_status", "progres_interventionnumber", "service_type_other",
            "service_referral_notes", "service_response_day_time",
            "unhcr_referral_rejection_reason"]
CASE_KEYS = ["id", "case_id", "owned_by", "unhcr_individual_no", "unhcr_id_no", "name_first",
             "name_last", "name_middle", "name_nickname", "date_of_birth", "sex",
             "telephone_current", "address_current", "language", "last_updated_at"]
VALID_ROW = {"unique_id": "u1", "service_type": "food", "service_implementing_agency": "UNHCR",
             "service_referral": "external_referral", "unhcr_referral_status": "accepted",
             "progres_interventionnumber": "N-1"}
VALID_CASE = {"id": "r1", "case_id": "c1", "owned_by": "cw", "unhcr_individual_no": "803-100000519",
              "language": ["language1"], "sex": "female", "date_of_birth": "2010-01-01"}
rows = st.builds(
    lambda base, extra: {**base, **extra},
    st.sampled_from([{}, VALID_ROW]),
    st.dictionaries(st.sampled_from(ROW_KEYS), json_values, max_size=3),
) | json_values
cases = st.builds(
    lambda base, fields, section: {**base, **fields, "services_section": section},
    st.sampled_from([{}, VALID_CASE]),
    st.dictionaries(st.sampled_from(CASE_KEYS), json_values, max_size=4),
    st.lists(rows, max_size=3) | json_values,
) | json_values
referrals = st.lists(
    st.dictionaries(st.sampled_from(["id", "service_record_id", "created_at", "status"]),
                    json_values | st.sampled_from(["u1", "x-u1", "2021-01-01T00:00:00Z"]),
                    max_size=4)
    | json_values,
    max_size=4,
) | json_values


def assert_typed(error: MappingError) -> None:
    assert isinstance(error, MappingError)
    assert error.kind in KINDS
    assert isinstance(error.message, str)
    assert all(isinstance(f, str) for f in error.fields)


@SETTINGS
@given(json_values)
def test_read_message_never_raises(payload) -> None:
    result = flow1.read_message(payload)
    if isinstance(result, MappingError):
        assert_typed(result)
    else:
        assert isinstance(result.interventions, list)


@SETTINGS
@given(interventions | json_values, st.lists(cases, max_size=3))
def test_map_intervention_and_upsert_never_raise(intervention, existing) -> None:
    number = flow1.intervention_number(intervention)
    assert number is None or isinstance(number, str)
    result = flow1.map_intervention(intervention, PROFILE, TODAY)
    if isinstance(result, MappingError):
        assert_typed(result)
        feedback = flow1.failure_feedback(
            result, reason_kind=result.kind, intervention_number=number, case_id=None,
            primero_user=PROFILE.focal_point_user_for(intervention), profile=PROFILE,
        )
        assert feedback["status"] == "Delivery Fail"
        return
    assert result.case["services_section"] == [result.service]
    plan = flow1.plan_upsert(existing, result)
    assert plan.action in ("create", "update")
    assert "case_id" not in plan.body or plan.action == "create"


@SETTINGS
@given(cases)
def test_qualifying_decisions_never_raise(case) -> None:
    for result in flow2.qualifying_decisions(case, PROFILE):
        assert result.ok == (result.message is not None)
        if not result.ok:
            assert_typed(result.error)


@SETTINGS
@given(cases, referrals, st.dictionaries(st.text(max_size=6), json_values, max_size=3),
       st.none() | st.just(datetime(2021, 1, 1, tzinfo=UTC)))
def test_referral_messages_never_raise(case, referral_list, users, since) -> None:
    flow3.unhcr_services(case, PROFILE)
    flow3.users_needed(case)
    for result in flow3.referral_messages(case, referral_list, users, PROFILE, since=since):
        assert result.ok == (result.message is not None)
        if not result.ok:
            assert_typed(result.error)


decision_items = st.dictionaries(
    st.sampled_from([flow4.F_ORG_REFERRAL_ID, flow4.F_DECISION, flow4.F_REASON, *flow4.F_COMMENTS]),
    json_values,
    max_size=4,
) | json_values


@SETTINGS
@given(st.builds(lambda items, rt: {"interventions": items, **rt},
                 st.lists(decision_items, max_size=3) | json_values,
                 st.sampled_from([{}, {"request_type": "PrimeroIncomingReferralDecision"}]))
       | json_values,
       referrals, st.text(max_size=14) | json_values)
def test_decision_transforms_never_raise(payload, referral_list, service_key) -> None:
    decisions = flow4.read_decisions(payload, PROFILE)
    if isinstance(decisions, MappingError):
        assert_typed(decisions)
        return
    for decision in decisions:
        if isinstance(decision, MappingError):
            assert_typed(decision)
            continue
        selected = flow4.select_referral(referral_list, service_key,
                                         known_service_unique_id=decision.service_key)
        if isinstance(selected, MappingError):
            assert_typed(selected)
        else:
            assert flow4.referral_patch(decision)["status"] in (
                "accepted", "rejected")
