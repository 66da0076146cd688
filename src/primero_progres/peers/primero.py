"""Async client for the Primero v2 API calls the bridge makes (PRIMERO-API.md).

Basic auth by default, because it works on every v2.x and keeps no session;
``auth="token"`` logs in with ``POST /api/v2/tokens`` (JWT era, v2.0-v2.10) and
logs in again once when a request answers 401. The client does not retry
anything else: durable retries belong to the outbox, which branches on the
typed errors raised here.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Literal
from urllib.parse import quote

import httpx2 as httpx

from ..logging import get_logger
from .errors import tls_failure
from .primero_errors import (
    PEER,
    AuthenticationError,
    ConflictError,
    FilterIgnoredError,
    ForbiddenError,
    InvalidRecordError,
    NotFoundError,
    PrimeroPermanentError,
    PrimeroTransientError,
    ReferralNotUpdatedError,
    TokenNotIssuedError,
    UnexpectedResponseError,
    error_for_status,
)

__all__ = [
    "MAX_PER",
    "AuthenticationError",
    "CasePage",
    "CasePosition",
    "CaseWindow",
    "ConflictError",
    "FilterIgnoredError",
    "ForbiddenError",
    "InvalidRecordError",
    "NotFoundError",
    "PrimeroClient",
    "PrimeroPermanentError",
    "PrimeroTransientError",
    "ReferralNotUpdatedError",
    "TokenNotIssuedError",
    "UnexpectedResponseError",
    "WebhookRegistration",
    "format_watermark",
    "tls_failure",
]

#: Primero caps ``per`` at 1000 from v2.11
MAX_PER = 1000
#: how many primary keys go into one ``id=a,b,...`` query
ID_BATCH = 100

log = get_logger(__name__)


def _utc(moment: datetime) -> datetime:
    """A naive datetime is taken as UTC (SQLite hands back naive values)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def format_watermark(moment: datetime) -> str:
    """``YYYY-MM-DDTHH:MM:SSZ``: Primero compares at one-second granularity, so floor to it."""
    return _utc(moment).strftime("%Y-%m-%dT%H:%M:%SZ")


def _second(stamp: Any) -> str | None:
    """A record timestamp floored to the second, in the watermark format."""
    if not isinstance(stamp, str):
        return None
    try:
        return format_watermark(datetime.fromisoformat(stamp.replace("Z", "+00:00")))
    except ValueError:
        return None


def _matches(value: Any, wanted: str | Sequence[str]) -> bool:
    """Whether a returned field value satisfies an exact filter (lists match on overlap)."""
    options = [wanted] if isinstance(wanted, str) else list(wanted)
    values = value if isinstance(value, list) else [value]
    for candidate in values:
        if isinstance(candidate, bool):
            text = "true" if candidate else "false"
        elif candidate is None:
            continue
        else:
            text = str(candidate)
        if text in options:
            return True
    return False


@dataclass(frozen=True, slots=True)
class CasePosition:
    """Where a walk through ``GET /cases`` (oldest update first) stands, between two calls.

    ``since`` is the second the walk has reached (``last_updated_at=<since>..``), ``seen`` the
    ids already returned at that second, ``page`` the page to ask within it. It is plain data
    (``as_json``/``from_json``), so a poll can commit it and resume from it in another job.
    """

    since: str | None = None
    seen: tuple[str, ...] = ()
    page: int = 1

    @classmethod
    def start(cls, updated_since: datetime | None) -> CasePosition:
        return cls(format_watermark(updated_since) if updated_since is not None else None)

    def as_json(self) -> dict[str, Any]:
        return {"since": self.since, "seen": list(self.seen), "page": self.page}

    @classmethod
    def from_json(cls, value: Any) -> CasePosition:
        if not isinstance(value, Mapping):
            raise ValueError("a case position is an object")
        since, seen, page = value.get("since"), value.get("seen") or [], value.get("page", 1)
        if since is not None and not isinstance(since, str):
            raise ValueError("since is a watermark string")
        if not isinstance(seen, list) or not all(isinstance(i, str) for i in seen):
            raise ValueError("seen is a list of ids")
        if not isinstance(page, int) or isinstance(page, bool) or page < 1:
            raise ValueError("page is a positive integer")
        return cls(since, tuple(seen), page)


@dataclass(frozen=True, slots=True)
class CaseWindow:
    """The cases one ``GET /cases`` added to a walk, and where the next call starts (None: the
    walk is over)."""

    cases: list[dict[str, Any]]
    next: CasePosition | None


