"""The bridge as deployed, attacked on purpose: the chaos test's moving parts.

Primero and the UNHCR gateway's simulator (DTP or PING) run in this process, each behind a
``FaultProxy`` (resets before and after forwarding, 5xx, 429, hangs); the bridge's inbox
runs here too (DTP must always reach it, as it would reach a load balancer in front of
several inboxes; over PING it only serves ``/metrics``); its workers are real
``primero-progres worker`` processes (scheduler included) talking to the peers through the
proxies only, SIGKILLed at seeded random times and started again. The drivers play the
people around the bridge: proGres sending referrals (over DTP each message twice; over PING
each intervention flagged for Primero, some edited and flagged again), focal points
deciding, caseworkers referring children to UNHCR, proGres deciding on those referrals.
Every personal value carries the ``ZZCHAOS`` marker.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from primero_progres import demo_data
from primero_progres.flows.ping_outbound import RESOLVE
from primero_progres.flows.primero_referral import INGEST
from primero_progres.profiles import load_profile
from primero_progres.settings import Settings
from primero_progres.sim import dtp as dtp_sim
from primero_progres.sim import ping as ping_sim
from primero_progres.sim import primero as primero_sim
from primero_progres.sim.common import ServerThread
from primero_progres.sim.control import SimControl
from primero_progres.sim.faultproxy import FaultPolicy, FaultProxy
from primero_progres.sim.ping_state import Decide, Modes, Seed, SeedIntervention
from primero_progres.sim.primero_config import PrimeroSimConfig, profile_users
from primero_progres.stack import ping_settings
from primero_progres.store import AuditEntry, Cipher, Job, Store, generate_key
from primero_progres.web import create_app

MARKER = "ZZCHAOS"
SEED_VARIABLE = "PRIMERO_PROGRES_CHAOS_SEED"
SCALE_VARIABLE = "PRIMERO_PROGRES_CHAOS_SCALE"
FEEDBACK = "ReceiveDecisionOutgoingReferral"
REFERRAL = "ReceiveIncomingReferral"
ACCEPT, REJECT = "125080000", "125080001"
#: PING's codes (the gambella profile): transfer status, interoperability referral status
PING_TRANSFER = {"ready": 125080000, "pending_acknowledgement": 125080002,
                 "accepted": 125080003, "rejected": 125080004}
PING_SYNCED = 125080003
PING_REFERRAL = {ACCEPT: "accepted", REJECT: "rejected"}
#: the share of the bridge's calls to each peer that fail, spread over the proxy's 8 kinds
FAULT_RATE = 0.25


def chaos_seed() -> int:
    """The run's seed: ``PRIMERO_PROGRES_CHAOS_SEED`` replays a run, else a new one."""
    given = os.environ.get(SEED_VARIABLE)
    return int(given) if given else random.SystemRandom().randrange(1, 2**31)


def chaos_scale() -> float:
    return float(os.environ.get(SCALE_VARIABLE, "1"))


