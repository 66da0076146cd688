"""The Primero simulator's webhooks and sync status, over loopback HTTP.

Each behaviour is read in primeroIMS/primero: webhooks_controller.rb and its views,
webhook.rb, webhookable.rb, webhook_job.rb, api_connector/webhook_connector.rb and
connection.rb, permitted_field_service.rb (SYNC_FIELDS_SCHEMA), record_data_service.rb.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import httpx2 as httpx
import pytest
import structlog
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from primero_progres.sim.common import listening_socket, serve_in_thread

CP = "primeromodule-cp"
GBV = "primeromodule-gbv"
API_ROLE = "role-primero-progres-api"
ROW = "aaaaaaaa-0000-4000-8000-000000000001"
DTP_URL = "https://dtp.example.org/ReceiveIncomingReferral"


class Receiver:
    """A webhook receiver: records each POST; answers ``status``; may hold until released."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.status = 200
        self.gate: threading.Event | None = None
        self.app = FastAPI()

        @self.app.post("/hook/{name}")
        async def hook(name: str, request: Request) -> JSONResponse:
            raw = await request.body()
            self.requests.append({"name": name, "headers": request.headers, "raw": raw})
            if self.gate is not None:
                await asyncio.to_thread(self.gate.wait, 30)
            return JSONResponse({"ok": True}, status_code=self.status)

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(r["raw"]) for r in self.requests]


@pytest.fixture
def receiver() -> Iterator[tuple[str, Receiver]]:
    hooks = Receiver()
    with serve_in_thread(hooks.app) as server:
        yield server.url, hooks


def register(api: httpx.Client, url: str, events: Any = "case.update", **more: Any) -> Any:
    response = api.post(
        "/webhooks",
        json={"data": {"events": events, "url": url, "role_unique_id": API_ROLE, **more}},
    )
    assert response.status_code == 200, response.text
    return response.json()["data"]


def settle(sim: httpx.Client) -> None:
    """Wait until the simulator has run every queued webhook job."""
    assert sim.post("/webhooks/wait", params={"timeout": 30}).json() == {"idle": True}


def create_case(api: httpx.Client, **data: Any) -> dict[str, Any]:
    response = api.post("/cases", json={"data": {"module_id": CP, **data}})
    assert response.status_code == 200, response.text
    return response.json()["data"]


def configure(sim: httpx.Client, **changes: Any) -> None:
    response = sim.patch("/config", json=changes)
    assert response.status_code == 200, response.text


# ---------------------------------------------------------------- the webhooks API


def test_register_list_show_and_delete_in_primeros_shapes(api: httpx.Client) -> None:
    created = register(api, "https://bridge.example.org/hook", metadata={"tag": "bridge"})
    assert set(created) == {"id", "events", "url", "role_unique_id", "metadata"}
    assert uuid.UUID(created["id"])
    assert created["events"] == "case.update"
    assert created["metadata"] == {"tag": "bridge"}
    assert api.get("/webhooks").json() == {"data": [created]}
    assert api.get(f"/webhooks/{created['id']}").json() == {"data": created}
    deleted = api.delete(f"/webhooks/{created['id']}")
    assert deleted.json() == {"data": {"id": created["id"]}}
    missing = api.get(f"/webhooks/{created['id']}")
    assert missing.status_code == 404
    assert missing.json() == {
        "errors": [
            {
                "status": 404,
                "resource": f"/api/v2/webhooks/{created['id']}",
                "detail": f"Couldn't find Webhook with 'id'={created['id']}",
                "message": "Not Found",
            }
        ]
    }
    assert api.get("/webhooks").json() == {"data": []}


def test_an_events_array_is_dropped_by_strong_params_and_the_webhook_is_invalid(
    api: httpx.Client,
) -> None:
    response = api.post(
        "/webhooks",
        json={
            "data": {"events": ["case.create", "case.update"], "url": "u", "role_unique_id": "r"}
        },
    )
    assert response.status_code == 422
    assert response.json() == {
        "errors": [
            {
                "status": 422,
                "resource": "/api/v2/webhooks",
                "detail": "events",
                "message": ["can't be blank"],
            }
        ]
    }
    assert api.get("/webhooks").json() == {"data": []}


