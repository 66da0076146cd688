"""The ``demo`` and ``poll`` commands, run as a user runs them (a real process)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from primero_progres import demo_data
from primero_progres.stack import Stack
from primero_progres.store import generate_key

CLI = [sys.executable, "-m", "primero_progres.cli"]
RECORD_ID = "0f6e2b9a-7c41-4d3e-8b5a-2e9c7d1f4a68"
CASE_ID = "5d1a7c3e-0b8f-4e57-9a61-3c2f4b8e9d10"


def test_demo_plays_the_four_flows_and_exits_0() -> None:
    result = subprocess.run(
        [*CLI, "demo"], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for flow in ("progres-referral", "primero-decision", "primero-referral", "progres-decision"):
        assert f"-> {flow}: completed" in result.stdout
    assert "All four flows completed" in result.stdout
    # the invented child's name and date of birth never reach the timeline
    for personal in ("Amani", "Example", "2015-03-01", "Baraka", "Sample", "2014-06-06"):
        assert personal not in result.stdout + result.stderr


def test_poll_rejects_an_unknown_flow() -> None:
    result = subprocess.run(
        [*CLI, "poll", "progres-referral"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 2
    assert "unknown polling flow" in result.stdout


def test_poll_without_peer_settings_names_the_missing_variables(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PRIMERO_PROGRES_DATABASE_URL": f"sqlite:///{tmp_path / 'poll.db'}",
        "PRIMERO_PROGRES_ENCRYPTION_KEY": generate_key(),
    }
    result = subprocess.run(
        [*CLI, "poll", "primero-referral"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )
    assert result.returncode == 2
    assert "PRIMERO_PROGRES_PRIMERO_URL" in result.stderr
    assert "PRIMERO_PROGRES_DTP_URL" in result.stderr


def _peer_env(stack: Stack, tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "PRIMERO_PROGRES_DATABASE_URL": f"sqlite:///{tmp_path / 'poll.db'}",
        "PRIMERO_PROGRES_ENCRYPTION_KEY": generate_key(),
        "PRIMERO_PROGRES_PRIMERO_URL": stack.primero.url,
        "PRIMERO_PROGRES_PRIMERO_USERNAME": demo_data.API_USER,
        "PRIMERO_PROGRES_PRIMERO_PASSWORD": demo_data.API_PASSWORD,
        "PRIMERO_PROGRES_DTP_URL": stack.dtp.url,
        "PRIMERO_PROGRES_DTP_SUBSCRIPTION_KEY": demo_data.DTP_SUBSCRIPTION_KEY,
        **extra,
    }


async def _cli(env: dict[str, str], *args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        *CLI, *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    return process.returncode or 0, (out + err).decode()


async def test_poll_runs_one_cycle_against_the_peers(stack: Stack, tmp_path: Path) -> None:
    await stack.seed_primero(cases=[demo_data.primero_case(CASE_ID, RECORD_ID)])
    referred = await stack.caseworker_refers_to_unhcr(RECORD_ID)
    env = _peer_env(stack, tmp_path, PRIMERO_PROGRES_POLL_START_AT="2000-01-01T00:00:00Z")

    async def poll_once() -> int:
        return (await _cli(env, "poll", "primero-referral"))[0]

    assert await poll_once() == 0
    assert await poll_once() == 0
    sent = await stack.dtp_messages("ReceiveIncomingReferral")
    assert [m["body"]["id"] for m in sent] == [f"{CASE_ID}#{referred['service_unique_id'][-12:]}"]


async def test_a_first_poll_without_a_start_point_refuses_and_sends_nothing(
    stack: Stack, tmp_path: Path
) -> None:
    """Checked on a fresh bridge: a referral made long ago went to DTP on the first poll. Now
    the poll exits 2 and says how to give a start point; --from-beginning says it on purpose."""
    await stack.seed_primero(cases=[demo_data.primero_case(CASE_ID, RECORD_ID)])
    await stack.caseworker_refers_to_unhcr(RECORD_ID)
    env = _peer_env(stack, tmp_path)
    for args in (["primero-referral"], ["primero-decision", "--full-scan"]):
        code, output = await _cli(env, "poll", *args)
        assert code == 2, output
        assert "has no start point" in output
        assert "PRIMERO_PROGRES_POLL_START_AT" in output and "cursor set" in output
    assert await stack.dtp_messages() == []

    code, output = await _cli(env, "poll", "primero-referral", "--from-beginning")
    assert code == 0, output
    assert len(await stack.dtp_messages("ReceiveIncomingReferral")) == 1


async def test_poll_over_ping_pulls_a_flow_that_dtp_would_push(
    ping_stack: Stack, tmp_path: Path
) -> None:
    from primero_progres.stack import ping_settings

    [lp_id] = (await ping_stack.seed_ping([demo_data.ping_intervention()]))["interventions"]
    ping = ping_settings(ping_stack.ping.url)
    env = {
        **os.environ,
        "PRIMERO_PROGRES_DATABASE_URL": f"sqlite:///{tmp_path / 'poll.db'}",
        "PRIMERO_PROGRES_ENCRYPTION_KEY": generate_key(),
        "PRIMERO_PROGRES_PRIMERO_URL": ping_stack.primero.url,
        "PRIMERO_PROGRES_PRIMERO_USERNAME": demo_data.API_USER,
        "PRIMERO_PROGRES_PRIMERO_PASSWORD": demo_data.API_PASSWORD,
        **{f"PRIMERO_PROGRES_{name.upper()}": value for name, value in ping.items()},
    }
    process = await asyncio.create_subprocess_exec(
        *CLI, "poll", "progres-referral", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, err.decode()
    assert "progres-referral: 3 job(s) processed" in out.decode()  # poll, pull, write-back
    [case] = await ping_stack.primero_cases()
    intervention = await ping_stack.ping_intervention(lp_id)
    assert (intervention["transfer_status"], intervention["primero_id"]) == (
        125080002, case["case_id"]
    )
