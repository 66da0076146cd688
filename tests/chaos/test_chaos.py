"""Exactly once under crashes and a hostile network (issues 10 and 16), counted at the
simulators, over DTP and over PING.

A fault proxy in front of each simulator fails a quarter of the bridge's calls (resets before
and after the peer processed them, 500/502/503, 429, hangs); two worker processes are
SIGKILLed every 3-8 s and started again; all four flows are driven at once. Then the faults
stop, the queue drains, dead letters are replayed, and the simulators are counted: one case
per child and one row per intervention, every decision present and never reverted, every
feedback, decision and referral at DTP (at PING: every transfer status written back and
never reverted, one interoperability referral per case, every decision applied and synced),
repeats at DTP only with the same Idempotency-Key, and no marker value in logs (DEBUG), the
database (file or ``pg_dump``) or ``/metrics``.

The seed is printed; ``PRIMERO_PROGRES_CHAOS_SEED=<seed> make chaos`` replays a failure
(the same faults and kill times in the same order; which request meets which fault follows
arrival order). ``PRIMERO_PROGRES_CHAOS_SCALE`` (default 1) multiplies the traffic.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from chaos_harness import (
    ACCEPT,
    FEEDBACK,
    MARKER,
    PING_REFERRAL,
    PING_SYNCED,
    PING_TRANSFER,
    REFERRAL,
    SEED_VARIABLE,
    ChaosRun,
    chaos_seed,
    lp_intervention_id,
    wait_for,
)

from primero_progres.logging import configure_logging

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(420)]

#: seconds of faults and kills before they stop, whatever the drivers still have to do
CHAOS_SECONDS = 80.0
DRAIN_SECONDS = 240.0
#: with the queue quiet, nothing dead and no outcome arriving for this long, stop waiting
STALLED_SECONDS = 30.0
DTP_STATUS = {"accepted": "acknowledged", "rejected": "rejected"}
#: the share of each flow's outcomes done before the faults stop, at least. Over PING each
#: outcome takes more calls, each failing a quarter of the time, and flows 2 and 4 wait for
#: others (flow 1's acknowledgement at PING; the ingestion, whose dead letters of unknown
#: outcome wait for the drain): a loaded machine leaves few of theirs done under faults, so
#: they must only have made progress
UNDER_FAULTS = {
    "dtp": {"feedback": 0.5, "flow2": 0.5, "flow3": 0.5, "flow4": 0.5},
    "ping": {"feedback": 0.25, "flow2": 0.01, "flow3": 0.25, "flow4": 0.01},
}


@pytest.fixture
def debug_logging() -> Iterator[None]:
    """DEBUG in JSON for the test (the autouse ``_restore_stdlib_logging`` undoes it)."""
    configure_logging(level="DEBUG", json=True)
    yield


def leaks(text: str | bytes) -> bool:
    data = text.encode() if isinstance(text, str) else text
    return MARKER.lower().encode() in data.lower()


async def quiet(run: ChaosRun) -> bool:
    """No job pending or running but the polls the schedulers keep starting."""
    counts = await run.store.jobs.counts()
    return not any(
        n
        for (kind, state), n in counts.items()
        if state in ("pending", "running") and not kind.endswith(".poll")
    )


def outcomes(run: ChaosRun) -> dict[str, int]:
    """What is still missing at the simulators."""
    if run.gateway == "ping":
        return ping_outcomes(run)
    plan = run.plan
    feedbacks = {
        m["body"].get("progres_interventionnumber")
        for m in run.dtp_messages(FEEDBACK)
        if m["body"].get("status") == "Pending Acknowledgement"
    }
    decisions = {
        (m["body"].get("progres_interventionnumber"), m["body"].get("status"))
        for m in run.dtp_messages(FEEDBACK)
    }
    referrals = {m["body"].get("id", "").split("#")[0] for m in run.dtp_messages(REFERRAL)}
    applied = {
        r.get("record_id"): r.get("status") for r in run.referrals() if r.get("status")
    }
    expected = {
        record_id: "accepted" if plan.progres_decisions[case_id] == ACCEPT else "rejected"
        for record_id, case_id in plan.unhcr_cases
    }
    return {
        "feedback": sum(n not in feedbacks for n, _ in plan.interventions),
        "flow2": sum(
            (n, DTP_STATUS[s]) not in decisions for n, s in plan.focal_decisions.items()
        ),
        "flow3": sum(case_id not in referrals for _, case_id in plan.unhcr_cases),
        "flow4": sum(applied.get(r) != s for r, s in expected.items()),
    }


def expected_referral_status(run: ChaosRun) -> dict[str, str]:
    """Primero referral record id -> the status proGres's decision gives it."""
    return {
        record_id: "accepted" if run.plan.progres_decisions[case_id] == ACCEPT else "rejected"
        for record_id, case_id in run.plan.unhcr_cases
    }


