"""The one-command demo: all four flows, end to end, against the simulators.

It starts the simulated peers and the bridge on free loopback ports with a
temporary SQLite database, then plays what people do on each side: proGres
sends a referral; the Primero focal point accepts it; a Primero caseworker
refers a child to UNHCR; proGres accepts that referral. The timeline shows
only IDs and statuses, never the (invented) personal data that crossed.

``gateway="ping"`` plays the same story through the PING simulator: proGres
users flag an intervention and decide a referral there, and the bridge pulls.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from . import demo_data
from .mapping.dtp import DECISION_REQUEST as DECISION_ENDPOINT
from .mapping.dtp import PENDING_ACKNOWLEDGEMENT
from .mapping.dtp import REFERRAL_REQUEST as REFERRAL_ENDPOINT
from .stack import Stack
from .store import Flow

#: the child a Primero caseworker refers to UNHCR (invented ids)
REFERRED_CASE_ID = "5d1a7c3e-0b8f-4e57-9a61-3c2f4b8e9d10"
REFERRED_RECORD_ID = "0f6e2b9a-7c41-4d3e-8b5a-2e9c7d1f4a68"


class DemoFailed(Exception):
    """A flow did not produce what it should have."""


@dataclass
class Timeline:
    """What crossed the bridge, as printable lines of IDs and statuses."""

    echo: Callable[[str], None]
    started: float = field(default_factory=time.monotonic)
    completed: list[str] = field(default_factory=list)

    def step(self, number: int, title: str) -> None:
        self.echo(f"\n[{number}] {title}")

    def line(self, actor: str, text: str) -> None:
        self.echo(f"    {time.monotonic() - self.started:6.2f}s  {actor:<22} {text}")

    def done(self, flow: str) -> None:
        self.completed.append(flow)
        self.line("", f"-> {flow}: completed")


def _expect(condition: bool, what: str) -> None:
    if not condition:
        raise DemoFailed(what)


async def _new_messages(stack: Stack, endpoint: str, seen: int) -> list[dict[str, Any]]:
    return (await stack.dtp_messages(endpoint))[seen:]


async def _case_created(
    stack: Stack, timeline: Timeline, number: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Flow 1's outcome in Primero: exactly one case, with the intervention's service row."""
    cases = [c for c in await stack.primero_cases() if c.get("unhcr_individual_no")]
    _expect(len(cases) == 1, "flow 1 should create exactly one case")
    case = cases[0]
    row = next(r for r in case["services_section"] if r.get("progres_interventionnumber") == number)
    timeline.line(
        "bridge -> Primero",
        f"case {case['case_id']} created, owned_by {case['owned_by']}, service {row['unique_id']}",
    )
    return case, row


async def play(stack: Stack, timeline: Timeline) -> None:
    """Drive the four flows on a running stack, checking each outcome."""
    number = "DEMO-26-PRTITV-0000001"

    timeline.step(1, "progres-referral: proGres refers a child to UNICEF")
    answer = await stack.progres_sends_referral(demo_data.referral_message())
    timeline.line("proGres -> bridge", f"intervention {number}: inbox {answer.get('status')}")
    await stack.settle()
    case, row = await _case_created(stack, timeline, number)
    [feedback] = await stack.dtp_messages(DECISION_ENDPOINT)
    _expect(feedback["body"].get("status") == PENDING_ACKNOWLEDGEMENT, "flow 1 feedback")
    timeline.line("bridge -> DTP", f"feedback '{feedback['body']['status']}' for {number}")
    timeline.done("progres-referral")

    timeline.step(2, "primero-decision: the Primero focal point accepts the referral")
    await stack.focal_point_decides(case["id"], row["unique_id"], "accepted")
    timeline.line("Primero focal point", f"service {row['unique_id']}: accepted")
    await stack.poll(Flow.PRIMERO_DECISION)
    [decision] = await _new_messages(stack, DECISION_ENDPOINT, 1)
    _expect(decision["body"].get("status") == "acknowledged", "flow 2 decision")
    timeline.line("bridge -> DTP", f"decision '{decision['body']['status']}' for {number}")
    timeline.done("primero-decision")

    timeline.step(3, "primero-referral: a Primero caseworker refers a child to UNHCR")
    await stack.seed_primero(cases=[demo_data.primero_case(REFERRED_CASE_ID, REFERRED_RECORD_ID)])
    referred = await stack.caseworker_refers_to_unhcr(REFERRED_RECORD_ID)
    timeline.line(
        "Primero caseworker",
        f"case {REFERRED_CASE_ID}: referral {referred['referral_id']} to "
        f"{demo_data.UNHCR_CASEWORKER}",
    )
    await stack.poll(Flow.PRIMERO_REFERRAL)
    [referral] = await stack.dtp_messages(REFERRAL_ENDPOINT)
    org_referral_id = referral["body"]["id"]
    _expect(org_referral_id.startswith(REFERRED_CASE_ID + "#"), "flow 3 referral id")
    timeline.line("bridge -> DTP", f"referral {org_referral_id}")
    timeline.done("primero-referral")

    timeline.step(4, "progres-decision: proGres accepts the referral")
    answer = await stack.progres_sends_decision(demo_data.decision_message(org_referral_id))
    timeline.line("proGres -> bridge", f"decision on {org_referral_id}: inbox {answer['status']}")
    await stack.settle()
    statuses = {r["id"]: r["status"] for r in await stack.primero_referrals()}
    status = statuses.get(referred["referral_id"])
    _expect(status == "accepted", "flow 4 should accept the Primero referral")
    timeline.line("bridge -> Primero", f"referral {referred['referral_id']}: {status}")
    timeline.done("progres-decision")

    dead = await stack.store.jobs.list(state="dead")
    _expect(not dead, f"{len(dead)} job(s) ended as dead letters")


