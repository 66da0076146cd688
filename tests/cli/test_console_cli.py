"""The console's accounts and repairs from the command line (``admin``, ``dead-letters``,
``replay``, ``discard``, ``trace``, ``cursor``), through the same store API."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from primero_progres.cli import app
from primero_progres.errors import PermanentError
from primero_progres.settings import Settings
from primero_progres.store import AuditEvent, StepContext, Store, generate_key
from primero_progres.worker import Worker

runner = CliRunner()
PASSWORD = "a long pass phrase 2026"


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("PRIMERO_PROGRES_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("PRIMERO_PROGRES_ENCRYPTION_KEY", generate_key())
    return Settings.load()


def cli(*args: str, stdin: str | None = None) -> tuple[int, str]:
    result = runner.invoke(app, list(args), input=stdin)
    return result.exit_code, result.output


def rows(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def on_store(settings: Settings, action: Any) -> Any:
    async def run() -> Any:
        store = await Store.open(settings.database_url, encryption=settings.cipher())
        try:
            await store.upgrade()
            return await action(store)
        finally:
            await store.close()

    return asyncio.run(run())


async def _refused(ctx: StepContext) -> None:
    raise PermanentError("dtp send_decision: HTTP 401", reason="http_401")


def dead_letters(settings: Settings, *kinds: str) -> list[str]:
    async def make(store: Store) -> list[str]:
        ids = [
            (await store.jobs.enqueue(kind, {"message": {"n": n}}, refs={"case_id": f"c-{n}"})).id
            for n, kind in enumerate(kinds)
        ]
        await Worker(store, dict.fromkeys(kinds, _refused)).run_until_idle()
        return ids

    result: list[str] = on_store(settings, make)
    return result


def test_admin_accounts_and_their_exit_2_rules(settings: Settings) -> None:
    assert (
        cli(
            "admin",
            "add-user",
            "amina",
            "--role",
            "admin",
            "--password-stdin",
            stdin=PASSWORD + "\n",
        )[0]
        == 0
    )
    for args, stdin, says in (
        (["amina", "--role", "viewer"], PASSWORD, "exists"),
        (["lina", "--role", "boss"], PASSWORD, "no role"),
        (["bad/name", "--role", "viewer"], PASSWORD, "account name"),
        (["lina", "--role", "viewer"], "short", "at least 12"),
    ):
        code, output = cli("admin", "add-user", *args, "--password-stdin", stdin=stdin + "\n")
        assert code == 2, (args, output)
        assert says in output
    code, output = cli(
        "admin", "add-user", "omar", "--role", "operator", stdin=f"{PASSWORD}\n{PASSWORD}\n"
    )
    assert code == 0, output
    assert PASSWORD not in output

    assert cli("admin", "set-role", "omar", "viewer")[0] == 0
    assert cli("admin", "set-role", "nobody", "viewer")[0] == 2
    assert cli("admin", "set-role", "omar", "root")[0] == 2
    assert cli("admin", "disable-user", "omar")[0] == 0
    assert cli("admin", "disable-user", "nobody")[0] == 2
    assert cli("admin", "reset-password", "omar", "--password-stdin", stdin="short\n")[0] == 2
    listed = {r["name"]: r for r in rows(cli("admin", "list-users")[1])}
    assert (listed["omar"]["role"], listed["omar"]["disabled"]) == ("viewer", True)
    assert listed["amina"]["role"] == "admin"
    assert "password" not in json.dumps(listed)
    code, _ = cli("admin", "reset-password", "omar", "--password-stdin", stdin=PASSWORD + "!\n")
    assert code == 0
    account = on_store(settings, lambda s: s.accounts.get("omar"))
    assert account.disabled is False and account.password_hash.startswith("$argon2")
    events = on_store(settings, lambda s: s.audit.list(event=AuditEvent.ACCOUNT_ROLE_CHANGED))
    assert events[0].account.startswith("cli:") and events[0].ids["account"] == "omar"


def test_dead_letters_replay_all_and_discard(settings: Settings) -> None:
    feedback, decision, referral = dead_letters(
        settings,
        "progres-referral.feedback",
        "primero-decision.send",
        "primero-referral.send",
    )
    listed = rows(cli("dead-letters", "--flow", "primero-decision")[1])
    assert [r["job_id"] for r in listed] == [decision]
    assert (listed[0]["step"], listed[0]["reason"]["reason"]) == ("send", "http_401")
    assert listed[0]["first_failed_at"] is not None
    assert rows(cli("dead-letters", "--reason", "http_999")[1]) == []

    assert cli("replay")[0] == 2
    assert cli("replay", decision, "--all")[0] == 2
    code, output = cli("replay", "--all", "--flow", "primero-referral", "--reason", "http_401")
    assert (code, output.strip()) == (0, "1 job(s) queued again")
    job = on_store(settings, lambda s: s.jobs.get(referral))
    assert job.state == "pending"

    assert cli("discard", feedback)[0] == 2, "a reason is required"
    assert cli("discard", feedback, "--reason", " ")[0] == 2
    code, _ = cli("discard", feedback, "--reason", "closed at UNHCR by hand")
    assert code == 0
    assert cli("discard", feedback, "--reason", "again")[0] == 1, "not a dead letter any more"
    job = on_store(settings, lambda s: s.jobs.get(feedback))
    assert (job.state, job.has_payload) == ("discarded", False)

    trace = rows(cli("trace", decision)[1])
    assert [e["what"] for e in trace] == [
        "primero-decision.send queued",
        "primero-decision.send dead",
        "job.dead",
    ]
    assert trace[1]["ids"]["reason"] == "http_401"
    assert cli("trace", "no-such-id")[0] == 1


def test_cursor_set_show_and_rewind(settings: Settings) -> None:
    assert cli("db", "upgrade")[0] == 0
    shown = {r["flow"]: r for r in rows(cli("cursor", "show")[1])}
    assert shown["primero-referral"]["cursor"] is None
    assert shown["primero-referral"]["start_point"] is False
    assert cli("cursor", "rewind", "primero-referral", "--to", "2026-01-01T00:00:00Z")[0] == 2
    assert cli("cursor", "set", "progres-referral", "--to", "2026-01-01T00:00:00Z")[0] == 2
    assert cli("cursor", "set", "primero-referral")[0] == 2
    assert cli("cursor", "set", "primero-referral", "--to", "last tuesday")[0] == 2

    code, output = cli("cursor", "set", "primero-referral", "--to", "2026-11-30T08:00:00Z")
    assert (code, output.strip()) == (0, "primero-referral: cursor set to 2026-11-30T08:00:00Z")
    code, output = cli("cursor", "set", "primero-decision", "--from-beginning")
    assert (code, output.strip()) == (0, "primero-decision: cursor set to 1970-01-01T00:00:00Z")
    code, output = cli("cursor", "rewind", "primero-referral", "--to", "2026-12-01T00:00:00Z")
    assert code == 2 and "only moves back" in output
    code, output = cli(
        "cursor", "rewind", "primero-referral", "--to", "2026-11-29T00:00:00Z", "--reason", "x"
    )
    assert (code, output.strip()) == (0, "primero-referral: cursor rewound to 2026-11-29T00:00:00Z")
    shown = {r["flow"]: r for r in rows(cli("cursor", "show")[1])}
    assert shown["primero-referral"]["cursor"] == "2026-11-29T00:00:00Z"
    assert shown["primero-referral"]["start_point"] is True
