"""The Primero simulator over real loopback HTTP, one behaviour of PRIMERO-API.md per test."""

from __future__ import annotations

import concurrent.futures
import re
import time
from typing import Any

import httpx2 as httpx

from primero_progres.sim.common import serve_in_thread
from primero_progres.sim.primero import create_app

PRIMERO_SIM_USER = "primero"
PRIMERO_SIM_PASSWORD = "primero-secret"
PrimeroSim = Any

TIMESTAMP = re.compile(r"\A\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z\Z")
UUID = re.compile(r"\A[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")
CP = "primeromodule-cp"
WWW = 'Bearer realm="Primero" charset="UTF8"'


def create(api: httpx.Client, **data: Any) -> dict[str, Any]:
    response = api.post("/cases", json={"data": {"module_id": CP, **data}})
    assert response.status_code == 200, response.text
    return response.json()["data"]


def ids_of(response: httpx.Response) -> set[str]:
    return {case["id"] for case in response.json()["data"]}


# ---------------------------------------------------------------- authentication


def test_missing_credentials_answer_devise_401_with_bearer_challenge(
    primero_sim: PrimeroSim,
) -> None:
    response = httpx.get(primero_sim.url + "/api/v2/cases")
    assert response.status_code == 401
    assert response.json() == {"error": "You need to sign in or sign up before continuing."}
    assert response.headers["WWW-Authenticate"] == WWW


def test_wrong_basic_password_answers_invalid_credentials(primero_sim: PrimeroSim) -> None:
    response = httpx.get(primero_sim.url + "/api/v2/cases", auth=(PRIMERO_SIM_USER, "wrong"))
    assert response.status_code == 401
    assert response.json() == {"error": "Invalid User name or password."}
    assert response.headers["WWW-Authenticate"] == WWW


def test_six_failed_attempts_lock_the_account(primero_sim: PrimeroSim) -> None:
    for _ in range(6):
        httpx.get(primero_sim.url + "/api/v2/cases", auth=(PRIMERO_SIM_USER, "wrong"))
    response = httpx.get(
        primero_sim.url + "/api/v2/cases", auth=(PRIMERO_SIM_USER, PRIMERO_SIM_PASSWORD)
    )
    assert response.status_code == 401
    assert response.json() == {"error": "Your account is locked."}


def test_token_login_jwt_era_returns_token_in_body_and_header(primero_sim: PrimeroSim) -> None:
    body = {"user": {"user_name": PRIMERO_SIM_USER, "password": PRIMERO_SIM_PASSWORD}}
    response = httpx.post(primero_sim.url + "/api/v2/tokens", json=body)
    assert response.status_code == 200
    answer = response.json()
    assert set(answer) == {"id", "user_name", "token"}
    assert answer["user_name"] == PRIMERO_SIM_USER
    assert isinstance(answer["id"], int)
    assert answer["token"].count(".") == 2
    assert response.headers["Authorization"] == f"Bearer {answer['token']}"
    bearer = {"Authorization": f"Bearer {answer['token']}"}
    assert httpx.get(primero_sim.url + "/api/v2/cases", headers=bearer).status_code == 200
    assert httpx.delete(primero_sim.url + "/api/v2/tokens", headers=bearer).json() == {}
    revoked = httpx.get(primero_sim.url + "/api/v2/cases", headers=bearer)
    assert revoked.status_code == 401
    assert revoked.headers["WWW-Authenticate"] == WWW


def test_token_login_with_wrong_password_is_401(primero_sim: PrimeroSim) -> None:
    body = {"user": {"user_name": PRIMERO_SIM_USER, "password": "nope"}}
    response = httpx.post(primero_sim.url + "/api/v2/tokens", json=body)
    assert response.status_code == 401
    assert response.json() == {"error": "Invalid User name or password."}


def test_token_login_is_throttled_after_six_a_minute(primero_sim: PrimeroSim) -> None:
    body = {"user": {"user_name": PRIMERO_SIM_USER, "password": PRIMERO_SIM_PASSWORD}}
    statuses = [
        httpx.post(primero_sim.url + "/api/v2/tokens", json=body).status_code for _ in range(7)
    ]
    assert statuses == [200] * 6 + [429]


