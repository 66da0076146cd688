"""Commands of the 'mapping' part (see cli/__init__.py): ``map`` and ``profile``.

``map`` is a dry run: it reads a file, runs the pure transforms with a profile
and prints JSON on stdout, without any network or database. Errors are JSON
too (exit 2), never a traceback.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

#: ``profiles.loader.BUILT_IN``, repeated for the help text without loading the profile schema
#: (a test keeps them equal); the transforms are in ``mapping_dry_run``, loaded by ``map``
BUILT_IN = ("gambella",)
EXIT_OK = 0
EXIT_PROBLEM = 2


class Kind(StrEnum):
    progres_referral = "progres-referral"
    primero_case = "primero-case"
    primero_decision = "primero-decision"
    progres_decision = "progres-decision"
    ping_referral = "ping-referral"
    ping_primero_decision = "ping-primero-decision"
    ping_primero_case = "ping-primero-case"
    ping_decision = "ping-decision"


PING_KINDS = frozenset(
    {Kind.ping_referral, Kind.ping_primero_decision, Kind.ping_primero_case, Kind.ping_decision}
)


class Gateway(StrEnum):
    dtp = "dtp"
    ping = "ping"


def _parse_today(value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter("expected YYYY-MM-DD") from None


profile_app = typer.Typer(
    help="Mapping profiles (localized tables, codes and defaults).", no_args_is_help=True
)


@profile_app.command("check")
def profile_check(
    path: Annotated[
        str | None,
        typer.Argument(help=f"A profile YAML file or a built-in name ({', '.join(BUILT_IN)})."),
    ] = None,
    gateway: Annotated[
        Gateway,
        typer.Option("--gateway", help="The UNHCR gateway it serves: ping needs a ping section."),
    ] = Gateway.dtp,
) -> None:
    """Validate a mapping profile and list its problems by key path (exit 0 or 2)."""
    from ..profiles import check_profile

    source = path or BUILT_IN[0]
    problems = check_profile(source, gateway=gateway.value)
    if not problems:
        typer.echo(f"profile {source}: ok")
        raise typer.Exit(EXIT_OK)
    typer.echo(f"profile {source}: {len(problems)} problem(s)")
    for problem in problems:
        typer.echo(f"  {problem}")
    raise typer.Exit(EXIT_PROBLEM)


@profile_app.command("schema")
def profile_schema() -> None:
    """Print the JSON Schema of a profile file."""
    from ..profiles import profile_json_schema
    from .mapping_dry_run import emit

    emit(profile_json_schema())


def map_command(
    kind: Annotated[Kind, typer.Argument(help="Which flow's input FILE holds.")],
    file: Annotated[Path, typer.Argument(help="The JSON message or Primero case(s).")],
    profile: Annotated[
        str, typer.Option("--profile", help="Built-in profile name or YAML path.")
    ] = "gambella",
    today: Annotated[
        str | None, typer.Option("--today", help="Processing date for ages (YYYY-MM-DD).")
    ] = None,
    users: Annotated[
        Path | None, typer.Option("--users", help="JSON list of Primero users (contacts).")
    ] = None,
    lp_intervention_id: Annotated[
        str | None,
        typer.Option("--lp-intervention-id", help="ping-primero-decision: the ledger's LP id."),
    ] = None,
    business_unit: Annotated[
        str | None,
        typer.Option("--business-unit", help="ping-primero-decision: the ledger's business unit."),
    ] = None,
) -> None:
    """Dry run of a mapping: JSON on stdout; exit 2 if anything cannot be mapped.

    FILE holds: progres-referral, a DTP referral message; primero-case, Primero
    case(s) with a referral to UNHCR; primero-decision, Primero case(s) with a
    decision; progres-decision, a DTP decision message. Over PING: ping-referral,
    the detail rows of LP interventions; ping-primero-decision and
    ping-primero-case, Primero case(s); ping-decision, decision detail rows.
    """
    from ..mapping import ping
    from .mapping_dry_run import emit, run_map

    day = _parse_today(today) or date.today()
    keys = None
    if lp_intervention_id or business_unit:
        if not (lp_intervention_id and business_unit):
            raise typer.BadParameter("--lp-intervention-id and --business-unit go together")
        keys = ping.InterventionKeys(lp_intervention_id, business_unit)
    document, code = run_map(kind, file, profile=profile, today=day, users=users, keys=keys)
    emit(document)
    raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    """Add this part's commands to the root app."""
    app.command("map")(map_command)
    app.add_typer(profile_app, name="profile")
