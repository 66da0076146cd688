"""Commands of the 'store' part: migrations, keys, backup and purge.

The command modules import the settings, the store and the rest inside the commands that use
them, so that ``--help`` (and a command that needs neither) does not load SQLAlchemy, Alembic
or pydantic-settings (tests/cli/test_startup.py).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from ..errors import ConfigurationError

if TYPE_CHECKING:
    from ..settings import Settings
    from ..store import KeyUsage, RotationResult, Store

T = TypeVar("T")
#: ``store.keys.DEFAULT_BATCH_SIZE``, repeated here for the option's default without loading
#: the store (a test keeps them equal)
DEFAULT_BATCH_SIZE = 100
ConfigOption = Annotated[
    Path | None, typer.Option("--config", help="TOML file (else PRIMERO_PROGRES_CONFIG).")
]


def load_settings(config: Path | None, *, require_encryption_key: bool = True) -> Settings:
    from ..settings import Settings

    try:
        return Settings.load(config, require_encryption_key=require_encryption_key)
    except ConfigurationError as exc:
        typer.echo(f"configuration error: {exc.message}", err=True)
        raise typer.Exit(2) from None


def with_store(settings: Settings, action: Callable[[Store], Awaitable[T]]) -> T:
    from ..store import Store

    async def run() -> T:
        store = await Store.open(settings.database_url, encryption=settings.cipher())
        try:
            return await action(store)
        finally:
            await store.close()

    return asyncio.run(run())


def _advise(usage: KeyUsage) -> None:
    """Say on stderr what the counts mean for the configuration."""
    variable = "PRIMERO_PROGRES_ENCRYPTION_KEY"
    if not usage.fingerprint_key_stored:
        typer.echo(
            "the fingerprint key is not stored yet: run rotate-key (without --check) "
            "before removing any key",
            err=True,
        )
    in_use = {kid: n for kid, n in usage.retired.items() if n}
    if in_use:
        listed = ", ".join(f"{kid!r} ({n})" for kid, n in in_use.items())
        typer.echo(
            f"payloads still need retired key(s) {listed}: restart every serve and worker "
            f"with {usage.current!r} first in {variable}, then run rotate-key again",
            err=True,
        )
    if usage.removable:
        listed = ", ".join(repr(kid) for kid in usage.removable)
        typer.echo(
            f"no stored payload needs key(s) {listed} any more: remove them from {variable} "
            "and restart (keep them in your vault while you keep backups made before now)",
            err=True,
        )
    elif usage.done:
        current = usage.current
        typer.echo(f"every stored payload is sealed with the current key {current!r}", err=True)
    unreadable = sum(usage.unknown.values())
    if unreadable:
        typer.echo(
            f"{unreadable} payload(s) are sealed with a key id {variable} does not hold and "
            "cannot be read (docs/operate.md, payload_unreadable)",
            err=True,
        )


def print_rows(rows: list[dict[str, Any]]) -> None:
    """One JSON object a line (for ``jq``)."""
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
        from ..store import backup_sqlite

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
        from ..store.crypto import generate_key

        typer.echo(generate_key())

    @app.command("rotate-key")
    def rotate_key(
        config: ConfigOption = None,
        check: Annotated[
            bool,
            typer.Option(
                "--check", help="Only count payloads per key and say which keys can go."
            ),
        ] = False,
        batch_size: Annotated[
            int, typer.Option(min=1, help="Payloads re-sealed per transaction.")
        ] = DEFAULT_BATCH_SIZE,
        replace_lost_fingerprint_key: Annotated[
            bool,
            typer.Option(
                "--replace-lost-fingerprint-key",
                help="Only if the key that sealed it is lost for good: a new fingerprint key "
                "(duplicate detection restarts).",
            ),
        ] = False,
    ) -> None:
        """Re-seal every stored payload under the current encryption key (the first of
        ENCRYPTION_KEY), in batches, while the bridge runs, so retired keys can be removed.

        Safe to interrupt and run again. Applies pending migrations first, as serve does.
        Exit 0 when no payload needs a retired key any more, 1 while some still do.
        """
        settings = load_settings(config)
        if replace_lost_fingerprint_key:
            replaced = with_store(settings, _replace_lost_fingerprint_key)
            typer.echo(json.dumps({"fingerprint_key_replaced": replaced}))
            if not replaced:
                typer.echo(
                    "the stored fingerprint key opens with the configured keys: nothing replaced",
                    err=True,
                )
                raise typer.Exit(1)
            return
        if check:
            usage = with_store(settings, _usage)
            typer.echo(json.dumps(usage.as_json(), sort_keys=True))
        else:
            try:
                result = with_store(settings, lambda store: _rotate(store, batch_size))
            except ConfigurationError as exc:
                typer.echo(f"error: {exc.message}", err=True)
                raise typer.Exit(2) from None
            usage = result.usage
            typer.echo(json.dumps(result.as_json(), sort_keys=True))
        _advise(usage)
        if not usage.done:
            raise typer.Exit(1)

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


async def _usage(store: Store) -> KeyUsage:
    await store.upgrade()
    return await store.keys.usage()


async def _rotate(store: Store, batch_size: int) -> RotationResult:
    await store.upgrade()
    return await store.keys.rotate(batch_size=batch_size)


async def _replace_lost_fingerprint_key(store: Store) -> bool:
    await store.upgrade()
    return await store.keys.replace_lost_fingerprint_key()