def test_every_blank_attribute_is_its_own_error(api: httpx.Client) -> None:
    response = api.post("/webhooks", json={"data": {"events": " ", "url": None}})
    assert response.status_code == 422
    assert [(e["detail"], e["message"]) for e in response.json()["errors"]] == [
        ("events", ["can't be blank"]),
        ("url", ["can't be blank"]),
        ("role_unique_id", ["can't be blank"]),
    ]


@pytest.mark.parametrize("body", [{}, {"data": "x"}, {"other": {}}, None])
def test_a_body_without_data_is_parameter_missing(api: httpx.Client, body: Any) -> None:
    response = api.post("/webhooks", json=body)
    assert response.status_code == 422
    [error] = response.json()["errors"]
    assert error["message"] == "param is missing or the value is empty: data"


def test_a_second_webhook_for_the_same_url_is_409(api: httpx.Client) -> None:
    register(api, "https://bridge.example.org/hook")
    response = api.post(
        "/webhooks",
        json={
            "data": {
                "events": "case.create",
                "url": "https://bridge.example.org/hook",
                "role_unique_id": API_ROLE,
            }
        },
    )
    assert response.status_code == 409
    [error] = response.json()["errors"]
    assert error["message"] == "Conflict: A record with this id already exists"
    assert len(api.get("/webhooks").json()["data"]) == 1


def test_a_client_id_is_ignored_and_answered_204(api: httpx.Client) -> None:
    chosen = str(uuid.uuid4())
    response = api.post(
        "/webhooks",
        json={"data": {"id": chosen, "events": "case.update", "url": "u", "role_unique_id": "r"}},
    )
    assert response.status_code == 204
    assert response.content == b""
    [stored] = api.get("/webhooks").json()["data"]
    assert stored["id"] != chosen and stored["url"] == "u"


@pytest.mark.parametrize(
    ("permissions", "allowed"),
    [
        ([], set()),
        (["read"], {"list", "show"}),
        (["create"], {"create"}),
        (["write"], {"delete"}),
        (["delete"], {"delete"}),
        (["manage"], {"list", "show", "create", "delete"}),
    ],
)
def test_each_call_needs_its_webhook_permission(
    api: httpx.Client, sim: httpx.Client, permissions: list[str], allowed: set[str]
) -> None:
    existing = register(api, "https://bridge.example.org/existing")
    configure(sim, webhook_permissions=permissions)
    calls = {
        "list": lambda: api.get("/webhooks"),
        "show": lambda: api.get(f"/webhooks/{existing['id']}"),
        "create": lambda: api.post(
            "/webhooks", json={"data": {"events": "case.update", "url": "n", "role_unique_id": "r"}}
        ),
        "delete": lambda: api.delete(f"/webhooks/{existing['id']}"),
    }
    for name, call in calls.items():
        response = call()
        if name in allowed:
            assert response.status_code == 200, (name, response.text)
        else:
            assert response.status_code == 403, name
            assert response.json()["errors"][0]["message"] == "Forbidden"


def test_an_unknown_webhook_is_404_before_the_permission_is_checked(
    api: httpx.Client, sim: httpx.Client
) -> None:
    configure(sim, webhook_permissions=[])
    assert api.get("/webhooks/nothing").status_code == 404
    assert api.delete("/webhooks/nothing").status_code == 404


def test_the_webhooks_api_needs_credentials(primero_sim: Any) -> None:
    response = httpx.get(primero_sim.url + "/api/v2/webhooks")
    assert response.status_code == 401


def test_the_role_shows_sync_external_and_the_webhook_permission(
    api: httpx.Client, sim: httpx.Client
) -> None:
    user = api.get("/users/1", params={"extended": "true"}).json()["data"]
    permissions = {p["resource"]: p["actions"] for p in user["permissions"]["list"]}
    assert "sync_external" in permissions["cases"]
    assert permissions["webhooks"] == ["manage"]
    configure(sim, sync_external=False, webhook_permissions=["read"])
    user = api.get("/users/1", params={"extended": "true"}).json()["data"]
    permissions = {p["resource"]: p["actions"] for p in user["permissions"]["list"]}
    assert "sync_external" not in permissions["cases"]
    assert permissions["webhooks"] == ["read"]


