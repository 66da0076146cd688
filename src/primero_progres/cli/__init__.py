"""The ``primero-progres`` command.

Each group of commands lives in its own module and registers itself here, so
the parts of the product stay independent.
"""

from __future__ import annotations

import typer

from . import admin, alert, doctor, mapping, primero, repair, service, simulate, store

app = typer.Typer(
    name="primero-progres",
    help="Moves child-protection referrals and decisions between Primero v2 and proGres v4 (DTP).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

for part in (mapping, simulate, store, repair, service, doctor, admin, alert, primero):
    part.register(app)


def main() -> None:
    app()
