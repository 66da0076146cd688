"""What ``map`` does (cli/mapping.py): read a file, run the pure transforms with a profile,
build the JSON document. Apart from the command so that the CLI's other commands and
``--help`` do not load the transforms and the profile schema.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import Any

from ..mapping import ping, primero_decision, primero_referral, progres_decision, progres_referral
from ..mapping.errors import MappingError, unreadable
from ..profiles import Profile, ProfileError, load_profile
from .mapping import EXIT_OK, EXIT_PROBLEM, PING_KINDS, Kind

#: ``ExternalId`` of the write-backs a dry run shows (the flows send their ledger id)
DRY_RUN_ID = "dry-run"


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


def _known_users(
    case: Mapping[str, Any], users: dict[str, dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    """The ``--users`` list, plus the user a case export may embed as ``user``."""
    known = dict(users)
    embedded = case.get("user")
    if isinstance(embedded, Mapping) and isinstance(embedded.get("user_name"), str):
        known.setdefault(embedded["user_name"], dict(embedded))
    return known


def map_primero_case(
    payload: Any, profile: Profile, users: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    results = []
    for case in _cases(payload):
        known = _known_users(case, users)
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


def _ping_rows(payload: Any) -> list[dict[str, Any]]:
    """The rows of a PING retrieve answer (``{"Data": [...]}``, "No Data Available") or a list."""
    if isinstance(payload, Mapping) and "Data" in payload:
        payload = payload["Data"]
        if payload is None or payload == "No Data Available":
            return []
    if not isinstance(payload, list) or not all(isinstance(r, Mapping) for r in payload):
        raise _Unreadable('not PING rows: a retrieve answer {"Data": [rows]} or a list of rows')
    return [dict(r) for r in payload]


def map_ping_referral(payload: Any, profile: Profile, today: date) -> list[dict[str, Any]]:
    tables = profile.ping_tables().progres_referral
    results = []
    for number, rows in ping.group_rows(_ping_rows(payload), tables.group_by):
        lp_id = rows[0].get(tables.lp_intervention_id)
        unit = rows[0].get(tables.business_unit)
        keys = ping.InterventionKeys(
            lp_id if isinstance(lp_id, str) else "", unit if isinstance(unit, str) else "", number
        )
        read = ping.map_ping_referral(rows, keys, profile, today)
        out: dict[str, Any] = {"progres_interventionnumber": number,
                               "lp_intervention_id": keys.lp_intervention_id, "ok": read.ok}
        if read.mapped is not None:
            out["case"] = read.mapped.case
            update = ping.referral_received_update(
                read.keys, case_id=read.mapped.case.get("case_id"), profile=profile, today=today
            )
        else:
            out["error"] = _error(read.error) if read.error else None
            update = ping.referral_failed_update(read.keys, read.error, profile=profile,
                                                 today=today)
        out["update"] = update.as_item(DRY_RUN_ID)
        results.append(out)
    return results


def map_ping_primero_decision(
    payload: Any, profile: Profile, today: date, keys: ping.InterventionKeys | None
) -> list[dict[str, Any]]:
    results = []
    for case in _cases(payload):
        for decision in primero_decision.qualifying_decisions(case, profile):
            found = keys or ping.keys_from_packed_number(decision.progres_interventionnumber)
            used = found or ping.InterventionKeys("<lp_intervention_id>", "<business_unit>")
            update = ping.decision_update(decision, used, profile=profile, today=today)
            out: dict[str, Any] = {
                "case_id": decision.case_id,
                "progres_interventionnumber": decision.progres_interventionnumber,
                "ok": isinstance(update, ping.FieldUpdate),
            }
            if isinstance(update, ping.FieldUpdate):
                out["update"] = update.as_item(DRY_RUN_ID)
            else:
                out["error"] = _error(update)
            results.append(out)
    return results


def map_ping_primero_case(
    payload: Any, profile: Profile, users: dict[str, dict[str, Any]], today: date
) -> list[dict[str, Any]]:
    results = []
    for case in _cases(payload):
        known = _known_users(case, users)
        referrals = _referrals_of(case, profile)
        if not isinstance(case.get("referrals"), list):
            # dry run without the case's referrals: as if referred on the processing date
            referrals = [{**r, "created_at": today.isoformat()} for r in referrals]
        for result in ping.referral_create_items(case, referrals, known, profile):
            out: dict[str, Any] = {"case_id": result.case_id,
                                   "service_unique_id": result.service_unique_id, "ok": result.ok}
            if result.update is not None:
                out["item"] = result.update.as_item()
            else:
                out["error"] = _error(result.error) if result.error else None
            results.append(out)
    return results


def map_ping_decision(payload: Any, profile: Profile) -> list[dict[str, Any]]:
    alias = profile.ping_tables().progres_decision.referral_id
    results = []
    for referral_id, rows in ping.group_rows(_ping_rows(payload), alias):
        read = ping.read_ping_decision(rows, profile)
        if isinstance(read, MappingError):
            results.append({"referral_id": referral_id, "ok": False, "error": _error(read)})
            continue
        decision = read.decision
        results.append(
            {
                "referral_id": read.referral_id,
                "ok": True,
                "case_id": decision.case_id,
                "service_key": decision.service_key,
                "patch": progres_decision.referral_patch(decision),
                "update": ping.referral_synced_update(read.referral_id, profile).as_item(
                    DRY_RUN_ID
                ),
            }
        )
    return results


class _MessageError(Exception):
    def __init__(self, error: MappingError) -> None:
        super().__init__(error.kind)
        self.error = error


def run_map(
    kind: Kind,
    file: Path,
    *,
    profile: str,
    today: date,
    users: Path | None,
    keys: ping.InterventionKeys | None = None,
) -> tuple[dict[str, Any], int]:
    """The document ``map`` prints and its exit code."""
    try:
        loaded = load_profile(profile)
    except ProfileError as exc:
        error = {"kind": "profile", "message": "the profile is not valid",
                 "fields": [p.path for p in exc.problems]}
        return {"error": error}, EXIT_PROBLEM
    if kind in PING_KINDS and loaded.ping is None:
        error = {"kind": "profile", "message": "the profile has no ping section",
                 "fields": ["ping"]}
        return {"error": error}, EXIT_PROBLEM
    try:
        payload = _read_json(file)
        if kind is Kind.progres_referral:
            results = map_progres_referral(payload, loaded, today)
        elif kind is Kind.primero_case:
            results = map_primero_case(payload, loaded, _users(users))
        elif kind is Kind.primero_decision:
            results = map_primero_decision(payload, loaded)
        elif kind is Kind.progres_decision:
            results = map_progres_decision(payload, loaded)
        elif kind is Kind.ping_referral:
            results = map_ping_referral(payload, loaded, today)
        elif kind is Kind.ping_primero_decision:
            results = map_ping_primero_decision(payload, loaded, today, keys)
        elif kind is Kind.ping_primero_case:
            results = map_ping_primero_case(payload, loaded, _users(users), today)
        else:
            results = map_ping_decision(payload, loaded)
    except _Unreadable as exc:
        return {"error": unreadable(str(exc)).as_dict()}, EXIT_PROBLEM
    except _MessageError as exc:
        return {"error": exc.error.as_dict()}, EXIT_PROBLEM
    code = EXIT_OK if all(r["ok"] for r in results) else EXIT_PROBLEM
    return {"flow": kind.value, "results": results}, code


def emit(document: Any) -> None:
    sys.stdout.write(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
