"""Commands of the 'alert' part: ``alert test``."""

from __future__ import annotations

import asyncio

import typer

from ..errors import ConfigurationError
from .store import ConfigOption, load_settings


def register(app: typer.Typer) -> None:
    """Add this part's commands to the root app."""
    alert = typer.Typer(help="Alert notifications (docs/alerts.md).", no_args_is_help=True)
    app.add_typer(alert, name="alert")

    @alert.command("test")
    def test(config: ConfigOption = None) -> None:
        """Send one test notification to every alert URL, and say which ones failed."""
        from ..alerts.conditions import test_notice
        from ..alerts.notify import send_all, targets
        from ..logging import configure_logging
        from ..settings import env_name

        settings = load_settings(config, require_encryption_key=False)
        configure_logging(level=settings.log_level)
        try:
            found = targets(settings)
        except ConfigurationError as exc:
            typer.echo(f"configuration error: {exc.message}", err=True)
            raise typer.Exit(2) from None
        if not found:
            typer.echo(f"no alert URL configured: set {env_name('alert_urls')}", err=True)
            raise typer.Exit(2)
        results = asyncio.run(send_all(found, test_notice(settings.public_url)))
        for target, sent in results.items():
            typer.echo(f"{'sent  ' if sent else 'FAILED'} #{target.position} {target.shown}")
        failed = sum(1 for sent in results.values() if not sent)
        typer.echo(f"{len(results) - failed} sent, {failed} failed")
        if failed:
            raise typer.Exit(1)
