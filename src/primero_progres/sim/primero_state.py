"""In-memory state of the Primero simulator: cases, referrals, users, and what calls do to them.

Reachable as ``app.state.primero`` so an in-process test can look inside.
All methods take one lock: tests poke the state from another thread than uvicorn's.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import date, datetime
from typing import Any, Literal

from .primero_config import PrimeroSimConfig
from .primero_forms import MODULE_IDS, FieldAccess, role_permissions
from .primero_index import CaseTable, ReferralTable, after_second_bound, second_bound
from .primero_records import (
    CREATE_COMPUTED,
    ID_FIELDS,
    INDEX_CONTROL_PARAMS,
    UPDATE_FORBIDDEN,
    UUID_RE,
    Clock,
    Range,
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
from .primero_scope import case_in_scope, referrals_for_user

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
#: the unique_id of the role the simulated API users have
API_ROLE_UNIQUE_ID = "role-primero-progres-api"
#: ``AuditLog`` webhook statuses (``app/models/audit_log.rb``)
SENDING, SENT, FAILED, SYNCED = "sending", "sent", "failed", "synced"
SaveAction = Literal["create", "update"]


class _FilterView(Mapping[str, Any]):
    """A case as an index filter reads it (``render_case`` without the copy): its keys, and
    ``enabled`` from ``record_state``."""

    def __init__(self, case: Mapping[str, Any]) -> None:
        self._case = case

    def __getitem__(self, key: str) -> Any:
        if key == "enabled":
            return self._case.get("record_state", True)
        return self._case[key]

    def get(self, key: str, default: Any = None) -> Any:
        if key == "enabled":
            return self._case.get("record_state", True)
        return self._case.get(key, default)

    def __iter__(self) -> Iterator[str]:
        return iter(self._case)

    def __len__(self) -> int:
        return len(self._case)


class SimError(Exception):
    """An answer in Primero's error envelope."""

    def __init__(
        self,
        status: int,
        message: Any,
        *,
        detail: Any = None,
        more: Iterable[tuple[Any, Any]] = (),
    ) -> None:
        super().__init__(status)
        self.status = status
        self.message = message
        self.detail = detail
        #: further ``(message, detail)`` items of the envelope (one per invalid attribute)
        self.more = list(more)


def _now_date() -> str:
    return date.today().isoformat()


def _forbidden() -> SimError:
    """``CanCan::AccessDenied``: 403 ``Forbidden``, no detail."""
    return SimError(403, "Forbidden")


