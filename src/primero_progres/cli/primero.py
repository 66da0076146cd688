"""Commands of the 'primero' part: ``primero register-webhook``."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Annotated
from urllib.parse import quote

import typer

from ..errors import BridgeError
from .store import ConfigOption, load_settings

if TYPE_CHECKING:
    from ..settings import Settings


def webhook_url(public_url: str, token: str | None) -> str:
    """The URL Primero posts to: the bridge's webhook path, the token last when given (a
    webhook registered through the API has no auth of its own)."""
    from ..settings import WEBHOOK_PATH

    base = public_url.rstrip("/") + WEBHOOK_PATH
    return f"{base}/{quote(token, safe='')}" if token else base


def shown(url: str, token: str | None) -> str:
    """``url`` as printed: never the token."""
    return url.replace(quote(token, safe=""), "<token>") if token else url


async def register_webhook(
    settings: Settings, url: str, role_unique_id: str | None
) -> tuple[str, bool]:
    """The webhook for ``url`` (found, else created) and whether it was created."""
    from ..peers.primero import PrimeroClient

    password = settings.primero_password
    async with PrimeroClient(
        str(settings.primero_url),
        username=str(settings.primero_username),
        password=password.get_secret_value() if password is not None else "",
        auth=settings.primero_auth,
        timeout=settings.primero_timeout_seconds,
    ) as client:
        if role_unique_id is None:
            role_unique_id = str((await client.own_user()).get("role_unique_id") or "")
        registration = await client.register_webhook(url=url, role_unique_id=role_unique_id)
    return str(registration.webhook.get("id")), registration.created


def register(app: typer.Typer) -> None:
    """Add this part's commands to the root app."""
    primero = typer.Typer(help="Primero's side of the set-up.", no_args_is_help=True)
    app.add_typer(primero, name="primero")

    @primero.command("register-webhook")
    def register_webhook_command(
        url: Annotated[
            str, typer.Option("--url", help="The bridge's public URL, as Primero reaches it.")
        ],
        role: Annotated[
            str | None,
            typer.Option(
                "--role",
                help="unique_id of the role whose readable fields each webhook carries "
                "(default: the API user's role)",
            ),
        ] = None,
        token_in_path: Annotated[
            bool,
            typer.Option(
                "--token-in-path/--no-token-in-path",
                help="end the URL with the first PRIMERO_WEBHOOK_TOKENS token (Primero's API "
                "cannot set a webhook's auth); --no-token-in-path when an administrator sets "
                "x-api-key or Basic auth on the webhook in Primero",
            ),
        ] = True,
        config: ConfigOption = None,
    ) -> None:
        """Register the bridge as Primero's webhook for case updates (idempotent: a webhook
        already posting to the same URL is kept as it is)."""
        from ..logging import configure_logging
        from ..settings import env_name

        settings = load_settings(config, require_encryption_key=False)
        configure_logging(level="ERROR", json=False)
        if not url.startswith(("http://", "https://")):
            typer.echo("--url must start with http:// or https://", err=True)
            raise typer.Exit(2)
        tokens = settings.primero_webhook_tokens
        token = tokens[0].get_secret_value() if tokens and token_in_path else None
        if token_in_path and token is None:
            typer.echo(
                f"no token to put in the path: set {env_name('primero_webhook_tokens')}", err=True
            )
            raise typer.Exit(2)
        target = webhook_url(url, token)
        try:
            settings.require("primero_url", "primero_username", "primero_password")
            webhook_id, created = asyncio.run(register_webhook(settings, target, role))
        except BridgeError as exc:
            typer.echo(f"not registered: {exc.reason}: {exc.message}", err=True)
            raise typer.Exit(2 if exc.reason == "missing_settings" else 1) from None
        verb = "registered" if created else "already registered"
        typer.echo(f"{verb}: webhook {webhook_id} posts case.update to {shown(target, token)}")
