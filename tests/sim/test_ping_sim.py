"""The PING simulator over loopback HTTP, spoken to raw: B2C, APIM, queries, ingestion, /_sim/."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import httpx2 as httpx
import pytest

from ping_helpers import (
    CLIENT_ID,
    INTEROP,
    KEY,
    PARTNER,
    PASSWORD,
    USER,
    FakeClock,
    PingSim,
)
from primero_progres.sim.ping import (
    CHECK_STATUS_PATH,
    DEFAULT_SCOPE,
    DEFAULT_TOKEN_PATH,
    RETRIEVE_PATH,
)
from primero_progres.sim.ping_state import (
    MARKER,
    Seed,
    SeedIndividual,
    SeedIntervention,
    SeedNeed,
    SeedReferral,
    synthetic_interventions,
)
from sim_process import simulate

UNIT = "cccccccc-0000-4000-8000-000000000001"
DATA_PATH = f"/api/ingestion/v2/{PARTNER}/data"
ASYNC_PATH = f"/api/ingestion/v2/{PARTNER}/asyncdata"





class Caller:
    """Raw HTTP as a PING client sends it: subscription key, bearer token, JSON."""

    def __init__(self, ping_sim: PingSim) -> None:
        self.sim = ping_sim
        self.token = self.fetch_token().json()["access_token"]

    def fetch_token(self, **form: str) -> httpx.Response:
        values = {"grant_type": "password", "username": USER, "password": PASSWORD,
                  "client_id": CLIENT_ID, "scope": DEFAULT_SCOPE, "response_type": "token",
                  **form}
        return httpx.post(f"{self.sim.url}{DEFAULT_TOKEN_PATH}", data=values,
                          headers={"Cookie": "x-ms-cpim-geo=EU"})

    def post(self, path: str, body: Any, *, key: str | None = KEY,
             token: str | None = "default") -> httpx.Response:
        headers = {}
        if key is not None:
            headers["Ocp-Apim-Subscription-Key"] = key
        if token is not None:
            headers["Authorization"] = f"Bearer {self.token if token == 'default' else token}"
        return httpx.post(f"{self.sim.url}{path}", json=body, headers=headers, timeout=10)

    def retrieve(self, shp: str, record_ids: str | None = None, **extra: Any) -> dict[str, Any]:
        parameters = [] if record_ids is None else [
            {"ParameterName": "{record_ids}", "Value": record_ids}]
        body = {"ShippingProcessId": shp, "PartnerId": PARTNER, "InteropID": INTEROP,
                "APIVersion": "V3", "QueryParameters": parameters, **extra}
        response = self.post(RETRIEVE_PATH, body)
        assert response.status_code == 200
        return response.json()  # type: ignore[no-any-return]

    def rows(self, shp: str, record_ids: str | None = None) -> list[dict[str, Any]]:
        data = self.retrieve(shp, record_ids)["Data"]
        return [] if data == "No Data Available" else data  # type: ignore[no-any-return]

    def ingest(self, shp: str, items: list[Any], *, path: str = DATA_PATH,
               interop_key: str = "InteropId", **extra: Any) -> dict[str, Any]:
        body = {"ShippingProcessId": shp, interop_key: INTEROP, "Data": items, **extra}
        response = self.post(path, body)
        assert response.status_code == 200
        return response.json()  # type: ignore[no-any-return]

    def status(self, transaction_id: str) -> httpx.Response:
        return self.post(CHECK_STATUS_PATH, {"ShippingProcessId": "SHP-2731",
                                             "InteropID": INTEROP, "PartnerId": PARTNER,
                                             "SPHTransactionId": transaction_id})


def fields(**values: Any) -> list[dict[str, Any]]:
    return [{"Name": name, "Value": value} for name, value in values.items()]


def intervention(number: str = "N-1", **extra: Any) -> SeedIntervention:
    return SeedIntervention(
        intervention_number=number,
        individual=SeedIndividual(progres_id=f"I-{number}", given_name=f"{MARKER}G"),
        **extra,
    )


# ------------------------------------------------------------------ B2C and APIM


def test_token_grant(ping_sim: PingSim) -> None:
    caller = Caller(ping_sim)
    answer = caller.fetch_token().json()
    assert answer["token_type"] == "Bearer"
    assert answer["expires_in"] == 3600
    assert answer["access_token"] != caller.token
    assert ping_sim.sim("GET", "tokens") == {"issued": 2, "valid": 2}


@pytest.mark.parametrize(
    ("form", "error"),
    [
        ({"grant_type": "client_credentials"}, "unsupported_grant_type"),
        ({"client_id": "someone-else"}, "invalid_client"),
        ({"scope": "openid"}, "invalid_scope"),
        ({"password": "wrong"}, "invalid_grant"),
        ({"username": "nobody"}, "invalid_grant"),
    ],
)
def test_token_refusals_use_b2c_errors(ping_sim: PingSim, form: dict[str, str], error: str) -> None:
    response = Caller(ping_sim).fetch_token(**form)
    assert response.status_code == 400
    assert response.json()["error"] == error
    assert response.json()["error_description"].startswith("AADB2C")


@pytest.mark.parametrize(
    ("key", "token", "message"),
    [
        (None, "default", "missing subscription key"),
        ("wrong", "default", "invalid subscription key"),
        (KEY, None, "Access token is missing or invalid"),
        (KEY, "ping_sim-forged", "Access token is missing or invalid"),
    ],
)
def test_apim_refusals(ping_sim: PingSim, key: str | None, token: str | None, message: str) -> None:
    response = Caller(ping_sim).post(RETRIEVE_PATH, {"ShippingProcessId": "SHP-2747"}, key=key,
                                token=token)
    assert response.status_code == 401
    assert response.json()["statusCode"] == 401
    assert message in response.json()["message"]


def test_tokens_expire_and_can_be_revoked(ping_sim: PingSim) -> None:
    clock = FakeClock()
    ping_sim.state.clock = clock
    ping_sim.sim("PUT", "modes", json={"token_seconds": 60})
    caller = Caller(ping_sim)
    assert caller.post(RETRIEVE_PATH, {}).status_code == 200
    clock.now += 60
    assert caller.post(RETRIEVE_PATH, {}).status_code == 401
    caller.token = caller.fetch_token().json()["access_token"]
    assert caller.post(RETRIEVE_PATH, {}).status_code == 200
    assert ping_sim.sim("POST", "tokens/revoke") == {"revoked": 2}
    assert caller.post(RETRIEVE_PATH, {}).status_code == 401


def test_faults_and_rate_limit(ping_sim: PingSim) -> None:
    caller = Caller(ping_sim)
    ping_sim.sim("PUT", "faults", json=[{"path": RETRIEVE_PATH, "status": 503, "times": 1}])
    assert caller.post(RETRIEVE_PATH, {}).status_code == 503
    assert caller.post(RETRIEVE_PATH, {}).status_code == 200
    ping_sim.sim("PUT", "modes", json={"rate_limit_calls": 1, "rate_limit_seconds": 30})
    assert caller.post(RETRIEVE_PATH, {}).status_code == 200
    throttled = caller.post(RETRIEVE_PATH, {})
    assert throttled.status_code == 429
    assert 1 <= int(throttled.headers["Retry-After"]) <= 30
    assert [e["status"] for e in ping_sim.sim("GET", "journal")][-4:] == [503, 200, 200, 429]


# ------------------------------------------------------------------ retrieve


def test_pending_list_holds_flagged_interventions_ready_or_unset(ping_sim: PingSim) -> None:
    ping_sim.seed(Seed(interventions=[
        intervention("N-1"),
        intervention("N-2", transfer_status=125080000),
        intervention("N-3", transfer_status=125080002),
        intervention("N-4", flagged=False),
    ]))
    rows = Caller(ping_sim).rows("SHP-2747")
    assert [r["progres_interventionnumber"] for r in rows] == ["N-1", "N-2"]
    assert set(rows[0]) == {"progres_lpinterventionid", "progres_interventionnumber",
                            "progres_businessunit", "progres_businessunitname", "statuscode"}
    assert rows[1]["progres_primerotransferstatus"] == 125080000


def test_detail_rows_join_languages_and_needs(ping_sim: PingSim) -> None:
    ids = ping_sim.seed(Seed(interventions=[
        intervention("N-1", languages=["Nuer", "Anyuak"], specific_needs=[
            SeedNeed(category="Child at risk", subcategory="Child labour"),
            SeedNeed(category="Disability")]),
        intervention("N-2"),
    ]))["interventions"]
    caller = Caller(ping_sim)
    rows = caller.rows("SHP-2358", ids[0])
    assert len(rows) == 4
    pairs = {(r["progres_language.progres_languagecodeidname"],
              r["progres_specificneed.progres_spncategory2name"],
              r.get("progres_specificneed.progres_spnsubcategory2name")) for r in rows}
    assert pairs == {(lang, cat, sub) for lang in ("Nuer", "Anyuak")
                     for cat, sub in (("Child at risk", "Child labour"), ("Disability", None))}
    assert {r["progres_individual.individuals.progres_givenname"] for r in rows} == {f"{MARKER}G"}
    [plain] = caller.rows("SHP-2358", ids[1])
    assert "progres_language.progres_languagecodeidname" not in plain
    assert "progres_individual.individuals.progres_middlename" not in plain  # nulls left out
    both = caller.rows("SHP-2358", f"[{ids[0]},{ids[1]}]")
    assert len(both) == 5
    assert caller.rows("SHP-2358", "no-such-id") == []


def test_detail_rows_carry_lookups_and_integer_option_sets(ping_sim: PingSim) -> None:
    [seeded] = synthetic_interventions(1)
    [lp_id] = ping_sim.seed(Seed(interventions=[seeded]))["interventions"]
    row = Caller(ping_sim).rows("SHP-2358", lp_id)[0]
    assert row["progres_individual.individuals.progres_sex"] == 125080001
    assert row["individuals.progres_coalocationlevel1"]["Name"] == "Gambela"
    assert set(row["individuals.progres_coalocationlevel1"]) == {"Id", "LogicalName", "Name"}
    assert row["progres_individual.progres_registrationgroupidname"] == "SIM-26-00001"
    assert row["progres_interventiontype2.interventiontype.progres_description"] == (
        "Alternative Care")
    assert row["systemuser.su.internalemailaddress"] == f"{MARKER.lower()}@example.org"


def test_empty_answer_forms_and_paging_summary(ping_sim: PingSim) -> None:
    caller = Caller(ping_sim)
    empty = caller.retrieve("SHP-2747")
    assert (empty["Data"], empty["RecordCount"], empty["ErrorMessage"]) == (
        "No Data Available", None, None)
    ping_sim.sim("PUT", "modes", json={"empty_as_string": False, "page_size": 2})
    assert caller.retrieve("SHP-2747")["Data"] == []
    ping_sim.seed(Seed(interventions=synthetic_interventions(3)))
    first = caller.retrieve("SHP-2747")
    assert first["PagingSummary"]["IsMoreRecordsAvailable"] is True
    assert first["PagingSummary"]["PageNumber"] == 1
    second = caller.retrieve("SHP-2747", PageNumber=2,
                             PagingCookie=first["PagingSummary"]["PagingCookie"])
    assert (len(second["Data"]), second["PagingSummary"]["IsMoreRecordsAvailable"]) == (1, False)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"PartnerId": "PNR-0"}, "Partner not found"),
        ({"InteropID": "INT-0"}, "Interoperability not found for this partner"),
        ({"ShippingProcessId": "SHP-0"}, "Shipping process not found for this partner"),
    ],
)
def test_retrieve_configuration_mismatches_are_error_messages(
    ping_sim: PingSim, change: dict[str, str], message: str
) -> None:
    body = {"ShippingProcessId": "SHP-2747", "PartnerId": PARTNER, "InteropID": INTEROP,
            "QueryParameters": [], **change}
    answer = Caller(ping_sim).post(RETRIEVE_PATH, body).json()
    assert (answer["Data"], answer["ErrorMessage"]) == (None, message)


def test_body_that_is_not_json(ping_sim: PingSim) -> None:
    caller = Caller(ping_sim)
    response = httpx.post(f"{ping_sim.url}{RETRIEVE_PATH}", content=b"{not json",
                          headers={"Ocp-Apim-Subscription-Key": KEY,
                                   "Authorization": f"Bearer {caller.token}"})
    assert response.status_code == 200
    assert response.json()["ErrorMessage"].startswith("Invalid request")


# ------------------------------------------------------------------ synchronous ingestion


def test_intervention_update_sets_status_date_ids_and_comment(ping_sim: PingSim) -> None:
    [lp_id] = ping_sim.seed(Seed(interventions=[intervention()]))["interventions"]
    answer = Caller(ping_sim).ingest("SHP-2748", [{
        "ExternalId": "ledger-7",
        "Attachments": [{"Comment": "Referral acknowledged by PRIMERO"}],
        "Fields": fields(progres_lpinterventionid=lp_id, progres_businessunit=UNIT,
                         progres_primerotransferstatus="125080003",
                         progres_primerotransferstatusdate="2026-01-31",
                         progres_primeroid="case-1", progres_primerocaseworker="cw"),
    }])
    assert answer["ErrorMessage"] is None and answer["RecordCount"] == 1
    record = ping_sim.sim("GET", f"interventions/{lp_id}")
    assert (record["transfer_status"], record["transfer_status_date"], record["primero_id"],
            record["primero_caseworker"]) == (125080003, "2026-01-31", "case-1", "cw")
    assert record["comments"] == ["Referral acknowledged by PRIMERO"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"progres_primerotransferstatus": "125089999"},
         "Invalid option set value for progres_primerotransferstatus"),
        ({"progres_primerotransferstatus": "accepted"},
         "Invalid option set value for progres_primerotransferstatus"),
        ({"progres_primerotransferstatusdate": "31/01/2026"},
         "Invalid date for progres_primerotransferstatusdate"),
        ({"progres_givenname": "x"}, "Unknown field progres_givenname"),
        ({"progres_businessunit": "other-unit"},
         "No record matches the key fields progres_lpinterventionid, progres_businessunit"),
    ],
)
def test_intervention_update_refusals_change_nothing(
    ping_sim: PingSim, change: dict[str, str], message: str
) -> None:
    [lp_id] = ping_sim.seed(Seed(interventions=[intervention()]))["interventions"]
    values = {"progres_lpinterventionid": lp_id, "progres_businessunit": UNIT,
              "progres_primerotransferstatus": "125080002", **change}
    answer = Caller(ping_sim).ingest("SHP-2748", [{"Fields": fields(**values)}])
    assert answer["ErrorMessage"] == f"Item 0: {message}"
    assert answer["RecordCount"] == 0
    assert ping_sim.sim("GET", f"interventions/{lp_id}")["transfer_status"] is None


def test_ingestion_applies_good_items_and_reports_bad_ones(ping_sim: PingSim) -> None:
    [lp_id] = ping_sim.seed(Seed(interventions=[intervention()]))["interventions"]
    good = {"Fields": fields(progres_lpinterventionid=lp_id, progres_businessunit=UNIT,
                             progres_primerotransferstatus="125080001")}
    caller = Caller(ping_sim)
    answer = caller.ingest("SHP-2748", [{"Fields": "nope"}, good], interop_key="InteropID")
    assert answer["RecordCount"] == 1
    assert answer["ErrorMessage"] == "Item 0: Item without a Fields list"
    assert ping_sim.sim("GET", f"interventions/{lp_id}")["transfer_status"] == 125080001


def test_referral_update_and_ingestion_mismatches(ping_sim: PingSim) -> None:
    [ref_id] = ping_sim.seed(Seed(referrals=[SeedReferral()]))["referrals"]
    caller = Caller(ping_sim)
    answer = caller.ingest("SHP-2284", [{"Fields": fields(
        progres_interoperabilityreferralid=ref_id,
        progres_interoperabilityreferralstatus="125080003",
        progres_comments="Referral decision synced with PRIMERO")}])
    assert answer["ErrorMessage"] is None
    referral = ping_sim.sim("GET", f"referrals/{ref_id}")
    assert referral["fields"]["progres_interoperabilityreferralstatus"] == 125080003
    assert referral["fields"]["progres_comments"] == "Referral decision synced with PRIMERO"
    assert caller.ingest("SHP-2747", [])["ErrorMessage"] == (
        "Shipping process not configured for synchronous ingestion")
    wrong_partner = caller.post("/api/ingestion/v2/PNR-0/data", {
        "ShippingProcessId": "SHP-2284", "InteropId": INTEROP, "Data": []}).json()
    assert wrong_partner["ErrorMessage"] == "Partner not found"
    no_list = caller.post(DATA_PATH, {"ShippingProcessId": "SHP-2284", "InteropId": INTEROP})
    assert no_list.json()["ErrorMessage"] == "Invalid request: Data must be a list"


# ------------------------------------------------------------------ asynchronous ingestion


def test_async_items_are_queued_then_processed_then_referrals(ping_sim: PingSim) -> None:
    clock = FakeClock()
    ping_sim.state.clock = clock
    ping_sim.sim("PUT", "modes", json={"async_delay_seconds": 5})
    caller = Caller(ping_sim)
    item = {"ExternalId": "case-1", "ExternalGUID": "rec-1", "Fields": fields(
        progres_orgreferralid="svc-1", progres_pocsex="125080001",
        progres_pocfirstname=f"{MARKER}First", progres_referraldate="2026-02-01")}
    answer = caller.ingest("SHP-2731", [item], path=ASYNC_PATH, interop_key="InteropID",
                           APIVersion="V2")
    transaction = answer["SPHTransactionId"]
    statuses = []
    for step in (0, 5, 5):
        clock.now += step
        [entry] = ping_sim.sim("GET", "transactions")
        statuses.append(entry["items"][0]["status"])
    assert statuses == ["Queued", "Processing", "Succeeded"]
    [referral] = ping_sim.sim("GET", "referrals")
    assert referral["transaction_id"] == transaction
    assert referral["fields"]["progres_interoperabilityreferralstatus"] == 125080000
    assert referral["fields"]["progres_pocfirstname"] == f"{MARKER}First"
    again = caller.ingest("SHP-2731", [item], path=ASYNC_PATH, interop_key="InteropID")
    assert again["SPHTransactionId"] != transaction
    assert ping_sim.sim("POST", "transactions/process") == {"processed": 1}
    assert len(ping_sim.sim("GET", "referrals")) == 2  # PING keeps no duplicate guard


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"progres_orgreferralid": "s", "progres_pocsex": "Unknown"},
         "Invalid option set value for progres_pocsex"),
        ({"progres_orgreferralid": "s", "progres_pocdateofbirth": "2016"},
         "Invalid date for progres_pocdateofbirth"),
        ({"progres_pocfirstname": "x"}, "Required field progres_orgreferralid is missing"),
        ({"progres_orgreferralid": "s", "name_first": "x"}, "Unknown field name_first"),
    ],
)
def test_async_items_that_fail(ping_sim: PingSim, values: dict[str, str], message: str) -> None:
    caller = Caller(ping_sim)
    answer = caller.ingest("SHP-2731", [{"ExternalId": "c", "Fields": fields(**values)}],
                           path=ASYNC_PATH)
    [entry] = ping_sim.sim("GET", "transactions")
    assert entry["transaction_id"] == answer["SPHTransactionId"]
    assert (entry["items"][0]["status"], entry["items"][0]["message"]) == ("Failed", message)
    assert ping_sim.sim("GET", "referrals") == []


def test_async_to_the_wrong_shipping_process(ping_sim: PingSim) -> None:
    answer = Caller(ping_sim).ingest("SHP-2748", [], path=ASYNC_PATH)
    assert answer["SPHTransactionId"] is None
    assert answer["ErrorMessage"] == "Shipping process not configured for asynchronous ingestion"


def test_check_status_is_malformed_unless_told_otherwise(ping_sim: PingSim) -> None:
    caller = Caller(ping_sim)
    item = {"ExternalId": "case-1", "Fields": fields(progres_orgreferralid="svc-1",
                                                     progres_pocfirstname=f"{MARKER}F")}
    transaction = caller.ingest("SHP-2731", [item], path=ASYNC_PATH)["SPHTransactionId"]
    malformed = caller.status(transaction).json()["Data"]
    assert isinstance(malformed, str)
    assert '"Data":"{"progres_orgreferralid": "svc-1"' in malformed
    with pytest.raises(json.JSONDecodeError):
        json.loads(malformed)
    ping_sim.sim("PUT", "modes", json={"malformed_status": False})
    [entry] = caller.status(transaction).json()["Data"]
    assert (entry["ExternalId"], entry["Status"], entry["Message"]) == ("case-1", "Succeeded",
                                                                        None)
    assert json.loads(entry["Data"])["progres_pocfirstname"] == f"{MARKER}F"
    unknown = caller.status("00000000-0000-4000-8000-000000000000").json()
    assert unknown == {"Data": None, "ErrorMessage": "Transaction not found"}


# ------------------------------------------------------------------ proGres users and chaos


def test_flag_requeues_an_intervention(ping_sim: PingSim) -> None:
    [lp_id] = ping_sim.seed(Seed(interventions=[intervention(transfer_status=125080001)]))[
        "interventions"]
    caller = Caller(ping_sim)
    assert caller.rows("SHP-2747") == []
    flagged = ping_sim.sim("POST", f"interventions/{lp_id}/flag")
    assert flagged["transfer_status"] == 125080000 and flagged["transfer_status_date"]
    assert [r["progres_lpinterventionid"] for r in caller.rows("SHP-2747")] == [lp_id]


def test_decide_accept_and_reject(ping_sim: PingSim) -> None:
    ids = ping_sim.seed(Seed(referrals=[
        SeedReferral(fields={"progres_offlineid": "case-1", "progres_orgreferralid": "svc-1"}),
        SeedReferral(fields={"progres_offlineid": "case-2", "progres_orgreferralid": "svc-2"}),
    ]))["referrals"]
    caller = Caller(ping_sim)
    ping_sim.sim("POST", f"referrals/{ids[0]}/decide", json={"decision": "accepted"})
    ping_sim.sim("POST", f"referrals/{ids[1]}/decide", json={
        "decision": "rejected", "rejection_reason": 125080002,
        "rejection_reason_name": "Not applicable", "comment": f"{MARKER} comment"})
    listed = {r["progres_interoperabilityreferralid"]: r["progres_interoperabilityreferralstatus"]
              for r in caller.rows("SHP-2795")}
    assert listed == {ids[0]: 125080001, ids[1]: 125080002}
    [accepted] = caller.rows("SHP-2796", ids[0])
    assert accepted == {"progres_interoperabilityreferralid": ids[0],
                        "progres_interoperabilityreferralstatus": 125080001,
                        "progres_reviewdecision": 125080000, "progres_offlineid": "case-1",
                        "progres_orgreferralid": "svc-1"}
    [rejected] = caller.rows("SHP-2796", ids[1])
    assert rejected["progres_reviewdecision"] == 125080001
    assert rejected["progres_interoperabiltyreferralrejectionreason"] == 125080002
    assert rejected["progres_interoperabiltyreferralrejectionreasonname"] == "Not applicable"
    assert rejected["progres_interoperabilityreferralrejectionomment"] == f"{MARKER} comment"
    bad = httpx.post(f"{ping_sim.url}/_sim/referrals/{ids[0]}/decide", json={"decision": "maybe"})
    assert bad.status_code == 422
    assert httpx.post(f"{ping_sim.url}/_sim/referrals/nope/decide",
                      json={"decision": "accepted"}).status_code == 404


def test_duplicate_delivery_shows_an_acknowledged_row_once_more(ping_sim: PingSim) -> None:
    [lp_id] = ping_sim.seed(Seed(interventions=[intervention()]))["interventions"]
    caller = Caller(ping_sim)
    assert len(caller.rows("SHP-2747")) == 1
    ping_sim.sim("PUT", "modes", json={"duplicate_deliveries": 1})
    caller.ingest("SHP-2748", [{"Fields": fields(
        progres_lpinterventionid=lp_id, progres_businessunit=UNIT,
        progres_primerotransferstatus="125080002")}])
    assert len(caller.rows("SHP-2747")) == 1
    assert caller.rows("SHP-2747") == []
    assert ping_sim.sim("GET", "modes")["duplicate_deliveries"] == 0


def test_lost_writeback_answers_applied_but_changes_nothing(ping_sim: PingSim) -> None:
    [lp_id] = ping_sim.seed(Seed(interventions=[intervention()]))["interventions"]
    ping_sim.sim("PUT", "modes", json={"lost_writebacks": 1})
    item = {"Fields": fields(progres_lpinterventionid=lp_id, progres_businessunit=UNIT,
                             progres_primerotransferstatus="125080002")}
    caller = Caller(ping_sim)
    assert caller.ingest("SHP-2748", [item])["RecordCount"] == 1
    assert ping_sim.sim("GET", f"interventions/{lp_id}")["transfer_status"] is None
    caller.ingest("SHP-2748", [item])
    assert ping_sim.sim("GET", f"interventions/{lp_id}")["transfer_status"] == 125080002


def test_lost_answer_applies_the_write_but_answers_504(ping_sim: PingSim) -> None:
    [lp_id] = ping_sim.seed(Seed(interventions=[intervention()]))["interventions"]
    ping_sim.sim("PUT", "modes", json={"lost_answers": 1})
    item = {"Fields": fields(progres_lpinterventionid=lp_id, progres_businessunit=UNIT,
                             progres_primerotransferstatus="125080002")}
    caller = Caller(ping_sim)
    body = {"ShippingProcessId": "SHP-2748", "InteropId": INTEROP, "Data": [item]}
    assert caller.post(DATA_PATH, body).status_code == 504
    assert ping_sim.sim("GET", f"interventions/{lp_id}")["transfer_status"] == 125080002
    assert caller.post(DATA_PATH, body).status_code == 200
    assert ping_sim.sim("GET", "modes")["lost_answers"] == 0


def test_lost_async_answer_queues_the_item_but_answers_504(ping_sim: PingSim) -> None:
    ping_sim.sim("PUT", "modes", json={"lost_async_answers": 1})
    item = {"ExternalId": "case-1", "Fields": fields(progres_orgreferralid="svc-1")}
    body = {"ShippingProcessId": "SHP-2731", "InteropID": INTEROP, "Data": [item]}
    caller = Caller(ping_sim)
    assert caller.post(ASYNC_PATH, body).status_code == 504
    assert ping_sim.sim("POST", "transactions/process") == {"processed": 1}
    [referral] = ping_sim.sim("GET", "referrals")
    assert referral["fields"]["progres_orgreferralid"] == "svc-1"
    assert caller.post(ASYNC_PATH, body).status_code == 200
    assert ping_sim.sim("GET", "modes")["lost_async_answers"] == 0


def test_writes_journal_each_applied_item_with_its_status_only(ping_sim: PingSim) -> None:
    [lp_id] = ping_sim.seed(Seed(interventions=[intervention()]))["interventions"]
    [ref_id] = ping_sim.seed(Seed(referrals=[SeedReferral()]))["referrals"]
    caller = Caller(ping_sim)
    status = {"Fields": fields(progres_lpinterventionid=lp_id, progres_businessunit=UNIT,
                               progres_primerotransferstatus="125080003"),
              "Attachments": [{"Comment": f"{MARKER} comment"}]}
    caller.ingest("SHP-2748", [status, status])
    caller.ingest("SHP-2748", [{"Fields": fields(progres_lpinterventionid=lp_id,
                                                 progres_businessunit=UNIT,
                                                 progres_primeroid="case-1")}])
    caller.ingest("SHP-2748", [{"Fields": fields(progres_lpinterventionid="nobody",
                                                 progres_businessunit=UNIT,
                                                 progres_primerotransferstatus="125080002")}])
    ping_sim.sim("PUT", "modes", json={"lost_writebacks": 1})
    caller.ingest("SHP-2748", [status])
    caller.ingest("SHP-2284", [{"Fields": fields(
        progres_interoperabilityreferralid=ref_id,
        progres_interoperabilityreferralstatus="125080003")}])
    caller.ingest("SHP-2731", [{"ExternalId": "c", "Fields": fields(progres_orgreferralid="s")}],
                  path=ASYNC_PATH)
    ping_sim.sim("POST", "transactions/process")
    [created] = [r["referral_id"] for r in ping_sim.sim("GET", "referrals") if r["referral_id"]
                 != ref_id]
    assert ping_sim.sim("GET", "writes") == [
        {"table": "intervention", "record_id": lp_id, "status": 125080003},
        {"table": "intervention", "record_id": lp_id, "status": 125080003},
        {"table": "intervention", "record_id": lp_id, "status": None},
        {"table": "referral", "record_id": ref_id, "status": 125080003},
        {"table": "referral_created", "record_id": created, "status": 125080000},
    ]


def test_seed_and_modes_are_validated(ping_sim: PingSim) -> None:
    bad_seed = httpx.post(f"{ping_sim.url}/_sim/seed", json={"interventions": [{"x": 1}]})
    assert bad_seed.status_code == 422
    bad_modes = httpx.put(f"{ping_sim.url}/_sim/modes", json={"page_size": 0})
    assert bad_modes.status_code == 422
    assert httpx.get(f"{ping_sim.url}/_sim/interventions/nope").status_code == 404


def test_reset_forgets_everything(ping_sim: PingSim) -> None:
    ping_sim.seed(Seed(interventions=synthetic_interventions(2), referrals=[SeedReferral()]))
    caller = Caller(ping_sim)
    caller.rows("SHP-2747")
    ping_sim.sim("PUT", "modes", json={"page_size": 7})
    [referral] = ping_sim.sim("GET", "referrals")
    caller.ingest("SHP-2284", [{"Fields": fields(
        progres_interoperabilityreferralid=referral["referral_id"])}])
    assert ping_sim.sim("GET", "writes")
    ping_sim.sim("PUT", "faults", json=[{"path": "/x", "status": 500}])
    ping_sim.sim("POST", "reset")
    for what in ("interventions", "referrals", "transactions", "journal", "queries",
                 "ingestions", "writes", "faults"):
        assert ping_sim.sim("GET", what) == [], what
    assert ping_sim.sim("GET", "modes")["page_size"] == 50
    assert ping_sim.sim("GET", "tokens") == {"issued": 0, "valid": 0}


# ------------------------------------------------------------------ the command


def test_simulate_ping_command_serves_the_simulator(tmp_path: Any) -> None:
    seed_file = tmp_path / "seed.json"
    seed_file.write_text(Seed(interventions=[intervention("CLI-1")]).model_dump_json())
    with simulate(
        "ping", "--subscription-key", KEY, "--password", PASSWORD, "--client-id", CLIENT_ID,
        "--username", USER, "--seed", str(seed_file), "--synthetic", "2", "--page-size", "2",
        ready="/_sim/modes",
    ) as url:
        caller = Caller(PingSim(url=url, app=None))
        first = caller.retrieve("SHP-2747")
        assert len(first["Data"]) == 2 and first["PagingSummary"]["IsMoreRecordsAvailable"]
        numbers = [i["intervention_number"] for i in httpx.get(f"{url}/_sim/interventions").json()]
        assert numbers == ["CLI-1", "SIM-26-PRTITV-0000001", "SIM-26-PRTITV-0000002"]


def test_simulate_ping_rejects_a_bad_seed_file(tmp_path: Any) -> None:
    seed_file = tmp_path / "seed.json"
    seed_file.write_text('{"interventions": [{"unknown": 1}]}')
    result = subprocess.run(
        [sys.executable, "-m", "primero_progres.cli", "simulate", "ping", "--port",
         "0", "--subscription-key", KEY, "--password", PASSWORD,
         "--seed", str(seed_file)],
        capture_output=True, timeout=60,
    )
    assert result.returncode == 2
    assert b"--seed is not a valid seed" in result.stderr


def test_simulate_ping_refuses_a_token_path_without_slash() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "primero_progres.cli", "simulate", "ping", "--port",
         "0", "--subscription-key", KEY, "--password", PASSWORD,
         "--token-path", "tenant/token"],
        capture_output=True, timeout=60,
    )
    assert result.returncode == 2
    assert b"simulate ping: --token-path must start with /" in result.stderr
    assert b"Traceback" not in result.stderr