def ping_outcomes(run: ChaosRun) -> dict[str, int]:
    plan = run.plan
    held = run.ping_interventions()
    referred = {r["fields"].get("progres_offlineid"): r for r in run.ping_referrals()}
    applied = {r.get("record_id"): r.get("status") for r in run.referrals() if r.get("status")}
    return {
        "feedback": sum(not run.ping_acknowledged(n) for n, _ in plan.interventions),
        "flow2": sum(
            held[lp_intervention_id(n)]["transfer_status"] != PING_TRANSFER[s]
            for n, s in plan.focal_decisions.items()
        ),
        "flow3": sum(case_id not in referred for _, case_id in plan.unhcr_cases),
        "flow4": sum(
            applied.get(record_id) != status
            or referred.get(case_id, {}).get("fields", {}).get(
                "progres_interoperabilityreferralstatus") != PING_SYNCED
            for (record_id, case_id), status in zip(
                plan.unhcr_cases, expected_referral_status(run).values(), strict=True
            )
        ),
    }


def missing_detail(run: ChaosRun) -> str:
    """What is missing, item by item, for a failed run's message."""
    if run.gateway != "ping":
        return json.dumps(outcomes(run))
    held = run.ping_interventions()
    writes = run.ping_writes()
    flow2 = {
        number: [w["status"] for w in writes if w["record_id"] == lp_intervention_id(number)]
        for number, status in run.plan.focal_decisions.items()
        if held[lp_intervention_id(number)]["transfer_status"] != PING_TRANSFER[status]
    }
    referred = {r["fields"].get("progres_offlineid"): r for r in run.ping_referrals()}
    applied = {r.get("record_id"): r.get("status") for r in run.referrals()}
    flow4 = {
        case_id: (
            referred.get(case_id, {}).get("fields", {}).get(
                "progres_interoperabilityreferralstatus"),
            applied.get(record_id),
            run.plan.progres_decisions[case_id],
            [w["status"] for w in writes
             if w["record_id"] == referred.get(case_id, {}).get("referral_id")],
        )
        for record_id, case_id in run.plan.unhcr_cases
    }
    return json.dumps({"outcomes": outcomes(run), "flow2": flow2, "flow4": flow4})


def done(run: ChaosRun) -> dict[str, int]:
    """What already reached the simulators, by flow."""
    plan = run.plan
    totals = {
        "feedback": len(plan.interventions),
        "flow2": len(plan.focal_decisions),
        "flow3": len(plan.unhcr_cases),
        "flow4": len(plan.progres_decisions),
    }
    return {flow: totals[flow] - missing for flow, missing in outcomes(run).items()}


async def drain(run: ChaosRun) -> None:
    """Faults are off: wait for every outcome, replaying dead letters whenever the queue is
    quiet, then replay what is left until nothing is dead. A queue quiet with nothing dead and
    nothing more arriving for ``STALLED_SECONDS`` will not complete: the assertions that
    follow say what is wrong."""
    last: dict[str, Any] = {"missing": None, "since": time.monotonic()}

    async def complete() -> bool:
        missing = outcomes(run)
        if not any(missing.values()):
            return True
        if missing != last["missing"]:
            last.update(missing=missing, since=time.monotonic())
        if await quiet(run) and await run.replay_dead_letters():
            last["since"] = time.monotonic()
            return False
        return time.monotonic() - last["since"] > STALLED_SECONDS and await quiet(run)

    try:
        await wait_for("every outcome at the simulators", complete, timeout=DRAIN_SECONDS)

        async def nothing_dead() -> bool:
            return await quiet(run) and not await run.replay_dead_letters()

        await wait_for("no dead letter left", nothing_dead, timeout=DRAIN_SECONDS / 2, every=1.0)
    except AssertionError as exc:
        dead = await run.store.jobs.list(state="dead", limit=50)
        reasons = [(j.kind, j.dead_reason.reason if j.dead_reason else None) for j in dead]
        await run.count_lookups()
        raise AssertionError(
            f"{exc}; missing {outcomes(run)}; queue {await run.store.jobs.counts()}; "
            f"dead {reasons}; {run.report(0)}"
        ) from None


