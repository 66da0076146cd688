"""The Primero simulator as strict as a real instance: scope, field permissions, validation.

Each behaviour is read in Primero's source (primeroIMS/primero): search_scope.rb,
transitionable.rb, permitted_form_fields_service.rb, record_data_service.rb,
record_json_validator_service.rb, the users/lookups/forms controllers and their views.
"""

from __future__ import annotations

from typing import Any

import httpx2 as httpx
import pytest

from primero_progres.profiles import load_profile
from primero_progres.sim.primero import PrimeroSimConfig

PRIMERO_SIM_USER = "primero"
PRIMERO_SIM_PASSWORD = "primero-secret"
CP = "primeromodule-cp"
ROW = "aaaaaaaa-0000-4000-8000-000000000001"
GAMBELLA = PrimeroSimConfig.for_profile(load_profile("gambella"))


def configure(sim: httpx.Client, **changes: Any) -> dict[str, Any]:
    response = sim.patch("/config", json=changes)
    assert response.status_code == 200, response.text
    return response.json()


def create(api: httpx.Client, **data: Any) -> httpx.Response:
    return api.post("/cases", json={"data": {"module_id": CP, **data}})


def created(api: httpx.Client, **data: Any) -> dict[str, Any]:
    response = create(api, **data)
    assert response.status_code == 200, response.text
    return response.json()["data"]


def invalid(response: httpx.Response) -> list[str]:
    """The JSON pointers of a 422 ``Invalid Record JSON``."""
    assert response.status_code == 422, response.text
    [error] = response.json()["errors"]
    assert error["message"] == "Invalid Record JSON"
    assert error["status"] == 422
    return error["detail"]


# ---------------------------------------------------------------- configuration


def test_default_configuration_permits_everything(sim: httpx.Client) -> None:
    assert sim.get("/config").json() == {
        "scope": "all",
        "readable_fields": None,
        "writable_fields": None,
        "lookups": {},
        "field_lookups": {},
        "users_permission": True,
        "sync_external": True,
        "webhook_permissions": ["manage"],
        "modules_permission": True,
        "use_webhooks_for": {
            "primeromodule-cp": ["case"],
            "primeromodule-gbv": ["case"],
            "primeromodule-mrm": ["case"],
        },
        "webhook_auth": {"type": None, "secret": None},
        "webhook_content_type": "application/x-www-form-urlencoded",
        "hostname": "primero.example.org",
    }


def test_put_replaces_patch_merges_and_reset_restores(sim: httpx.Client) -> None:
    put = sim.put("/config", json=GAMBELLA.model_dump())
    assert put.status_code == 200 and put.json() == GAMBELLA.model_dump()
    merged = configure(sim, scope="self")
    assert merged == {**GAMBELLA.model_dump(), "scope": "self"}
    assert sim.put("/config", json={"scope": "group"}).json()["lookups"] == {}
    sim.post("/reset")
    assert sim.get("/config").json()["scope"] == "all"


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"scope": "everything"}, "scope"),
        ({"scoop": "all"}, "scoop"),
        ({"readable_fields": "sex"}, "readable_fields"),
        ({"writable_fields": ["a.b.c"]}, "writable_fields"),
        ({"users_permission": "maybe"}, "users_permission"),
        ({"lookups": {"lookup-gender": ["male"]}, "field_lookups": {"sex": "lookup-sex"}}, None),
    ],
)
def test_bad_configuration_is_422_naming_the_problem(
    sim: httpx.Client, body: dict[str, Any], where: str | None
) -> None:
    for method in ("PUT", "PATCH"):
        response = sim.request(method, "/config", json=body)
        assert response.status_code == 422, (method, response.text)
        problems = response.json()["detail"]
        text = str(problems)
        assert where in text if where else "lookup-sex" in text
    assert sim.get("/config").json()["scope"] == "all"