@dataclass(frozen=True)
class Plan:
    """What one run sends, drawn from the seed."""

    #: (intervention number, unhcr_individual_no): some children have two interventions
    interventions: list[tuple[str, str]]
    #: intervention number -> the focal point's decision, for some of them
    focal_decisions: dict[str, str]
    #: Primero cases referred to UNHCR: (record id, case id)
    unhcr_cases: list[tuple[str, str]]
    #: case id -> proGres's decision code on its referral
    progres_decisions: dict[str, str]
    #: interventions proGres sends a second time changed (a new delivery of the same row)
    changed: frozenset[str] = frozenset()

    @classmethod
    def draw(cls, rng: random.Random, scale: float) -> Plan:
        children = max(4, round(48 * scale))
        interventions = []
        for child in range(children):
            individual = f"{MARKER}-IND-{child:04d}"
            for second in range(2 if child % 3 == 0 else 1):
                interventions.append((f"CHAOS-26-PRTITV-{child:04d}{second}", individual))
        decided = rng.sample([n for n, _ in interventions], k=max(2, len(interventions) // 2))
        focal = {n: rng.choice(["accepted", "rejected"]) for n in decided}
        unhcr = [
            (f"0d00{n:04x}-0000-4000-8000-00000000c0de", f"0c00{n:04x}-0000-4000-8000-00000000ca5e")
            for n in range(max(2, round(32 * scale)))
        ]
        decisions = {case_id: rng.choice([ACCEPT, REJECT]) for _, case_id in unhcr}
        changed = frozenset(rng.sample([n for n, _ in interventions], k=len(interventions) // 3))
        return cls(interventions, focal, unhcr, decisions, changed)

    def intervention(self, number: str, individual: str, *, again: bool = False) -> dict[str, Any]:
        """A proGres intervention whose personal fields all carry the marker (``again``: as
        proGres sends it a second time, changed if it is one of ``changed``)."""
        edit = "-EDITED" if again and number in self.changed else ""
        return demo_data.intervention(
            number,
            **{
                "individuals.progres_id": individual,
                "individuals.progres_givenname": f"{MARKER}-GIVEN-{number[-5:]}",
                "individuals.progres_familyname": f"{MARKER}-FAMILY-{number[-5:]}",
                "individuals.progres_commonyusedname": f"{MARKER}-NICK",
                "individuals.progres_primaryphonenumber": f"{MARKER}-PHONE",
                "individuals.progres_coalocationlevel6": f"{MARKER}-ADDRESS",
                "progres_interventiondescription": f"<p>{MARKER}-DESCRIPTION{edit}</p>",
                "user.mobilephone": f"{MARKER}-OFFICER",
            },
        )

    def ping_intervention(
        self, number: str, individual: str, *, edited: bool = False
    ) -> SeedIntervention:
        """The LP intervention behind ``number`` in proGres, not yet flagged for Primero; its
        personal fields all carry the marker (``edited``: as a proGres user changed it)."""
        edit = "-EDITED" if edited else ""
        short = number[-5:]
        item = demo_data.ping_intervention(
            number,
            individual,
            lp_intervention_id=lp_intervention_id(number),
            flagged=False,
            description=f"<p>{MARKER}-DESCRIPTION{edit}</p>",
            reason_for_referral=f"{MARKER}-REASON",
            individual={
                "progres_id": individual,
                "given_name": f"{MARKER}-GIVEN-{short}",
                "family_name": f"{MARKER}-FAMILY-{short}",
                "common_name": f"{MARKER}-NICK",
                "date_of_birth": "2015-03-01T00:00:00Z",
                "sex": 125080000,
                "phone": f"{MARKER}-PHONE",
                "locations": ["Gambela", f"{MARKER}-ADDRESS"],
            },
            caseworker={"title": f"{MARKER}-OFFICER", "mobilephone": f"{MARKER}-OFFICER-PHONE"},
        )
        return SeedIntervention.model_validate(item)

    def primero_case(self, record_id: str, case_id: str, n: int) -> dict[str, Any]:
        return demo_data.primero_case(
            case_id,
            record_id,
            unhcr_individual_no=f"{MARKER}-P{n:04d}",
            name_first=f"{MARKER}-PGIVEN",
            name_last=f"{MARKER}-PFAMILY",
            address_current=f"{MARKER}-PADDRESS",
            telephone_current=f"{MARKER}-PPHONE",
        )


async def lookup_counts(store: Store) -> dict[str, Any]:
    """``lookup_figures`` of the jobs and audit entries in ``store``."""
    resolves = await store.jobs.list(kind=RESOLVE, limit=100_000)
    ingests = await store.jobs.list(kind=INGEST, limit=100_000)
    sent = await store.audit.list(event="referral_sent", flow="primero-referral", limit=100_000)
    return lookup_figures(resolves, ingests, sent)


def lookup_figures(
    resolves: Sequence[Job], ingests: Sequence[Job], sent: Sequence[AuditEntry]
) -> dict[str, Any]:
    """Over PING, what the bridge's look-ups of posts whose outcome was unknown did, from the
    jobs a step queued (``parent_id``) and the audit entries it wrote (``job_id``):

    - ``outcome_unknown``: posts whose outcome was unknown (each queued a first ``resolve``,
      from an ``ingest``; the next look-ups are queued by a ``resolve``);
    - ``resolve``: the look-up jobs by state;
    - ``found``: look-ups that found the referral (recorded it ``sent``);
    - ``parked``: ``ingestion_outcome_unknown`` dead letters (an ``ingest`` a ``resolve``
      queued dead) by state: ``discarded`` (found in proGres), else replayed, or still dead.
    """
    ids = {job.id for job in resolves}
    parked = [job for job in ingests if job.parent_id in ids]
    return {
        "outcome_unknown": sum(job.parent_id not in ids for job in resolves),
        "resolve": dict(sorted(Counter(str(job.state) for job in resolves).items())),
        "found": sum(entry.job_id in ids for entry in sent),
        "parked": dict(sorted(Counter(str(job.state) for job in parked).items())),
    }


def lp_intervention_id(number: str) -> str:
    """The proGres id of an intervention, fixed by its number (a replay draws the same)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"chaos/{number}"))


@dataclass
class Counts:
    """What happened in a run, for the test's report."""

    kills: int = 0
    restarts: int = 0
    referral_posts: int = 0
    proxy: dict[str, dict[str, int]] = field(default_factory=dict)
    replayed: int = 0
    #: outcomes already at the simulators when the faults stopped (progress under faults)
    under_faults: dict[str, int] = field(default_factory=dict)
    #: over PING: dead ingestions whose outcome was unknown, found in proGres and discarded
    #: (the operator's check of docs/ping.md), and those replayed
    found_in_progres: int = 0
    unknown_replayed: int = 0
    #: over PING: the bridge's own look-ups (``lookup_figures``), read from the store at the end
    lookups: dict[str, Any] = field(default_factory=dict)
    #: over PING: interventions edited and flagged again once their first delivery was
    #: acknowledged (lp id -> index of the write journal at that moment)
    reflagged: dict[str, int] = field(default_factory=dict)


class Workers:
    """``primero-progres worker`` processes, each logging to its own file."""

    def __init__(self, env: dict[str, str], logs: Path, count: int) -> None:
        self.env = env
        self.logs = logs
        self.procs: list[subprocess.Popen[bytes]] = []
        self.files = [logs / f"worker-{n}.log" for n in range(count)]
        for n in range(count):
            self.procs.append(self._start(n))

    def _start(self, n: int) -> subprocess.Popen[bytes]:
        log = self.files[n].open("ab")
        try:
            return subprocess.Popen(
                [sys.executable, "-m", "primero_progres.cli", "worker"],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        finally:
            log.close()

    def kill(self, n: int) -> None:
        proc = self.procs[n]
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        self.procs[n] = self._start(n)

    def alive(self) -> bool:
        return all(p.poll() is None for p in self.procs)

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)

    def log_text(self) -> str:
        return "".join(f.read_text(errors="replace") for f in self.files if f.exists())


async def wait_for(
    what: str, check: Callable[[], Awaitable[bool]], *, timeout: float, every: float = 0.5
) -> None:
    """Wait until ``check()`` holds (a loaded machine is slow: the timeouts are generous)."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(every)


class ChaosRun:
    """Everything of one run; ``async with ChaosRun(...) as run:``."""

    def __init__(self, workdir: Path, database_url: str, seed: int, gateway: str = "dtp") -> None:
        self.workdir = workdir
        self.database_url = database_url
        self.seed = seed
        self.gateway = gateway
        self.rng = random.Random(seed)
        self.plan = Plan.draw(self.rng, chaos_scale())
        self.counts = Counts()
        self.key = generate_key()

    # ------------------------------------------------------------------ set-up

    async def __aenter__(self) -> ChaosRun:
        profile = load_profile("gambella")
        self.primero_app = primero_sim.create_app(
            users={demo_data.API_USER: demo_data.API_PASSWORD},
            seed={"users": [*profile_users(profile), *demo_data.PRIMERO_USERS]},
            config=PrimeroSimConfig.for_profile(profile),
        )
        self.primero = ServerThread(self.primero_app).start()
        if self.gateway == "ping":
            self.unhcr_app = ping_sim.create_app(
                subscription_key=demo_data.PING_SUBSCRIPTION_KEY,
                client_id=demo_data.PING_CLIENT_ID,
                username=demo_data.PING_USERNAME,
                password=demo_data.PING_PASSWORD,
                partner_id=demo_data.PING_PARTNER_ID,
                interop_id=demo_data.PING_INTEROP_ID,
                # pages of 10 (paging under faults), transactions taking 1 s, stale lists
                modes=Modes(page_size=10, async_delay_seconds=0.5, duplicate_deliveries=12),
            )
        else:
            self.unhcr_app = dtp_sim.create_app(subscription_key=demo_data.DTP_SUBSCRIPTION_KEY)
        self.unhcr = ServerThread(self.unhcr_app).start()
        policy = {"hang_seconds": 4.0, "retry_after": 1}
        self.proxies = {
            "primero": FaultProxy(
                self.primero.url,
                policy=FaultPolicy.uniform(FAULT_RATE, seed=self.seed, **policy),
            ).start(),
            self.gateway: FaultProxy(
                self.unhcr.url,
                policy=FaultPolicy.uniform(FAULT_RATE, seed=self.seed + 1, **policy),
            ).start(),
        }
        settings = {
            "DATABASE_URL": self.database_url,
            "ENCRYPTION_KEY": self.key,
            "INBOX_TOKENS": demo_data.INBOX_TOKEN,
            "PRIMERO_URL": self.proxies["primero"].url,
            "PRIMERO_USERNAME": demo_data.API_USER,
            "PRIMERO_PASSWORD": demo_data.API_PASSWORD,
            "PRIMERO_TIMEOUT_SECONDS": "2",
            "POLL_INTERVAL_SECONDS": "3",
            # the polls' start point: before anything this run creates in Primero
            "POLL_START_AT": "2020-01-01T00:00:00Z",
            "LEASE_SECONDS": "4",
            "RETRY_BASE_SECONDS": "0.2",
            "RETRY_CAP_SECONDS": "2",
            "RETRY_MAX_ATTEMPTS": "8",
            "WORKER_CONCURRENCY": "3",
            "WORKER_POLL_SECONDS": "0.2",
            "LOG_LEVEL": "DEBUG",
        }
        if self.gateway == "ping":
            settings |= {
                name.upper(): str(value)
                for name, value in ping_settings(self.proxies["ping"].url).items()
            }
            settings |= {"PING_TIMEOUT_SECONDS": "2", "PING_STATUS_CHECK_SECONDS": "1"}
        else:
            settings |= {
                "DTP_URL": self.proxies["dtp"].url,
                "DTP_SUBSCRIPTION_KEY": demo_data.DTP_SUBSCRIPTION_KEY,
                "DTP_TIMEOUT_SECONDS": "2",
            }
        self.settings = Settings.for_tests(
            **{name.lower(): value for name, value in settings.items()}
        )
        self.store = await Store.open(self.database_url, encryption=Cipher.from_config(self.key))
        await self.store.upgrade()
        # the inbox in its own thread and loop, on its own Store (engines are per loop)
        inbox_store = await Store.open(self.database_url, encryption=self.store.cipher)
        await inbox_store.engine.dispose()
        self.inbox = ServerThread(create_app(self.settings, inbox_store)).start()
        self.control = SimControl(timeout=30.0)
        if self.gateway == "dtp":
            await self.control.call(
                "PUT",
                f"{self.unhcr.url}/_sim/bridge",
                json={
                    "inbox_url": f"{self.inbox.url}/api/v1/dtp/messages",
                    "token": demo_data.INBOX_TOKEN,
                },
            )
        else:
            self.ping_state.seed(
                Seed(
                    interventions=[
                        self.plan.ping_intervention(number, individual)
                        for number, individual in self.plan.interventions
                    ]
                )
            )
        env = {k: v for k, v in os.environ.items() if not k.startswith("PRIMERO_PROGRES_")}
        env.update({f"PRIMERO_PROGRES_{name}": value for name, value in settings.items()})
        self.logs = self.workdir / "logs"
        self.logs.mkdir()
        self.workers = Workers(env, self.logs, count=2)
        return self

    async def __aexit__(self, *_exc: object) -> None:
        self.workers.stop()
        await self.control.aclose()
        self.inbox.stop()
        for proxy in self.proxies.values():
            proxy.stop()
        self.unhcr.stop()
        self.primero.stop()
        await self.store.close()

    # ------------------------------------------------------------------ the peers' side

    @property
    def primero_state(self) -> Any:
        return self.primero_app.state.primero

    @property
    def ping_state(self) -> Any:
        return self.unhcr_app.state.ping

    def dtp_messages(self, endpoint: str | None = None) -> list[dict[str, Any]]:
        return [m.as_json() for m in self.unhcr_app.state.dtp.received(endpoint)]

    def ping_interventions(self) -> dict[str, dict[str, Any]]:
        """LP intervention id -> the intervention as proGres holds it."""
        return {
            r["lp_intervention_id"]: r for r in self.ping_state.snapshot("interventions")
        }

    def ping_referrals(self) -> list[dict[str, Any]]:
        return list(self.ping_state.snapshot("referrals"))

    def ping_writes(self) -> list[dict[str, Any]]:
        return list(self.ping_state.snapshot("writes"))

    def cases(self) -> list[dict[str, Any]]:
        return list(self.primero_state.all_cases())

    def referrals(self) -> list[dict[str, Any]]:
        with self.primero_state.lock:
            return [dict(r) for r in self.primero_state.referrals.values()]

    def received(self) -> str:
        """Everything the UNHCR side received, as text (the markers must be in it)."""
        if self.gateway == "ping":
            return json.dumps(self.ping_referrals())
        return json.dumps(self.dtp_messages())

    async def _forward(self, route: str, message: dict[str, Any]) -> None:
        """proGres, through DTP, posts to the inbox; it retries until the inbox says yes."""
        while True:
            try:
                answer = await self.control.call(
                    "POST", f"{self.unhcr.url}/_sim/{route}", json=message
                )
            except Exception:
                answer = None
            if isinstance(answer, dict) and answer.get("status") in ("queued", "duplicate"):
                return
            await asyncio.sleep(0.2)

    # ------------------------------------------------------------------ the drivers

    async def progres_sends_referrals(self, *, spread: float) -> None:
        if self.gateway == "ping":
            await self._progres_flags_interventions(spread=spread)
            return
        await self._progres_sends_messages(spread=spread)

    async def _progres_sends_messages(self, *, spread: float) -> None:
        """Each intervention in its own message, each message twice, in a seeded order, over
        about ``spread`` seconds."""
        messages = [
            demo_data.referral_message(self.plan.intervention(number, individual, again=again))
            for number, individual in self.plan.interventions
            for again in (False, True)
        ]
        self.rng.shuffle(messages)
        pause = spread / len(messages)
        for message in messages:
            await self._forward("send-referral", message)
            self.counts.referral_posts += 1
            await asyncio.sleep(self.rng.uniform(0.5, 1.5) * pause)

    async def _progres_flags_interventions(self, *, spread: float) -> None:
        """proGres users flag each intervention for Primero, in a seeded order over about
        ``spread`` seconds."""
        numbers = [number for number, _ in self.plan.interventions]
        self.rng.shuffle(numbers)
        pause = spread / len(numbers)
        for number in numbers:
            self.ping_state.flag(lp_intervention_id(number))
            self.counts.referral_posts += 1
            await asyncio.sleep(self.rng.uniform(0.5, 1.5) * pause)

    async def progres_users_edit(self, *, timeout: float) -> None:
        """Over PING, each intervention of ``changed`` is edited and flagged again once the
        bridge has acknowledged its first delivery (PING shows it pending)."""
        waiting = set(self.plan.changed)
        pending = PING_TRANSFER["pending_acknowledgement"]
        deadline = time.monotonic() + timeout
        while waiting and time.monotonic() < deadline:
            held = self.ping_interventions()
            for number in sorted(waiting):
                lp_id = lp_intervention_id(number)
                if held[lp_id]["transfer_status"] != pending:
                    continue
                waiting.discard(number)
                with self.ping_state.lock:
                    record = self.ping_state.interventions[lp_id]
                    record.seed.description = f"<p>{MARKER}-DESCRIPTION-EDITED</p>"
                    self.counts.reflagged[lp_id] = len(self.ping_state.writes)
                    self.ping_state.flag(lp_id)
                self.counts.referral_posts += 1
            await asyncio.sleep(0.3)

    def ping_acknowledged(self, number: str) -> bool:
        """PING got "pending acknowledgement" for this intervention's (latest) delivery."""
        lp_id = lp_intervention_id(number)
        if number in self.plan.changed and lp_id not in self.counts.reflagged:
            return False
        since = self.counts.reflagged.get(lp_id, 0)
        pending = PING_TRANSFER["pending_acknowledgement"]
        return any(
            w["record_id"] == lp_id and w["status"] == pending
            for w in self.ping_writes()[since:]
        )

    async def caseworkers_refer_to_unhcr(self, *, spread: float) -> None:
        cases = [
            self.plan.primero_case(record_id, case_id, n)
            for n, (record_id, case_id) in enumerate(self.plan.unhcr_cases)
        ]
        self.primero_state.seed({"cases": cases})
        pause = spread / len(cases)
        # a service PING's referral creation has a requested-service lookup for
        service = "basic_psychosocial_support" if self.gateway == "ping" else "alternative_care"
        for record_id, _ in self.plan.unhcr_cases:
            self.primero_state.refer_to_unhcr(
                record_id,
                demo_data.UNHCR_CASEWORKER,
                {"service_type": service, "service_referral_notes": f"{MARKER}-NOTES"},
                demo_data.PRIMERO_CASEWORKER,
            )
            await asyncio.sleep(self.rng.uniform(0.5, 1.5) * pause)

    def _rows(self) -> dict[str, tuple[str, dict[str, Any]]]:
        rows = {}
        for case in self.cases():
            for row in case.get("services_section") or []:
                number = row.get("progres_interventionnumber")
                if isinstance(number, str):
                    rows[number] = (case["id"], row)
        return rows

    async def focal_points_decide(self, *, timeout: float) -> None:
        """Each chosen intervention is decided once its case exists, as deliveries go on
        (over PING, once its latest delivery is acknowledged: an edit comes first)."""
        waiting = dict(self.plan.focal_decisions)
        deadline = time.monotonic() + timeout
        while waiting and time.monotonic() < deadline:
            rows = self._rows()
            for number in [n for n in waiting if n in rows]:
                if self.gateway == "ping" and not self.ping_acknowledged(number):
                    continue
                record_id, row = rows[number]
                status = waiting.pop(number)
                reason = f"{MARKER}-FP-REASON" if status == "rejected" else None
                self.primero_state.decide_service(record_id, row["unique_id"], status, reason)
            await asyncio.sleep(0.2)

    async def progres_decides(self, *, timeout: float) -> None:
        """proGres decides on each referral once it has reached DTP (PING)."""
        waiting = dict(self.plan.progres_decisions)
        deadline = time.monotonic() + timeout
        while waiting and time.monotonic() < deadline:
            if self.gateway == "ping":
                self._progres_decides_in_ping(waiting)
                await asyncio.sleep(0.5)
                continue
            received = {m["body"].get("id") for m in self.dtp_messages(REFERRAL)}
            for org_referral_id in [r for r in received if r and r.split("#")[0] in waiting]:
                case_id = org_referral_id.split("#")[0]
                if case_id not in waiting:
                    continue
                decision = waiting.pop(case_id)
                extra = {
                    "progres_interoperabilityreferralrejectionomment": f"{MARKER}-PG-COMMENT"
                }
                await self._forward(
                    "send-decision", demo_data.decision_message(org_referral_id, decision, **extra)
                )
            await asyncio.sleep(0.5)

    def _progres_decides_in_ping(self, waiting: dict[str, str]) -> None:
        for referral in self.ping_referrals():
            case_id = referral["fields"].get("progres_offlineid")
            if case_id not in waiting:
                continue
            decision = PING_REFERRAL[waiting.pop(case_id)]
            texts = (
                {"rejection_reason_name": f"{MARKER}-PG-REASON", "comment": f"{MARKER}-PG-COMMENT"}
                if decision == "rejected"
                else {}
            )
            self.ping_state.decide(referral["referral_id"], Decide(decision=decision, **texts))

    async def kill_workers(self, stop: asyncio.Event) -> None:
        """SIGKILL a worker every 3-8 s (seeded) and start it again."""
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), timeout=self.rng.uniform(3.0, 8.0))
            except TimeoutError:
                victim = self.rng.randrange(len(self.workers.procs))
                await asyncio.to_thread(self.workers.kill, victim)
                self.counts.kills += 1
                self.counts.restarts += 1

    # ------------------------------------------------------------------ the end of a run

    async def unfinished(self) -> int:
        counts = await self.store.jobs.counts()
        return sum(n for (kind, state), n in counts.items() if state in ("pending", "running"))

    async def replay_dead_letters(self) -> int:
        """Replay every dead letter, as an operator following the runbook would: over PING,
        an ingestion whose outcome is unknown is first looked for in proGres, and discarded
        if PING has it (docs/ping.md, dead letters)."""
        dead = await self.store.jobs.list(state="dead", limit=10_000)
        replayed = 0
        for job in dead:
            reason = job.dead_reason.reason if job.dead_reason else None
            if reason == "ingestion_outcome_unknown" and self._ping_has_referral(
                str(job.refs.get("service_unique_id"))
            ):
                await self.store.jobs.discard(job.id, account=None, reason="found in proGres")
                self.counts.found_in_progres += 1
                continue
            if reason == "ingestion_outcome_unknown":
                self.counts.unknown_replayed += 1
            await self.store.jobs.replay(job.id)
            replayed += 1
        self.counts.replayed += replayed
        return len(dead)

    def _ping_has_referral(self, service_unique_id: str) -> bool:
        """PING holds (or is processing) an interoperability referral for this service."""
        with self.ping_state.lock:
            return any(
                item.fields.get("progres_orgreferralid") == service_unique_id
                for transaction in self.ping_state.transactions.values()
                for item in transaction.items
                if item.status != "Failed"
            )

    async def count_lookups(self) -> dict[str, Any]:
        """Over PING, ``lookup_counts``, kept in ``counts.lookups`` for the report."""
        if self.gateway != "ping":
            return {}
        self.counts.lookups = await lookup_counts(self.store)
        return self.counts.lookups

    def faults_off(self) -> None:
        for name, proxy in self.proxies.items():
            self.counts.proxy[name] = proxy.counts()
            proxy.faults_off()

    def database_bytes(self) -> bytes:
        if self.database_url.startswith("sqlite"):
            path = Path(self.database_url.split("///", 1)[1])
            return b"".join(p.read_bytes() for p in sorted(path.parent.glob(path.name + "*")))
        dsn = self.database_url.replace("postgresql+psycopg://", "postgresql://", 1)
        return subprocess.run(["pg_dump", dsn], check=True, capture_output=True).stdout

    async def metrics(self) -> str:
        response = await self.control.http.get(f"{self.inbox.url}/metrics")
        return str(response.text)

    def report(self, seconds: float) -> str:
        figures: dict[str, Any] = {
            "gateway": self.gateway,
            "seed": self.seed,
            "seconds": round(seconds, 1),
            "interventions": len(self.plan.interventions),
            "referral_posts": self.counts.referral_posts,
            "focal_decisions": len(self.plan.focal_decisions),
            "unhcr_referrals": len(self.plan.unhcr_cases),
            "progres_decisions": len(self.plan.progres_decisions),
            "changed_resends": len(self.plan.changed),
            "kills": self.counts.kills,
            "done_under_faults": self.counts.under_faults,
            "replayed": self.counts.replayed,
            "proxy": self.counts.proxy,
        }
        if self.gateway == "ping":
            figures["found_in_progres"] = self.counts.found_in_progres
            figures["unknown_replayed"] = self.counts.unknown_replayed
            figures["lookups"] = self.counts.lookups
        return json.dumps(figures)