# ---------------------------------------------------------------- what is posted, and when


def test_a_case_update_posts_the_record_ids_and_what_the_role_may_read(
    api: httpx.Client, sim: httpx.Client, receiver: tuple[str, Receiver]
) -> None:
    url, hooks = receiver
    configure(sim, hostname="cpims.example.org")
    register(api, f"{url}/hook/update")
    case = create_case(api, name="Marker Name", sex="female")
    settle(sim)
    assert hooks.requests == []  # a create is not an update
    patched = api.patch(f"/cases/{case['id']}", json={"data": {"age": 9}}).json()["data"]
    settle(sim)
    [body] = hooks.bodies()
    data = body["data"]
    assert set(body) == {"data"}
    assert data["record_id"] == case["id"]
    assert data["record_type"] == "case"
    assert data["hostname"] == "cpims.example.org"
    assert data["name"] == "Marker Name" and data["age"] == 9
    assert data["last_updated_at"] == patched["last_updated_at"]


def test_the_body_holds_only_the_core_fields_and_the_readable_ones(
    api: httpx.Client, sim: httpx.Client, receiver: tuple[str, Receiver]
) -> None:
    url, hooks = receiver
    register(api, f"{url}/hook/update")
    case = create_case(api, name="Marker Name", sex="female", age=7)
    configure(sim, readable_fields=["sex"])
    api.patch(f"/cases/{case['id']}", json={"data": {"age": 8}})
    settle(sim)
    [body] = hooks.bodies()
    assert set(body["data"]) == {
        "record_id",
        "record_type",
        "hostname",
        "last_updated_at",
        "id",
        "status",
        "record_state",
        "created_at",
        "owned_by",
        "module_id",
        "sex",
    }


def test_case_create_events_and_every_kind_of_update(
    api: httpx.Client, sim: httpx.Client, receiver: tuple[str, Receiver]
) -> None:
    url, hooks = receiver
    register(api, f"{url}/hook/create", events="case.create")
    register(api, f"{url}/hook/update")
    sim.post("/seed", json={"users": [{"user_name": "unhcr_cw"}, {"user_name": "fp"}]})
    case = create_case(
        api,
        consent_for_services=True,
        disclosure_other_orgs=True,
        services_section=[{"unique_id": ROW, "service_type": "x"}],
    )
    settle(sim)
    assert [r["name"] for r in hooks.requests] == ["create"]
    api.patch(f"/cases/{case['id']}", json={"data": {"age": 3}})
    sim.post(
        "/actions/decide-service",
        json={"case_record_id": case["id"], "service_unique_id": ROW, "status": "accepted"},
    )
    sim.post(
        "/actions/refer-to-unhcr",
        json={"case_record_id": case["id"], "transitioned_to": "unhcr_cw", "service": {}},
    )
    referral = api.post(
        f"/cases/{case['id']}/referrals", json={"data": {"transitioned_to": "fp"}}
    ).json()["data"]
    api.patch(
        f"/cases/{case['id']}/referrals/{referral['id']}", json={"data": {"status": "accepted"}}
    )
    api.patch(
        f"/cases/{case['id']}/referrals/{referral['id']}", json={"data": {"status": "accepted"}}
    )  # a no-op saves nothing
    api.delete(f"/cases/{case['id']}/referrals/{referral['id']}")
    settle(sim)
    names = [r["name"] for r in hooks.requests]
    assert names.count("create") == 1
    assert names.count("update") == 6
    assert {b["data"]["record_id"] for b in hooks.bodies()} == {case["id"]}


def test_only_modules_that_use_webhooks_for_cases_post(
    api: httpx.Client, sim: httpx.Client, receiver: tuple[str, Receiver]
) -> None:
    url, hooks = receiver
    register(api, f"{url}/hook/create", events="case.create")
    configure(sim, use_webhooks_for={CP: ["case"], GBV: ["incident"]})
    create_case(api)
    api.post("/cases", json={"data": {"module_id": GBV}})
    api.post("/cases", json={"data": {"case_id": "no-module"}})
    settle(sim)
    assert [b["data"]["module_id"] for b in hooks.bodies()] == [CP]