class PrimeroState:
    """Everything the simulated Primero holds."""

    def __init__(
        self, *, config: PrimeroSimConfig | None = None, max_per: int | None = 1000
    ) -> None:
        self.lock = threading.RLock()
        self.clock = Clock()
        self.cases = CaseTable()
        self.referrals = ReferralTable()
        self.users: dict[str, dict[str, Any]] = {}
        self.journal: list[dict[str, Any]] = []
        self._initial_config = config or PrimeroSimConfig()
        self.access = FieldAccess(self._initial_config)
        #: users who authenticate with the API role (the others are ordinary Primero users)
        self.api_users: set[str] = set()
        #: the ``per`` cap (1000 from v2.11); None reproduces v2.10 and earlier
        self.max_per = max_per
        self._next_user_id = 1
        #: registered webhooks by id (``sim/primero_webhooks.py``)
        self.webhooks: dict[str, dict[str, Any]] = {}
        #: the ``webhook`` audit log of each case: ``mark_synced`` PATCHes and webhook sends
        self.audit: dict[str, list[dict[str, Any]]] = {}
        #: every webhook POST attempted (never its body), for tests
        self.deliveries: list[dict[str, Any]] = []
        #: bumped by ``reset``: a delivery begun before it records nothing after it
        self.generation = 0
        #: called, under the lock, after every save of a case (``after_create``/``after_update``)
        self.on_case_saved: Callable[[str, SaveAction], None] | None = None

    # ------------------------------------------------------------ housekeeping

    @property
    def config(self) -> PrimeroSimConfig:
        return self.access.config

    def configure(self, config: PrimeroSimConfig) -> PrimeroSimConfig:
        """Another instance configuration from now on (kept until ``reset``)."""
        with self.lock:
            self.access = FieldAccess(config)
            return config

    def reset(self) -> None:
        with self.lock:
            self.cases.clear()
            self.referrals.clear()
            self.users.clear()
            self.journal.clear()
            self.webhooks.clear()
            self.audit.clear()
            self.deliveries.clear()
            self.generation += 1
            self.access = FieldAccess(self._initial_config)
            self._next_user_id = 1
            for user_name in sorted(self.api_users):
                self.add_api_user(user_name)

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

    def add_api_user(self, user_name: str) -> dict[str, Any]:
        """A user of the API role (the bridge's account)."""
        with self.lock:
            self.api_users.add(user_name)
            return self.add_user(
                {"user_name": user_name, "full_name": user_name, "position": "API user"}
            )

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
        self,
        case: Mapping[str, Any],
        fields: Iterable[str] | None = None,
        *,
        readable_only: bool = False,
    ) -> dict[str, Any]:
        """``_record.json.jbuilder``: ``id``, ``enabled``, ``last_updated_at`` and the data keys.

        ``readable_only``: only the keys the API role may read (``RecordDataService``).
        """
        body = copy.deepcopy(dict(case))
        if readable_only:
            body = self.access.readable_part(body)
        if fields is not None:
            wanted = set(fields)
            body = {k: v for k, v in body.items() if k in wanted}
        body["id"] = case["id"]
        body["enabled"] = case.get("record_state", True)
        body["last_updated_at"] = case.get("last_updated_at")
        return body

    def _in_scope(self, case: Mapping[str, Any], user_name: str | None) -> bool:
        if user_name is None:
            return True
        return case_in_scope(case, user_name, self.config.scope, self.users)

    def _case(self, record_id: str, user_name: str | None) -> dict[str, Any]:
        """The case, or 404; a case outside the API role's scope is 403 (``authorize! :read``)."""
        case = self.cases.get(record_id)
        if case is None:
            raise SimError(404, "Not Found", detail=f"Couldn't find Child with 'id'={record_id}")
        if not self._in_scope(case, user_name):
            raise _forbidden()
        return case

    def _page_and_per(self, params: Mapping[str, str | list[str]]) -> tuple[int, int]:
        """The page and page size a listing asked for, the size capped like Primero's."""
        page = _positive_int(params.get("page"), 1)
        per = _positive_int(params.get("per"), DEFAULT_PER)
        if self.max_per is not None:
            per = min(per, self.max_per)
        return page, per

    def list_cases(
        self, params: Mapping[str, str | list[str]], user_name: str | None = None
    ) -> dict[str, Any]:
        """``GET /api/v2/cases``: the role's scope, permitted filters, paging and order.

        Filters on fields the role cannot read (unknown, misspelled) vanish without a word.
        Only the page returned is copied; the bridge's walk (ascending ``last_updated_at``)
        reads the indexes of ``CaseTable`` instead of every case.
        """
        with self.lock:
            page, per = self._page_and_per(params)
            ids = params.get("id")
            wanted_ids = set(ids.split(",")) if isinstance(ids, str) and ids else None
            filters = []
            for name, raw in params.items():
                if name in INDEX_CONTROL_PARAMS or not self.access.can_filter(name):
                    continue  # strong params drop what the role may not read, without a word
                wanted = destringify(name, raw)
                if wanted is not None:
                    filters.append((name, wanted))
            order_by_param = params.get("order_by")
            order_by = order_by_param if isinstance(order_by_param, str) else None
            order = params.get("order")
            if order_by == "last_updated_at" and order == "asc" and not self.cases.irregular:
                total, window = self._walk_window(
                    filters, wanted_ids, user_name, (page - 1) * per, per
                )
            else:
                records = [
                    case
                    for case in self.cases.values()
                    if self._in_scope(case, user_name)
                    and (wanted_ids is None or case["id"] in wanted_ids)
                    and all(matches(_FilterView(case), n, w) for n, w in filters)
                ]
                descending = order != "asc" if order_by else True
                records.sort(key=sort_key(order_by or "created_at"), reverse=descending)
                total, window = len(records), records[(page - 1) * per : page * per]
            fields_param = params.get("fields")
            fields = (
                fields_param.split(",") if isinstance(fields_param, str) and fields_param else None
            )
            return {
                "data": [self.render_case(case, fields, readable_only=True) for case in window],
                "metadata": {"total": total, "per": per, "page": page},
            }

    def _walk_window(
        self,
        filters: list[tuple[str, Any]],
        wanted_ids: set[str] | None,
        user_name: str | None,
        skip: int,
        per: int,
    ) -> tuple[int, list[dict[str, Any]]]:
        """The matching cases' count and the window ``[skip, skip + per)`` of them, in
        ascending ``last_updated_at``, from the indexes (every case is regular)."""
        low: str | None = None
        high: str | None = None
        sets: list[set[str]] = [] if wanted_ids is None else [wanted_ids]
        #: the one user name a filter or the scope narrows to, while it is the only narrowing
        users: list[str] = []
        rest: list[tuple[str, Any]] = []
        for name, wanted in filters:
            if (
                name == "last_updated_at"
                and isinstance(wanted, Range)
                and isinstance(wanted.start, datetime)
            ):
                bound = second_bound(wanted.start)
                low = bound if low is None else max(low, bound)
                if isinstance(wanted.end, datetime):
                    ceiling = after_second_bound(wanted.end)
                    high = ceiling if high is None else min(high, ceiling)
            elif name == "associated_user_names" and (
                isinstance(wanted, str)
                or (isinstance(wanted, list) and all(isinstance(w, str) for w in wanted))
            ):
                names = [wanted] if isinstance(wanted, str) else wanted
                users.extend(names[:1] if len(set(names)) == 1 else ["", ""])
                sets.append(self.cases.associated(names))
            elif name in ID_FIELDS and isinstance(wanted, str):
                sets.append(self.cases.holding(name, wanted))
            else:
                rest.append((name, wanted))
        scope_checked = user_name is not None and self.config.scope != "all"
        if scope_checked and self.config.scope == "self":
            users.append(user_name or "")
            sets.append(self.cases.associated([user_name] if user_name else []))
            scope_checked = False
        if len(users) == 1 and len(sets) == 1 and not rest and not scope_checked:
            total, window_ids = self.cases.window(low, high, skip, per, users[0])
            return total, [self.cases[rid] for rid in window_ids]
        if sets:
            smallest = min(sets, key=len)
            others = [s for s in sets if s is not smallest]
            chosen = [
                record_id
                for record_id in smallest
                if record_id in self.cases
                and (low is None or self.cases.key(record_id)[0] >= low)
                and (high is None or self.cases.key(record_id)[0] < high)
                and all(record_id in other for other in others)
            ]
            chosen.sort(key=self.cases.key)
            candidates: Any = chosen
        elif not rest and not scope_checked:
            total, window_ids = self.cases.window(low, high, skip, per)
            return total, [self.cases[rid] for rid in window_ids]
        else:
            candidates = self.cases.walk(low, high)
        total = 0
        window: list[dict[str, Any]] = []
        for record_id in candidates:
            case = self.cases[record_id]
            if scope_checked and not self._in_scope(case, user_name):
                continue
            if rest and not all(matches(_FilterView(case), n, w) for n, w in rest):
                continue
            if skip <= total < skip + per:
                window.append(case)
            total += 1
        return total, window

    def get_case(self, record_id: str, user_name: str | None = None) -> dict[str, Any]:
        """``GET /api/v2/cases/:id``; with ``sync_external``, the computed ``sync_status`` and
        ``synced_at`` too (``RecordDataService::COMPUTED_FIELDS``, nil ones left out)."""
        with self.lock:
            case = self._case(record_id, user_name)
            body = self.render_case(case, readable_only=True)
            if self.config.sync_external:
                status = self.sync_status(record_id)
                body.update({k: v for k, v in status.items() if v is not None})
            return {"data": body}

    def _permitted(self, data: Mapping[str, Any], module_id: Any) -> dict[str, Any]:
        """Strong params, then the JSON schema: dropped silently, or a 422 with pointers."""
        kept = self.access.writable_part(copy.deepcopy(dict(data)), module_id)
        pointers = invalid_row_ids(kept) + self.access.invalid_pointers(kept)
        if pointers:
            raise SimError(422, "Invalid Record JSON", detail=sorted(set(pointers)))
        return kept

    def _check_module(self, module_id: Any) -> None:
        if module_id is not None and module_id not in MODULE_IDS:
            raise SimError(422, "Invalid Record JSON", detail=["/module_id"])

    def create_case(self, data: Any, user_name: str) -> dict[str, Any] | None:
        """``POST /api/v2/cases``; None means 204 (the client chose the ``id``)."""
        if not isinstance(data, dict):
            raise SimError(422, "param is missing or the value is empty: data")
        with self.lock:
            module_id = data.get("module_id")
            self._check_module(module_id)
            client_id = data.get("id")
            if client_id is not None and not (
                isinstance(client_id, str) and UUID_RE.match(client_id)
            ):
                raise SimError(422, "Invalid Record JSON", detail=["/id"])
            permitted = self._permitted(data, module_id)
            case = {k: v for k, v in permitted.items() if k not in CREATE_COMPUTED}
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
            self._saved(case, "create")
            return None if client_id else {"data": self.render_case(case, readable_only=True)}

    def patch_case(
        self, record_id: str, data: Any, user_name: str | None = None
    ) -> dict[str, Any]:
        """``PATCH /api/v2/cases/:id``: merge, then answer with the changed fields only.

        Fields are permitted by the case's *current* module; a ``module_id`` in the body is
        accepted and moves the case to that module, as Primero does. ``mark_synced*``
        (with ``sync_external``) go to the case's audit log, not into the case.
        """
        if not isinstance(data, dict):
            raise SimError(422, "param is missing or the value is empty: data")
        with self.lock:
            case = self._case(record_id, user_name)
            self._check_module(data.get("module_id"))
            update = {
                k: v
                for k, v in self._permitted(data, case.get("module_id")).items()
                if k not in UPDATE_FORBIDDEN
            }
            merged = merge(case, update)
            assign_row_ids(merged)
            refresh_associated(merged)
            self._log_sync_status(merged)
            changed = [key for key in merged if merged.get(key) != case.get(key)]
            merged["last_updated_at"] = self.clock.after(case.get("last_updated_at"))
            self.cases[record_id] = merged
            self._saved(merged, "update")
            body = {
                key: copy.deepcopy(merged[key]) for key in changed if self.access.can_read(key)
            }
            body.update(
                id=record_id,
                enabled=merged.get("record_state", True),
                last_updated_at=merged["last_updated_at"],
            )
            return {"data": body}

    def touch(self, case: dict[str, Any]) -> None:
        """The case was saved by another change (a referral, a user's action)."""
        case["last_updated_at"] = self.clock.after(case.get("last_updated_at"))
        if self.cases.get(str(case["id"])) is case:
            self.cases.reindex(case)
        self._saved(case, "update")

    def _saved(self, case: Mapping[str, Any], action: SaveAction) -> None:
        if self.on_case_saved is not None:
            self.on_case_saved(str(case["id"]), action)

    # ------------------------------------------------------------ sync status (Webhookable)

    def record_audit(self, record_id: str, resource_url: Any, status: str) -> dict[str, Any]:
        """A ``webhook`` entry of the case's audit log; the caller may update its status."""
        with self.lock:
            entry = {
                "action": "webhook",
                "record_type": "case",
                "record_id": record_id,
                "resource_url": resource_url,
                "webhook_status": status,
                "timestamp": self.clock.after(None),
            }
            self.audit.setdefault(record_id, []).append(entry)
            return entry

    def _log_sync_status(self, case: dict[str, Any]) -> None:
        """``Webhookable#log_sync_status`` then ``clean_sync_attributes``, before the update.

        Logged when ``mark_synced_status`` is present or ``mark_synced`` is true (Ruby's
        ``present?``: false and blank strings are not); the status is ``mark_synced_status``,
        else ``synced`` or ``failed`` by ``mark_synced``.
        """
        status, synced = case.get("mark_synced_status"), case.get("mark_synced")
        if not (_present(status) or synced is True):
            return
        if status is None:
            status = SYNCED if synced else FAILED
        self.record_audit(case["id"], case.get("mark_synced_url"), str(status))
        for key in ("mark_synced", "mark_synced_url", "mark_synced_status"):
            case.pop(key, None)

    def sync_status(self, record_id: str) -> dict[str, Any]:
        """``Webhookable#sync_status`` and ``#synced_at``: the latest entry per destination;
        the newest of those gives the status, the newest ``synced`` one the time.

        An entry without ``resource_url`` never counts: Primero's query joins on it, and
        SQL's NULL equals nothing (a ``mark_synced`` without ``mark_synced_url`` is invisible).
        """
        with self.lock:
            latest: dict[Any, dict[str, Any]] = {}
            for entry in self.audit.get(record_id, []):
                if entry["resource_url"] is None:
                    continue
                known = latest.get(entry["resource_url"])
                if known is None or entry["timestamp"] >= known["timestamp"]:
                    latest[entry["resource_url"]] = entry
            ordered = sorted(latest.values(), key=lambda e: e["timestamp"], reverse=True)
            synced = next((e for e in ordered if e["webhook_status"] == SYNCED), None)
            return {
                "sync_status": ordered[0]["webhook_status"] if ordered else None,
                "synced_at": synced["timestamp"] if synced else None,
            }

    def audit_of(self, record_id: str) -> list[dict[str, Any]]:
        """The case's ``webhook`` audit entries, oldest first (404 for an unknown case)."""
        with self.lock:
            self._case(record_id, None)
            return [dict(entry) for entry in self.audit.get(record_id, [])]

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
        """The case's referrals this user may see (``referrals_for_user``), unpaged."""
        with self.lock:
            case = self._case(record_id, user_name)
            mine: list[Mapping[str, Any]] = list(self.referrals.of_case(record_id))
            if user_name is not None:
                mine = referrals_for_user(case, mine, user_name, self.config.scope, self.users)
            return {"data": [self.render_referral(r, user_name) for r in mine]}

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
            case = self._case(record_id, user_name)
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
            for other in self.referrals.of_case(str(case["id"]))
        )
        if user and not still_active:
            case["assigned_user_names"] = [
                n for n in case.get("assigned_user_names") or [] if n != user
            ]
            refresh_associated(case)

    def update_referral(
        self, record_id: str, referral_id: str, data: Any, user_name: str
    ) -> dict[str, Any]:
        """``Referral#process!``: legal transitions only; anything else is a silent 200 no-op.

        ``rejection_note`` is read only on ``done`` (``done!``); a rejection keeps only
        ``rejected_reason``.
        """
        if not isinstance(data, dict):
            raise SimError(422, "param is missing or the value is empty: data")
        with self.lock:
            case = self._case(record_id, user_name)
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
                self._release_user(owner, referral)
            elif current == "accepted" and wanted == "done":
                referral["status"] = "done"
                row = self._service_row(owner, referral.get("service_record_id"))
                note = data.get("rejection_note")
                if note:
                    referral["rejection_note"] = note
                if row is not None:
                    row["service_implemented"] = "implemented"
                    if not row.get("service_implemented_day_time"):
                        row["service_implemented_day_time"] = now
                    if note:
                        row["note_on_referral_from_provider"] = note
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
        """``Referral#revoke!``: from any status, even ``done`` or ``rejected``."""
        with self.lock:
            case = self._case(record_id, user_name)
            referral = self.referrals.get(referral_id)
            if referral is None:
                raise SimError(
                    404, "Not Found", detail=f"Couldn't find Transition with 'id'={referral_id}"
                )
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

    def list_users(
        self, params: Mapping[str, str | list[str]], user_name: str | None = None
    ) -> dict[str, Any]:
        """``GET /api/v2/users``; 403 unless the role may index users."""
        with self.lock:
            if user_name is not None and not self.config.users_permission:
                raise _forbidden()
            page, per = self._page_and_per(params)
            users = sorted(self.users.values(), key=lambda u: int(u["id"]))
            wanted = params.get("user_name")
            if isinstance(wanted, str):
                users = [u for u in users if u.get("user_name") == wanted]
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

    def get_user(
        self, user_id: str, user_name: str | None = None, *, extended: bool = False
    ) -> dict[str, Any]:
        """``GET /api/v2/users/:id``: one's own record always (``read_self``), others with the
        users permission; ``extended`` adds the role's permissions and forms, as the UI reads."""
        with self.lock:
            for user in self.users.values():
                if str(user["id"]) != user_id:
                    continue
                own = user_name is not None and user.get("user_name") == user_name
                if user_name is not None and not own and not self.config.users_permission:
                    raise _forbidden()
                rendered = self.render_user(user)
                if user.get("user_name") in self.api_users:
                    rendered.update(self._role_of_api_user(extended=extended))
                return {"data": rendered}
            raise SimError(404, "Not Found", detail=f"Couldn't find User with 'id'={user_id}")

    def _role_of_api_user(self, *, extended: bool) -> dict[str, Any]:
        """What ``_user.json.jbuilder`` adds from the role (and, extended, its permissions)."""
        role: dict[str, Any] = {
            "role_unique_id": API_ROLE_UNIQUE_ID,
            "role_group_permission": self.config.scope,
            "module_unique_ids": list(MODULE_IDS),
        }
        if extended:
            permitted = self.access.permitted_forms()
            role.update(
                permissions={"list": role_permissions(self.config)},
                permitted_form_unique_ids=sorted(permitted),
                permitted_form=permitted,
            )
        return role

    # ------------------------------------------------------------ metadata

    def list_lookups(self, params: Mapping[str, str | list[str]]) -> dict[str, Any]:
        """``GET /api/v2/lookups``: paged like every index (``per`` 20 by default)."""
        with self.lock:
            page, per = self._page_and_per(params)
            lookups = self.access.render_lookups()
            return {
                "data": lookups[(page - 1) * per : page * per],
                "metadata": {"total": len(lookups), "per": per, "page": page},
            }

    def list_forms(self, params: Mapping[str, str | list[str]]) -> dict[str, Any]:
        """``GET /api/v2/forms[?record_type=case&module_id=...]``: every form, unpaged."""
        module_id = params.get("module_id")
        record_type = params.get("record_type")
        with self.lock:
            forms = self.access.render_forms(
                module_id=module_id if isinstance(module_id, str) else None,
                record_type=record_type if isinstance(record_type, str) else None,
            )
        if params.get("exclude_subforms") == "true":
            forms = [form for form in forms if not form["is_nested"]]
        return {"data": forms}

    # ------------------------------------------------------------ what a Primero user does

    def decide_service(
        self, case_record_id: str, service_unique_id: str, status: str, rejection_reason: str | None
    ) -> dict[str, Any]:
        """The focal point accepts or rejects a proGres referral on its service row."""
        if status not in ("accepted", "rejected"):
            raise SimError(422, "Invalid Record JSON", detail=["/status"])
        with self.lock:
            case = self._case(case_record_id, None)
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
            case = self._case(case_record_id, None)
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


def _present(value: Any) -> bool:
    """Ruby's ``present?`` for a JSON value: not nil, false, blank string or empty."""
    if value is None or value is False:
        return False
    if isinstance(value, str):
        return bool(value.strip())
    if isinstance(value, list | dict):
        return bool(value)
    return True


def _positive_int(raw: Any, default: int) -> int:
    if isinstance(raw, str) and raw.isdigit() and int(raw) > 0:
        return int(raw)
    return default
