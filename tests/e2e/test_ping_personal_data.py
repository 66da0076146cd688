"""Personal data never leaves the exchange itself, over PING as over DTP.

The four flows run through the PING simulator with distinctive markers in every personal
field on both sides, unhappy paths included: an invalid intervention, a Primero refusal
whose body echoes the child, PING refusals echoing the write-back and the focal point's
decision, check-status answers that echo the whole referral (PING's malformed string), a
failed ingestion, a 503 echoing the child after an ingestion was posted (outcome unknown),
a decision on an unknown case, one with an unknown code, a lost answer to "synced". The
markers must then appear nowhere in the captured logs (structlog and stdlib, at DEBUG), the
SQLite files (before and after a purge), the audit trail, the ledger, the job rows and
``/metrics`` (the console: tests/web/console), and they must appear in what the peers
received.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import pytest

from primero_progres import demo_data
from primero_progres.logging import configure_logging
from primero_progres.stack import Stack
from primero_progres.store import Flow

from .test_personal_data import (
    _database_bytes,
    _date_forms,
    _phone_forms,
    _stored_rows,
)

TAG = "b41e"
GIVEN, MIDDLE, FAMILY, NICK = (f"ZZMARKER-{p}-{TAG}" for p in ("GIVEN", "MIDDLE", "FAMILY", "NICK"))
ADDRESS = [f"ZZMARKER-ADDR{n}-{TAG}" for n in range(1, 7)]
DESCRIPTION, REASON, OFFICER = (f"ZZMARKER-{p}-{TAG}" for p in ("DESC", "REASON", "OFFICER"))
PHONE, OFFICER_PHONE = "+999 4410 2267 31", "+999 4410 3378 42"
DOB = ("2013", "08", "19")
P_GIVEN, P_FAMILY, P_ADDRESS, P_NOTES = (
    f"ZZMARKER-P{p}-{TAG}" for p in ("GIVEN", "FAMILY", "ADDR", "NOTES")
)
P_PHONE = "+999 5521 4489 53"
P_DOB = ("2011", "02", "27")
FOCAL_POINT_REASON = f"ZZMARKER-FPREASON-{TAG}"
PROGRES_REJECTION, PROGRES_COMMENT = f"ZZMARKER-PGREJECT-{TAG}", f"ZZMARKER-PGCOMMENT-{TAG}"

MARKERS = [
    GIVEN, MIDDLE, FAMILY, NICK, *ADDRESS, DESCRIPTION, REASON, OFFICER,
    P_GIVEN, P_FAMILY, P_ADDRESS, P_NOTES, FOCAL_POINT_REASON, PROGRES_REJECTION,
    PROGRES_COMMENT, *_phone_forms(PHONE), *_phone_forms(OFFICER_PHONE), *_phone_forms(P_PHONE),
    *_date_forms(*DOB), *_date_forms(*P_DOB),
]  # fmt: skip

CASE_ID = "22222222-3333-4444-8555-666666666666"
RECORD_ID = "bbbbbbbb-cccc-4ddd-8eee-ffffffffffff"
OTHER_CASE_ID = "22222222-3333-4444-8555-777777777777"
OTHER_RECORD_ID = "bbbbbbbb-cccc-4ddd-8eee-000000000000"


def leaks(text: str | bytes) -> list[str]:
    haystack = (text if isinstance(text, bytes) else text.encode()).lower()
    return [m for m in MARKERS if m.lower().encode() in haystack]


def marked_intervention(number: str, progres_id: str, *, sex: int = 125080001) -> dict[str, Any]:
    return demo_data.ping_intervention(
        number,
        progres_id,
        description=f"<p>{DESCRIPTION}</p>",
        reason_for_referral=REASON,
        individual={
            "progres_id": progres_id,
            "given_name": GIVEN,
            "middle_name": MIDDLE,
            "family_name": FAMILY,
            "common_name": NICK,
            "date_of_birth": f"{'-'.join(DOB)}T00:00:00Z",
            "sex": sex,
            "phone": PHONE,
            "locations": ADDRESS,
        },
        caseworker={"title": OFFICER, "mobilephone": OFFICER_PHONE},
    )


def marked_case(case_id: str, record_id: str) -> dict[str, Any]:
    return demo_data.primero_case(
        case_id,
        record_id,
        name_first=P_GIVEN,
        name_last=P_FAMILY,
        date_of_birth="-".join(P_DOB),
        telephone_current=P_PHONE,
        address_current=P_ADDRESS,
    )


async def _play_every_flow(stack: Stack) -> None:
    # flow 1: a valid child, an invalid one (delivery failed), and one Primero refuses with a
    # body that echoes the child; PING first refuses a write-back with an echoing body
    await stack.seed_ping(
        [
            marked_intervention("DEMO-26-PRTITV-0000001", "DEMO-00000001"),
            marked_intervention("DEMO-26-PRTITV-0000002", "DEMO-00000002", sex=999),
        ]
    )
    echo = {"ErrorMessage": f"Item 0: {GIVEN} {PHONE} is invalid", "Data": None}
    await stack.set_faults("ping", [{"path": "/api/ingestion", "status": 400, "body": echo,
                                     "times": 1}])
    await stack.poll(Flow.PROGRES_REFERRAL)
    for dead in await stack.store.jobs.list(state="dead"):
        assert await stack.store.jobs.replay(dead.id)
    await stack.settle()
    refusal = {"errors": [{"status": 422, "detail": f"name_first {GIVEN}",
                           "message": f"{FAMILY} born {'-'.join(DOB)} is invalid"}]}
    await stack.set_faults(
        "primero", [{"method": "POST", "path": "/api/v2/cases", "status": 422, "body": refusal}]
    )
    await stack.seed_ping([marked_intervention("DEMO-26-PRTITV-0000003", "DEMO-00000003")])
    await stack.poll(Flow.PROGRES_REFERRAL)
    await stack.set_faults("primero", [])

    # flow 2: the focal point rejects with a free-text reason
    [case] = [c for c in await stack.primero_cases() if c["unhcr_individual_no"] == "DEMO-00000001"]
    row = case["services_section"][0]
    await stack.focal_point_decides(case["id"], row["unique_id"], "rejected", FOCAL_POINT_REASON)
    # PING first refuses the decision with a body that echoes it: a dead letter, replayed
    echo = {"ErrorMessage": f"Item 0: {FOCAL_POINT_REASON} for {FAMILY} is invalid", "Data": None}
    await stack.set_faults("ping", [{"path": "/api/ingestion", "status": 400, "body": echo,
                                     "times": 1}])
    await stack.poll(Flow.PRIMERO_DECISION)
    [refused] = await stack.store.jobs.list(state="dead", kind="primero-decision.send")
    assert await stack.store.jobs.replay(refused.id)
    await stack.settle()

    # flow 3: two marked children referred to UNHCR; PING fails the first ingestion, and its
    # check-status answers echo the referral (malformed, as PING sends them)
    await stack.seed_primero(
        cases=[marked_case(CASE_ID, RECORD_ID), marked_case(OTHER_CASE_ID, OTHER_RECORD_ID)]
    )
    service = {"service_type": "basic_psychosocial_support", "service_referral_notes": P_NOTES}
    await stack.caseworker_refers_to_unhcr(RECORD_ID, service)
    await stack.set_ping_modes(failing_async_items=1)
    await stack.poll(Flow.PRIMERO_REFERRAL)
    await stack.settle()
    [parked] = await stack.store.jobs.list(state="dead", kind="primero-referral.ingest")
    assert await stack.store.jobs.replay(parked.id)
    await stack.settle()
    await stack.caseworker_refers_to_unhcr(OTHER_RECORD_ID, service)
    # the post meets a 503 echoing the child: PING may have it (a dead letter); it has not
    # (the fault answered first), so the operator replays it
    echo = {"message": f"upstream failed on {P_GIVEN} {P_FAMILY}"}
    await stack.set_faults("ping", [{"path": "/api/ingestion", "status": 503, "body": echo,
                                     "times": 1}])
    await stack.poll(Flow.PRIMERO_REFERRAL)
    [unknown] = await stack.store.jobs.list(state="dead", kind="primero-referral.ingest")
    assert unknown.dead_reason is not None
    assert unknown.dead_reason.reason == "ingestion_outcome_unknown"
    assert await stack.store.jobs.replay(unknown.id)
    await stack.settle()

    # flow 4: proGres rejects one with a free-text reason and comment; a decision on a
    # case nobody knows, with the same texts (a dead letter)
    referral = next(
        r for r in await stack.ping_referrals() if r["fields"]["progres_offlineid"] == CASE_ID
    )
    texts = {"rejection_reason_name": PROGRES_REJECTION, "comment": PROGRES_COMMENT}
    await stack.progres_decides(referral["referral_id"], "rejected", **texts)
    await stack.seed_ping(
        referrals=[
            {
                "referral_id": "eeeeeeee-0000-4000-8000-00000000000e",
                "fields": {
                    "progres_interoperabilityreferralstatus": 125080002,
                    "progres_reviewdecision": 125080001,
                    "progres_offlineid": "99999999-9999-4999-8999-999999999999",
                    "progres_orgreferralid": "99999999-9999-4999-8999-000000000000",
                    "progres_interoperabiltyreferralrejectionreasonname": PROGRES_REJECTION,
                    "progres_interoperabilityreferralrejectionomment": PROGRES_COMMENT,
                },
            }
        ]
    )
    # a decision whose review code nobody knows, with the same texts (a dead letter), and a
    # lost answer to a "synced" (applied, then found applied)
    await stack.seed_ping(
        referrals=[
            {
                "referral_id": "eeeeeeee-0000-4000-8000-00000000000f",
                "fields": {
                    "progres_interoperabilityreferralstatus": 125080002,
                    "progres_reviewdecision": 125089999,
                    "progres_offlineid": OTHER_CASE_ID,
                    "progres_orgreferralid": "99999999-9999-4999-8999-000000000001",
                    "progres_interoperabiltyreferralrejectionreasonname": PROGRES_REJECTION,
                    "progres_interoperabilityreferralrejectionomment": PROGRES_COMMENT,
                },
            }
        ]
    )
    await stack.set_ping_modes(lost_answers=1)
    await stack.poll(Flow.PROGRES_DECISION)


async def test_no_personal_data_in_logs_database_audit_or_metrics_over_ping(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    configure_logging(level="DEBUG", json=True)
    caplog.set_level(logging.DEBUG)
    for name in ("httpx2", "httpcore2"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    async with Stack(tmp_path, gateway="ping") as stack:
        await _play_every_flow(stack)

        # the markers did cross the bridge, so their absence below means something
        cases = json.dumps(await stack.primero_cases())
        assert {GIVEN, FAMILY, NICK, DESCRIPTION, REASON} <= set(leaks(cases))
        assert PROGRES_COMMENT in json.dumps(await stack.primero_referrals())
        interventions = await stack.ping_sim("GET", "interventions")
        assert FOCAL_POINT_REASON in json.dumps(interventions)
        assert {P_GIVEN, P_FAMILY, P_ADDRESS, P_NOTES} <= set(
            leaks(json.dumps(await stack.ping_referrals()))
        )
        transfer = sorted(str(i["transfer_status"]) for i in interventions)
        assert transfer == ["125080001", "125080001", "125080004"]
        dead = await stack.store.jobs.list(state="dead")
        assert [j.kind for j in dead] == ["progres-decision.pull"] * 2
        assert {j.dead_reason.reason for j in dead if j.dead_reason} == {
            "unknown_case", "unknown_code"}
        [failed] = await stack.store.audit.list(event="referral_ingestion_failed")
        assert failed.ids["ping_status"] == "Failed"

        assert leaks(await _stored_rows(stack)) == []
        assert leaks(repr([j.dead_reason for j in dead])) == []
        metrics = await stack.http.get(f"{stack.bridge_url}/metrics")
        assert metrics.status_code == 200
        assert leaks(metrics.text) == []
        assert leaks(_database_bytes(tmp_path)) == []

        await stack.store.purge(retention_days=0)
        assert leaks(_database_bytes(tmp_path)) == []
        assert leaks(await _stored_rows(stack)) == []

    assert leaks(_database_bytes(tmp_path)) == []
    out, err = capfd.readouterr()
    logged = out + err + caplog.text
    assert "ping_transaction_status" in logged and "job.dead" in logged
    assert "DEBUG" in caplog.text or '"level": "debug"' in logged
    assert leaks(logged) == []
    assert leaks(repr([(r.msg, r.args, r.exc_text) for r in caplog.records])) == []


async def test_ping_credentials_and_tokens_never_logged_even_at_debug(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """B2C answers the bearer token in its body; every PING call carries it and the APIM key
    in headers, which the HTTP transport traces at DEBUG: none of them may reach a log line,
    nor the service account's password (sent in a form body)."""
    configure_logging(level="DEBUG", json=True)
    caplog.set_level(logging.DEBUG)
    for name in ("httpx2", "httpcore2"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    async with Stack(tmp_path, gateway="ping") as stack:
        await stack.seed_ping([marked_intervention("DEMO-26-PRTITV-0000001", "DEMO-00000001")])
        await stack.poll(Flow.PROGRES_REFERRAL)
        assert len(await stack.primero_cases()) == 1
        await stack.ping_sim("POST", "tokens/revoke")  # a 401, then a second token
        await stack.seed_ping([marked_intervention("DEMO-26-PRTITV-0000002", "DEMO-00000001")])
        await stack.poll(Flow.PROGRES_REFERRAL)
        tokens = await stack.ping_sim("GET", "tokens")
        assert tokens["issued"] == 2
    out, err = capfd.readouterr()
    logged = out + err + caplog.text
    assert "DEBUG" in caplog.text or '"level": "debug"' in logged
    assert not re.search(r"sim-[0-9a-f]{32}", logged)  # the simulator's tokens
    for secret in (demo_data.PING_PASSWORD, demo_data.PING_SUBSCRIPTION_KEY,
                   demo_data.PING_CLIENT_ID):
        assert secret not in logged, secret