def test_a_webhook_for_an_unknown_role_sends_nothing_and_stays_sending(
    api: httpx.Client, sim: httpx.Client, receiver: tuple[str, Receiver]
) -> None:
    url, hooks = receiver
    api.post(
        "/webhooks",
        json={
            "data": {
                "events": "case.create",
                "url": f"{url}/hook/x",
                "role_unique_id": "role-nobody",
            }
        },
    )
    case = create_case(api)
    settle(sim)
    assert hooks.requests == []
    [delivery] = sim.get("/webhooks/deliveries").json()
    assert delivery["outcome"] == "error" and delivery["error"] == "unknown_role"
    [entry] = sim.get(f"/cases/{case['id']}/audit").json()
    assert entry["webhook_status"] == "sending"


# ---------------------------------------------------------------- how it is posted


def post_of_a_new_case(
    api: httpx.Client, sim: httpx.Client, receiver: tuple[str, Receiver], **config: Any
) -> dict[str, Any]:
    """The one POST a case.create webhook receives, with the simulator configured so."""
    url, hooks = receiver
    configure(sim, **config)
    register(api, f"{url}/hook/create", events="case.create")
    create_case(api)
    settle(sim)
    [request] = hooks.requests
    assert json.loads(request["raw"])["data"]["record_type"] == "case"
    return request


@pytest.mark.parametrize(
    ("auth", "expected"),
    [
        ({"type": None}, {}),
        ({"type": "api_key", "secret": "tok-1"}, {"x-api-key": "tok-1"}),
        (
            {"type": "basic_auth", "secret": "bridge:tok-2"},
            {"authorization": "Basic " + base64.b64encode(b"bridge:tok-2").decode()},
        ),
        (  # Primero's secret.split(':') keeps the password only up to a second colon
            {"type": "basic_auth", "secret": "bridge:tok:3"},
            {"authorization": "Basic " + base64.b64encode(b"bridge:tok").decode()},
        ),
    ],
)
def test_the_configured_auth_is_sent_with_primeros_content_type(
    api: httpx.Client,
    sim: httpx.Client,
    receiver: tuple[str, Receiver],
    auth: dict[str, Any],
    expected: dict[str, str],
) -> None:
    headers = post_of_a_new_case(api, sim, receiver, webhook_auth=auth)["headers"]
    assert {k: headers.get(k) for k in ("x-api-key", "authorization") if k in headers} == expected
    assert headers["content-type"] == "application/x-www-form-urlencoded"


def test_from_v2_15_the_posts_carry_no_content_type(
    api: httpx.Client, sim: httpx.Client, receiver: tuple[str, Receiver]
) -> None:
    request = post_of_a_new_case(api, sim, receiver, webhook_content_type=None)
    assert "content-type" not in request["headers"]


@pytest.mark.parametrize(
    "auth", [{"type": "api_key"}, {"type": "basic_auth", "secret": ""}, {"type": "token"}]
)
def test_webhook_auth_needs_a_known_type_and_a_secret(
    sim: httpx.Client, auth: dict[str, Any]
) -> None:
    assert sim.patch("/config", json={"webhook_auth": auth}).status_code == 422


@pytest.mark.parametrize(("status", "audited"), [(204, "sent"), (500, "failed"), (401, "failed")])
def test_each_post_is_sent_once_and_its_answer_audited(
    api: httpx.Client,
    sim: httpx.Client,
    receiver: tuple[str, Receiver],
    status: int,
    audited: str,
) -> None:
    url, hooks = receiver
    hooks.status = status
    register(api, f"{url}/hook/create", events="case.create")
    case = create_case(api)
    settle(sim)
    assert len(hooks.requests) == 1  # never retried
    [entry] = sim.get(f"/cases/{case['id']}/audit").json()
    assert entry["resource_url"] == f"{url}/hook/create"
    assert entry["webhook_status"] == audited
    [delivery] = sim.get("/webhooks/deliveries").json()
    assert (delivery["outcome"], delivery["status_code"]) == (audited, status)


