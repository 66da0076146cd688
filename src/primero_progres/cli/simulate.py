"""Commands of the 'simulate' part (see cli/__init__.py): run a peer simulator standalone.

Each peer is one command of the ``simulate`` sub-app; add a sibling with
``@simulate_app.command("<peer>")``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

simulate_app = typer.Typer(
    name="simulate",
    help="Run a simulator of a peer (Primero, DTP) on a local port, for tests and demos.",
    no_args_is_help=True,
)


@simulate_app.command("primero")
def simulate_primero(
    password: Annotated[
        str,
        typer.Option("--password", help="Password of the API user.", envvar="PRIMERO_SIM_PASSWORD"),
    ],
    port: Annotated[int, typer.Option("--port", help="TCP port to listen on.")] = 8901,
    user: Annotated[
        str, typer.Option("--user", help="API user name the simulator accepts.")
    ] = "primero",
    seed: Annotated[
        Path | None,
        typer.Option(
            "--seed",
            help='JSON file {"cases": [...], "users": [...], "referrals": [...]}.',
            exists=True,
            dir_okay=False,
            readable=True,
        ),
    ] = None,
    host: Annotated[str, typer.Option("--host", help="Interface to bind.")] = "127.0.0.1",
    token_login: Annotated[
        bool,
        typer.Option(
            "--token-login/--no-token-login",
            help="Answer POST /api/v2/tokens with a JWT (v2.0-v2.10) or without one (v2.11+).",
        ),
    ] = True,
) -> None:
    """Primero v2 simulator: Basic auth, token login, cases, referrals, users, /_sim/ controls."""
    from ..sim.primero import serve

    serve(port=port, users={user: password}, host=host, seed_file=seed, token_login=token_login)


def register(app: typer.Typer) -> None:
    """Add this part's commands to the root app."""
    app.add_typer(simulate_app, name="simulate")
