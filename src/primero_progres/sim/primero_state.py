"""In-memory state of the Primero simulator: cases, referrals, users, and what calls do to them.

Reachable as ``app.state.primero`` so an in-process test can look inside.
All methods take one lock: tests poke the state from another thread than uvicorn's.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterable, Mapping
from datetime import date
from typing import Any

from .primero_records import (
    CORE_FIELDS,
    CREATE_COMPUTED,
    DEFAULT_READABLE_FIELDS,
    INDEX_CONTROL_PARAMS,
    MODULE_IDS,
    UPDATE_FORBIDDEN,
    UUID_RE,
    Clock,
    assign_row_ids,
    derive_ids,
    destringify,
    invalid_row_ids,
    matches,
    merge,
    new_uuid,
    refresh_associated,
    sort_key,
)

REFERRAL_STATUSES = ("in_progress", "accepted", "rejected", "done", "revoked")
ACTIVE_STATUSES = ("in_progress", "accepted")
REFERRAL_WRITABLE = (
    "transitioned_to",
    "transitioned_to_remote",
    "transitioned_to_agency",
    "service",
    "service_record_id",
    "remote",
    "type_of_export",
    "notes",
    "consent_overridden",
    "authorized_role_unique_id",
    "allow_case_creation",
)
USER_HIDDEN = (
    "password",
    "encrypted_password",
    "service_account",
    "identity_provider_id",
    "unlock_token",
    "locked_at",
    "failed_attempts",
    "role_id",
)
DEFAULT_PER = 20


class SimError(Exception):
    """An answer in Primero's error envelope."""

    def __init__(self, status: int, message: Any, *, detail: Any = None) -> None:
        super().__init__(status)
        self.status = status
        self.message = message
        self.detail = detail


def _now_date() -> str:
    return date.today().isoformat()


