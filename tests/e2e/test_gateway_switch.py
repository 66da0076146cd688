"""Switching a running deployment from DTP to PING sends nothing twice (docs/ping.md).

The bridge runs on DTP, delivers referrals both ways and sends a decision; the queue is
drained; the same database and Primero then run with ``UNHCR_GATEWAY=ping``. PING is seeded
with the worst case a migration could leave: the interventions DTP delivered listed again
as ready, and the referral DTP sent decided in proGres. Expected: nothing is written to
Primero again, nothing already sent is sent again, and what was still to come (a decision
taken after the switch, proGres's decision) goes through PING, addressed by the ids the
ledger kept while on DTP.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from primero_progres import demo_data
from primero_progres.stack import Stack
from primero_progres.store import Flow

LP_A, LP_B = "aaaaaaaa-0000-4000-8000-0000000000a1", "aaaaaaaa-0000-4000-8000-0000000000b2"
NUMBER_A, NUMBER_B = "DEMO-26-PRTITV-0000001", "DEMO-26-PRTITV-0000002"
CASE_ID = "11111111-2222-4333-8444-555555555555"
RECORD_ID = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"
ACCEPTED_IN_PRIMERO, PENDING_ACKNOWLEDGEMENT = 125080003, 125080002
DECIDED_IN_PROGRES, SYNCED = 125080001, 125080003


async def primero_writes(stack: Stack) -> list[tuple[str, str]]:
    journal = await stack.sim_call("GET", f"{stack.primero.url}/_sim/journal")
    return [(e["method"], e["path"]) for e in journal
            if e["method"] in ("POST", "PATCH") and e["path"].startswith("/api/v2/cases")]


def service_of(cases: list[dict[str, Any]], number: str) -> tuple[dict[str, Any], dict[str, Any]]:
    for case in cases:
        for row in case.get("services_section") or []:
            if row.get("progres_interventionnumber") == number:
                return case, row
    raise AssertionError(f"no service for {number}")


async def test_switching_from_dtp_to_ping_sends_nothing_twice(tmp_path: Path) -> None:
    async with Stack(tmp_path) as stack:
        # on DTP: two children referred by proGres (with their LP intervention ids), one
        # decision sent, one Primero referral sent to UNHCR
        await stack.progres_sends_referral(
            demo_data.referral_message(
                demo_data.intervention(NUMBER_A, progres_lpinterventionid=LP_A),
                demo_data.intervention(
                    NUMBER_B, progres_lpinterventionid=LP_B,
                    **{"individuals.progres_id": "DEMO-00000009"},
                ),
            )
        )
        await stack.settle()
        case_a, row_a = service_of(await stack.primero_cases(), NUMBER_A)
        await stack.focal_point_decides(case_a["id"], row_a["unique_id"], "accepted")
        await stack.poll(Flow.PRIMERO_DECISION)
        await stack.seed_primero(cases=[demo_data.primero_case(CASE_ID, RECORD_ID)])
        referred = await stack.caseworker_refers_to_unhcr(
            RECORD_ID, {"service_type": "basic_psychosocial_support"}
        )
        await stack.poll(Flow.PRIMERO_REFERRAL)
        [dtp_referral] = await stack.dtp_messages("ReceiveIncomingReferral")
        org_referral_id = dtp_referral["body"]["id"]
        assert len(await stack.dtp_messages("ReceiveDecisionOutgoingReferral")) == 3
        assert await stack.store.jobs.list(state="pending") == []  # drained
        writes_on_dtp = await primero_writes(stack)

        await stack.switch_to_ping()
        await stack.seed_ping(
            [
                demo_data.ping_intervention(NUMBER_A, lp_intervention_id=LP_A),
                demo_data.ping_intervention(NUMBER_B, "DEMO-00000009", lp_intervention_id=LP_B),
            ],
            [
                {
                    "referral_id": "cccccccc-0000-4000-8000-0000000000c3",
                    "fields": {
                        "progres_interoperabilityreferralstatus": DECIDED_IN_PROGRES,
                        "progres_reviewdecision": 125080000,
                        "progres_offlineid": CASE_ID,
                        "progres_orgreferralid": org_referral_id,
                    },
                }
            ],
        )
        for flow in (Flow.PROGRES_REFERRAL, Flow.PRIMERO_REFERRAL, Flow.PROGRES_DECISION):
            await stack.poll(flow)
        case_b, row_b = service_of(await stack.primero_cases(), NUMBER_B)
        await stack.focal_point_decides(case_b["id"], row_b["unique_id"], "accepted")
        await stack.poll(Flow.PRIMERO_DECISION, full_scan=True)

        # nothing was written to Primero again but proGres's decision on the DTP referral
        new_writes = (await primero_writes(stack))[len(writes_on_dtp):]
        assert new_writes == [
            ("PATCH", f"/api/v2/cases/{RECORD_ID}/referrals/{referred['referral_id']}")
        ]
        # A was decided and its decision sent on DTP: PING's stale listing is left alone;
        # B is acknowledged, then its decision goes through PING with the ids DTP brought
        intervention_a = await stack.ping_intervention(LP_A)
        assert intervention_a["transfer_status"] is None
        intervention_b = await stack.ping_intervention(LP_B)
        assert intervention_b["transfer_status"] == ACCEPTED_IN_PRIMERO
        assert intervention_b["primero_id"] == case_b["case_id"]
        transfer_statuses = [
            {f["Name"]: f["Value"] for f in item["Fields"]}["progres_primerotransferstatus"]
            for i in await stack.ping_ingestions("data") if i["shipping_process_id"] == "SHP-2748"
            for item in i["body"]["Data"]
        ]
        assert transfer_statuses == [str(PENDING_ACKNOWLEDGEMENT), str(ACCEPTED_IN_PRIMERO)]
        # the referral DTP carried is not created again through PING; its decision is synced
        assert await stack.ping_ingestions("asyncdata") == []
        [synced] = await stack.ping_referrals()
        assert synced["fields"]["progres_interoperabilityreferralstatus"] == SYNCED
        statuses = {r["id"]: r["status"] for r in await stack.primero_referrals()}
        assert statuses[referred["referral_id"]] == "accepted"
        assert await stack.store.jobs.list(state="dead") == []
