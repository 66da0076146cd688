"""The ``doctor`` command (see ``primero_progres/doctor.py``): a read-only pre-flight check."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated

import typer

from .store import ConfigOption, load_settings


def register(app: typer.Typer) -> None:
    """Add this part's commands to the root app."""

    @app.command()
    def doctor(
        config: ConfigOption = None,
        as_json: Annotated[
            bool, typer.Option("--json", help="One JSON document on stdout, for machines.")
        ] = False,
        probe_case: Annotated[
            str | None,
            typer.Option(
                "--probe-case",
                metavar="CASE_ID",
                help="case_id (or id) of a case the API user is not associated with: it must "
                "be visible, or the role's scope is too narrow.",
            ),
        ] = None,
    ) -> None:
        """Check Primero, the profile against it, and the DTP gateway; change nothing.

        One line per check: ok, warn or FAIL and what to do. Exit 0 only when nothing FAILs.
        """
        from ..doctor import DoctorContext, passed, run_checks
        from ..logging import configure_logging

        configure_logging(level="ERROR", json=False)
        settings = load_settings(config, require_encryption_key=False)
        findings = asyncio.run(run_checks(DoctorContext(settings, probe_case=probe_case)))
        healthy = passed(findings)
        if as_json:
            document = {"ok": healthy, "checks": [f.as_dict() for f in findings]}
            typer.echo(json.dumps(document, indent=2))
        else:
            for finding in findings:
                typer.echo(finding.line())
            failed = sum(1 for f in findings if f.status.value == "FAIL")
            typer.echo(
                f"\n{len(findings)} checks, {failed} FAIL"
                if failed
                else f"\n{len(findings)} checks, nothing FAILs"
            )
        raise typer.Exit(0 if healthy else 1)