class PrimeroState:
    """Everything the simulated Primero holds."""

    def __init__(
        self,
        *,
        readable_fields: Iterable[str] | None = None,
        writable_fields: Iterable[str] | None = None,
        max_per: int | None = 1000,
    ) -> None:
        self.lock = threading.RLock()
        self.clock = Clock()
        self.cases: dict[str, dict[str, Any]] = {}
        self.referrals: dict[str, dict[str, Any]] = {}
        self.users: dict[str, dict[str, Any]] = {}
        self.journal: list[dict[str, Any]] = []
        self._initial_readable = frozenset(readable_fields or DEFAULT_READABLE_FIELDS)
        self.readable_fields = set(self._initial_readable)
        #: form fields the role may write; None means every field
        self.writable_fields = set(writable_fields) if writable_fields is not None else None
        #: the ``per`` cap (1000 from v2.11); None reproduces v2.10 and earlier
        self.max_per = max_per
        self._next_user_id = 1

    # ------------------------------------------------------------ housekeeping

    def reset(self) -> None:
        with self.lock:
            self.cases.clear()
            self.referrals.clear()
            self.users.clear()
            self.journal.clear()
            self.readable_fields = set(self._initial_readable)
            self._next_user_id = 1

    def seed(self, payload: Mapping[str, Any]) -> dict[str, int]:
        """Load cases, users and referrals as they would already be in Primero."""
        with self.lock:
            for user in payload.get("users", []):
                self.add_user(user)
            for raw in payload.get("cases", []):
                case = copy.deepcopy(dict(raw))
                case.setdefault("id", new_uuid())
                derive_ids(case)
                stamp = self.clock.after(None)
                case.setdefault("created_at", stamp)
                case.setdefault("last_updated_at", stamp)
                case.setdefault("status", "open")
                case.setdefault("record_state", True)
                assign_row_ids(case)
                refresh_associated(case)
                self.cases[case["id"]] = case
            for raw in payload.get("referrals", []):
                referral = copy.deepcopy(dict(raw))
                referral.setdefault("id", new_uuid())
                referral.setdefault("type", "Referral")
                referral.setdefault("status", "in_progress")
                referral.setdefault("record_type", "case")
                referral.setdefault("created_at", self.clock.after(None))
                self.referrals[referral["id"]] = referral
            return {
                "cases": len(self.cases),
                "users": len(self.users),
                "referrals": len(self.referrals),
            }

    def add_user(self, user: Mapping[str, Any]) -> dict[str, Any]:
        with self.lock:
            record = {k: v for k, v in dict(user).items() if k != "password"}
            if not record.get("user_name"):
                raise SimError(422, "Invalid User JSON", detail=["/user_name"])
            existing = self.users.get(record["user_name"])
            if existing:
                record["id"] = existing["id"]
            else:
                record.setdefault("id", self._next_user_id)
                self._next_user_id = max(self._next_user_id, int(record["id"])) + 1
            stamp = self.clock.after(None)
            record.setdefault("disabled", False)
            record.setdefault("locale", "en")
            record.setdefault("created_at", stamp)
            record.setdefault("updated_at", stamp)
            self.users[record["user_name"]] = record
            return record

    def all_cases(self) -> list[dict[str, Any]]:
        with self.lock:
            return [self.render_case(case) for case in self.cases.values()]

    # ------------------------------------------------------------ cases

    def render_case(
        self, case: Mapping[str, Any], fields: Iterable[str] | None = None
    ) -> dict[str, Any]:
        """``_record.json.jbuilder``: ``id``, ``enabled``, ``last_updated_at`` and the data keys."""
        body = copy.deepcopy(dict(case))
        if fields is not None:
            wanted = set(fields)
            body = {k: v for k, v in body.items() if k in wanted}
        body["id"] = case["id"]
        body["enabled"] = case.get("record_state", True)
        body["last_updated_at"] = case.get("last_updated_at")
        return body

    def _case(self, record_id: str, resource: str) -> dict[str, Any]:
        case = self.cases.get(record_id)
        if case is None:
            raise SimError(404, "Not Found", detail=f"Couldn't find Child with 'id'={record_id}")
        return case

    def _page_and_per(self, params: Mapping[str, str | list[str]]) -> tuple[int, int]:
        """The page and page size a listing asked for, the size capped like Primero's."""
        page = _positive_int(params.get("page"), 1)
        per = _positive_int(params.get("per"), DEFAULT_PER)
        if self.max_per is not None:
            per = min(per, self.max_per)
        return page, per

    def list_cases(self, params: Mapping[str, str | list[str]]) -> dict[str, Any]:
        """``GET /api/v2/cases``: permitted filters, paging and order; unknown filters vanish."""
        with self.lock:
            page, per = self._page_and_per(params)
            records = list(self.cases.values())
            ids = params.get("id")
            if isinstance(ids, str) and ids:
                wanted_ids = set(ids.split(","))
                records = [case for case in records if case["id"] in wanted_ids]
            for name, raw in params.items():
                if name in INDEX_CONTROL_PARAMS or name not in self.readable_fields:
                    continue  # strong params drop what the role may not read, without a word
                wanted = destringify(name, raw)
                if wanted is None:
                    continue
                records = [
                    case for case in records if matches(self.render_case(case), name, wanted)
                ]
            order_by = params.get("order_by") if isinstance(params.get("order_by"), str) else None
            order = params.get("order")
            descending = order != "asc" if order_by else True
            records.sort(key=sort_key(order_by or "created_at"), reverse=descending)
            fields_param = params.get("fields")
            fields = (
                fields_param.split(",") if isinstance(fields_param, str) and fields_param else None
            )
            window = records[(page - 1) * per : page * per]
            return {
                "data": [self.render_case(case, fields) for case in window],
                "metadata": {"total": len(records), "per": per, "page": page},
            }

    def get_case(self, record_id: str) -> dict[str, Any]:
        with self.lock:
            return {"data": self.render_case(self._case(record_id, "cases"))}

    def _writable(self, data: Mapping[str, Any], module_id: Any) -> dict[str, Any]:
        kept = {}
        for key, value in data.items():
            if key in CORE_FIELDS or (module_id in MODULE_IDS and (
                self.writable_fields is None or key in self.writable_fields
            )):
                kept[key] = value
        return kept

    def create_case(self, data: Any, user_name: str) -> dict[str, Any] | None:
        """``POST /api/v2/cases``; None means 204 (the client chose the ``id``)."""
        if not isinstance(data, dict):
            raise SimError(422, "param is missing or the value is empty: data")
        with self.lock:
            module_id = data.get("module_id")
            if module_id is not None and module_id not in MODULE_IDS:
                raise SimError(422, "Invalid Record JSON", detail=["/module_id"])
            client_id = data.get("id")
            if client_id is not None and not (
                isinstance(client_id, str) and UUID_RE.match(client_id)
            ):
                raise SimError(422, "Invalid Record JSON", detail=["/id"])
            pointers = invalid_row_ids(data)
            if pointers:
                raise SimError(422, "Invalid Record JSON", detail=pointers)
            case = {
                k: v
                for k, v in self._writable(copy.deepcopy(data), module_id).items()
                if k not in CREATE_COMPUTED
            }
            if client_id in self.cases:
                raise SimError(409, "Conflict: A record with this id already exists")
            if case.get("case_id") and any(
                c.get("case_id") == case["case_id"] for c in self.cases.values()
            ):
                raise SimError(409, "Conflict: A record with this id already exists")
            case["id"] = client_id or new_uuid()
            derive_ids(case)
            stamp = self.clock.after(None)
            case["created_at"] = stamp
            case["last_updated_at"] = stamp
            case["created_by"] = user_name
            case.setdefault("owned_by", user_name)
            case.setdefault("status", "open")
            case.setdefault("record_state", True)
            case.setdefault("registration_date", _now_date())
            case.setdefault("notes_section", [])
            assign_row_ids(case)
            refresh_associated(case)
            self.cases[case["id"]] = case
            return None if client_id else {"data": self.render_case(case)}

    def patch_case(self, record_id: str, data: Any) -> dict[str, Any]:
        """``PATCH /api/v2/cases/:id``: merge, then answer with the changed fields only."""
        if not isinstance(data, dict):
            raise SimError(422, "param is missing or the value is empty: data")
        with self.lock:
            case = self._case(record_id, "cases")
            pointers = invalid_row_ids(data)
            if pointers:
                raise SimError(422, "Invalid Record JSON", detail=pointers)
            update = {
                k: v
                for k, v in self._writable(copy.deepcopy(data), case.get("module_id")).items()
                if k not in UPDATE_FORBIDDEN and k != "module_id"
            }
            merged = merge(case, update)
            assign_row_ids(merged)
            refresh_associated(merged)
            changed = [key for key in merged if merged.get(key) != case.get(key)]
            merged["last_updated_at"] = self.clock.after(case.get("last_updated_at"))
            self.cases[record_id] = merged
            body = {key: copy.deepcopy(merged[key]) for key in changed}
            body.update(
                id=record_id,
                enabled=merged.get("record_state", True),
                last_updated_at=merged["last_updated_at"],
            )
            return {"data": body}

    def touch(self, case: dict[str, Any]) -> None:
        case["last_updated_at"] = self.clock.after(case.get("last_updated_at"))

    # ------------------------------------------------------------ referrals

    def render_referral(self, referral: Mapping[str, Any], user_name: str | None) -> dict[str, Any]:
        """Nils stripped, plus the two computed booleans."""
        body = {k: copy.deepcopy(v) for k, v in referral.items() if v is not None}
        body["record_access_denied"] = False
        body["user_can_accept_or_reject"] = bool(
            not referral.get("remote")
            and referral.get("status") == "in_progress"
            and referral.get("transitioned_to") == user_name
        )
        return body

    def list_referrals(self, record_id: str, user_name: str | None) -> dict[str, Any]:
        with self.lock:
            self._case(record_id, "cases")
            return {
                "data": [
                    self.render_referral(r, user_name)
                    for r in self.referrals.values()
                    if r.get("record_id") == record_id
                ]
            }

    def _record_part(self, case: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "id": case["id"],
            "enabled": case.get("record_state", True),
            "last_updated_at": case.get("last_updated_at"),
        }

    def _service_row(self, case: Mapping[str, Any], row_id: Any) -> dict[str, Any] | None:
        for row in case.get("services_section") or []:
            if row_id and row.get("unique_id") == row_id:
                return row
        return None

    def create_referral(self, record_id: str, data: Any, user_name: str) -> dict[str, Any]:
        """``POST /api/v2/cases/:id/referrals`` with the consent and receiver checks."""
        if not isinstance(data, dict):
            raise SimError(422, "param is missing or the value is empty: data")
        with self.lock:
            case = self._case(record_id, "cases")
            fields = {k: data[k] for k in REFERRAL_WRITABLE if k in data}
            remote = bool(fields.get("remote"))
            if not remote and fields.get("transitioned_to") not in self.users:
                raise SimError(
                    422, ["transition.errors.to_user_can_receive"], detail="transitioned_to"
                )
            consent = bool(case.get("consent_for_services")) and (
                case.get("module_id") == "primeromodule-gbv"
                or bool(case.get("disclosure_other_orgs"))
            )
            if not consent and not fields.get("consent_overridden"):
                raise SimError(422, ["transition.errors.consent"], detail="consent")
            referral = self._new_referral(case, fields, user_name)
            return {
                "data": {
                    **self.render_referral(referral, user_name),
                    "record": self._record_part(case),
                }
            }

    def _new_referral(
        self, case: dict[str, Any], fields: Mapping[str, Any], user_name: str
    ) -> dict[str, Any]:
        referral = {
            "id": new_uuid(),
            "type": "Referral",
            "status": "in_progress",
            "record_id": case["id"],
            "record_type": "case",
            "transitioned_by": user_name,
            "remote": False,
            "consent_overridden": False,
            "consent_individual_transfer": False,
            **fields,
            "created_at": self.clock.after(None),
        }
        self.referrals[referral["id"]] = referral
        if not referral.get("remote") and referral.get("transitioned_to"):
            assigned = list(case.get("assigned_user_names") or [])
            if referral["transitioned_to"] not in assigned:
                assigned.append(referral["transitioned_to"])
            case["assigned_user_names"] = assigned
            refresh_associated(case)
        row = self._service_row(case, referral.get("service_record_id"))
        if row is not None:
            row["service_status_referred"] = True
        self.touch(case)
        return referral

    def _release_user(self, case: dict[str, Any], referral: Mapping[str, Any]) -> None:
        user = referral.get("transitioned_to")
        still_active = any(
            other is not referral
            and other.get("record_id") == case["id"]
            and other.get("transitioned_to") == user
            and other.get("status") in ACTIVE_STATUSES
            for other in self.referrals.values()
        )
        if user and not still_active:
            case["assigned_user_names"] = [
                n for n in case.get("assigned_user_names") or [] if n != user
            ]
            refresh_associated(case)

    def update_referral(
        self, record_id: str, referral_id: str, data: Any, user_name: str
    ) -> dict[str, Any]:
        """``Referral#process!``: legal transitions only; anything else is a silent 200 no-op."""
        if not isinstance(data, dict):
            raise SimError(422, "param is missing or the value is empty: data")
        with self.lock:
            case = self._case(record_id, "cases")
            referral = self.referrals.get(referral_id)
            if referral is None:
                raise SimError(
                    404, "Not Found", detail=f"Couldn't find Transition with 'id'={referral_id}"
                )
            owner = self.cases.get(str(referral.get("record_id")), case)
            current, wanted = referral.get("status"), data.get("status")
            now = self.clock.after(None)
            if current == "in_progress" and wanted == "accepted":
                referral.update(status="accepted", responded_at=now)
            elif current == "in_progress" and wanted == "rejected":
                referral.update(
                    status="rejected", responded_at=now, rejected_reason=data.get("rejected_reason")
                )
                if data.get("rejection_note") is not None:
                    referral["rejection_note"] = data["rejection_note"]
                self._release_user(owner, referral)
            elif current == "accepted" and wanted == "done":
                referral["status"] = "done"
                row = self._service_row(owner, referral.get("service_record_id"))
                if data.get("rejection_note") is not None:
                    referral["rejection_note"] = data["rejection_note"]
                if row is not None:
                    row["service_implemented"] = "implemented"
                    if not row.get("service_implemented_day_time"):
                        row["service_implemented_day_time"] = now
                    if data.get("rejection_note") is not None:
                        row["note_on_referral_from_provider"] = data["rejection_note"]
                self._release_user(owner, referral)
            else:
                return {
                    "data": {
                        **self.render_referral(referral, user_name),
                        "record": self._record_part(owner),
                    }
                }
            self.touch(owner)
            return {
                "data": {
                    **self.render_referral(referral, user_name),
                    "record": self._record_part(owner),
                }
            }

    def revoke_referral(self, record_id: str, referral_id: str, user_name: str) -> dict[str, Any]:
        with self.lock:
            case = self._case(record_id, "cases")
            referral = self.referrals.get(referral_id)
            if referral is None:
                raise SimError(
                    404, "Not Found", detail=f"Couldn't find Transition with 'id'={referral_id}"
                )
            if referral.get("status") in ACTIVE_STATUSES:
                referral["status"] = "revoked"
                self._release_user(case, referral)
                self.touch(case)
            return {
                "data": {
                    **self.render_referral(referral, user_name),
                    "record": self._record_part(case),
                }
            }

    # ------------------------------------------------------------ users

    def render_user(self, user: Mapping[str, Any]) -> dict[str, Any]:
        return {
            k: copy.deepcopy(v) for k, v in user.items() if v is not None and k not in USER_HIDDEN
        }

    def list_users(self, params: Mapping[str, str | list[str]]) -> dict[str, Any]:
        with self.lock:
            page, per = self._page_and_per(params)
            users = sorted(self.users.values(), key=lambda u: int(u["id"]))
            user_name = params.get("user_name")
            if isinstance(user_name, str):
                users = [u for u in users if u.get("user_name") == user_name]
            window = users[(page - 1) * per : page * per]
            return {
                "data": [self.render_user(u) for u in window],
                "metadata": {
                    "total": len(users),
                    "per": per,
                    "page": page,
                    "total_enabled": sum(1 for u in users if not u.get("disabled")),
                },
            }

    def get_user(self, user_id: str) -> dict[str, Any]:
        with self.lock:
            for user in self.users.values():
                if str(user["id"]) == user_id:
                    return {"data": self.render_user(user)}
            raise SimError(404, "Not Found", detail=f"Couldn't find User with 'id'={user_id}")

    # ------------------------------------------------------------ what a Primero user does

    def decide_service(
        self, case_record_id: str, service_unique_id: str, status: str, rejection_reason: str | None
    ) -> dict[str, Any]:
        """The focal point accepts or rejects a proGres referral on its service row."""
        if status not in ("accepted", "rejected"):
            raise SimError(422, "Invalid Record JSON", detail=["/status"])
        with self.lock:
            case = self._case(case_record_id, "cases")
            row = self._service_row(case, service_unique_id)
            if row is None:
                raise SimError(404, "Not Found", detail="services_section")
            row["unhcr_referral_status"] = status
            if status == "rejected":
                row["unhcr_referral_rejection_reason"] = rejection_reason
            self.touch(case)
            return {
                "case_record_id": case["id"],
                "service_unique_id": service_unique_id,
                "last_updated_at": case["last_updated_at"],
            }

    def refer_to_unhcr(
        self,
        case_record_id: str,
        transitioned_to: str,
        service: Mapping[str, Any],
        by_user: str | None = None,
    ) -> dict[str, Any]:
        """A caseworker adds a service row and refers it to the UNHCR caseworker."""
        with self.lock:
            case = self._case(case_record_id, "cases")
            row = copy.deepcopy(dict(service))
            row.setdefault("unique_id", new_uuid())
            row.setdefault("service_implementing_agency", "UNHCR")
            row.setdefault("service_response_day_time", self.clock.after(None))
            case["services_section"] = [*(case.get("services_section") or []), row]
            referral = self._new_referral(
                case,
                {
                    "transitioned_to": transitioned_to,
                    "transitioned_to_agency": row["service_implementing_agency"],
                    "service": row.get("service_type"),
                    "service_record_id": row["unique_id"],
                    "notes": row.get("service_referral_notes"),
                },
                by_user or str(case.get("owned_by") or "primero"),
            )
            return {
                "case_record_id": case["id"],
                "service_unique_id": row["unique_id"],
                "referral_id": referral["id"],
                "last_updated_at": case["last_updated_at"],
            }


def _positive_int(raw: Any, default: int) -> int:
    if isinstance(raw, str) and raw.isdigit() and int(raw) > 0:
        return int(raw)
    return default
