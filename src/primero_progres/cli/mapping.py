"""Commands of the 'mapping' part (see cli/__init__.py): ``map`` and ``profile``.

``map`` is a dry run: it reads a file, runs the pure transforms with a profile
and prints JSON on stdout, without any network or database. Errors are JSON
too (exit 2), never a traceback.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from ..mapping import primero_decision, primero_referral, progres_decision, progres_referral
from ..mapping.errors import MappingError, unreadable
from ..profiles import Profile, ProfileError, check_profile, load_profile, profile_json_schema
from ..profiles.loader import BUILT_IN

EXIT_OK = 0
EXIT_PROBLEM = 2


class Kind(StrEnum):
    progres_referral = "progres-referral"
    primero_case = "primero-case"
    primero_decision = "primero-decision"
    progres_decision = "progres-decision"


class _Unreadable(Exception):
    """The input file is not a message of the expected kind."""


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_bytes().decode("utf-8"))
    except OSError as exc:
        raise _Unreadable(f"cannot read the file ({type(exc).__name__})") from None
    except UnicodeDecodeError:
        raise _Unreadable("the file is not UTF-8 text") from None
    except ValueError as exc:
        line = getattr(exc, "lineno", None)
        where = f" (line {line})" if line else ""
        raise _Unreadable(f"the file is not valid JSON{where}") from None


def _cases(payload: Any) -> list[dict[str, Any]]:
    """One Primero case, a list of them, or a ``{"data"|"_json": [cases]}`` wrapper."""
    if isinstance(payload, Mapping):
        for wrapper in ("data", "_json"):
            inner = payload.get(wrapper)
            if isinstance(inner, list):
                payload = inner
                break
            if isinstance(inner, Mapping):
                payload = [inner]
                break
        else:
            payload = [payload]
    if not isinstance(payload, list) or not all(isinstance(c, Mapping) for c in payload):
        raise _Unreadable("not a Primero case, a list of cases or {\"data\": [cases]}")
    return [dict(c) for c in payload]


def _users(path: Path | None) -> dict[str, dict[str, Any]]:
    if path is None:
        return {}
    payload = _read_json(path)
    if isinstance(payload, Mapping) and isinstance(payload.get("data"), list):
        payload = payload["data"]
    if not isinstance(payload, list):
        raise _Unreadable("--users is not a JSON list of Primero users")
    return {
        u["user_name"]: dict(u)
        for u in payload
        if isinstance(u, Mapping) and isinstance(u.get("user_name"), str)
    }


def _error(error: MappingError) -> dict[str, Any]:
    return error.as_dict()


def map_progres_referral(payload: Any, profile: Profile, today: date) -> list[dict[str, Any]]:
    read = progres_referral.read_message(payload)
    if isinstance(read, MappingError):
        raise _MessageError(read)
    results = []
    for intervention in read.interventions:
        number = progres_referral.intervention_number(intervention)
        mapped = progres_referral.map_intervention(intervention, profile, today)
        if isinstance(mapped, progres_referral.MappedIntervention):
            results.append({"progres_interventionnumber": number, "ok": True, "case": mapped.case})
            continue
        feedback = progres_referral.refusal_feedback(intervention, mapped, profile)
        results.append(
            {"progres_interventionnumber": number, "ok": False, "error": _error(mapped),
             "feedback": feedback}
        )
    return results


def _referrals_of(case: Mapping[str, Any], profile: Profile) -> list[dict[str, Any]]:
    """The case's attached referrals, else (dry run) one referral per UNHCR service."""
    attached = case.get("referrals")
    if isinstance(attached, list):
        return attached
    return [
        {"service_record_id": row["unique_id"]}
        for row in primero_referral.unhcr_services(case, profile)
        if isinstance(row.get("unique_id"), str)
    ]


