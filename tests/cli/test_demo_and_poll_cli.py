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


async def test_poll_runs_one_cycle_against_the_peers(stack: Stack, tmp_path: Path) -> None:
    await stack.seed_primero(cases=[demo_data.primero_case(CASE_ID, RECORD_ID)])
    referred = await stack.caseworker_refers_to_unhcr(RECORD_ID)
    env = {
        **os.environ,
        "PRIMERO_PROGRES_DATABASE_URL": f"sqlite:///{tmp_path / 'poll.db'}",
        "PRIMERO_PROGRES_ENCRYPTION_KEY": generate_key(),
        "PRIMERO_PROGRES_PRIMERO_URL": stack.primero.url,
        "PRIMERO_PROGRES_PRIMERO_USERNAME": demo_data.API_USER,
        "PRIMERO_PROGRES_PRIMERO_PASSWORD": demo_data.API_PASSWORD,
        "PRIMERO_PROGRES_DTP_URL": stack.dtp.url,
        "PRIMERO_PROGRES_DTP_SUBSCRIPTION_KEY": demo_data.DTP_SUBSCRIPTION_KEY,
    }

    async def poll_once() -> int:
        process = await asyncio.create_subprocess_exec(
            *CLI,
            "poll",
            "primero-referral",
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        await asyncio.wait_for(process.communicate(), timeout=60)
        return process.returncode or 0

    assert await poll_once() == 0
    assert await poll_once() == 0
    sent = await stack.dtp_messages("ReceiveIncomingReferral")
    assert [m["body"]["id"] for m in sent] == [f"{CASE_ID}#{referred['service_unique_id'][-12:]}"]