def assert_each_case_and_row_once(run: ChaosRun) -> None:
    cases_by_child: dict[str, list[dict[str, Any]]] = defaultdict(list)
    rows: dict[str, list[str]] = defaultdict(list)
    for case in run.cases():
        cases_by_child[str(case.get("unhcr_individual_no"))].append(case)
        for row in case.get("services_section") or []:
            if row.get("progres_interventionnumber"):
                rows[row["progres_interventionnumber"]].append(case["unhcr_individual_no"])
    for number, individual in run.plan.interventions:
        assert len(cases_by_child[individual]) == 1, f"{individual}: one case per child"
        assert rows[number] == [individual], f"{number}: one row, in its child's case"


def assert_decisions_kept_and_sent(run: ChaosRun) -> None:
    rows = {
        row["progres_interventionnumber"]: row
        for case in run.cases()
        for row in case.get("services_section") or []
        if row.get("progres_interventionnumber")
    }
    sent: dict[str, set[str]] = defaultdict(set)
    for message in run.dtp_messages(FEEDBACK):
        body = message["body"]
        if body.get("status") in ("acknowledged", "rejected"):
            sent[body["progres_interventionnumber"]].add(body["status"])
    for number, status in run.plan.focal_decisions.items():
        assert rows[number]["unhcr_referral_status"] == status, f"{number}: decision reverted"
        assert sent[number] == {DTP_STATUS[status]}, f"{number}: decision sent as decided"
    undecided = {n for n, _ in run.plan.interventions} - set(run.plan.focal_decisions)
    assert not undecided & set(sent), "no decision sent for a referral nobody decided"
    for number in undecided:
        assert rows[number]["unhcr_referral_status"] == "pending"


def assert_ping_writes_once_and_never_reverted(run: ChaosRun) -> dict[str, int]:
    """Count PING's write journal: each intervention acknowledged once per delivery (twice
    when edited and queued again), its decision written once as decided and never followed by
    "pending acknowledgement", nothing written for a referral nobody decided; one
    interoperability referral per case, each decision applied and synced once, and left so.
    Returns the write counts for the report."""
    pending = PING_TRANSFER["pending_acknowledgement"]
    decisions = {PING_TRANSFER["accepted"], PING_TRANSFER["rejected"]}
    writes = run.ping_writes()
    held = run.ping_interventions()
    rows = {number: row for number, (_, row) in run._rows().items()}
    figures = {"acknowledgements": 0, "decisions": 0, "synced": 0}
    for number, _ in run.plan.interventions:
        lp_id = lp_intervention_id(number)
        statuses = [w["status"] for w in writes if w["table"] == "intervention"
                    and w["record_id"] == lp_id]
        deliveries = 2 if lp_id in run.counts.reflagged else 1
        assert statuses.count(pending) == deliveries, f"{number}: acknowledged {statuses}"
        decided = run.plan.focal_decisions.get(number)
        written = [s for s in statuses if s in decisions]
        if decided is None:
            assert not written, f"{number}: a decision nobody took, {statuses}"
            assert held[lp_id]["transfer_status"] == pending, number
            assert rows[number]["unhcr_referral_status"] == "pending", number
        else:
            code = PING_TRANSFER[decided]
            assert rows[number]["unhcr_referral_status"] == decided, f"{number}: reverted"
            assert written == [code], f"{number}: decision written once, {statuses}"
            assert statuses[-1] == code, f"{number}: decision reverted, {statuses}"
            assert held[lp_id]["transfer_status"] == code, number
        figures["acknowledgements"] += len(statuses) - len(written)
        figures["decisions"] += len(written)
    referred: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for referral in run.ping_referrals():
        referred[referral["fields"].get("progres_offlineid")].append(referral)
    created = [w for w in writes if w["table"] == "referral_created"]
    assert len(created) == len(run.plan.unhcr_cases), "one interoperability referral per case"
    for _, case_id in run.plan.unhcr_cases:
        [referral] = referred[case_id]
        fields = referral["fields"]
        assert fields["progres_interoperabilityreferralstatus"] == PING_SYNCED, case_id
        decided = PING_REFERRAL[run.plan.progres_decisions[case_id]]
        assert fields["progres_reviewdecision"] == (125080000 if decided == "accepted"
                                                    else 125080001), case_id
        statuses = [w["status"] for w in writes if w["table"] == "referral"
                    and w["record_id"] == referral["referral_id"]]
        assert statuses == [PING_SYNCED], f"{case_id}: synced once, {statuses}"
        figures["synced"] += len(statuses)
    return figures


