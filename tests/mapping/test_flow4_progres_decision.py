"""Flow 4: proGres decisions become Primero referral patches. Expected values from MAPPING.md."""

from __future__ import annotations

import pytest

from primero_progres.mapping import progres_decision as flow4
from primero_progres.mapping.errors import MappingError

ORG_ID = "f59e880e-d58f-4b68-ba6e-e0616a49aefd#eb097be51d89"


def message(**fields) -> dict:
    return {"request_type": "PrimeroIncomingReferralDecision",
            "interventions": [{"progres_orgreferralid": ORG_ID, **fields}]}


def test_reference_acceptance(sample, gambella) -> None:
    [decision] = flow4.read_decisions(sample("progresDecision__flow2-3.json"), gambella)
    assert decision == flow4.ProgresDecision(
        org_referral_id=ORG_ID,
        case_id="f59e880e-d58f-4b68-ba6e-e0616a49aefd",
        service_key="eb097be51d89",
        status="accepted",
        rejected_reason=None,
    )


def test_reference_referrals_resolve_and_patch(sample, gambella) -> None:
    [decision] = flow4.read_decisions(sample("progresDecision__flow2-3.json"), gambella)
    referrals = sample("getPrimeroReferral.json")["data"]
    selected = flow4.select_referral(referrals, decision.service_key)
    assert selected["id"] == "1e5be7bd-7357-4790-a880-ccaca3f47b5a"
    assert flow4.referral_patch(decision) == {"status": "accepted"}


def test_old_decision_sample_is_not_a_decision_message(sample, gambella) -> None:
    """flow2_progresDecision.json says request_type "decision"."""
    error = flow4.read_decisions(sample("flow2_progresDecision.json"), gambella)
    assert isinstance(error, MappingError)
    assert (error.kind, error.fields) == ("invalid_data", ("request_type",))


def test_placeholder_decision_sample_is_invalid(sample, gambella) -> None:
    """progres_referralDecisionToPrimero.json: org id "string", decision 125080003."""
    [error] = flow4.read_decisions(sample("progres_referralDecisionToPrimero.json"), gambella)
    assert (error.kind, error.fields) == ("invalid_data", ("progres_orgreferralid",))
    fixed = sample("progres_referralDecisionToPrimero.json")
    fixed["interventions"][0]["progres_orgreferralid"] = ORG_ID
    [error] = flow4.read_decisions(fixed, gambella)
    assert (error.kind, error.fields) == ("invalid_data", ("progres_reviewdecision",))


@pytest.mark.parametrize(
    ("fields", "status", "reason"),
    [
        ({"progres_reviewdecision": "125080001",
          "progres_interoperabiltyreferralrejectionreason": "125080000",
          "progres_interoperabilityreferralrejectionomment": "not in camp"},
         "rejected", "Individual Not Found: not in camp"),
        ({"progres_reviewdecision": "125080001",
          "progres_interoperabiltyreferralrejectionreason": "125080001",
          "progres_interoperabilityreferralrejectioncomment": "other id"},
         "rejected", "Individual Not Match UNHCR ID: other id"),
        ({"progres_reviewdecision": "rejected",
          "progres_interoperabiltyreferralrejectionreason": "125080002"},
         "rejected", "Not applicable"),
        ({"progres_reviewdecision": "125080001",
          "progres_interoperabiltyreferralrejectionreason": "sample reason",
          "progres_interoperabilityreferralrejectioncomment": "sample comments"},
         "rejected", "sample reason: sample comments"),
        ({"progres_reviewdecision": "accepted"}, "accepted", None),
        ({"progres_reviewdecision": 125080000}, "accepted", None),
    ],
)
def test_statuses_and_reasons(gambella, fields, status, reason) -> None:
    [decision] = flow4.read_decisions({"data": message(**fields)}, gambella)
    assert (decision.status, decision.rejected_reason) == (status, reason)
    patch = flow4.referral_patch(decision)
    expected = {"status": status}
    if reason is not None:
        expected["rejected_reason"] = reason
    assert patch == expected


@pytest.mark.parametrize(
    ("item", "kind", "fields"),
    [
        ({"progres_reviewdecision": "125080000"}, "missing_fields", ("progres_orgreferralid",)),
        ({"progres_orgreferralid": ORG_ID}, "missing_fields", ("progres_reviewdecision",)),
        ({"progres_orgreferralid": ORG_ID, "progres_reviewdecision": "maybe"}, "invalid_data",
         ("progres_reviewdecision",)),
        ({"progres_orgreferralid": ORG_ID, "progres_reviewdecision": "accepted",
          "progres_interoperabiltyreferralrejectionreason": ["x"]}, "invalid_data",
         ("progres_interoperabiltyreferralrejectionreason",)),
        ("not an object", "invalid_data", ()),
    ],
)
def test_bad_decisions(gambella, item, kind, fields) -> None:
    [error] = flow4.read_decisions({"interventions": [item]}, gambella)
    assert (error.kind, error.fields) == (kind, fields)


@pytest.mark.parametrize(
    ("payload", "kind"),
    [([], "unreadable"), (None, "unreadable"), ({"request_type": "x"}, "invalid_data"),
     ({}, "missing_fields"), ({"interventions": "x"}, "invalid_data")],
)
def test_unusable_messages(gambella, payload, kind) -> None:
    assert flow4.read_decisions(payload, gambella).kind == kind


@pytest.mark.parametrize(
    ("value", "expected"),
    [(ORG_ID, ("f59e880e-d58f-4b68-ba6e-e0616a49aefd", "eb097be51d89")),
     ("c#full-service-id", ("c", "full-service-id"))],
)
def test_split(value, expected) -> None:
    assert flow4.split_org_referral_id(value) == expected


@pytest.mark.parametrize("value", ["string", "#abc", "abc#", "a#b#c", 3, None])
def test_split_rejects(value) -> None:
    error = flow4.split_org_referral_id(value)
    assert (error.kind, error.fields) == ("invalid_data", ("progres_orgreferralid",))


FULL = "5c2d4f6c-7a78-43b5-ac40-eb097be51d89"


def ref(rid: str, service: str, status: str = "in_progress", created: str = "2021-01-01") -> dict:
    return {"id": rid, "service_record_id": service, "status": status, "created_at": created}


def test_known_service_wins_over_suffix() -> None:
    referrals = [ref("a", "0000-0000-eb097be51d89"), ref("b", FULL)]
    chosen = flow4.select_referral(referrals, "eb097be51d89", known_service_unique_id=FULL)
    assert chosen["id"] == "b"


def test_exact_full_id_before_suffix() -> None:
    referrals = [ref("a", "x" + FULL), ref("b", FULL)]
    assert flow4.select_referral(referrals, FULL)["id"] == "b"


def test_suffix_collision_is_ambiguous() -> None:
    referrals = [ref("a", "0000-0000-eb097be51d89"), ref("b", FULL)]
    error = flow4.select_referral(referrals, "eb097be51d89")
    assert error.kind == "ambiguous_referral"


def test_same_service_prefers_the_open_referral() -> None:
    referrals = [ref("old", FULL, "in_progress", "2021-01-01"),
                 ref("revoked", FULL, "revoked", "2021-06-01")]
    assert flow4.select_referral(referrals, "eb097be51d89")["id"] == "old"


@pytest.mark.parametrize("referrals", [[], [ref("a", "")], [ref("a", "other")], "x", [None]])
def test_no_match_is_unknown_referral(referrals) -> None:
    assert flow4.select_referral(referrals, "eb097be51d89").kind == "unknown_referral"
