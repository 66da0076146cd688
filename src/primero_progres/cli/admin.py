"""``primero-progres admin ...``: the operator console's accounts.

Passwords are read from a hidden prompt (twice), or from the first line of standard input with
``--password-stdin``; never from an argument, which would land in the shell history. A bad
name or role, a name already taken, an unknown account or a password under 12 characters
exits 2 with the reason.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from ..errors import BridgeError
from .store import ConfigOption, load_settings, print_rows, with_store

if TYPE_CHECKING:
    from ..settings import Settings
    from ..store import Store

T = TypeVar("T")
PasswordStdin = Annotated[
    bool,
    typer.Option("--password-stdin", help="Read the password from the first line of stdin."),
]


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    password: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    return password


def _refused(exc: BridgeError) -> typer.Exit:
    typer.echo(f"error: {exc.message}", err=True)
    return typer.Exit(2)


def _on_accounts(settings: Settings, action: Callable[[Store], Awaitable[T]]) -> T:
    """Run ``action`` on a migrated store (the first account may come before ``serve``)."""

    async def run(store: Store) -> T:
        await store.upgrade()
        return await action(store)

    try:
        return with_store(settings, run)
    except BridgeError as exc:
        raise _refused(exc) from None


def register(app: typer.Typer) -> None:
    """Add this part's commands to the root app."""
    admin = typer.Typer(help="Operator console accounts.", no_args_is_help=True)
    app.add_typer(admin, name="admin")

    @admin.command("add-user")
    def add_user(
        name: str,
        role: Annotated[str, typer.Option("--role", help="viewer, operator or admin.")],
        password_stdin: PasswordStdin = False,
        config: ConfigOption = None,
    ) -> None:
        """Create an account (the password is asked for)."""
        from ..operators import check_name, check_role, command_line_account, hash_password

        settings = load_settings(config)
        try:
            check_name(name)
            chosen = check_role(role)
            password_hash = hash_password(_read_password(password_stdin))
        except BridgeError as exc:
            raise _refused(exc) from None

        _on_accounts(
            settings,
            lambda s: s.accounts.add(name, chosen, password_hash, account=command_line_account()),
        )
        typer.echo(f"account {name} created ({chosen})")

    @admin.command("list-users")
    def list_users(config: ConfigOption = None) -> None:
        """Every account, one JSON object a line."""
        settings = load_settings(config)

        async def view(store: Store) -> list[dict[str, Any]]:
            now = store.now()
            return [
                {
                    "name": a.name,
                    "role": a.role.value,
                    "disabled": a.disabled,
                    "locked": a.locked(now),
                    "created_at": a.created_at.isoformat(),
                    "last_login_at": a.last_login_at.isoformat() if a.last_login_at else None,
                }
                for a in await store.accounts.list()
            ]

        print_rows(_on_accounts(settings, view))

    @admin.command("set-role")
    def set_role(name: str, role: str, config: ConfigOption = None) -> None:
        """Change an account's role."""
        from ..operators import check_role, command_line_account

        settings = load_settings(config)
        try:
            chosen = check_role(role)
        except BridgeError as exc:
            raise _refused(exc) from None
        _on_accounts(
            settings, lambda s: s.accounts.set_role(name, chosen, account=command_line_account())
        )
        typer.echo(f"account {name} is now {chosen}")

    @admin.command("disable-user")
    def disable_user(name: str, config: ConfigOption = None) -> None:
        """Stop an account logging in (its open sessions end now)."""
        from ..operators import command_line_account

        settings = load_settings(config)
        _on_accounts(settings, lambda s: s.accounts.disable(name, account=command_line_account()))
        typer.echo(f"account {name} disabled")

    @admin.command("reset-password")
    def reset_password(
        name: str, password_stdin: PasswordStdin = False, config: ConfigOption = None
    ) -> None:
        """Give an account a new password (and enable and unlock it)."""
        from ..operators import command_line_account, hash_password

        settings = load_settings(config)
        try:
            password_hash = hash_password(_read_password(password_stdin))
        except BridgeError as exc:
            raise _refused(exc) from None
        _on_accounts(
            settings,
            lambda s: s.accounts.set_password(name, password_hash, account=command_line_account()),
        )
        typer.echo(f"account {name}: password reset")