# PING's codes in the reference profile (PING.md §5), written by hand
PENDING_ACKNOWLEDGEMENT_CODE = 125080002
ACCEPTED_IN_PRIMERO_CODE = 125080003
SYNCED_CODE = 125080003


async def play_ping(stack: Stack, timeline: Timeline) -> None:
    """The same four flows through the PING simulator: the bridge pulls, and writes back."""
    number = "DEMO-26-PRTITV-0000001"

    timeline.step(1, "progres-referral: a proGres user queues a child for UNICEF in PING")
    [lp_id] = (await stack.seed_ping([demo_data.ping_intervention(number)]))["interventions"]
    timeline.line("proGres user", f"LP intervention {lp_id} ({number}): ready for Primero")
    await stack.poll(Flow.PROGRES_REFERRAL)
    case, row = await _case_created(stack, timeline, number)
    intervention = await stack.ping_intervention(lp_id)
    _expect(
        intervention["transfer_status"] == PENDING_ACKNOWLEDGEMENT_CODE
        and intervention["primero_id"] == case["case_id"],
        "flow 1 write-back",
    )
    timeline.line(
        "bridge -> PING", f"transfer status {intervention['transfer_status']} for {lp_id}"
    )
    timeline.done("progres-referral")

    timeline.step(2, "primero-decision: the Primero focal point accepts the referral")
    await stack.focal_point_decides(case["id"], row["unique_id"], "accepted")
    timeline.line("Primero focal point", f"service {row['unique_id']}: accepted")
    await stack.poll(Flow.PRIMERO_DECISION)
    intervention = await stack.ping_intervention(lp_id)
    _expect(intervention["transfer_status"] == ACCEPTED_IN_PRIMERO_CODE, "flow 2 write-back")
    timeline.line(
        "bridge -> PING",
        f"transfer status {intervention['transfer_status']} for {lp_id}, caseworker "
        f"{intervention['primero_caseworker']}",
    )
    timeline.done("primero-decision")

    timeline.step(3, "primero-referral: a Primero caseworker refers a child to UNHCR")
    await stack.seed_primero(cases=[demo_data.primero_case(REFERRED_CASE_ID, REFERRED_RECORD_ID)])
    # a service the profile's ping section maps to a proGres requested service
    service = {"service_type": "basic_psychosocial_support"}
    referred = await stack.caseworker_refers_to_unhcr(REFERRED_RECORD_ID, service)
    timeline.line(
        "Primero caseworker",
        f"case {REFERRED_CASE_ID}: referral {referred['referral_id']} to "
        f"{demo_data.UNHCR_CASEWORKER}",
    )
    await stack.poll(Flow.PRIMERO_REFERRAL)
    await stack.settle()  # the check-status job waits for PING to process the ingestion
    [created] = await stack.ping_referrals()
    fields = created["fields"]
    _expect(fields.get("progres_orgreferralid") == referred["service_unique_id"], "flow 3")
    timeline.line(
        "bridge -> PING",
        f"interoperability referral {created['referral_id']} created "
        f"(transaction {created['transaction_id']})",
    )
    timeline.done("primero-referral")

    timeline.step(4, "progres-decision: a proGres user accepts the referral in PING")
    await stack.progres_decides(created["referral_id"], "accepted")
    timeline.line("proGres user", f"referral {created['referral_id']}: accepted")
    await stack.poll(Flow.PROGRES_DECISION)
    statuses = {r["id"]: r["status"] for r in await stack.primero_referrals()}
    status = statuses.get(referred["referral_id"])
    _expect(status == "accepted", "flow 4 should accept the Primero referral")
    timeline.line("bridge -> Primero", f"referral {referred['referral_id']}: {status}")
    [synced] = await stack.ping_referrals()
    _expect(
        synced["fields"]["progres_interoperabilityreferralstatus"] == SYNCED_CODE,
        "flow 4 write-back",
    )
    timeline.line("bridge -> PING", f"referral {created['referral_id']}: synced")
    timeline.done("progres-decision")

    dead = await stack.store.jobs.list(state="dead")
    _expect(not dead, f"{len(dead)} job(s) ended as dead letters")


async def run_demo(
    echo: Callable[[str], None] = print, *, gateway: Literal["dtp", "ping"] = "dtp"
) -> bool:
    """Run the demo; True only if all four flows completed."""
    timeline = Timeline(echo)
    name = gateway.upper()
    echo(f"primero-progres demo: Primero and {name} simulators + the bridge, on loopback")
    with tempfile.TemporaryDirectory(prefix="primero-progres-demo-") as workdir:
        async with Stack(Path(workdir), gateway=gateway) as stack:
            echo(
                f"    Primero simulator {stack.primero.url}   {name} simulator "
                f"{stack.unhcr.url}   bridge {stack.bridge_url}"
            )
            try:
                await (play_ping if gateway == "ping" else play)(stack, timeline)
            except (DemoFailed, TimeoutError, ValueError, KeyError) as exc:
                echo(f"\nFAILED after {len(timeline.completed)} of 4 flows: {exc}")
                return False
    echo(
        f"\nAll four flows completed in {time.monotonic() - timeline.started:.1f}s: "
        + ", ".join(timeline.completed)
    )
    return True