def test_malformed_configuration_json_is_422(sim: httpx.Client) -> None:
    response = sim.put(
        "/config", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["type"] == "json_invalid"


def test_profile_instance_holds_the_profile_codes_and_stock_values() -> None:
    profile = load_profile("gambella")
    lookups = GAMBELLA.lookups
    assert set(profile.progres_referral.service_types.values()) <= set(
        lookups["lookup-service-type"]
    )
    assert set(profile.primero_referral.service_types) <= set(lookups["lookup-service-type"])
    assert {"female", "male", "other_b25f252", "unknown_4b34795"} <= set(lookups["lookup-gender"])
    assert {"language6", "_english"} <= set(lookups["lookup-language"])
    assert {"open", "closed"} <= set(lookups["lookup-case-status"])
    assert "pending" in lookups["lookup-unhcr-referral-status"]
    assert GAMBELLA.field_lookups["service_type"] == "lookup-service-type"
    assert GAMBELLA.scope == "all" and GAMBELLA.users_permission is True
    assert GAMBELLA.readable_fields is None and GAMBELLA.writable_fields is None


# ---------------------------------------------------------------- scope


def seed_scoped(sim: httpx.Client) -> dict[str, str]:
    """Cases owned by the API user, by a colleague (same agency and group), by a stranger."""
    sim.post(
        "/seed",
        json={
            "users": [
                {"user_name": PRIMERO_SIM_USER, "agency_id": 1, "user_group_unique_ids": ["g1"]},
                {"user_name": "colleague", "agency_id": 1, "user_group_unique_ids": ["g1"]},
                {"user_name": "partner", "agency_id": 2, "user_group_unique_ids": ["g1"]},
                {"user_name": "stranger", "agency_id": 2, "user_group_unique_ids": ["g2"]},
            ],
            "cases": [
                {"id": f"00000000-0000-4000-8000-00000000000{i}", "module_id": CP, "owned_by": o}
                for i, o in enumerate(
                    [PRIMERO_SIM_USER, "colleague", "partner", "stranger"], start=1
                )
            ],
        },
    )
    return {
        owner: f"00000000-0000-4000-8000-00000000000{i}"
        for i, owner in enumerate([PRIMERO_SIM_USER, "colleague", "partner", "stranger"], 1)
    }


@pytest.mark.parametrize(
    ("scope", "visible"),
    [
        ("all", {PRIMERO_SIM_USER, "colleague", "partner", "stranger"}),
        ("agency", {PRIMERO_SIM_USER, "colleague"}),
        ("group", {PRIMERO_SIM_USER, "colleague", "partner"}),
        ("self", {PRIMERO_SIM_USER}),
    ],
)
def test_case_search_covers_only_the_scope(
    api: httpx.Client, sim: httpx.Client, scope: str, visible: set[str]
) -> None:
    ids = seed_scoped(sim)
    configure(sim, scope=scope)
    listed = api.get("/cases").json()
    assert {c["owned_by"] for c in listed["data"]} == visible
    assert listed["metadata"]["total"] == len(visible)
    for owner, record_id in ids.items():
        status = api.get(f"/cases/{record_id}").status_code
        assert status == (200 if owner in visible else 403), owner
    # out of scope is invisible to a filter too: the search by id finds nothing, no error
    found = api.get("/cases", params={"id": ids["stranger"]}).json()
    assert found["metadata"]["total"] == (1 if "stranger" in visible else 0)


def test_self_scope_sees_a_case_referred_to_it(api: httpx.Client, sim: httpx.Client) -> None:
    ids = seed_scoped(sim)
    configure(sim, scope="self")
    patched = api.patch(f"/cases/{ids['stranger']}", json={"data": {"name": "x"}})
    assert patched.status_code == 403
    assert patched.json()["errors"][0]["message"] == "Forbidden"
    sim.post(
        "/actions/refer-to-unhcr",
        json={"case_record_id": ids["stranger"], "transitioned_to": PRIMERO_SIM_USER},
    )
    assert api.get(f"/cases/{ids['stranger']}").status_code == 200


def test_self_scope_lists_only_referrals_to_the_user(api: httpx.Client, sim: httpx.Client) -> None:
    ids = seed_scoped(sim)
    sim.post("/seed", json={"users": [{"user_name": "other_cw"}]})
    for to in (PRIMERO_SIM_USER, "other_cw"):
        sim.post(
            "/actions/refer-to-unhcr",
            json={"case_record_id": ids["stranger"], "transitioned_to": to},
        )
    configure(sim, scope="self")
    listed = api.get(f"/cases/{ids['stranger']}/referrals").json()["data"]
    assert [r["transitioned_to"] for r in listed] == [PRIMERO_SIM_USER]
    configure(sim, scope="all")
    listed = api.get(f"/cases/{ids['stranger']}/referrals").json()["data"]
    assert sorted(r["transitioned_to"] for r in listed) == ["other_cw", PRIMERO_SIM_USER]


def test_owner_sees_every_referral_of_its_case_whatever_the_scope(
    api: httpx.Client, sim: httpx.Client
) -> None:
    ids = seed_scoped(sim)
    sim.post("/seed", json={"users": [{"user_name": "other_cw"}]})
    sim.post(
        "/actions/refer-to-unhcr",
        json={"case_record_id": ids[PRIMERO_SIM_USER], "transitioned_to": "other_cw"},
    )
    configure(sim, scope="self")
    listed = api.get(f"/cases/{ids[PRIMERO_SIM_USER]}/referrals").json()["data"]
    assert [r["transitioned_to"] for r in listed] == ["other_cw"]


def test_agency_and_group_scopes_filter_referrals_of_others_cases(
    api: httpx.Client, sim: httpx.Client
) -> None:
    ids = seed_scoped(sim)
    sim.post(
        "/actions/refer-to-unhcr",
        json={"case_record_id": ids["partner"], "transitioned_to": "stranger"},
    )
    sim.post(
        "/actions/refer-to-unhcr",
        json={"case_record_id": ids["partner"], "transitioned_to": "colleague"},
    )
    configure(sim, scope="group")  # the owner shares the API user's group: every referral
    listed = api.get(f"/cases/{ids['partner']}/referrals").json()["data"]
    assert sorted(r["transitioned_to"] for r in listed) == ["colleague", "stranger"]
    configure(sim, scope="agency")  # another agency's case: referrals to the API user's agency
    listed = api.get(f"/cases/{ids['partner']}/referrals").json()["data"]
    assert listed == []
    sim.post("/seed", json={"users": [{"user_name": "partner", "agency_id": 2}]})  # leaves g1
    configure(sim, scope="group")
    # visible through the colleague it was referred to; only referrals to the group remain
    listed = api.get(f"/cases/{ids['partner']}/referrals").json()["data"]
    assert [r["transitioned_to"] for r in listed] == ["colleague"]


# ---------------------------------------------------------------- readable fields


def test_responses_hold_only_readable_fields(api: httpx.Client, sim: httpx.Client) -> None:
    configure(sim, readable_fields=["name_first", "owned_by"])
    answer = create(api, name_first="A", name_last="B", sex="female").json()["data"]
    assert set(answer) == {"id", "enabled", "last_updated_at", "name_first", "owned_by"}
    shown = api.get(f"/cases/{answer['id']}").json()["data"]
    assert set(shown) == {"id", "enabled", "last_updated_at", "name_first", "owned_by"}
    listed = api.get("/cases").json()["data"]
    assert [set(c) for c in listed] == [set(shown)]
    patched = api.patch(
        f"/cases/{answer['id']}", json={"data": {"name_first": "C", "name_last": "D"}}
    ).json()["data"]
    assert set(patched) == {"id", "enabled", "last_updated_at", "name_first"}
    stored = sim.get("/cases").json()[0]  # what Primero holds: everything was written
    assert (stored["name_last"], stored["sex"]) == ("D", "female")


def test_unreadable_filter_is_dropped_readable_one_applied(
    api: httpx.Client, sim: httpx.Client
) -> None:
    created(api, unhcr_individual_no="A-1", sex="male")
    created(api, unhcr_individual_no="A-2", sex="female")
    configure(sim, readable_fields=["sex"])
    assert api.get("/cases", params={"unhcr_individual_no": "A-1"}).json()["metadata"][
        "total"
    ] == 2
    assert api.get("/cases", params={"sex": "male"}).json()["metadata"]["total"] == 1


# ---------------------------------------------------------------- writable fields


def test_unwritable_fields_are_dropped_silently(api: httpx.Client, sim: httpx.Client) -> None:
    configure(sim, writable_fields=["name_first", "services_section.service_type"])
    response = create(
        api,
        name_first="A",
        name_last="B",
        owned_by="fp",
        services_section=[{"service_type": "food", "progres_interventionnumber": "N-1"}],
    )
    assert response.status_code == 200
    case = response.json()["data"]
    assert case["name_first"] == "A" and case["owned_by"] == "fp"
    assert "name_last" not in case
    [row] = case["services_section"]
    assert row["service_type"] == "food"
    assert "progres_interventionnumber" not in row  # the field is not on the subform
    patched = api.patch(
        f"/cases/{case['id']}",
        json={"data": {"name_last": "C", "services_section": [
            {"unique_id": row["unique_id"], "progres_interventionnumber": "N-1"}
        ]}},
    )
    assert patched.status_code == 200
    [stored] = sim.get("/cases").json()
    assert "name_last" not in stored
    assert stored["services_section"] == [row]


def test_a_subform_listed_whole_keeps_every_row_field(
    api: httpx.Client, sim: httpx.Client
) -> None:
    configure(sim, writable_fields=["services_section"])
    case = created(api, services_section=[{"service_type": "x", "progres_interventionnumber": "N"}])
    assert case["services_section"][0]["progres_interventionnumber"] == "N"


def test_module_id_on_patch_moves_the_case(api: httpx.Client) -> None:
    case = created(api, name="A")
    moved = api.patch(f"/cases/{case['id']}", json={"data": {"module_id": "primeromodule-gbv"}})
    assert moved.status_code == 200
    assert moved.json()["data"]["module_id"] == "primeromodule-gbv"
    assert api.get(f"/cases/{case['id']}").json()["data"]["module_id"] == "primeromodule-gbv"
    bad = api.patch(f"/cases/{case['id']}", json={"data": {"module_id": "primeromodule-x"}})
    assert invalid(bad) == ["/module_id"]


# ---------------------------------------------------------------- validation


def test_select_values_are_checked_against_their_lookups(
    api: httpx.Client, sim: httpx.Client
) -> None:
    sim.put("/config", json=GAMBELLA.model_dump())
    assert create(api, sex="female", language=["language2"]).status_code == 200
    response = create(
        api,
        sex="girl",
        language=["language2", "klingon"],
        services_section=[
            {"service_type": "food"},
            {"service_type": "teleportation", "unhcr_referral_status": "maybe"},
        ],
    )
    assert invalid(response) == [
        "/language/1",
        "/services_section/1/service_type",
        "/services_section/1/unhcr_referral_status",
        "/sex",
    ]
    assert sim.get("/cases").json()[0]["sex"] == "female"  # nothing of the refused one kept


def test_a_code_removed_from_a_lookup_is_refused_on_patch_too(
    api: httpx.Client, sim: httpx.Client
) -> None:
    sim.put("/config", json=GAMBELLA.model_dump())
    case = created(api, services_section=[{"unique_id": ROW, "service_type": "food"}])
    lookups = {**GAMBELLA.lookups, "lookup-service-type": ["alternative_care"]}
    configure(sim, lookups=lookups)
    response = api.patch(
        f"/cases/{case['id']}",
        json={"data": {"services_section": [{"unique_id": ROW, "service_type": "food"}]}},
    )
    assert invalid(response) == ["/services_section/0/service_type"]


def test_field_lookups_by_subform_path(api: httpx.Client, sim: httpx.Client) -> None:
    configure(
        sim,
        lookups={"lookup-x": ["a"]},
        field_lookups={"services_section.service_type": "lookup-x", "custom_select": "lookup-x"},
    )
    assert invalid(create(api, services_section=[{"service_type": "b"}])) == [
        "/services_section/0/service_type"
    ]
    assert invalid(create(api, custom_select="b")) == ["/custom_select"]
    assert create(api, sex="anything", custom_select="a").status_code == 200


@pytest.mark.parametrize(
    ("data", "pointer"),
    [
        ({"age": "twelve"}, "/age"),
        ({"age": 2**40}, "/age"),
        ({"date_of_birth": "yesterday"}, "/date_of_birth"),
        ({"consent_for_services": "yes"}, "/consent_for_services"),
        ({"name_first": 12}, "/name_first"),
        ({"language": "language1"}, "/language"),
        ({"sex": ["male"]}, "/sex"),
        ({"status": "reopened"}, "/status"),
        ({"services_section": {"service_type": "food"}}, "/services_section"),
        ({"services_section": [{"service_request_external": "yes"}]},
         "/services_section/0/service_request_external"),
    ],
)
def test_types_are_checked_like_primero_s_json_schema(
    api: httpx.Client, data: dict[str, Any], pointer: str
) -> None:
    assert invalid(create(api, **data)) == [pointer]


def test_valid_types_pass(api: httpx.Client) -> None:
    response = create(
        api,
        age=12,
        date_of_birth="2014-06-06",
        consent_for_services=True,
        language=["language1"],
        status="closed",
        services_section=[
            {"service_response_day_time": "2026-11-01T00:00:00Z", "service_request_external": True}
        ],
    )
    assert response.status_code == 200


# ---------------------------------------------------------------- users


def test_users_are_forbidden_without_the_users_permission(
    api: httpx.Client, sim: httpx.Client
) -> None:
    sim.post("/seed", json={"users": [{"user_name": "unhcr_cw"}]})
    other = api.get("/users", params={"user_name": "unhcr_cw"}).json()["data"][0]
    me = api.get("/users", params={"user_name": PRIMERO_SIM_USER}).json()["data"][0]
    configure(sim, users_permission=False)
    response = api.get("/users", params={"user_name": "unhcr_cw"})
    assert response.status_code == 403
    assert response.json() == {
        "errors": [{"status": 403, "resource": "/api/v2/users", "message": "Forbidden"}]
    }
    assert api.get(f"/users/{other['id']}").status_code == 403
    assert api.get(f"/users/{me['id']}").json()["data"]["user_name"] == PRIMERO_SIM_USER


def test_extended_own_user_shows_the_role(api: httpx.Client, sim: httpx.Client) -> None:
    configure(sim, scope="group", users_permission=False, sync_external=False,
              webhook_permissions=[], writable_fields=["name_first"],
              readable_fields=["name_first", "sex"])
    assert api.get("/users", params={"user_name": PRIMERO_SIM_USER}).status_code == 403
    user_id = 1  # the API user is the first user
    plain = api.get(f"/users/{user_id}").json()["data"]
    assert plain["role_group_permission"] == "group"
    assert "permitted_form" not in plain
    extended = api.get(f"/users/{user_id}", params={"extended": "true"}).json()["data"]
    assert extended["user_name"] == PRIMERO_SIM_USER
    assert CP in extended["module_unique_ids"]
    assert extended["permitted_form"] == {
        "basic_identity": "rw",
        "basic_identity_read_only": "r",
    }
    assert extended["permissions"]["list"] == [
        {"resource": "cases", "actions": ["read", "create", "write", "referral",
                                          "receive_referral"]}
    ]


# ---------------------------------------------------------------- referrals


def referred(api: httpx.Client, sim: httpx.Client) -> tuple[str, str]:
    sim.post("/seed", json={"users": [{"user_name": "unhcr_cw"}]})
    case = created(api, consent_for_services=True, disclosure_other_orgs=True,
                   services_section=[{"unique_id": ROW, "service_type": "food"}])
    referral = api.post(
        f"/cases/{case['id']}/referrals",
        json={"data": {"transitioned_to": "unhcr_cw", "service_record_id": ROW}},
    ).json()["data"]
    return case["id"], referral["id"]


def test_rejection_note_is_only_used_with_done(api: httpx.Client, sim: httpx.Client) -> None:
    case_id, referral_id = referred(api, sim)
    rejected = api.patch(
        f"/cases/{case_id}/referrals/{referral_id}",
        json={"data": {"status": "rejected", "rejected_reason": "r", "rejection_note": "n"}},
    ).json()["data"]
    assert rejected["status"] == "rejected" and rejected["rejected_reason"] == "r"
    assert "rejection_note" not in rejected
    row = api.get(f"/cases/{case_id}").json()["data"]["services_section"][0]
    assert "note_on_referral_from_provider" not in row


@pytest.mark.parametrize("before", ["in_progress", "accepted", "rejected", "done", "revoked"])
def test_revoke_works_from_any_status(api: httpx.Client, sim: httpx.Client, before: str) -> None:
    case_id, referral_id = referred(api, sim)
    path = f"/cases/{case_id}/referrals/{referral_id}"
    for step in {"accepted": ["accepted"], "rejected": ["rejected"],
                 "done": ["accepted", "done"]}.get(before, []):
        api.patch(path, json={"data": {"status": step}})
    if before == "revoked":
        api.delete(path)
    stamp = api.get(f"/cases/{case_id}").json()["data"]["last_updated_at"]
    revoked = api.delete(path).json()["data"]
    assert revoked["status"] == "revoked"
    assert revoked["record"]["last_updated_at"] > stamp
    assert "unhcr_cw" not in api.get(f"/cases/{case_id}").json()["data"]["associated_user_names"]


# ---------------------------------------------------------------- lookups and forms


def test_lookups_in_primero_s_shape_and_paged(api: httpx.Client, sim: httpx.Client) -> None:
    sim.put("/config", json=GAMBELLA.model_dump())
    first = api.get("/lookups").json()
    assert first["metadata"] == {"total": len(GAMBELLA.lookups), "per": 20, "page": 1}
    everything = api.get("/lookups", params={"per": 1000}).json()["data"]
    gender = next(lookup for lookup in everything if lookup["unique_id"] == "lookup-gender")
    assert set(gender) == {"id", "unique_id", "name", "locked", "values"}
    assert isinstance(gender["id"], int) and isinstance(gender["name"]["en"], str)
    assert {v["id"] for v in gender["values"]} == set(GAMBELLA.lookups["lookup-gender"])
    assert all(set(v) == {"id", "display_text"} for v in gender["values"])
    assert all(isinstance(v["display_text"]["en"], str) for v in gender["values"])
    second = api.get("/lookups", params={"per": 2, "page": 2}).json()
    assert [x["unique_id"] for x in second["data"]] == [x["unique_id"] for x in everything[2:4]]


def test_forms_show_each_field_type_and_option_source(
    api: httpx.Client, sim: httpx.Client
) -> None:
    sim.put("/config", json=GAMBELLA.model_dump())
    forms = api.get("/forms", params={"record_type": "case", "module_id": CP}).json()["data"]
    by_id = {form["unique_id"]: form for form in forms}
    identity = by_id["basic_identity"]
    assert identity["parent_form"] == "case" and CP in identity["module_ids"]
    assert identity["is_nested"] is False and identity["name"]["en"]
    sex = next(f for f in identity["fields"] if f["name"] == "sex")
    assert (sex["type"], sex["option_strings_source"]) == ("select_box", "lookup lookup-gender")
    assert sex["form_section_id"] == identity["id"]
    services = next(f for f in by_id["services"]["fields"] if f["name"] == "services_section")
    assert services["type"] == "subform"
    nested = next(form for form in forms if form["id"] == services["subform_section_id"])
    assert nested["unique_id"] == "services_section" and nested["is_nested"] is True
    nested_fields = {f["name"]: f for f in nested["fields"]}
    assert nested_fields["service_type"]["option_strings_source"] == "lookup lookup-service-type"
    assert nested_fields["service_implementing_agency"]["option_strings_source"] == "Agency"
    assert nested_fields["progres_interventionnumber"]["type"] == "text_field"
    assert nested_fields["service_request_external"]["type"] == "tick_box"
    language = next(
        f for f in by_id["other_identity_details"]["fields"] if f["name"] == "language"
    )
    assert language["multi_select"] is True
    assert api.get("/forms", params={"module_id": "primeromodule-x"}).json() == {"data": []}
    assert api.get("/forms", params={"record_type": "incident"}).json() == {"data": []}
    top = api.get("/forms", params={"exclude_subforms": "true"}).json()["data"]
    assert all(not form["is_nested"] for form in top)


def test_forms_split_by_the_role_s_permissions(api: httpx.Client, sim: httpx.Client) -> None:
    configure(
        sim,
        writable_fields=["name_first", "services_section.service_type"],
        readable_fields=["name_first", "sex", "services_section"],
    )
    forms = {f["unique_id"]: f for f in api.get("/forms").json()["data"]}
    assert [f["name"] for f in forms["basic_identity"]["fields"]] == ["name_first"]
    assert [f["name"] for f in forms["basic_identity_read_only"]["fields"]] == ["sex"]
    assert "unhcr_individual_no" in [
        f["name"] for f in forms["basic_identity_not_permitted"]["fields"]
    ]
    assert [f["name"] for f in forms["services_section"]["fields"]] == ["service_type"]
    extended = api.get("/users/1", params={"extended": "true"}).json()["data"]
    assert extended["permitted_form"] == {
        "basic_identity": "rw",
        "basic_identity_read_only": "r",
        "services": "rw",
    }


def test_lookups_and_forms_need_credentials(primero_sim: Any) -> None:
    for path in ("/api/v2/lookups", "/api/v2/forms"):
        assert httpx.get(primero_sim.url + path).status_code == 401