@dataclass(frozen=True, slots=True)
class CasePage:
    """One page of ``GET /cases`` as Primero answered it, filters unchecked."""

    total: int
    per: int
    page: int
    cases: list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class WebhookRegistration:
    """A webhook of Primero's as ``register_webhook`` found or created it."""

    webhook: dict[str, Any]
    created: bool


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _ssl_context(verify: bool | str | ssl.SSLContext) -> bool | ssl.SSLContext:
    """A CA bundle path (file or directory) becomes a context: httpx2 deprecates a str."""
    if not isinstance(verify, str):
        return verify
    if Path(verify).is_dir():
        return ssl.create_default_context(capath=verify)
    return ssl.create_default_context(cafile=verify)


class PrimeroClient:
    """One Primero instance, one API user."""

    def __init__(
        self,
        base_url: str,
        *,
        username: str,
        password: str,
        auth: Literal["basic", "token"] = "basic",
        timeout: float = 30.0,
        page_size: int = MAX_PER,
        verify: bool | str | ssl.SSLContext = True,
    ) -> None:
        if auth not in ("basic", "token"):
            raise ValueError("auth must be 'basic' or 'token'")
        if page_size < 1:
            raise ValueError("page_size must be positive")
        self._username = username
        self._password = password
        self._auth_mode = auth
        self._token: str | None = None
        #: the API user's ``id``, when a token login told it
        self._user_id: int | None = None
        self._login_lock = asyncio.Lock()
        self.page_size = min(page_size, MAX_PER)
        self._api = base_url.rstrip("/") + "/api/v2"
        #: path -> absolute URL: httpx parses a relative one against the base twice per request
        self._url = functools.lru_cache(maxsize=32)(self._absolute)
        self._http = httpx.AsyncClient(
            base_url=self._api,
            timeout=timeout,
            verify=_ssl_context(verify),
            auth=httpx.BasicAuth(username, password) if auth == "basic" else None,
            headers={"Accept": "application/json"},
        )

    def _absolute(self, path: str) -> httpx.URL:
        return httpx.URL(self._api + path)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> PrimeroClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # ------------------------------------------------------------ transport

    async def _send(
        self,
        operation: str,
        method: str,
        path: str,
        *,
        params: Sequence[tuple[str, str]] | None = None,
        json: Any = None,
        authorization: str | None = None,
    ) -> httpx.Response:
        headers = {"Authorization": authorization} if authorization else None
        started = time.monotonic()
        try:
            response = await self._http.request(
                method,
                self._url(path),
                params=tuple(params) if params is not None else None,
                json=json,
                headers=headers,
            )
        except httpx.TimeoutException as exc:
            log.warning("primero_timeout", operation=operation, method=method)
            raise PrimeroTransientError(PEER, operation, "timeout", reason="timeout") from exc
        except httpx.HTTPError as exc:
            log.warning("primero_unreachable", operation=operation, method=method)
            raise PrimeroTransientError(
                PEER, operation, f"connection failed ({type(exc).__name__})", reason="connection"
            ) from exc
        log.debug(
            "primero_response",
            operation=operation,
            method=method,
            status_code=response.status_code,
            duration_ms=round((time.monotonic() - started) * 1000, 1),
        )
        return response

    async def _login(self) -> str:
        """``POST /api/v2/tokens``; the JWT comes back in the body (v2.0-v2.10)."""
        body = {"user": {"user_name": self._username, "password": self._password}}
        response = await self._send("login", "POST", "/tokens", json=body)
        payload = self._payload("login", response)
        token = payload.get("token") if isinstance(payload, dict) else None
        if not isinstance(token, str) or not token:
            raise TokenNotIssuedError(
                PEER, "login", "no token in the login answer", reason="token_not_issued"
            )
        log.info("primero_login", operation="login", status_code=response.status_code)
        self._token = token
        self._user_id = _int(payload.get("id"))
        return token

    async def _current_token(self, *, stale: str | None) -> tuple[str, bool]:
        """The token to use and whether it was just issued; one login at a time.

        Concurrent calls share one login: Primero throttles logins (6 a minute per user)
        and, from v2.12, a login ends the user's other sessions.
        """
        async with self._login_lock:
            if self._token is not None and self._token != stale:
                return self._token, False
            self._token = None
            return await self._login(), True

    async def _request(
        self,
        operation: str,
        method: str,
        path: str,
        *,
        params: Sequence[tuple[str, str]] | None = None,
        json: Any = None,
    ) -> Any:
        """One API call; the parsed JSON body, or None for 204."""
        if self._auth_mode == "basic":
            return self._payload(
                operation, await self._send(operation, method, path, params=params, json=json)
            )
        token, fresh_login = await self._current_token(stale=None)
        response = await self._send(
            operation, method, path, params=params, json=json, authorization=f"Bearer {token}"
        )
        if response.status_code == 401 and not fresh_login:
            log.info("primero_token_rejected", operation=operation, status_code=401)
            token, _ = await self._current_token(stale=token)
            response = await self._send(
                operation, method, path, params=params, json=json, authorization=f"Bearer {token}"
            )
        return self._payload(operation, response)

    def _payload(self, operation: str, response: httpx.Response) -> Any:
        try:
            body = response.json() if response.content else None
        except ValueError:
            body = None
            if response.is_success:
                raise UnexpectedResponseError(
                    PEER,
                    operation,
                    f"HTTP {response.status_code} with a non-JSON body",
                    status_code=response.status_code,
                    reason="bad_response",
                ) from None
        if response.is_success:
            return body
        error = error_for_status(
            operation, response.status_code, body, response.headers.get("Retry-After")
        )
        log.warning(
            "primero_error",
            operation=operation,
            status_code=response.status_code,
            reason=error.reason,
        )
        raise error

    def _data(self, operation: str, body: Any, kind: type) -> Any:
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, kind):
            raise UnexpectedResponseError(
                PEER, operation, "answer without the expected data member", reason="bad_response"
            )
        return data

    # ------------------------------------------------------------ cases

    def iter_cases(
        self,
        *,
        filters: Mapping[str, str | Sequence[str]] | None = None,
        updated_since: datetime | None = None,
        ids: Sequence[str] | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        """Every case matching ``filters``, oldest update first, one page in memory at a time.

        Paging walks ``last_updated_at`` forward (``last_updated_at=<second>..``,
        ``order_by=last_updated_at&order=asc``) instead of only counting pages, so a
        case updated while we page (it moves to the end) cannot push an unread
        case into a page already read. Cases repeated across the one-second
        overlap are skipped by ``id``.
        """
        filters = dict(filters or {})
        if "last_updated_at" in filters:
            raise ValueError("use updated_since, not a last_updated_at filter")
        if ids is not None:
            return self._iter_id_batches(filters, updated_since, list(ids))
        return self._iter_window(filters, updated_since, None)

    async def _iter_id_batches(
        self,
        filters: dict[str, str | Sequence[str]],
        updated_since: datetime | None,
        ids: list[str],
    ) -> AsyncIterator[dict[str, Any]]:
        for start in range(0, len(ids), ID_BATCH):
            batch = ids[start : start + ID_BATCH]
            async for case in self._iter_window(filters, updated_since, batch):
                yield case

    async def _iter_window(
        self,
        filters: Mapping[str, str | Sequence[str]],
        updated_since: datetime | None,
        ids: list[str] | None,
    ) -> AsyncIterator[dict[str, Any]]:
        position: CasePosition | None = CasePosition.start(updated_since)
        while position is not None:
            window = await self._window(filters, ids, position)
            for case in window.cases:
                yield case
            position = window.next

    async def case_window(
        self,
        position: CasePosition,
        *,
        filters: Mapping[str, str | Sequence[str]] | None = None,
        ids: Sequence[str] | None = None,
    ) -> CaseWindow:
        """One ``GET /cases`` of the walk ``iter_cases`` makes, from ``position``: the cases it
        adds and where the next call starts. A poll commits each window on its own."""
        filters = dict(filters or {})
        if "last_updated_at" in filters:
            raise ValueError("use the position, not a last_updated_at filter")
        if ids is not None and len(ids) > ID_BATCH:
            raise ValueError(f"at most {ID_BATCH} ids in one window")
        return await self._window(filters, list(ids) if ids is not None else None, position)

    async def _window(
        self,
        filters: Mapping[str, str | Sequence[str]],
        ids: list[str] | None,
        position: CasePosition,
    ) -> CaseWindow:
        base: list[tuple[str, str]] = []
        for name, value in filters.items():
            if isinstance(value, str):
                base.append((name, value))
            else:
                base.extend((f"{name}[{index}]", item) for index, item in enumerate(value))
        if ids is not None:
            base.append(("id", ",".join(ids)))
        wanted_ids = set(ids) if ids is not None else None
        cursor = position.since
        seen_at_cursor = set(position.seen)
        params = [
            *base,
            ("order_by", "last_updated_at"),
            ("order", "asc"),
            ("per", str(self.page_size)),
            ("page", str(position.page)),
        ]
        if cursor is not None:
            params.append(("last_updated_at", f"{cursor}.."))
        body = await self._request("list_cases", "GET", "/cases", params=params)
        cases = self._data("list_cases", body, list)
        log.debug(
            "primero_cases_page", operation="list_cases", page=position.page, count=len(cases)
        )
        moved = False
        added: list[dict[str, Any]] = []
        for case in cases:
            self._check_case(case, filters, wanted_ids, cursor)
            second = _second(case.get("last_updated_at"))
            if second is not None and second == cursor and case["id"] in seen_at_cursor:
                continue
            if second is not None and second != cursor:
                cursor, seen_at_cursor, moved = second, set(), True
            seen_at_cursor.add(case["id"])
            added.append(case)
        per = body.get("metadata", {}).get("per", self.page_size) if isinstance(body, dict) else 0
        if not cases or len(cases) < min(self.page_size, per or self.page_size):
            return CaseWindow(added, None)
        page = 1 if moved else position.page + 1
        return CaseWindow(added, CasePosition(cursor, tuple(sorted(seen_at_cursor)), page))

    @staticmethod
    def _check_case(
        case: Any,
        filters: Mapping[str, str | Sequence[str]],
        wanted_ids: set[str] | None,
        cursor: str | None,
    ) -> None:
        """Primero drops filters it will not apply; a record that does not match proves it."""
        if not isinstance(case, dict) or not isinstance(case.get("id"), str):
            raise UnexpectedResponseError(
                PEER, "list_cases", "case without an id", reason="bad_response"
            )
        for name, wanted in filters.items():
            if not _matches(case.get(name), wanted):
                raise FilterIgnoredError(
                    PEER,
                    "list_cases",
                    f"filter on {name} was not applied",
                    reason="filter_ignored",
                    details=(f"field={name}",),
                )
        if wanted_ids is not None and case["id"] not in wanted_ids:
            raise FilterIgnoredError(
                PEER,
                "list_cases",
                "filter on id was not applied",
                reason="filter_ignored",
                details=("field=id",),
            )
        second = _second(case.get("last_updated_at"))
        if cursor is not None and (second is None or second < cursor):
            raise FilterIgnoredError(
                PEER,
                "list_cases",
                "filter on last_updated_at was not applied",
                reason="filter_ignored",
                details=("field=last_updated_at",),
            )

    async def search_cases(self, params: Sequence[tuple[str, str]]) -> CasePage:
        """One page of ``GET /cases`` with exactly these query parameters, nothing checked.

        For probes that must see what Primero does with a filter (``doctor``); flows use
        ``iter_cases``/``find_cases``, which refuse records a filter should have excluded.
        """
        body = await self._request("search_cases", "GET", "/cases", params=list(params))
        cases = self._data("search_cases", body, list)
        metadata = body.get("metadata") if isinstance(body, dict) else None
        metadata = metadata if isinstance(metadata, dict) else {}
        total, per, page = (_int(metadata.get(k)) for k in ("total", "per", "page"))
        if total is None or per is None:
            raise UnexpectedResponseError(
                PEER, "search_cases", "answer without total and per", reason="bad_response"
            )
        return CasePage(total=total, per=per, page=page or 1, cases=cases)

    async def find_cases(self, field: str, value: str) -> list[dict[str, Any]]:
        """Cases whose id field (``unhcr_individual_no``, ``case_id``...) is exactly ``value``."""
        return [case async for case in self.iter_cases(filters={field: value})]

    async def get_case(self, record_id: str) -> dict[str, Any]:
        """``GET /cases/:id``; ``record_id`` is the primary key ``id``, not ``case_id``."""
        body = await self._request("get_case", "GET", f"/cases/{quote(record_id, safe='')}")
        return self._data("get_case", body, dict)

    async def create_case(self, data: dict[str, Any]) -> dict[str, Any]:
        """``POST /cases``; Primero's ``data`` (fetched again if it answers 204 to a client id)."""
        body = await self._request("create_case", "POST", "/cases", json={"data": data})
        if body is None and isinstance(data.get("id"), str):
            return await self.get_case(data["id"])
        case = self._data("create_case", body, dict)
        log.info("primero_case_created", operation="create_case", record_id=case.get("id"))
        return case

    async def patch_case(self, record_id: str, data: dict[str, Any]) -> dict[str, Any]:
        """``PATCH /cases/:id`` (merge); Primero answers the changed fields plus ``id``."""
        path = f"/cases/{quote(record_id, safe='')}"
        body = await self._request("patch_case", "PATCH", path, json={"data": data})
        return self._data("patch_case", body, dict)

    async def mark_synced(
        self, record_id: str, *, url: str, status: Literal["synced", "failed"] = "synced"
    ) -> dict[str, Any]:
        """Record the case's sync status in Primero's audit log (``Webhookable``).

        ``PATCH /cases/:id`` with ``mark_synced``, ``mark_synced_url`` (the destination: the
        status shows only with one) and ``mark_synced_status``. Primero stores none of them
        on the case, and without the role's ``sync_external`` permission drops them without
        a word (200): check the permission beforehand (``own_user()``). The PATCH is a case
        update, so it fires the ``case.update`` webhooks too.
        """
        data = {"mark_synced": True, "mark_synced_url": url, "mark_synced_status": status}
        path = f"/cases/{quote(record_id, safe='')}"
        body = await self._request("mark_synced", "PATCH", path, json={"data": data})
        case: dict[str, Any] = self._data("mark_synced", body, dict)
        log.info(
            "primero_marked_synced", operation="mark_synced", record_id=record_id, status=status
        )
        return case

    # ------------------------------------------------------------ webhooks (admin API)

    async def list_webhooks(self) -> list[dict[str, Any]]:
        """``GET /webhooks``: ``{id, events, url, role_unique_id, metadata}`` each, unpaged."""
        body = await self._request("list_webhooks", "GET", "/webhooks")
        return [w for w in self._data("list_webhooks", body, list) if isinstance(w, dict)]

    async def create_webhook(
        self,
        *,
        url: str,
        role_unique_id: str,
        event: str = "case.update",
        metadata: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """``POST /webhooks``: one event per webhook, because Primero's API keeps ``events``
        only as a single string (an array is dropped and the webhook refused, 422).

        ``url`` is unique in Primero (``ConflictError`` when taken); the webhook's role
        decides which case fields each POST carries.
        """
        data: dict[str, Any] = {"events": event, "url": url, "role_unique_id": role_unique_id}
        if metadata is not None:
            data["metadata"] = metadata
        body = await self._request("create_webhook", "POST", "/webhooks", json={"data": data})
        webhook: dict[str, Any] = self._data("create_webhook", body, dict)
        log.info(
            "primero_webhook_created", operation="create_webhook", webhook_id=webhook.get("id")
        )
        return webhook

    async def delete_webhook(self, webhook_id: str) -> None:
        path = f"/webhooks/{quote(webhook_id, safe='')}"
        await self._request("delete_webhook", "DELETE", path)
        log.info("primero_webhook_deleted", operation="delete_webhook", webhook_id=webhook_id)

    async def register_webhook(
        self, *, url: str, role_unique_id: str, event: str = "case.update"
    ) -> WebhookRegistration:
        """The webhook for ``url``: the existing one, else a new one (idempotent).

        An existing webhook is returned as it is, even with other events or role: Primero
        allows one per URL, and changing it is an administrator's decision. A registration
        that races another (409) returns the winner.
        """
        existing = await self._webhook_for(url)
        if existing is not None:
            return WebhookRegistration(existing, created=False)
        try:
            created = await self.create_webhook(url=url, role_unique_id=role_unique_id, event=event)
        except ConflictError:
            raced = await self._webhook_for(url)
            if raced is None:
                raise
            return WebhookRegistration(raced, created=False)
        return WebhookRegistration(created, created=True)

    async def _webhook_for(self, url: str) -> dict[str, Any] | None:
        return next((w for w in await self.list_webhooks() if w.get("url") == url), None)

    # ------------------------------------------------------------ referrals

    async def list_referrals(self, record_id: str) -> list[dict[str, Any]]:
        path = f"/cases/{quote(record_id, safe='')}/referrals"
        body = await self._request("list_referrals", "GET", path)
        return self._data("list_referrals", body, list)

    async def update_referral(
        self,
        record_id: str,
        referral_id: str,
        *,
        status: str,
        rejected_reason: str | None = None,
        rejection_note: str | None = None,
    ) -> dict[str, Any]:
        """Accept, reject or close a referral; Primero answers 200 even when it changed nothing."""
        data: dict[str, Any] = {"status": status}
        if rejected_reason is not None:
            data["rejected_reason"] = rejected_reason
        if rejection_note is not None:
            data["rejection_note"] = rejection_note
        path = f"/cases/{quote(record_id, safe='')}/referrals/{quote(referral_id, safe='')}"
        body = await self._request("update_referral", "PATCH", path, json={"data": data})
        referral = self._data("update_referral", body, dict)
        if referral.get("status") != status:
            current = referral.get("status")
            current_text = current if isinstance(current, str) and current.isidentifier() else "?"
            raise ReferralNotUpdatedError(
                PEER,
                "update_referral",
                f"referral {referral_id} is {current_text}, not {status}",
                status_code=200,
                reason="referral_not_updated",
                details=(f"status={current_text}",),
            )
        log.info(
            "primero_referral_updated",
            operation="update_referral",
            referral_id=referral_id,
            record_id=record_id,
            status=status,
        )
        return referral

    # ------------------------------------------------------------ metadata

    async def list_lookups(self) -> list[dict[str, Any]]:
        """Every lookup (``{id, unique_id, name, values: [{id, display_text}]}``), all pages."""
        lookups: list[dict[str, Any]] = []
        page = 1
        while True:
            params = [("per", str(self.page_size)), ("page", str(page))]
            body = await self._request("list_lookups", "GET", "/lookups", params=params)
            batch = self._data("list_lookups", body, list)
            lookups.extend(item for item in batch if isinstance(item, dict))
            metadata = body.get("metadata") if isinstance(body, dict) else None
            total = _int(metadata.get("total")) if isinstance(metadata, dict) else None
            if not batch or total is None or len(lookups) >= total:
                return lookups
            page += 1

    async def list_modules(self) -> list[dict[str, Any]]:
        """``GET /primero_modules``: each module with its ``module_options``
        (``use_webhooks_for``); Primero asks for the metadata permission."""
        body = await self._request("list_modules", "GET", "/primero_modules")
        return [m for m in self._data("list_modules", body, list) if isinstance(m, dict)]

    async def list_forms(
        self, *, record_type: str = "case", module_id: str | None = None
    ) -> list[dict[str, Any]]:
        """The forms of a record type (and module): fields with type and option source."""
        params = [("record_type", record_type)]
        if module_id is not None:
            params.append(("module_id", module_id))
        body = await self._request("list_forms", "GET", "/forms", params=params)
        return [form for form in self._data("list_forms", body, list) if isinstance(form, dict)]

    # ------------------------------------------------------------ users

    async def get_user_by_id(self, user_id: int, *, extended: bool = False) -> dict[str, Any]:
        """``GET /users/:id``; ``extended`` adds the role: permissions, permitted forms.

        Every user may read their own record; others need the users permission.
        """
        params = [("extended", "true")] if extended else None
        body = await self._request("get_user", "GET", f"/users/{user_id}", params=params)
        user: dict[str, Any] = self._data("get_user", body, dict)
        return user

    async def own_user(self) -> dict[str, Any]:
        """The API user's own record, extended with its role (scope, permissions, forms).

        Its id comes from the token login, or else from ``GET /users?user_name=`` (which
        needs the users permission: ``ForbiddenError`` without it).
        """
        user_id = self._user_id
        if user_id is None and self._auth_mode == "token":
            await self._current_token(stale=None)
            user_id = self._user_id
        if user_id is None:
            found = await self.get_user(self._username)
            user_id = _int(found.get("id")) if found else None
        if user_id is None:
            raise NotFoundError(
                PEER, "own_user", "the API user is not among Primero's users", reason="not_found"
            )
        return await self.get_user_by_id(user_id, extended=True)

    async def get_user(self, user_name: str) -> dict[str, Any] | None:
        """The user with exactly this ``user_name``, or None."""
        body = await self._request(
            "get_user", "GET", "/users", params=[("user_name", user_name), ("per", "2")]
        )
        users = self._data("get_user", body, list)
        if any(not isinstance(u, dict) or u.get("user_name") != user_name for u in users):
            raise FilterIgnoredError(
                PEER,
                "get_user",
                "filter on user_name was not applied",
                reason="filter_ignored",
                details=("field=user_name",),
            )
        return users[0] if users else None