@pytest.mark.usefixtures("every_level")
def test_a_webhook_sent_is_logged_at_debug_one_that_failed_at_info(
    api: httpx.Client, sim: httpx.Client, receiver: tuple[str, Receiver]
) -> None:
    url, hooks = receiver
    register(api, f"{url}/hook/create", events="case.create")
    with structlog.testing.capture_logs() as logs:
        create_case(api)
        settle(sim)
        hooks.status = 500
        create_case(api)
        settle(sim)
    lines = [(e["outcome"], e["log_level"]) for e in logs if e["event"] == "primero_sim_webhook"]
    assert lines == [("sent", "debug"), ("failed", "info")]


def test_an_unreachable_receiver_is_not_retried_and_stays_sending(
    api: httpx.Client, sim: httpx.Client, refused_url: str
) -> None:
    register(api, f"{refused_url}/hook/x", events="case.create")
    case = create_case(api)
    settle(sim)
    [delivery] = sim.get("/webhooks/deliveries").json()
    assert delivery["outcome"] == "error" and delivery["error"] == "ConnectError"
    assert [e["webhook_status"] for e in sim.get(f"/cases/{case['id']}/audit").json()] == [
        "sending"
    ]


def test_the_fault_injector_drops_webhooks_and_only_them(
    api: httpx.Client, sim: httpx.Client, receiver: tuple[str, Receiver]
) -> None:
    url, hooks = receiver
    register(api, f"{url}/hook/create", events="case.create")
    rule = {"method": "WEBHOOK", "path": f"{url}/hook/", "times": 1}
    assert sim.put("/faults", json=[rule]).status_code == 200
    first = create_case(api)  # the API itself is not faulted
    second = create_case(api)
    settle(sim)
    assert [b["data"]["record_id"] for b in hooks.bodies()] == [second["id"]]
    outcomes = [(d["record_id"], d["outcome"]) for d in sim.get("/webhooks/deliveries").json()]
    assert sorted(outcomes) == sorted([(first["id"], "dropped"), (second["id"], "sent")])


def test_the_api_answers_while_a_receiver_is_still_busy(
    api: httpx.Client, sim: httpx.Client, receiver: tuple[str, Receiver]
) -> None:
    url, hooks = receiver
    hooks.gate = threading.Event()
    register(api, f"{url}/hook/update")
    case = create_case(api)
    try:
        # were the POST made before answering, this PATCH would wait for the gate (30 s)
        response = api.patch(f"/cases/{case['id']}", json={"data": {"age": 4}}, timeout=10)
        assert response.status_code == 200
        assert api.get(f"/cases/{case['id']}", timeout=10).status_code == 200
    finally:
        hooks.gate.set()
    settle(sim)
    assert len(hooks.requests) == 1