def test_session_era_login_returns_no_token() -> None:
    app = create_app(users={"u": "p"}, token_login=False)
    with serve_in_thread(app) as server:
        body = {"user": {"user_name": "u", "password": "p"}}
        answer = httpx.post(server.url + "/api/v2/tokens", json=body).json()
    assert set(answer) == {"id", "user_name"}


# ---------------------------------------------------------------- create


def test_create_generates_two_uuids_and_derived_ids(api: httpx.Client) -> None:
    case = create(api, name="A", services_section=[{"service_type": "food"}])
    assert UUID.match(case["id"]) and UUID.match(case["case_id"])
    assert case["id"] != case["case_id"]
    assert case["short_id"] == case["case_id"][-7:]
    assert case["case_id_display"] == case["short_id"]
    assert UUID.match(case["services_section"][0]["unique_id"])
    assert TIMESTAMP.match(case["created_at"]) and TIMESTAMP.match(case["last_updated_at"])
    assert case["status"] == "open" and case["record_state"] is True and case["enabled"] is True
    assert case["owned_by"] == PRIMERO_SIM_USER and case["created_by"] == PRIMERO_SIM_USER
    assert case["notes_section"] == []
    assert case["associated_user_names"] == [PRIMERO_SIM_USER]


def test_create_without_module_id_drops_form_fields(api: httpx.Client) -> None:
    response = api.post("/cases", json={"data": {"name": "A", "owned_by": "fp"}})
    case = response.json()["data"]
    assert "name" not in case
    assert case["owned_by"] == "fp"


def test_create_with_unknown_module_id_is_422(api: httpx.Client) -> None:
    response = api.post("/cases", json={"data": {"module_id": "primeromodule-x"}})
    assert response.status_code == 422
    assert response.json()["errors"][0]["detail"] == ["/module_id"]


def test_create_with_client_id_answers_204_and_duplicate_id_409(api: httpx.Client) -> None:
    record_id = "0b6f1a3c-1111-4222-8333-444455556666"
    first = api.post("/cases", json={"data": {"module_id": CP, "id": record_id}})
    assert first.status_code == 204 and first.content == b""
    assert api.get(f"/cases/{record_id}").json()["data"]["id"] == record_id
    again = api.post("/cases", json={"data": {"module_id": CP, "id": record_id}})
    assert again.status_code == 409


def test_duplicate_case_id_is_409_in_the_error_envelope(api: httpx.Client) -> None:
    case_id = "f59e880e-d58f-4b68-ba6e-e0616a49aefd"
    create(api, case_id=case_id)
    response = api.post("/cases", json={"data": {"module_id": CP, "case_id": case_id}})
    assert response.status_code == 409
    assert response.json() == {
        "errors": [
            {
                "status": 409,
                "resource": "/api/v2/cases",
                "message": "Conflict: A record with this id already exists",
            }
        ]
    }


def test_create_without_data_is_422(api: httpx.Client) -> None:
    response = api.post("/cases", json={"module_id": CP})
    assert response.status_code == 422
    assert response.json()["errors"][0]["status"] == 422