def map_primero_case(
    payload: Any, profile: Profile, users: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    results = []
    for case in _cases(payload):
        known = dict(users)
        embedded = case.get("user")
        if isinstance(embedded, Mapping) and isinstance(embedded.get("user_name"), str):
            known.setdefault(embedded["user_name"], dict(embedded))
        for result in primero_referral.referral_messages(
            case, _referrals_of(case, profile), known, profile
        ):
            results.append(
                _outcome(result, case_id=result.case_id, service_unique_id=result.service_unique_id)
            )
    return results


def _outcome(result: Any, **ids: Any) -> dict[str, Any]:
    """One result line of ``map``: its IDs, ``ok``, then the message or the error."""
    out: dict[str, Any] = {**ids, "ok": result.ok}
    if result.ok:
        out["message"] = result.message
    else:
        out["error"] = _error(result.error) if result.error else None
    return out


def map_primero_decision(payload: Any, profile: Profile) -> list[dict[str, Any]]:
    results = []
    for case in _cases(payload):
        for result in primero_decision.qualifying_decisions(case, profile):
            results.append(
                _outcome(
                    result,
                    case_id=result.case_id,
                    progres_interventionnumber=result.progres_interventionnumber,
                )
            )
    return results


def map_progres_decision(payload: Any, profile: Profile) -> list[dict[str, Any]]:
    read = progres_decision.read_message(payload)
    if isinstance(read, MappingError):
        raise _MessageError(read)
    results = []
    for item in read.interventions:
        decision = progres_decision.read_decision(item, profile)
        if isinstance(decision, progres_decision.ProgresDecision):
            results.append(
                {
                    "org_referral_id": decision.org_referral_id,
                    "ok": True,
                    "case_id": decision.case_id,
                    "service_key": decision.service_key,
                    "patch": progres_decision.referral_patch(decision),
                }
            )
            continue
        raw_id = item.get("progres_orgreferralid") if isinstance(item, Mapping) else None
        results.append(
            {
                "org_referral_id": raw_id if isinstance(raw_id, str) else None,
                "ok": False,
                "case_id": None,
                "service_key": None,
                "error": _error(decision),
            }
        )
    return results


class _MessageError(Exception):
    def __init__(self, error: MappingError) -> None:
        super().__init__(error.kind)
        self.error = error


def _emit(document: Any) -> None:
    sys.stdout.write(json.dumps(document, indent=2, ensure_ascii=False) + "\n")


def _parse_today(value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter("expected YYYY-MM-DD") from None


def run_map(
    kind: Kind, file: Path, *, profile: str, today: date, users: Path | None
) -> tuple[dict[str, Any], int]:
    """The document ``map`` prints and its exit code."""
    try:
        loaded = load_profile(profile)
    except ProfileError as exc:
        error = {"kind": "profile", "message": "the profile is not valid",
                 "fields": [p.path for p in exc.problems]}
        return {"error": error}, EXIT_PROBLEM
    try:
        payload = _read_json(file)
        if kind is Kind.progres_referral:
            results = map_progres_referral(payload, loaded, today)
        elif kind is Kind.primero_case:
            results = map_primero_case(payload, loaded, _users(users))
        elif kind is Kind.primero_decision:
            results = map_primero_decision(payload, loaded)
        else:
            results = map_progres_decision(payload, loaded)
    except _Unreadable as exc:
        return {"error": unreadable(str(exc)).as_dict()}, EXIT_PROBLEM
    except _MessageError as exc:
        return {"error": exc.error.as_dict()}, EXIT_PROBLEM
    code = EXIT_OK if all(r["ok"] for r in results) else EXIT_PROBLEM
    return {"flow": kind.value, "results": results}, code


profile_app = typer.Typer(
    help="Mapping profiles (localized tables, codes and defaults).", no_args_is_help=True
)


@profile_app.command("check")
def profile_check(
    path: Annotated[
        str | None,
        typer.Argument(help=f"A profile YAML file or a built-in name ({', '.join(BUILT_IN)})."),
    ] = None,
) -> None:
    """Validate a mapping profile and list its problems by key path (exit 0 or 2)."""
    source = path or BUILT_IN[0]
    problems = check_profile(source)
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
    _emit(profile_json_schema())


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
) -> None:
    """Dry run of a mapping: JSON on stdout; exit 2 if anything cannot be mapped."""
    day = _parse_today(today) or date.today()
    document, code = run_map(kind, file, profile=profile, today=day, users=users)
    _emit(document)
    raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    """Add this part's commands to the root app."""
    app.command("map")(map_command)
    app.add_typer(profile_app, name="profile")
