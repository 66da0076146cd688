"""Personal data never leaves the exchange itself (SPEC, "What the reference gets wrong" 7).

All four flows run with distinctive marker values in every personal field,
on both sides, including the unhappy paths that produce error texts: an
invalid intervention, a Primero refusal whose body echoes the data, a DTP
refusal, an unresolvable decision, a duplicate message. The markers must then
appear nowhere in the captured logs (structlog and stdlib, at DEBUG), the
SQLite files (database, ``-wal``, ``-shm``; before and after a purge), the
audit trail, the ledger, the job rows and the bridge's ``/metrics``. They must
appear in what the peers received, or the test would prove nothing.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from primero_progres import demo_data
from primero_progres.logging import configure_logging
from primero_progres.stack import Stack

TAG = "7f3a"
GIVEN, MIDDLE, FAMILY, NICK = (
    f"ZZMARKER-{part}-{TAG}" for part in ("GIVEN", "MIDDLE", "FAMILY", "NICK")
)
PHONE = "+999 7731 4422 19"
OFFICER_PHONE = "+999 7731 5533 28"
ADDRESS = [f"ZZMARKER-ADDR{n}-{TAG}" for n in range(1, 7)]
DESCRIPTION, REASON, NOTE_AUTHOR = (f"ZZMARKER-{p}-{TAG}" for p in ("DESC", "REASON", "AUTHOR"))
DOB = ("2013", "09", "17")
#: the Primero side: the seeded child, the caseworker's service notes, the decisions' free text
P_GIVEN, P_FAMILY, P_MIDDLE, P_NICK = (
    f"ZZMARKER-P{p}-{TAG}" for p in ("GIVEN", "FAMILY", "MIDDLE", "NICK")
)
P_PHONE = "+999 6620 3311 07"
P_ADDRESS, P_NOTES = f"ZZMARKER-PADDR-{TAG}", f"ZZMARKER-PNOTES-{TAG}"
P_DOB = ("2012", "04", "23")
FOCAL_POINT_REASON = f"ZZMARKER-FPREASON-{TAG}"
PROGRES_REJECTION = f"ZZMARKER-PGREJECT-{TAG}"
PROGRES_COMMENT = f"ZZMARKER-PGCOMMENT-{TAG}"

CASE_ID = "11111111-2222-4333-8444-555555555555"
RECORD_ID = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"
UNKNOWN_ORG_REFERRAL_ID = "99999999-9999-4999-8999-999999999999#000000000000"


def _date_forms(year: str, month: str, day: str) -> list[str]:
    return [
        f"{year}-{month}-{day}",
        f"{year}/{month}/{day}",
        f"{day}/{month}/{year}",
        f"{month}/{day}/{year}",
        f"{day}.{month}.{year}",
        f"{day}-{month}-{year}",
        f"{year}{month}{day}",
    ]


def _phone_forms(phone: str) -> list[str]:
    digits = "".join(c for c in phone if c.isdigit())
    return [phone, digits, phone.replace(" ", "")]


MARKERS: list[str] = [
    GIVEN,
    MIDDLE,
    FAMILY,
    NICK,
    *ADDRESS,
    DESCRIPTION,
    REASON,
    NOTE_AUTHOR,
    P_GIVEN,
    P_FAMILY,
    P_MIDDLE,
    P_NICK,
    P_ADDRESS,
    P_NOTES,
    FOCAL_POINT_REASON,
    PROGRES_REJECTION,
    PROGRES_COMMENT,
    *_phone_forms(PHONE),
    *_phone_forms(OFFICER_PHONE),
    *_phone_forms(P_PHONE),
    *_date_forms(*DOB),
    *_date_forms(*P_DOB),
]


def leaks(text: str | bytes) -> list[str]:
    """The markers found in ``text`` (case-insensitive)."""
    haystack = (text if isinstance(text, bytes) else text.encode()).lower()
    return [m for m in MARKERS if m.lower().encode() in haystack]


def _lookup(name: str) -> dict[str, Any]:
    return {
        "Id": "00000000-0000-4000-8000-0000000000aa",
        "KeyAttributes": [],
        "LogicalName": "progres_locationlevel",
        "Name": name,
        "RowVersion": None,
    }


def marked_intervention(number: str, individual: str, **overrides: Any) -> dict[str, Any]:
    """A proGres intervention whose every personal field holds a marker."""
    notes = [{"CreatedBy": NOTE_AUTHOR, "Text": f"<p>{REASON}</p>", "CreatedOn": "2026-10-01"}]
    fields: dict[str, Any] = {
        "individuals.progres_id": individual,
        "individuals.progres_givenname": GIVEN,
        "individuals.progres_middlename": MIDDLE,
        "individuals.progres_familyname": FAMILY,
        "individuals.progres_commonyusedname": NICK,
        "individuals.progres_dateofbirth": f"{'-'.join(DOB)}T00:00:00Z",
        "individuals.progres_primaryphonenumber": PHONE,
        **{
            f"individuals.progres_coalocationlevel{n}": _lookup(ADDRESS[n - 1]) for n in range(1, 6)
        },
        "individuals.progres_coalocationlevel6": ADDRESS[5],
        "progres_interventiondescription": f"<p>{DESCRIPTION}</p>",
        "progres_reasonforreferral": json.dumps(notes),
        "user.mobilephone": OFFICER_PHONE,
        **overrides,
    }
    return demo_data.intervention(number, **fields)


def marked_primero_case() -> dict[str, Any]:
    return demo_data.primero_case(
        CASE_ID,
        RECORD_ID,
        name_first=P_GIVEN,
        name_last=P_FAMILY,
        name_middle=P_MIDDLE,
        name_nickname=P_NICK,
        date_of_birth="-".join(P_DOB),
        telephone_current=P_PHONE,
        address_current=P_ADDRESS,
    )


async def _play_every_flow(stack: Stack) -> dict[str, Any]:
    """All four flows with markers, happy and unhappy paths; returns what the peers saw."""
    # flow 1: one valid and one invalid intervention (sex code unknown: invalid data)
    message = demo_data.referral_message(
        marked_intervention("DEMO-26-PRTITV-0000001", "DEMO-00000001"),
        marked_intervention(
            "DEMO-26-PRTITV-0000002", "DEMO-00000003", **{"individuals.progres_sex": "999"}
        ),
    )
    assert (await stack.progres_sends_referral(message))["status"] == "queued"
    assert (await stack.progres_sends_referral(message))["status"] == "duplicate"
    await stack.settle()

    # flow 1: Primero refuses a third child with an error body that echoes the data
    echo = {
        "errors": [
            {
                "status": 422,
                "resource": "/api/v2/cases",
                "detail": f"name_first {GIVEN} {PHONE}",
                "message": f"{FAMILY} born {'-'.join(DOB)} is invalid",
            }
        ]
    }
    await stack.set_faults(
        "primero", [{"method": "POST", "path": "/api/v2/cases", "status": 422, "body": echo}]
    )
    refused = marked_intervention("DEMO-26-PRTITV-0000003", "DEMO-00000004")
    await stack.progres_sends_referral(demo_data.referral_message(refused))
    await stack.settle()
    await stack.set_faults("primero", [])

    # flow 2: the focal point rejects with a free-text reason; DTP first refuses it for good,
    # with a body echoing the message, then the operator replays the dead letter
    [case] = [c for c in await stack.primero_cases() if c["unhcr_individual_no"] == "DEMO-00000001"]
    row = case["services_section"][0]
    await stack.focal_point_decides(case["id"], row["unique_id"], "rejected", FOCAL_POINT_REASON)
    await stack.set_faults(
        "dtp",
        [
            {
                "path": "/ReceiveDecisionOutgoingReferral",
                "status": 400,
                "body": {"message": f"bad closure_reason {FOCAL_POINT_REASON}"},
            }
        ],
    )
    await stack.poll("primero-decision")
    [dead_decision] = await stack.store.jobs.list(state="dead", kind="primero-decision.send")
    await stack.set_faults("dtp", [])
    assert await stack.store.jobs.replay(dead_decision.id)
    await stack.settle()

    # flow 3: a marked Primero child referred to UNHCR with marked service notes
    await stack.seed_primero(cases=[marked_primero_case()])
    referred = await stack.caseworker_refers_to_unhcr(
        RECORD_ID, {"service_type": "alternative_care", "service_referral_notes": P_NOTES}
    )
    await stack.poll("primero-referral")

    # flow 4: proGres rejects it with a free-text reason and comment; and a decision on a
    # referral nobody knows (a dead letter whose payload carries the comment)
    org_referral_id = f"{CASE_ID}#{referred['service_unique_id'][-12:]}"
    texts = {
        "progres_interoperabiltyreferralrejectionreason": PROGRES_REJECTION,
        "progres_interoperabilityreferralrejectionomment": PROGRES_COMMENT,
    }
    await stack.progres_sends_decision(
        demo_data.decision_message(org_referral_id, "125080001", **texts)
    )
    await stack.progres_sends_decision(
        demo_data.decision_message(UNKNOWN_ORG_REFERRAL_ID, "125080001", **texts)
    )
    await stack.settle()

    # an inbox request the bridge refuses, its body full of markers
    refused_post = await stack.http.post(
        stack.inbox_url,
        json={"request_type": f"Unknown-{GIVEN}", "interventions": [refused]},
        headers={"Authorization": f"Bearer {demo_data.INBOX_TOKEN}"},
    )
    assert refused_post.status_code == 400

    return {
        "dtp": await stack.dtp_messages(),
        "cases": await stack.primero_cases(),
        "referrals": await stack.primero_referrals(),
    }


async def _stored_rows(stack: Stack) -> str:
    """Everything the operator views read: audit, ledger and its events, jobs, messages."""
    store = stack.store
    exchanges = await store.ledger.list(limit=10_000)
    events = [await store.ledger.events(e.id) for e in exchanges]
    rows = [
        await store.audit.list(limit=10_000),
        exchanges,
        events,
        await store.jobs.list(limit=10_000),
        await store.messages.list(limit=10_000),
    ]
    return repr(rows)


def _database_bytes(workdir: Path) -> bytes:
    files = sorted(workdir.glob("bridge.db*"))
    assert workdir / "bridge.db" in files
    return b"".join(path.read_bytes() for path in files)


async def test_no_personal_data_in_logs_database_audit_or_metrics(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    configure_logging(level="DEBUG", json=True)
    caplog.set_level(logging.DEBUG)
    async with Stack(tmp_path) as stack:
        seen = await _play_every_flow(stack)

        # the markers did cross the bridge, so their absence below means something
        assert set(leaks(json.dumps(seen["cases"]))) >= {GIVEN, FAMILY, NICK, DESCRIPTION, REASON}
        assert set(leaks(json.dumps(seen["dtp"]))) >= {
            P_GIVEN,
            P_FAMILY,
            P_ADDRESS,
            P_NOTES,
            FOCAL_POINT_REASON,
        }
        assert PROGRES_COMMENT in json.dumps(seen["referrals"])
        statuses = sorted(m["body"]["status"] for m in seen["dtp"] if "status" in m["body"])
        assert statuses == [
            "Delivery Fail",
            "Delivery Fail",
            "Pending Acknowledgement",
            "rejected",
        ]
        dead = await stack.store.jobs.list(state="dead")
        # the two refused interventions, parked for a replay (their payloads sealed)
        assert sorted(j.kind for j in dead) == [
            "progres-decision.apply",
            "progres-referral.deliver",
            "progres-referral.deliver",
        ]

        assert leaks(await _stored_rows(stack)) == []
        assert leaks(repr([j.dead_reason for j in dead])) == []
        metrics = await stack.http.get(f"{stack.bridge_url}/metrics")
        assert metrics.status_code == 200
        assert "primero_progres" in metrics.text or "job" in metrics.text
        assert leaks(metrics.text) == []
        assert leaks(_database_bytes(tmp_path)) == []

        purged = await stack.store.purge(retention_days=0)
        assert purged.jobs >= 1
        assert leaks(_database_bytes(tmp_path)) == []
        assert leaks(await _stored_rows(stack)) == []

    assert leaks(_database_bytes(tmp_path)) == []
    out, err = capfd.readouterr()
    logged = out + err + caplog.text
    assert "intervention_delivered" in logged and "job.dead" in logged
    assert leaks(logged) == []
    assert leaks(repr([(r.msg, r.args, r.exc_text) for r in caplog.records])) == []


async def test_primero_session_token_never_logged_even_at_debug(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """With token login Primero answers the JWT in an ``Authorization`` response header; the
    HTTP transport (``httpcore2``) traces response headers at DEBUG and must stay quiet."""
    configure_logging(level="DEBUG", json=True)
    caplog.set_level(logging.DEBUG)
    async with Stack(tmp_path, primero_auth="token") as stack:
        await stack.progres_sends_referral(demo_data.referral_message())
        await stack.settle()
        assert len(await stack.primero_cases()) == 1
        journal = await stack.sim_call("GET", f"{stack.primero.url}/_sim/journal")
        assert [e["status"] for e in journal if e["path"] == "/api/v2/tokens"] == [200]
    assert "DEBUG" in caplog.text  # the capture works at this level
    assert "eyJ" not in caplog.text  # every JWT starts with base64 '{"'
    assert demo_data.API_PASSWORD not in caplog.text