def test_subform_row_with_malformed_unique_id_is_422(api: httpx.Client) -> None:
    response = api.post(
        "/cases",
        json={"data": {"module_id": CP, "services_section": [{"unique_id": "NOT-A-UUID"}]}},
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["detail"] == ["/services_section/0/unique_id"]


# ---------------------------------------------------------------- show


def test_get_by_case_id_instead_of_primary_key_is_404(api: httpx.Client) -> None:
    case = create(api)
    response = api.get(f"/cases/{case['case_id']}")
    assert response.status_code == 404
    error = response.json()["errors"][0]
    assert error["status"] == 404 and error["message"] == "Not Found"
    assert error["resource"] == f"/api/v2/cases/{case['case_id']}"
    assert api.get(f"/cases/{case['id']}").json()["data"]["case_id"] == case["case_id"]


def test_unknown_route_is_404_envelope(api: httpx.Client) -> None:
    response = api.get("/nothing-here")
    assert response.status_code == 404
    assert response.json()["errors"][0]["message"] == "Not Found"


# ---------------------------------------------------------------- index


def test_index_envelope_defaults_to_20_per_page(api: httpx.Client, sim: httpx.Client) -> None:
    sim.post("/seed", json={"cases": [{"module_id": CP} for _ in range(25)]})
    first = api.get("/cases").json()
    assert first["metadata"] == {"total": 25, "per": 20, "page": 1}
    assert len(first["data"]) == 20
    second = api.get("/cases", params={"page": 2}).json()
    assert len(second["data"]) == 5
    assert ids_of_list(first["data"]).isdisjoint(ids_of_list(second["data"]))


def ids_of_list(cases: list[dict[str, Any]]) -> set[str]:
    return {case["id"] for case in cases}


def test_index_caps_per_at_1000(api: httpx.Client, sim: httpx.Client) -> None:
    sim.post("/seed", json={"cases": [{"module_id": CP} for _ in range(1003)]})
    answer = api.get("/cases", params={"per": 5000}).json()
    assert answer["metadata"] == {"total": 1003, "per": 1000, "page": 1}
    assert len(answer["data"]) == 1000


def test_index_without_cap_reproduces_v2_10() -> None:
    app = create_app(users={"u": "p"}, max_per=None)
    app.state.primero.seed({"cases": [{"module_id": CP} for _ in range(1003)]})
    with serve_in_thread(app) as server:
        answer = httpx.get(server.url + "/api/v2/cases?per=5000", auth=("u", "p")).json()
    assert answer["metadata"]["per"] == 5000 and len(answer["data"]) == 1003


def test_index_sorts_created_at_desc_by_default_and_honours_order(
    api: httpx.Client, sim: httpx.Client
) -> None:
    sim.post(
        "/seed",
        json={
            "cases": [
                {
                    "id": f"00000000-0000-4000-8000-00000000000{n}",
                    "created_at": stamp,
                    "last_updated_at": updated,
                }
                for n, stamp, updated in [
                    (1, "2024-01-02T00:00:00.000Z", "2024-03-01T00:00:00.000Z"),
                    (2, "2024-01-03T00:00:00.000Z", "2024-02-01T00:00:00.000Z"),
                    (3, "2024-01-01T00:00:00.000Z", "2024-04-01T00:00:00.000Z"),
                ]
            ]
        },
    )
    default = [c["id"][-1] for c in api.get("/cases").json()["data"]]
    assert default == ["2", "1", "3"]
    ascending = api.get("/cases", params={"order_by": "last_updated_at", "order": "asc"})
    assert [c["id"][-1] for c in ascending.json()["data"]] == ["2", "1", "3"]
    descending = api.get("/cases", params={"order_by": "last_updated_at", "order": "desc"})
    assert [c["id"][-1] for c in descending.json()["data"]] == ["3", "1", "2"]


def test_id_field_filter_is_exact_and_case_sensitive(api: httpx.Client) -> None:
    wanted = create(api, unhcr_individual_no="ETH-123")
    create(api, unhcr_individual_no="ETH-1234")
    create(api, unhcr_individual_no="eth-123")
    assert ids_of(api.get("/cases", params={"unhcr_individual_no": "ETH-123"})) == {wanted["id"]}
    assert ids_of(api.get("/cases", params={"unhcr_individual_no": "ETH-123,eth-123"})) == set()


def test_filter_on_unreadable_field_is_silently_dropped(
    primero_sim: PrimeroSim, api: httpx.Client, sim: httpx.Client
) -> None:
    create(api, unhcr_individual_no="A-1")
    create(api, unhcr_individual_no="A-2")
    sim.put("/readable-fields", json={"fields": ["case_id", "last_updated_at"]})
    response = api.get("/cases", params={"unhcr_individual_no": "A-1"})
    assert response.status_code == 200
    assert response.json()["metadata"]["total"] == 2


def test_misspelled_and_remote_filters_are_silently_dropped(api: httpx.Client) -> None:
    create(api, unhcr_individual_no="A-1")
    create(api, unhcr_individual_no="A-2")
    response = api.get("/cases", params={"unhcr_individual_nr": "A-1", "remote": "true"})
    assert response.json()["metadata"]["total"] == 2


def seed_updated(sim: httpx.Client, stamps: list[str]) -> list[str]:
    cases = [{"module_id": CP, "last_updated_at": stamp} for stamp in stamps]
    sim.post("/seed", json={"cases": cases})
    by_stamp = {c["last_updated_at"]: c["id"] for c in sim.get("/cases").json()}
    return [by_stamp[stamp] for stamp in stamps]


def test_open_range_is_inclusive_at_one_second_granularity(
    api: httpx.Client, sim: httpx.Client
) -> None:
    before, same_second, after = seed_updated(
        sim, ["2024-05-01T10:00:09.999Z", "2024-05-01T10:00:10.001Z", "2024-05-01T10:00:11.500Z"]
    )
    found = ids_of(api.get("/cases", params={"last_updated_at": "2024-05-01T10:00:10.900Z.."}))
    assert found == {same_second, after}
    assert before not in found


def test_closed_range_is_inclusive_on_both_ends(api: httpx.Client, sim: httpx.Client) -> None:
    first, middle, last = seed_updated(
        sim, ["2024-05-01T10:00:00.500Z", "2024-05-01T11:00:00.000Z", "2024-05-01T12:00:00.700Z"]
    )
    value = "2024-05-01T10:00:00Z..2024-05-01T11:00:00Z"
    assert ids_of(api.get("/cases", params={"last_updated_at": value})) == {first, middle}
    assert last not in ids_of(api.get("/cases", params={"last_updated_at": value}))


def test_open_lower_range_is_silently_dropped(api: httpx.Client, sim: httpx.Client) -> None:
    seed_updated(sim, ["2024-05-01T10:00:00.000Z", "2030-01-01T00:00:00.000Z"])
    response = api.get("/cases", params={"last_updated_at": "..2025-01-01T00:00:00Z"})
    assert response.json()["metadata"]["total"] == 2


def test_created_at_open_range(api: httpx.Client, sim: httpx.Client) -> None:
    sim.post(
        "/seed",
        json={
            "cases": [
                {"created_at": "2020-01-01T00:00:00.000Z"},
                {"created_at": "2022-01-01T00:00:00.000Z"},
            ]
        },
    )
    response = api.get("/cases", params={"created_at": "2021-01-01.."})
    assert [c["created_at"] for c in response.json()["data"]] == ["2022-01-01T00:00:00.000Z"]


def test_associated_user_names_indexed_params_match_on_overlap(
    api: httpx.Client, sim: httpx.Client
) -> None:
    sim.post(
        "/seed",
        json={
            "cases": [
                {"id": "00000000-0000-4000-8000-000000000001", "owned_by": "a"},
                {
                    "id": "00000000-0000-4000-8000-000000000002",
                    "owned_by": "b",
                    "assigned_user_names": ["unhcr_cw"],
                },
                {"id": "00000000-0000-4000-8000-000000000003", "owned_by": "c"},
            ]
        },
    )
    found = ids_of(api.get("/cases?associated_user_names[0]=a&associated_user_names[1]=unhcr_cw"))
    assert {i[-1] for i in found} == {"1", "2"}
    dropped = api.get("/cases?associated_user_names[]=a")
    assert dropped.json()["metadata"]["total"] == 3


def test_comma_list_and_destringified_values(api: httpx.Client) -> None:
    create(api, sex="female", age=13)
    create(api, sex="male", age=15)
    create(api, sex="other", age=17)
    assert api.get("/cases", params={"sex": "female,male"}).json()["metadata"]["total"] == 2
    assert api.get("/cases", params={"age": "15"}).json()["metadata"]["total"] == 1
    assert api.get("/cases", params={"age": "14..17"}).json()["metadata"]["total"] == 2


def test_id_param_filters_by_primary_key_list(api: httpx.Client) -> None:
    one, two, _ = create(api), create(api), create(api)
    assert ids_of(api.get("/cases", params={"id": f"{one['id']},{two['id']}"})) == {
        one["id"],
        two["id"],
    }


# ---------------------------------------------------------------- PATCH merge


def test_patch_merges_rows_by_unique_id_and_appends_new_rows(api: httpx.Client) -> None:
    row_a, row_b = "aaaaaaaa-0000-4000-8000-000000000001", "bbbbbbbb-0000-4000-8000-000000000002"
    case = create(
        api,
        services_section=[
            {"unique_id": row_a, "service_type": "food", "note": "x"},
            {"unique_id": row_b, "service_type": "shelter"},
        ],
    )
    row_c = "cccccccc-0000-4000-8000-000000000003"
    response = api.patch(
        f"/cases/{case['id']}",
        json={
            "data": {
                "services_section": [
                    {"unique_id": row_b, "service_type": "health"},
                    {"unique_id": row_c, "service_type": "legal"},
                    {"service_type": "education"},
                ]
            }
        },
    )
    rows = response.json()["data"]["services_section"]
    assert [r["service_type"] for r in rows] == ["food", "health", "legal", "education"]
    assert rows[0] == {"unique_id": row_a, "service_type": "food", "note": "x"}
    assert rows[2]["unique_id"] == row_c
    assert UUID.match(rows[3]["unique_id"])


def test_patch_destroy_removes_a_row(api: httpx.Client) -> None:
    row_a, row_b = "aaaaaaaa-0000-4000-8000-000000000001", "bbbbbbbb-0000-4000-8000-000000000002"
    case = create(api, services_section=[{"unique_id": row_a}, {"unique_id": row_b}])
    api.patch(
        f"/cases/{case['id']}",
        json={"data": {"services_section": [{"unique_id": row_a, "_destroy": True}]}},
    )
    rows = api.get(f"/cases/{case['id']}").json()["data"]["services_section"]
    assert [r["unique_id"] for r in rows] == [row_b]


def test_patch_empty_subform_array_is_a_no_op(api: httpx.Client) -> None:
    row_a = "aaaaaaaa-0000-4000-8000-000000000001"
    case = create(api, services_section=[{"unique_id": row_a}])
    response = api.patch(f"/cases/{case['id']}", json={"data": {"services_section": []}})
    assert "services_section" not in response.json()["data"]
    rows = api.get(f"/cases/{case['id']}").json()["data"]["services_section"]
    assert [r["unique_id"] for r in rows] == [row_a]


def test_patch_replaces_scalar_arrays_and_keeps_omitted_keys(api: httpx.Client) -> None:
    case = create(api, protection_concerns=["a", "b"], name="N", nickname="K")
    api.patch(
        f"/cases/{case['id']}",
        json={"data": {"protection_concerns": ["c"], "nickname": None}},
    )
    stored = api.get(f"/cases/{case['id']}").json()["data"]
    assert stored["protection_concerns"] == ["c"]
    assert stored["name"] == "N"
    assert "nickname" in stored and stored["nickname"] is None


def test_patch_drops_forbidden_fields(api: httpx.Client) -> None:
    case = create(api)
    forged = {
        "id": "00000000-0000-4000-8000-000000000009",
        "case_id": "00000000-0000-4000-8000-00000000000a",
        "short_id": "zzzzzzz",
        "case_id_display": "zzzzzzz",
        "unique_identifier": "x",
        "created_at": "2000-01-01T00:00:00.000Z",
        "created_by": "intruder",
        "age": 9,
    }
    response = api.patch(f"/cases/{case['id']}", json={"data": forged})
    assert response.status_code == 200
    stored = api.get(f"/cases/{case['id']}").json()["data"]
    for key in ("id", "case_id", "short_id", "case_id_display", "created_at", "created_by"):
        assert stored[key] == case[key]
    assert stored["age"] == 9


def test_patch_answers_changed_fields_and_moves_last_updated_at(api: httpx.Client) -> None:
    case = create(api, name="N", age=3)
    response = api.patch(f"/cases/{case['id']}", json={"data": {"age": 4, "name": "N"}})
    data = response.json()["data"]
    assert set(data) == {"id", "enabled", "last_updated_at", "age"}
    assert data["last_updated_at"] > case["last_updated_at"]
    assert TIMESTAMP.match(data["last_updated_at"])


def test_patch_unknown_case_is_404(api: httpx.Client) -> None:
    response = api.patch("/cases/00000000-0000-4000-8000-000000000000", json={"data": {}})
    assert response.status_code == 404


# ---------------------------------------------------------------- referrals


def referable(api: httpx.Client, sim: httpx.Client) -> tuple[dict[str, Any], str]:
    sim.post("/seed", json={"users": [{"user_name": "unhcr_cw", "full_name": "CW"}]})
    row = "aaaaaaaa-0000-4000-8000-000000000001"
    case = create(
        api,
        consent_for_services=True,
        disclosure_other_orgs=True,
        services_section=[{"unique_id": row, "service_type": "food"}],
    )
    return case, row


def test_referral_needs_consent_or_override(api: httpx.Client, sim: httpx.Client) -> None:
    sim.post("/seed", json={"users": [{"user_name": "unhcr_cw"}]})
    case = create(api)
    refused = api.post(
        f"/cases/{case['id']}/referrals", json={"data": {"transitioned_to": "unhcr_cw"}}
    )
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["detail"] == "consent"
    assert refused.json()["errors"][0]["message"] == ["transition.errors.consent"]
    allowed = api.post(
        f"/cases/{case['id']}/referrals",
        json={"data": {"transitioned_to": "unhcr_cw", "consent_overridden": True}},
    )
    assert allowed.status_code == 200


def test_referral_to_unknown_user_is_422_on_transitioned_to(
    api: httpx.Client, sim: httpx.Client
) -> None:
    case, _ = referable(api, sim)
    response = api.post(
        f"/cases/{case['id']}/referrals", json={"data": {"transitioned_to": "ghost"}}
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["detail"] == "transitioned_to"
    assert response.json()["errors"][0]["message"] == ["transition.errors.to_user_can_receive"]


def test_referral_create_assigns_user_and_marks_service_row(
    api: httpx.Client, sim: httpx.Client
) -> None:
    case, row = referable(api, sim)
    response = api.post(
        f"/cases/{case['id']}/referrals",
        json={"data": {"transitioned_to": "unhcr_cw", "service_record_id": row, "status": "done"}},
    )
    referral = response.json()["data"]
    assert referral["status"] == "in_progress"
    assert referral["record_type"] == "case" and referral["type"] == "Referral"
    assert referral["record_id"] == case["id"]
    assert referral["transitioned_by"] == PRIMERO_SIM_USER
    assert referral["record"]["id"] == case["id"]
    stored = api.get(f"/cases/{case['id']}").json()["data"]
    assert "unhcr_cw" in stored["associated_user_names"]
    assert stored["assigned_user_names"] == ["unhcr_cw"]
    assert stored["services_section"][0]["service_status_referred"] is True
    assert stored["last_updated_at"] > case["last_updated_at"]
    listed = api.get(f"/cases/{case['id']}/referrals").json()
    assert set(listed) == {"data"}
    assert [r["id"] for r in listed["data"]] == [referral["id"]]
    assert "rejected_reason" not in listed["data"][0]  # nils are stripped


def make_referral(api: httpx.Client, sim: httpx.Client) -> tuple[dict[str, Any], str, str]:
    case, row = referable(api, sim)
    referral = api.post(
        f"/cases/{case['id']}/referrals",
        json={"data": {"transitioned_to": "unhcr_cw", "service_record_id": row}},
    ).json()["data"]
    return case, row, referral["id"]


def set_status(api: httpx.Client, case_id: str, referral_id: str, **data: Any) -> httpx.Response:
    return api.patch(f"/cases/{case_id}/referrals/{referral_id}", json={"data": data})


def test_illegal_referral_transition_is_a_200_no_op(api: httpx.Client, sim: httpx.Client) -> None:
    case, _, referral_id = make_referral(api, sim)
    before = api.get(f"/cases/{case['id']}").json()["data"]["last_updated_at"]
    response = set_status(api, case["id"], referral_id, status="done")
    assert response.status_code == 200
    assert response.json()["data"]["status"] == "in_progress"
    assert api.get(f"/cases/{case['id']}").json()["data"]["last_updated_at"] == before
    unknown = set_status(api, case["id"], referral_id, status="teleported")
    assert unknown.status_code == 200 and unknown.json()["data"]["status"] == "in_progress"


def test_accept_then_done_marks_the_service_implemented(
    api: httpx.Client, sim: httpx.Client
) -> None:
    case, _, referral_id = make_referral(api, sim)
    before = api.get(f"/cases/{case['id']}").json()["data"]["last_updated_at"]
    accepted = set_status(api, case["id"], referral_id, status="accepted").json()["data"]
    assert accepted["status"] == "accepted" and TIMESTAMP.match(accepted["responded_at"])
    assert accepted["record"]["last_updated_at"] > before
    again = set_status(api, case["id"], referral_id, status="rejected").json()["data"]
    assert again["status"] == "accepted"
    done = set_status(api, case["id"], referral_id, status="done", rejection_note="closed")
    assert done.json()["data"]["status"] == "done"
    row = api.get(f"/cases/{case['id']}").json()["data"]["services_section"][0]
    assert row["service_implemented"] == "implemented"
    assert TIMESTAMP.match(row["service_implemented_day_time"])
    assert row["note_on_referral_from_provider"] == "closed"


def test_reject_records_reason_and_releases_the_user(api: httpx.Client, sim: httpx.Client) -> None:
    case, _, referral_id = make_referral(api, sim)
    rejected = set_status(
        api, case["id"], referral_id, status="rejected", rejected_reason="not_eligible"
    ).json()["data"]
    assert rejected["status"] == "rejected" and rejected["rejected_reason"] == "not_eligible"
    stored = api.get(f"/cases/{case['id']}").json()["data"]
    assert "unhcr_cw" not in stored["associated_user_names"]


def test_unknown_referral_is_404(api: httpx.Client) -> None:
    case = create(api)
    response = set_status(
        api, case["id"], "00000000-0000-4000-8000-000000000000", status="accepted"
    )
    assert response.status_code == 404


def test_delete_revokes_a_referral(api: httpx.Client, sim: httpx.Client) -> None:
    case, _, referral_id = make_referral(api, sim)
    response = api.delete(f"/cases/{case['id']}/referrals/{referral_id}")
    assert response.json()["data"]["status"] == "revoked"


# ---------------------------------------------------------------- users


def test_users_filter_by_exact_user_name(api: httpx.Client, sim: httpx.Client) -> None:
    sim.post(
        "/seed",
        json={
            "users": [
                {
                    "user_name": "unhcr_cw",
                    "full_name": "C W",
                    "email": "cw@example.org",
                    "phone": "+251",
                    "position": "Caseworker",
                    "password": "secret",
                },
                {"user_name": "unhcr_cw2", "full_name": "Other"},
            ]
        },
    )
    answer = api.get("/users", params={"user_name": "unhcr_cw"}).json()
    assert answer["metadata"] == {"total": 1, "per": 20, "page": 1, "total_enabled": 1}
    user = answer["data"][0]
    assert user["user_name"] == "unhcr_cw" and isinstance(user["id"], int)
    assert user["email"] == "cw@example.org" and user["position"] == "Caseworker"
    assert "password" not in user
    assert api.get(f"/users/{user['id']}").json()["data"]["user_name"] == "unhcr_cw"
    assert api.get("/users", params={"user_name": "unhcr"}).json()["data"] == []


def test_seeded_user_with_password_can_authenticate(
    primero_sim: PrimeroSim, sim: httpx.Client
) -> None:
    sim.post("/seed", json={"users": [{"user_name": "fp", "password": "fp-pass"}]})
    response = httpx.get(primero_sim.url + "/api/v2/cases", auth=("fp", "fp-pass"))
    assert response.status_code == 200


# ---------------------------------------------------------------- /_sim


def test_journal_records_requests_without_bodies(api: httpx.Client, sim: httpx.Client) -> None:
    create(api, name="Secret Name")
    api.get("/cases", params={"per": 5})
    journal = sim.get("/journal").json()
    assert journal == [
        {"method": "POST", "path": "/api/v2/cases", "query": "", "status": 200},
        {"method": "GET", "path": "/api/v2/cases", "query": "per=5", "status": 200},
    ]


def test_faults_are_answered_and_journalled(api: httpx.Client, sim: httpx.Client) -> None:
    sim.put(
        "/faults", json=[{"path": "/api/v2/cases", "status": 503, "retry_after": 60, "times": 1}]
    )
    failed = api.get("/cases")
    assert failed.status_code == 503 and failed.headers["Retry-After"] == "60"
    assert api.get("/cases").status_code == 200
    assert [e["status"] for e in sim.get("/journal").json()] == [503, 200]


def test_requests_held_together_go_on_once_all_have_arrived(
    api: httpx.Client, sim: httpx.Client
) -> None:
    """``together``: a race made certain (both listings answer before either goes on)."""
    sim.put(
        "/faults", json=[{"method": "GET", "path": "/api/v2/cases", "rate": 0.0, "together": 2}]
    )
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        first = pool.submit(api.get, "/cases")
        # journalled (the outermost layer) but not answered: held for the second
        held = _wait_for(lambda: sim.get("/journal").json())
        assert [e["status"] for e in held] == [None]
        assert api.get("/cases").status_code == 200
        assert first.result(timeout=30).status_code == 200
    assert api.get("/cases").status_code == 200  # a later one is not held
    assert [e["status"] for e in sim.get("/journal").json()] == [200, 200, 200]


def _wait_for(check: Any) -> Any:
    deadline = time.monotonic() + 30
    while not (found := check()):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return found


def test_reset_empties_everything(api: httpx.Client, sim: httpx.Client) -> None:
    create(api)
    sim.post("/reset")
    assert sim.get("/cases").json() == []
    assert sim.get("/journal").json() == []
    assert api.get("/cases").status_code == 200


def test_seed_keeps_given_values_and_fills_server_fields(sim: httpx.Client) -> None:
    counts = sim.post(
        "/seed",
        json={
            "cases": [
                {
                    "case_id": "f59e880e-d58f-4b68-ba6e-e0616a49aefd",
                    "owned_by": "fp",
                    "services_section": [{"service_type": "food"}],
                }
            ]
        },
    ).json()
    assert counts["cases"] == 1
    case = sim.get("/cases").json()[0]
    assert case["short_id"] == "a49aefd"
    assert UUID.match(case["id"]) and case["associated_user_names"] == ["fp"]
    assert UUID.match(case["services_section"][0]["unique_id"])


def test_action_decide_service_sets_decision_and_moves_time(
    api: httpx.Client, sim: httpx.Client
) -> None:
    row = "aaaaaaaa-0000-4000-8000-000000000001"
    case = create(api, services_section=[{"unique_id": row}])
    answer = sim.post(
        "/actions/decide-service",
        json={
            "case_record_id": case["id"],
            "service_unique_id": row,
            "status": "rejected",
            "rejection_reason": "not_eligible",
        },
    )
    assert answer.status_code == 200
    stored = api.get(f"/cases/{case['id']}").json()["data"]
    assert stored["services_section"][0]["unhcr_referral_status"] == "rejected"
    assert stored["services_section"][0]["unhcr_referral_rejection_reason"] == "not_eligible"
    assert stored["last_updated_at"] > case["last_updated_at"]


def test_action_decide_service_rejects_bad_status_and_unknown_row(
    api: httpx.Client, sim: httpx.Client
) -> None:
    case = create(api)
    bad = sim.post(
        "/actions/decide-service",
        json={"case_record_id": case["id"], "service_unique_id": "x", "status": "maybe"},
    )
    assert bad.status_code == 422
    missing = sim.post(
        "/actions/decide-service",
        json={"case_record_id": case["id"], "service_unique_id": "x", "status": "accepted"},
    )
    assert missing.status_code == 404


def test_action_refer_to_unhcr_adds_row_and_referral(api: httpx.Client, sim: httpx.Client) -> None:
    case = create(api)
    answer = sim.post(
        "/actions/refer-to-unhcr",
        json={
            "case_record_id": case["id"],
            "transitioned_to": "unhcr_cw",
            "service": {"service_type": "legal"},
        },
    ).json()
    stored = api.get(f"/cases/{case['id']}").json()["data"]
    row = stored["services_section"][-1]
    assert row["unique_id"] == answer["service_unique_id"]
    assert row["service_implementing_agency"] == "UNHCR"
    assert row["service_status_referred"] is True
    assert "unhcr_cw" in stored["assigned_user_names"]
    assert "unhcr_cw" in stored["associated_user_names"]
    referrals = api.get(f"/cases/{case['id']}/referrals").json()["data"]
    assert [(r["id"], r["status"], r["service_record_id"]) for r in referrals] == [
        (answer["referral_id"], "in_progress", row["unique_id"])
    ]


def test_reset_forgets_seeded_logins_and_lockouts(
    primero_sim: PrimeroSim, sim: httpx.Client
) -> None:
    sim.post("/seed", json={"users": [{"user_name": "fp", "password": "fp-pass"}]})
    for _ in range(6):
        httpx.get(primero_sim.url + "/api/v2/cases", auth=(PRIMERO_SIM_USER, "wrong"))
    sim.post("/reset")
    assert httpx.get(primero_sim.url + "/api/v2/cases", auth=("fp", "fp-pass")).status_code == 401
    api_user = (PRIMERO_SIM_USER, PRIMERO_SIM_PASSWORD)
    assert httpx.get(primero_sim.url + "/api/v2/cases", auth=api_user).status_code == 200
