"""Commands of the 'store' part: migrations, keys, purge and operator views on the queue."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from ..errors import ConfigurationError
from ..settings import Settings
from ..store import Flow, Store, backup_sqlite, generate_key

T = TypeVar("T")
ConfigOption = Annotated[
    Path | None, typer.Option("--config", help="TOML file (else PRIMERO_PROGRES_CONFIG).")
]


def load_settings(config: Path | None, *, require_encryption_key: bool = True) -> Settings:
    try:
        return Settings.load(config, require_encryption_key=require_encryption_key)
    except ConfigurationError as exc:
        typer.echo(f"configuration error: {exc.message}", err=True)
        raise typer.Exit(2) from None


def with_store(settings: Settings, action: Callable[[Store], Awaitable[T]]) -> T:
    async def run() -> T:
        store = await Store.open(settings.database_url, encryption=settings.cipher())
        try:
            return await action(store)
        finally:
            await store.close()

    return asyncio.run(run())


def _print(rows: list[dict[str, Any]]) -> None:
    for row in rows:
        typer.echo(json.dumps(row, default=str, sort_keys=True))


def register(app: typer.Typer) -> None:
    """Add this part's commands to the root app."""
    db = typer.Typer(help="Database schema.", no_args_is_help=True)
    app.add_typer(db, name="db")

    @db.command("upgrade")
    def db_upgrade(config: ConfigOption = None) -> None:
        """Apply the migrations (creates the SQLite file if needed)."""
        settings = load_settings(config)
        with_store(settings, lambda store: store.upgrade())
        typer.echo("database is up to date")

    @db.command("backup")
    def db_backup(
        path: Annotated[
            Path, typer.Argument(help="The backup file to create (never overwritten).")
        ],
        config: ConfigOption = None,
    ) -> None:
        """Copy the live SQLite database to PATH, consistently, while the bridge runs.

        For PostgreSQL use pg_dump (docs/operate.md).
        """
        settings = load_settings(config, require_encryption_key=False)
        try:
            result = backup_sqlite(settings.database_url, path)
        except ConfigurationError as exc:
            typer.echo(f"error: {exc.message}", err=True)
            raise typer.Exit(2) from None
        typer.echo(
            json.dumps({"backup": str(result.path), "pages": result.pages, "bytes": result.bytes})
        )

    @app.command()
    def keygen() -> None:
        """Print a new encryption key (32 random bytes, URL-safe base64)."""
        typer.echo(generate_key())

    @app.command()
    def purge(
        config: ConfigOption = None,
        retention_days: Annotated[
            float | None, typer.Option(help="Dead-letter retention (default from settings).")
        ] = None,
    ) -> None:
        """Delete payloads no longer needed (done jobs; dead letters past retention)."""
        settings = load_settings(config)
        days = settings.dead_letter_retention_days if retention_days is None else retention_days
        result = with_store(settings, lambda store: store.purge(retention_days=days))
        typer.echo(json.dumps({"jobs_purged": result.jobs, "messages_purged": result.messages}))

    @app.command()
    def messages(
        config: ConfigOption = None,
        flow: Annotated[Flow | None, typer.Option(help="Only this flow.")] = None,
        limit: int = 50,
    ) -> None:
        """Inbound messages (IDs only), newest first, one JSON object a line."""
        settings = load_settings(config)

        async def view(store: Store) -> list[dict[str, Any]]:
            rows = []
            for message in await store.messages.list(flow=flow, limit=limit):
                jobs = await store.jobs.list(message_id=message.id, limit=1000)
                rows.append(
                    {
                        "message_id": message.id,
                        "flow": message.flow,
                        "received_at": message.received_at.isoformat(),
                        "intervention_numbers": message.intervention_numbers,
                        "org_referral_ids": message.org_referral_ids,
                        "payload_stored": message.has_payload,
                        "jobs": {job.kind + ":" + job.id: job.state for job in jobs},
                    }
                )
            return rows

        _print(with_store(settings, view))

    @app.command("dead-letters")
    def dead_letters(config: ConfigOption = None, limit: int = 100) -> None:
        """Dead jobs with their typed reason, one JSON object a line."""
        settings = load_settings(config)

        async def view(store: Store) -> list[dict[str, Any]]:
            return [
                {
                    "job_id": job.id,
                    "kind": job.kind,
                    "attempts": job.attempts,
                    "updated_at": job.updated_at.isoformat(),
                    "reason": job.dead_reason.as_json() if job.dead_reason else None,
                    "refs": job.refs,
                    "payload_stored": job.has_payload,
                }
                for job in await store.jobs.list(state="dead", limit=limit)
            ]

        _print(with_store(settings, view))

    @app.command()
    def replay(job_id: str, config: ConfigOption = None) -> None:
        """Send a dead job back to the queue (attempts reset)."""
        settings = load_settings(config)
        if not with_store(settings, lambda store: store.jobs.replay(job_id)):
            typer.echo(f"no dead job {job_id}", err=True)
            raise typer.Exit(1)
        typer.echo(f"job {job_id} queued again")