def assert_dtp_repeats_share_their_key(run: ChaosRun) -> tuple[int, int]:
    """A message DTP got more than once always came with one Idempotency-Key, and a key
    never stood for two messages; (messages received, repeats among them).

    The one same body under two keys is a feedback proGres earned twice: it sent a changed
    intervention again, a new delivery of the same row, acknowledged again."""
    keys_by_message: dict[str, set[str | None]] = defaultdict(set)
    messages_by_key: dict[str | None, set[str]] = defaultdict(set)
    received = run.dtp_messages()
    for message in received:
        identity = json.dumps([message["endpoint"], message["body"]], sort_keys=True)
        keys_by_message[identity].add(message["idempotency_key"])
        messages_by_key[message["idempotency_key"]].add(identity)
    assert None not in messages_by_key, "every send carries an Idempotency-Key"
    assert all(len(identities) == 1 for identities in messages_by_key.values())
    for identity, keys in keys_by_message.items():
        if len(keys) > 1:
            endpoint, body = json.loads(identity)
            assert endpoint == FEEDBACK and body["status"] == "Pending Acknowledgement", identity
            assert body["progres_interventionnumber"] in run.plan.changed, identity
    return len(received), len(received) - len(messages_by_key)


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
@pytest.mark.parametrize("gateway", ["dtp", "ping"])
@pytest.mark.usefixtures("debug_logging")
async def test_exactly_once_under_faults_and_kills(
    gateway: str,
    database: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    seed = chaos_seed()
    name = f"{gateway} {database}"
    with capfd.disabled():
        print(f"\nchaos {name}: seed {seed} (replay with {SEED_VARIABLE}={seed})")
    url = (
        request.getfixturevalue("postgres_url")
        if database == "postgresql"
        else f"sqlite:///{tmp_path / 'bridge.db'}"
    )
    started = time.monotonic()
    async with ChaosRun(tmp_path, url, seed, gateway) as run:
        stop = asyncio.Event()
        killer = asyncio.create_task(run.kill_workers(stop))
        spread = CHAOS_SECONDS * 0.7
        senders = asyncio.gather(
            run.progres_sends_referrals(spread=spread),
            run.caseworkers_refer_to_unhcr(spread=spread),
        )
        people = [
            run.focal_points_decide(timeout=CHAOS_SECONDS + DRAIN_SECONDS),
            run.progres_decides(timeout=CHAOS_SECONDS + DRAIN_SECONDS),
        ]
        if gateway == "ping":
            people.append(run.progres_users_edit(timeout=CHAOS_SECONDS + DRAIN_SECONDS))
        deciders = asyncio.gather(*people)
        await senders
        # faults and kills for CHAOS_SECONDS; the deciders go on after, if not done by then
        left = CHAOS_SECONDS - (time.monotonic() - started)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(deciders), timeout=max(left, 0.0))
        await asyncio.sleep(max(CHAOS_SECONDS - (time.monotonic() - started), 0.0))
        stop.set()
        await killer
        assert run.workers.alive()
        run.faults_off()
        run.counts.under_faults = done(run)
        # work goes on under faults: a poll no longer stalls whole (issue 10, 3)
        totals = {flow: n + outcomes(run)[flow] for flow, n in run.counts.under_faults.items()}
        for flow, n in run.counts.under_faults.items():
            share = UNDER_FAULTS[gateway][flow]
            assert n >= totals[flow] * share, f"{flow}: {n} of {totals[flow]} done under faults"
        # the drain replays dead letters as the deciders wait: over PING, a referral whose
        # ingestion is a dead letter reaches proGres (and its decider) only once replayed
        await asyncio.gather(deciders, drain(run))

        assert_each_case_and_row_once(run)
        assert not any(outcomes(run).values()), missing_detail(run)
        if gateway == "ping":
            extra = {f"ping_{k}": v for k, v in assert_ping_writes_once_and_never_reverted(
                run).items()}
        else:
            assert_decisions_kept_and_sent(run)
            received, repeats = assert_dtp_repeats_share_their_key(run)
            extra = {"dtp_received": received, "dtp_repeats": repeats}

        # the markers did cross the bridge, so their absence below means something
        assert leaks(json.dumps(run.cases())) and leaks(run.received())
        assert not leaks(await run.metrics()), "a marker in /metrics"
        run.workers.stop()
        assert not leaks(run.database_bytes()), "a marker in the database"
        worker_logs = run.workers.log_text()
        assert '"level": "debug"' in worker_logs, "the workers logged at DEBUG"
        assert not leaks(worker_logs), "a marker in a worker's log"
        out, err = capfd.readouterr()
        assert not leaks(out + err), "a marker in the inbox's or the simulators' log"
        await run.count_lookups()
        seconds = time.monotonic() - started
        with capfd.disabled():
            print(f"chaos {name}: {run.report(seconds)[:-1]}, {json.dumps(extra)[1:]}")