async def test_a_receiver_in_the_callers_event_loop_may_read_the_case_back(
    primero_sim: Any,
) -> None:
    """The bridge's shape in tests: its inbox in the test's loop, reading Primero on a hint."""
    read_back: list[int] = []
    done = asyncio.Event()
    bridge = FastAPI()
    auth = (primero_sim.user, primero_sim.password)

    @bridge.post("/hook")
    async def hook(request: Request) -> JSONResponse:
        record_id = json.loads(await request.body())["data"]["record_id"]
        async with httpx.AsyncClient(auth=auth) as client:
            case = await client.get(f"{primero_sim.url}/api/v2/cases/{record_id}")
        read_back.append(case.status_code)
        done.set()
        return JSONResponse({}, status_code=202)

    sock = listening_socket()
    port = sock.getsockname()[1]
    config = uvicorn.Config(bridge, host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            await asyncio.sleep(0.01)
        async with httpx.AsyncClient(
            base_url=primero_sim.url + "/api/v2", auth=auth, timeout=10
        ) as api:
            await api.post(
                "/webhooks",
                json={
                    "data": {
                        "events": "case.create",
                        "url": f"http://127.0.0.1:{port}/hook",
                        "role_unique_id": API_ROLE,
                    }
                },
            )
            created = await api.post("/cases", json={"data": {"module_id": CP}})
            assert created.status_code == 200
            await asyncio.wait_for(done.wait(), 30)
        assert read_back == [200]
    finally:
        server.should_exit = True
        await serving


# ---------------------------------------------------------------- mark_synced and the audit


def test_mark_synced_is_audited_with_its_url_and_time_and_not_kept_in_the_case(
    api: httpx.Client, sim: httpx.Client
) -> None:
    case = create_case(api)
    response = api.patch(
        f"/cases/{case['id']}", json={"data": {"mark_synced": True, "mark_synced_url": DTP_URL}}
    )
    assert response.status_code == 200
    assert not {"mark_synced", "mark_synced_url"} & set(response.json()["data"])
    [entry] = sim.get(f"/cases/{case['id']}/audit").json()
    assert entry["action"] == "webhook"
    assert entry["resource_url"] == DTP_URL
    assert entry["webhook_status"] == "synced"
    assert entry["timestamp"].endswith("Z")
    shown = api.get(f"/cases/{case['id']}").json()["data"]
    assert shown["sync_status"] == "synced"
    assert shown["synced_at"] == entry["timestamp"]
    assert not {"mark_synced", "mark_synced_url", "mark_synced_status"} & set(shown)


@pytest.mark.parametrize(
    ("data", "status"),
    [
        ({"mark_synced": True, "mark_synced_status": "failed"}, "failed"),
        ({"mark_synced_status": "failed"}, "failed"),
        ({"mark_synced": True}, "synced"),
        ({"mark_synced": False, "mark_synced_status": "synced"}, "synced"),
    ],
)
def test_the_audited_status_is_mark_synced_status_else_from_mark_synced(
    api: httpx.Client, sim: httpx.Client, data: dict[str, Any], status: str
) -> None:
    case = create_case(api)
    api.patch(f"/cases/{case['id']}", json={"data": {**data, "mark_synced_url": DTP_URL}})
    assert [e["webhook_status"] for e in sim.get(f"/cases/{case['id']}/audit").json()] == [status]


def test_the_latest_entry_wins_and_synced_at_keeps_the_last_synced_time(
    api: httpx.Client, sim: httpx.Client
) -> None:
    case = create_case(api)
    for status in ("failed", "synced"):
        api.patch(
            f"/cases/{case['id']}",
            json={"data": {"mark_synced_status": status, "mark_synced_url": DTP_URL}},
        )
    entries = sim.get(f"/cases/{case['id']}/audit").json()
    assert [e["webhook_status"] for e in entries] == ["failed", "synced"]
    assert entries[0]["timestamp"] < entries[1]["timestamp"]
    shown = api.get(f"/cases/{case['id']}").json()["data"]
    assert (shown["sync_status"], shown["synced_at"]) == ("synced", entries[1]["timestamp"])


def test_mark_synced_false_alone_is_not_audited_but_kept_in_the_case(
    api: httpx.Client, sim: httpx.Client
) -> None:
    case = create_case(api)
    api.patch(f"/cases/{case['id']}", json={"data": {"mark_synced": False}})
    assert sim.get(f"/cases/{case['id']}/audit").json() == []
    assert api.get(f"/cases/{case['id']}").json()["data"]["mark_synced"] is False


def test_a_status_without_url_is_audited_but_never_shown(
    api: httpx.Client, sim: httpx.Client
) -> None:
    case = create_case(api)
    api.patch(f"/cases/{case['id']}", json={"data": {"mark_synced": True}})
    [entry] = sim.get(f"/cases/{case['id']}/audit").json()
    assert entry["resource_url"] is None and entry["webhook_status"] == "synced"
    assert "sync_status" not in api.get(f"/cases/{case['id']}").json()["data"]


def test_without_sync_external_the_fields_are_dropped_silently(
    api: httpx.Client, sim: httpx.Client
) -> None:
    case = create_case(api)
    configure(sim, sync_external=False)
    response = api.patch(
        f"/cases/{case['id']}",
        json={"data": {"mark_synced": True, "mark_synced_url": DTP_URL, "age": 5}},
    )
    assert response.status_code == 200
    assert sim.get(f"/cases/{case['id']}/audit").json() == []
    shown = api.get(f"/cases/{case['id']}").json()["data"]
    assert shown["age"] == 5
    assert not {"mark_synced", "mark_synced_url", "sync_status"} & set(shown)


@pytest.mark.parametrize(
    ("data", "pointers"),
    [
        ({"mark_synced": "true"}, ["/mark_synced"]),
        ({"mark_synced": None}, ["/mark_synced"]),
        ({"mark_synced": True, "mark_synced_url": 5}, ["/mark_synced_url"]),
        (
            {"mark_synced_status": ["synced"], "mark_synced_url": {}},
            ["/mark_synced_status", "/mark_synced_url"],
        ),
    ],
)
def test_sync_fields_of_the_wrong_type_are_invalid_record_json(
    api: httpx.Client, sim: httpx.Client, data: dict[str, Any], pointers: list[str]
) -> None:
    case = create_case(api)
    response = api.patch(f"/cases/{case['id']}", json={"data": data})
    assert response.status_code == 422
    [error] = response.json()["errors"]
    assert (error["message"], error["detail"]) == ("Invalid Record JSON", pointers)
    assert sim.get(f"/cases/{case['id']}/audit").json() == []


def test_marking_synced_is_an_update_its_webhook_then_shows_as_the_status(
    api: httpx.Client, sim: httpx.Client, receiver: tuple[str, Receiver]
) -> None:
    """As in Primero: the PATCH fires case.update, whose send is the newest destination."""
    url, hooks = receiver
    register(api, f"{url}/hook/update")
    case = create_case(api)
    api.patch(
        f"/cases/{case['id']}", json={"data": {"mark_synced": True, "mark_synced_url": DTP_URL}}
    )
    settle(sim)
    assert len(hooks.requests) == 1
    entries = sim.get(f"/cases/{case['id']}/audit").json()
    assert [(e["resource_url"], e["webhook_status"]) for e in entries] == [
        (DTP_URL, "synced"),
        (f"{url}/hook/update", "sent"),
    ]
    shown = api.get(f"/cases/{case['id']}").json()["data"]
    assert shown["sync_status"] == "sent"
    assert shown["synced_at"] == entries[0]["timestamp"]


def test_audit_of_an_unknown_case_is_404(sim: httpx.Client) -> None:
    assert sim.get(f"/cases/{uuid.uuid4()}/audit").status_code == 404


def test_reset_forgets_webhooks_audit_and_deliveries(
    api: httpx.Client, sim: httpx.Client, receiver: tuple[str, Receiver]
) -> None:
    url, _ = receiver
    register(api, f"{url}/hook/create", events="case.create")
    case = create_case(api)
    api.patch(f"/cases/{case['id']}", json={"data": {"mark_synced": True, "mark_synced_url": "u"}})
    settle(sim)
    assert sim.get("/webhooks/deliveries").json()
    sim.post("/reset")
    assert api.get("/webhooks").json() == {"data": []}
    assert sim.get("/webhooks/deliveries").json() == []
    assert sim.get(f"/cases/{case['id']}/audit").status_code == 404


def test_modules_list_their_webhook_option_and_need_the_permission(
    sim: httpx.Client, api: httpx.Client
) -> None:
    """``GET /api/v2/primero_modules``: ``module_options.use_webhooks_for`` as configured."""
    changed = sim.patch("/config", json={"use_webhooks_for": {CP: [], GBV: ["case"]}})
    assert changed.status_code == 200
    modules = {m["unique_id"]: m for m in api.get("/primero_modules").json()["data"]}
    assert modules[CP]["module_options"] == {"use_webhooks_for": []}
    assert modules[GBV]["module_options"] == {"use_webhooks_for": ["case"]}
    assert sim.patch("/config", json={"modules_permission": False}).status_code == 200
    assert api.get("/primero_modules").status_code == 403
