"""Client of UNHCR's PING middleware (PRIMES Interoperability Gateway), behind Azure API Management.

PING never calls the bridge. The bridge runs server-side queries named by
shipping-process ids and pages through their flat rows, then writes back
through the ingestion API as ``{Name, Value}`` field updates (synchronous
``/data``, or ``/asyncdata`` plus a check-status query). Every call carries a
bearer token from an Azure AD B2C password grant, cached until shortly before
it expires and renewed once when APIM answers 401, and the APIM
``Ocp-Apim-Subscription-Key``.

Failures are typed so the flows never read texts:

* transient (retry with backoff): connection errors, timeouts, 408, 429, 5xx,
  and APIM's 403 "out of quota" (it carries ``Retry-After``);
* permanent: any other 4xx, credentials B2C refuses, a subscription key APIM
  refuses, a 401 that a new token does not cure, a non-null ``ErrorMessage``,
  and an answer that is not what PING sends;
* empty, not an error: ``"No Data Available"``, ``[]`` or a null ``Data``.

PING rows and check-status answers echo personal data, so no body, row or
``ErrorMessage`` text ever reaches a log line or an exception message.
"""

from __future__ import annotations

import asyncio
import json
import re
import ssl
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, Literal

import httpx2 as httpx
from pydantic import SecretStr

from .._compat import Peer
from ..errors import InvalidInputError
from ..logging import get_logger
from .errors import (
    CredentialsRefused,
    PermanentPeerError,
    TransientPeerError,
    is_transient_status,
    parse_retry_after,
)
from .pooled import PooledClient

if TYPE_CHECKING:
    from ..settings import Settings

__all__ = [
    "IngestionReceipt",
    "PingAuthenticationError",
    "PingClient",
    "PingPage",
    "PingPermanentError",
    "PingRejectedError",
    "PingTransientError",
    "PingUnexpectedResponseError",
    "ShippingProcesses",
    "TransactionItem",
    "TransactionState",
    "TransactionStatus",
    "client_from_settings",
    "repair_check_status",
]

log = get_logger(__name__)

PEER: Peer = "ping"
SUBSCRIPTION_HEADER = "Ocp-Apim-Subscription-Key"
RETRIEVE_PATH = "/primes/fetch/paging/v3/retrievedatawithpaging"
INGEST_PATH = "/api/ingestion/v2/{partner_id}/data"
INGEST_ASYNC_PATH = "/api/ingestion/v2/{partner_id}/asyncdata"
CHECK_STATUS_PATH = "/primes/ingestion/checkstatus/v1/pingdata"
RECORD_IDS_PARAMETER = "{record_ids}"
NO_DATA = "No Data Available"
#: a page count no real query reaches: past it the gateway is paging in circles
DEFAULT_MAX_PAGES = 10_000

_SAFE_CODE = re.compile(r"\A[a-z][a-z0-9_]{0,63}\Z")
_SAFE_WORD = re.compile(r"\A[A-Za-z][A-Za-z ]{0,31}\Z")

TransactionState = Literal["queued", "processing", "succeeded", "failed", "unknown"]

# PING's check-status vocabulary is not documented (PING.md §4.4): these are the words a
# status may plausibly use, folded to lower-case letters only.
_STATES: dict[str, TransactionState] = {
    **dict.fromkeys(
        ("queued", "pending", "new", "submitted", "received", "waiting", "notstarted"), "queued"
    ),
    **dict.fromkeys(("processing", "inprogress", "running", "started"), "processing"),
    **dict.fromkeys(
        ("succeeded", "success", "successful", "completed", "complete", "processed", "done", "ok"),
        "succeeded",
    ),
    **dict.fromkeys(
        ("failed", "failure", "error", "errored", "rejected", "invalid", "cancelled", "canceled"),
        "failed",
    ),
}


class PingTransientError(TransientPeerError):
    """Worth retrying later. ``request_sent`` says whether PING may have received the request.

    It matters for ``/asyncdata``: PING does not deduplicate, so an item whose
    request may have arrived must not be posted again blindly.
    """

    def __init__(self, *args: Any, request_sent: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.request_sent = request_sent


class PingPermanentError(PermanentPeerError):
    """PING refused the request for good."""


class PingAuthenticationError(PingPermanentError, CredentialsRefused):
    """B2C refused the credentials, or APIM the subscription key or a freshly issued token."""


class PingRejectedError(PingPermanentError):
    """PING answered with a non-null ``ErrorMessage`` (its text is never kept: it may echo data)."""


class PingUnexpectedResponseError(PingPermanentError):
    """A success status whose body is not what PING sends, or paging that never ends."""


@dataclass(frozen=True, slots=True)
class ShippingProcesses:
    """The shipping-process ids of one PING deployment (settings ``PING_SHP_*``)."""

    referrals_pending: str
    referral_detail: str
    intervention_update: str
    referral_create: str
    decisions_list: str
    decision_detail: str
    referral_update: str


@dataclass(frozen=True, slots=True)
class PingPage:
    """One page of a retrieve query. ``rows`` hold personal data: never log them."""

    rows: list[dict[str, Any]] = field(repr=False)
    page_number: int
    more: bool
    paging_cookie: str | None = field(repr=False)
    transaction_id: str | None
    record_count: int | None


@dataclass(frozen=True, slots=True)
class IngestionReceipt:
    """What PING answered to an ingestion (``/data`` or ``/asyncdata``)."""

    transaction_id: str | None
    record_count: int | None


@dataclass(frozen=True, slots=True)
class TransactionItem:
    """One item of a check-status answer."""

    external_id: str | None
    state: TransactionState
    #: PING's own status word, kept only when it is a plain word (safe to log)
    status: str | None
    #: PING's message for the item; it may echo the ingested data, so never log it
    message: str | None = field(repr=False, default=None)


@dataclass(frozen=True, slots=True)
class TransactionStatus:
    """Where an ``/asyncdata`` transaction stands.

    ``state`` sums up the items: ``failed`` if any failed, ``succeeded`` if all
    did, ``processing`` while some are under way, ``queued`` before, and
    ``unknown`` when PING listed no item, used a word we do not know, or the
    answer could not be read even after repair (``unreadable``; ``raw`` then
    holds the text, which echoes personal data: never log it or store it in clear).
    """

    transaction_id: str
    state: TransactionState
    items: tuple[TransactionItem, ...]
    repaired: bool
    unreadable: bool
    raw: str | None = field(repr=False, default=None)


def _member(body: Mapping[str, Any], name: str) -> Any:
    """A member of a PING envelope, whatever the letter case of its name."""
    if name in body:
        return body[name]
    folded = name.casefold()
    for key, value in body.items():
        if isinstance(key, str) and key.casefold() == folded:
            return value
    return None


def _int_or_none(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        return int(value.strip())
    return None


def _text_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def _is_no_data(value: Any) -> bool:
    return isinstance(value, str) and value.strip().casefold() == NO_DATA.casefold()


_EMBEDDED_OBJECT = re.compile(r'"Data"\s*:\s*"\{(.*?)\}"(?=\s*[,}\]])', re.DOTALL)
_UNESCAPED_QUOTE = re.compile(r'(?<!\\)"')


def repair_check_status(text: str) -> str:
    """Escape the quotes of each ``"Data":"{...}"`` member PING embeds without escaping.

    The same repair as the reference (PING.md §4.4), also when that member is the
    last of its object. The result may still not parse; the caller decides.
    """

    def escape(match: re.Match[str]) -> str:
        inner = _UNESCAPED_QUOTE.sub(lambda _quote: '\\"', match.group(1))
        return f'"Data":"{{{inner}}}"'

    return _EMBEDDED_OBJECT.sub(escape, text)


def _loads(text: str) -> Any:
    """Parse JSON; a failure is reported without the document (it may hold personal data)."""
    try:
        return json.loads(text, strict=False)
    except ValueError:
        raise ValueError("not JSON") from None


def _parse_repairing(text: str) -> tuple[Any, bool]:
    """The parsed text and whether it needed the repair; ``ValueError`` when beyond repair."""
    try:
        return _loads(text), False
    except ValueError:
        return _loads(repair_check_status(text)), True


def _state_of(status: Any) -> tuple[TransactionState, str | None]:
    if not isinstance(status, str):
        return "unknown", None
    folded = "".join(c for c in status.casefold() if c.isalpha())
    safe = status.strip() if _SAFE_WORD.match(status.strip()) else None
    return _STATES.get(folded, "unknown"), safe


def _overall(items: Sequence[TransactionItem]) -> TransactionState:
    states = {item.state for item in items}
    if not states:
        return "unknown"
    if "failed" in states:
        return "failed"
    if states == {"succeeded"}:
        return "succeeded"
    if "unknown" in states:
        return "unknown"
    if states & {"processing", "succeeded"}:
        return "processing"
    return "queued"


class PingClient(PooledClient):
    """Async client of one PING deployment; one instance per process, closed on shutdown."""

    def __init__(
        self,
        base_url: str,
        *,
        token_url: str,
        token_path: str,
        client_id: str,
        username: str,
        password: str,
        scope: str,
        subscription_key: str,
        partner_id: str,
        interop_id: str,
        shipping_processes: ShippingProcesses,
        timeout: float = 60.0,
        token_margin: float = 120.0,
        token_geo: str | None = "EU",
        max_pages: int = DEFAULT_MAX_PAGES,
        verify: bool | ssl.SSLContext = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_pages < 1:
            raise ValueError("max_pages must be positive")
        self.base_url = base_url.rstrip("/")
        self.token_endpoint = f"{token_url.rstrip('/')}/{token_path.lstrip('/')}"
        self.partner_id = partner_id
        self.interop_id = interop_id
        self.shipping_processes = shipping_processes
        self.max_pages = max_pages
        self._token_form = {
            "grant_type": "password",
            "username": username,
            "password": password,
            "client_id": client_id,
            "scope": scope,
            "response_type": "token",
        }
        self._token_headers = {"Cookie": f"x-ms-cpim-geo={token_geo}"} if token_geo else {}
        self._subscription_key = subscription_key
        self._token_margin = token_margin
        self._clock = clock
        self._token: str | None = None
        self._token_expires: float | None = None
        self._token_lock = asyncio.Lock()
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout),
            verify=verify,
            headers={"Accept": "application/json"},
            follow_redirects=False,
            trust_env=False,
        )

    # ------------------------------------------------------------ the seven shipping processes

    def iter_pending_referrals(self) -> AsyncIterator[dict[str, Any]]:
        """Flow 1: the LP interventions queued for Primero, one row each, all pages."""
        return self.iter_rows(self.shipping_processes.referrals_pending)

    async def referral_detail(self, lp_intervention_id: str) -> list[dict[str, Any]]:
        """Flow 1: every row of one LP intervention (several when it joins languages or needs)."""
        return await self.retrieve(
            self.shipping_processes.referral_detail, record_ids=lp_intervention_id
        )

    async def update_intervention(self, item: Mapping[str, Any]) -> IngestionReceipt:
        """Flows 1 and 2: write an LP intervention's transfer status (``/data``)."""
        return await self.ingest(self.shipping_processes.intervention_update, [item])

    async def create_referral(self, item: Mapping[str, Any]) -> IngestionReceipt:
        """Flow 3: queue an interoperability referral (``/asyncdata``); the receipt has its id."""
        return await self.ingest_async(self.shipping_processes.referral_create, [item])

    async def referral_create_status(self, transaction_id: str) -> TransactionStatus:
        """Flow 3: where the ``create_referral`` transaction stands."""
        return await self.check_status(self.shipping_processes.referral_create, transaction_id)

    def iter_decisions(self) -> AsyncIterator[dict[str, Any]]:
        """Flow 4: the partner's interoperability referrals (in any status), all pages."""
        return self.iter_rows(self.shipping_processes.decisions_list)

    async def decision_detail(self, referral_id: str) -> list[dict[str, Any]]:
        """Flow 4: the decision fields of one interoperability referral."""
        return await self.retrieve(self.shipping_processes.decision_detail, record_ids=referral_id)

    async def update_referral(self, item: Mapping[str, Any]) -> IngestionReceipt:
        """Flow 4: acknowledge a decision on an interoperability referral (``/data``)."""
        return await self.ingest(self.shipping_processes.referral_update, [item])

    async def authenticate(self) -> None:
        """Obtain a new token now (checks the B2C credentials, e.g. for ``doctor``)."""
        async with self._token_lock:
            self._token = None
            await self._fetch_token()

    # ------------------------------------------------------------ retrieve

    async def retrieve_page(
        self,
        shipping_process_id: str,
        *,
        record_ids: str | Sequence[str] | None = None,
        page_number: int = 1,
        paging_cookie: str | None = None,
    ) -> PingPage:
        """One page of a query. Page 1 is asked exactly as the reference does (no paging fields)."""
        body: dict[str, Any] = {
            "ShippingProcessId": shipping_process_id,
            "PartnerId": self.partner_id,
            "InteropID": self.interop_id,
            "APIVersion": "V3",
            "QueryParameters": _query_parameters(record_ids),
        }
        if page_number > 1 or paging_cookie is not None:
            body["PageNumber"] = page_number
            body["PagingCookie"] = paging_cookie
        response = await self._call("retrieve", RETRIEVE_PATH, body, shipping_process_id)
        envelope = self._envelope("retrieve", response)
        data = _member(envelope, "Data")
        error = _member(envelope, "ErrorMessage")
        if _is_no_data(data) or _is_no_data(error):
            data = []
        elif _text_or_none(error) is not None:
            raise PingRejectedError(
                PEER, "retrieve",
                f"{shipping_process_id}: PING answered with an ErrorMessage",
                status_code=response.status_code,
                reason="ping_error_message",
            )
        if data is None:
            data = []
        if not isinstance(data, list) or not all(isinstance(row, dict) for row in data):
            raise PingUnexpectedResponseError(
                PEER, "retrieve",
                f"{shipping_process_id}: Data is not a list of rows",
                status_code=response.status_code,
                reason="bad_response",
            )
        summary = _member(envelope, "PagingSummary")
        summary = summary if isinstance(summary, Mapping) else {}
        more = _member(summary, "IsMoreRecordsAvailable") is True
        cookie = _member(summary, "PagingCookie")
        page = PingPage(
            rows=data,
            page_number=page_number,
            more=more,
            paging_cookie=cookie if isinstance(cookie, str) and cookie else None,
            transaction_id=_text_or_none(_member(envelope, "SPHTransactionId")),
            record_count=_int_or_none(_member(envelope, "RecordCount")),
        )
        log.debug(
            "ping_page",
            peer=PEER,
            operation="retrieve",
            shipping_process_id=shipping_process_id,
            page=page_number,
            count=len(data),
            transaction_id=page.transaction_id,
        )
        return page

    async def iter_rows(
        self, shipping_process_id: str, *, record_ids: str | Sequence[str] | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """Every row of a query, one page in memory at a time.

        Asks for page n+1 with the last ``PagingCookie`` while PING says
        ``IsMoreRecordsAvailable``. A page announcing more rows but holding none,
        or more than ``max_pages`` pages, is an error rather than an endless loop.
        """
        page_number, cookie = 1, None
        while True:
            page = await self.retrieve_page(
                shipping_process_id,
                record_ids=record_ids,
                page_number=page_number,
                paging_cookie=cookie,
            )
            for row in page.rows:
                yield row
            if not page.more:
                return
            if not page.rows:
                raise PingUnexpectedResponseError(
                    PEER, "retrieve",
                    f"{shipping_process_id}: page {page_number} is empty but announces more",
                    reason="paging_stalled",
                )
            if page_number >= self.max_pages:
                raise PingUnexpectedResponseError(
                    PEER, "retrieve",
                    f"{shipping_process_id}: still more rows after {page_number} pages",
                    reason="paging_runaway",
                )
            page_number, cookie = page_number + 1, page.paging_cookie

    async def retrieve(
        self, shipping_process_id: str, *, record_ids: str | Sequence[str] | None = None
    ) -> list[dict[str, Any]]:
        """Every row of a query (all pages) as a list: for detail queries, which are small."""
        return [row async for row in self.iter_rows(shipping_process_id, record_ids=record_ids)]

    # ------------------------------------------------------------ ingestion

    async def ingest(
        self, shipping_process_id: str, items: Sequence[Mapping[str, Any]]
    ) -> IngestionReceipt:
        """``POST /api/ingestion/v2/{partner}/data``: field updates applied synchronously."""
        body = {"ShippingProcessId": shipping_process_id, "InteropId": self.interop_id,
                "Data": _items(items)}
        path = INGEST_PATH.format(partner_id=self.partner_id)
        response = await self._call("ingest", path, body, shipping_process_id)
        return self._receipt("ingest", response, shipping_process_id, need_transaction=False)

    async def ingest_async(
        self, shipping_process_id: str, items: Sequence[Mapping[str, Any]]
    ) -> IngestionReceipt:
        """``POST /api/ingestion/v2/{partner}/asyncdata``; the receipt always has a transaction id.

        PING keeps no duplicate guard: posting the same item twice creates two rows.
        """
        body = {"ShippingProcessId": shipping_process_id, "InteropID": self.interop_id,
                "APIVersion": "V2", "Data": _items(items)}
        path = INGEST_ASYNC_PATH.format(partner_id=self.partner_id)
        response = await self._call("ingest_async", path, body, shipping_process_id)
        return self._receipt("ingest_async", response, shipping_process_id, need_transaction=True)

    def _receipt(
        self,
        operation: str,
        response: httpx.Response,
        shipping_process_id: str,
        *,
        need_transaction: bool,
    ) -> IngestionReceipt:
        try:
            envelope = _loads(response.text) if response.content.strip() else None
        except ValueError:
            envelope = None
        if not isinstance(envelope, Mapping):
            envelope = {}
        if _text_or_none(_member(envelope, "ErrorMessage")) is not None:
            raise PingRejectedError(
                PEER, operation,
                f"{shipping_process_id}: PING answered with an ErrorMessage",
                status_code=response.status_code,
                reason="ping_error_message",
            )
        receipt = IngestionReceipt(
            transaction_id=_text_or_none(_member(envelope, "SPHTransactionId")),
            record_count=_int_or_none(_member(envelope, "RecordCount")),
        )
        if need_transaction and receipt.transaction_id is None:
            raise PingUnexpectedResponseError(
                PEER, operation,
                f"{shipping_process_id}: accepted without an SPHTransactionId",
                status_code=response.status_code,
                reason="no_transaction_id",
            )
        log.info(
            "ping_ingested",
            peer=PEER,
            operation=operation,
            shipping_process_id=shipping_process_id,
            transaction_id=receipt.transaction_id,
            record_count=receipt.record_count,
        )
        return receipt

    async def check_status(
        self, shipping_process_id: str, transaction_id: str
    ) -> TransactionStatus:
        """``POST /primes/ingestion/checkstatus/v1/pingdata`` for one ``SPHTransactionId``.

        PING answers ``{"Data": ...}`` where ``Data`` is a list or a string holding a
        list whose items embed unescaped JSON; it is repaired (never logged). An
        answer beyond repair gives ``state="unknown"`` and ``unreadable=True``.
        """
        body = {"ShippingProcessId": shipping_process_id, "InteropID": self.interop_id,
                "PartnerId": self.partner_id, "SPHTransactionId": transaction_id}
        response = await self._call("check_status", CHECK_STATUS_PATH, body, shipping_process_id)
        status, refused = _transaction_status(transaction_id, response.text)
        if refused:
            raise PingRejectedError(
                PEER, "check_status",
                f"{shipping_process_id}: PING answered with an ErrorMessage",
                status_code=response.status_code,
                reason="ping_error_message",
            )
        log.info(
            "ping_transaction_status",
            peer=PEER,
            operation="check_status",
            shipping_process_id=shipping_process_id,
            transaction_id=transaction_id,
            state=status.state,
            count=len(status.items),
            outcome="repaired" if status.repaired else "unreadable" if status.unreadable else "ok",
        )
        return status

    # ------------------------------------------------------------ transport

    async def _call(
        self, operation: str, path: str, body: Mapping[str, Any], shipping_process_id: str
    ) -> httpx.Response:
        """POST one API call with a token; renew the token once if APIM answers 401."""
        content = _serialise(operation, body)
        token, fresh = await self._current_token(stale=None)
        response = await self._post(operation, path, content, token)
        if response.status_code == 401 and not _subscription_key_refused(response) and not fresh:
            log.info("ping_token_rejected", peer=PEER, operation=operation, status_code=401)
            token, _ = await self._current_token(stale=token)
            response = await self._post(operation, path, content, token)
        if response.is_success:
            return response
        raise self._refusal(operation, response, shipping_process_id)

    async def _post(
        self, operation: str, path: str, content: bytes, token: str
    ) -> httpx.Response:
        headers = {
            "Content-Type": "application/json",
            "Authorization": f"Bearer {token}",
            SUBSCRIPTION_HEADER: self._subscription_key,
        }
        started = time.monotonic()
        try:
            response = await self._http.post(
                f"{self.base_url}{path}", content=content, headers=headers
            )
        except httpx.HTTPError as exc:
            raise _transport_error(operation, exc) from None
        log.debug(
            "ping_response",
            peer=PEER,
            operation=operation,
            method="POST",
            path=path,
            status_code=response.status_code,
            duration_ms=round((time.monotonic() - started) * 1000, 1),
        )
        return response

    def _refusal(
        self, operation: str, response: httpx.Response, shipping_process_id: str
    ) -> Exception:
        status = response.status_code
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        log.warning(
            "ping_refused",
            peer=PEER,
            operation=operation,
            shipping_process_id=shipping_process_id,
            status_code=status,
        )
        if is_transient_status(status) or (status == 403 and retry_after):
            return PingTransientError(
                PEER, operation, f"HTTP {status}", status_code=status, retry_after=retry_after
            )
        if status == 401:
            key = _subscription_key_refused(response)
            return PingAuthenticationError(
                PEER, operation,
                "APIM refused the subscription key" if key else "APIM refused a new token",
                status_code=status,
                reason="subscription_key_refused" if key else "http_401",
            )
        return PingPermanentError(PEER, operation, f"HTTP {status}", status_code=status)

    def _envelope(self, operation: str, response: httpx.Response) -> Mapping[str, Any]:
        try:
            body = _loads(response.text)
        except ValueError:
            body = None
        if not isinstance(body, Mapping):
            raise PingUnexpectedResponseError(
                PEER, operation,
                f"HTTP {response.status_code} without a JSON object",
                status_code=response.status_code,
                reason="bad_response",
            )
        return body

    # ------------------------------------------------------------ token

    async def _current_token(self, *, stale: str | None) -> tuple[str, bool]:
        """The token to use and whether it was just issued; one token request at a time."""
        async with self._token_lock:
            if self._token is not None and self._token != stale and not self._token_expired():
                return self._token, False
            self._token = None
            return await self._fetch_token(), True

    def _token_expired(self) -> bool:
        return self._token_expires is not None and self._clock() >= self._token_expires

    async def _fetch_token(self) -> str:
        """ROPC grant at B2C (PING.md §3); B2C is not behind APIM, so no subscription key."""
        started = time.monotonic()
        try:
            response = await self._http.post(
                self.token_endpoint, data=self._token_form, headers=self._token_headers
            )
        except httpx.HTTPError as exc:
            raise _transport_error("token", exc) from None
        status = response.status_code
        try:
            body = _loads(response.text)
        except ValueError:
            body = None
        body = body if isinstance(body, Mapping) else {}
        if not response.is_success:
            log.warning("ping_token_refused", peer=PEER, operation="token", status_code=status)
            if is_transient_status(status):
                raise PingTransientError(
                    PEER, "token",
                    f"HTTP {status}",
                    status_code=status,
                    retry_after=parse_retry_after(response.headers.get("Retry-After")),
                )
            code = body.get("error")
            details = (f"error={code}",) if isinstance(code, str) and _SAFE_CODE.match(code) else ()
            suffix = f" ({details[0]})" if details else ""
            raise PingAuthenticationError(
                PEER, "token",
                f"the token endpoint refused the credentials: HTTP {status}{suffix}",
                status_code=status,
                reason="token_refused",
                details=details,
            )
        token = body.get("access_token")
        if not isinstance(token, str) or not token.strip():
            raise PingAuthenticationError(
                PEER, "token", "no access_token in the token answer", status_code=status,
                reason="token_not_issued",
            )
        lifetime = _int_or_none(body.get("expires_in"))
        now = self._clock()
        if lifetime is None:
            self._token_expires = None  # used until APIM refuses it
        else:
            margin = min(self._token_margin, lifetime / 2)
            self._token_expires = now + lifetime - margin
        self._token = token
        log.info(
            "ping_token_issued",
            peer=PEER,
            operation="token",
            status_code=status,
            duration_ms=round((time.monotonic() - started) * 1000, 1),
        )
        return token


def _query_parameters(record_ids: str | Sequence[str] | None) -> list[dict[str, str]]:
    """``{record_ids}`` with one GUID, or a bracketed list ``[g1,g2]`` for several."""
    if record_ids is None:
        return []
    if isinstance(record_ids, str):
        value = record_ids
    else:
        ids = list(record_ids)
        value = ids[0] if len(ids) == 1 else f"[{','.join(ids)}]"
    return [{"ParameterName": RECORD_IDS_PARAMETER, "Value": value}]


def _items(items: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    if not items or not all(
        isinstance(item, Mapping) and isinstance(item.get("Fields"), list) for item in items
    ):
        raise InvalidInputError(
            "ping ingest: items must be objects with a Fields list", reason="bad_ingestion_item"
        )
    return [dict(item) for item in items]


def _serialise(operation: str, body: Mapping[str, Any]) -> bytes:
    try:
        return json.dumps(body, ensure_ascii=False, allow_nan=False).encode()
    except (TypeError, ValueError):
        raise InvalidInputError(
            f"ping {operation}: the request is not serialisable as JSON",
            reason="unserialisable_message",
        ) from None


def _subscription_key_refused(response: httpx.Response) -> bool:
    """APIM's own 401 for a subscription key says so; a token 401 does not."""
    try:
        body = _loads(response.text)
    except ValueError:
        return False
    message = _member(body, "message") if isinstance(body, Mapping) else None
    return isinstance(message, str) and "subscription key" in message.casefold()


def _transport_error(operation: str, exc: httpx.HTTPError) -> PingTransientError:
    """Below HTTP: a connect failure never reached PING; a read failure may have."""
    never_sent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
    if isinstance(exc, httpx.TimeoutException):
        return PingTransientError(
            PEER, operation, f"timed out ({type(exc).__name__})", reason="timeout",
            request_sent=not never_sent,
        )
    return PingTransientError(
        PEER, operation, f"transport failure ({type(exc).__name__})", reason="connection",
        request_sent=not never_sent,
    )


def _transaction_status(transaction_id: str, text: str) -> tuple[TransactionStatus, bool]:
    """The status in a check-status answer, and whether PING set an ``ErrorMessage``."""
    repaired = False
    try:
        body, repaired = _parse_repairing(text)
        error = _member(body, "ErrorMessage") if isinstance(body, Mapping) else None
        if _text_or_none(error) is not None and not _is_no_data(error):
            return TransactionStatus(transaction_id, "unknown", (), repaired, False), True
        data = _member(body, "Data") if isinstance(body, Mapping) else body
        if isinstance(data, str):
            if not data.strip() or _is_no_data(data):
                data = []
            else:
                data, inner_repaired = _parse_repairing(data)
                repaired = repaired or inner_repaired
        if isinstance(data, Mapping):
            data = [data]
        if data is None:
            data = []
        if not isinstance(data, list):
            raise ValueError("Data is not a list")
    except ValueError:
        return TransactionStatus(transaction_id, "unknown", (), repaired, True, raw=text), False
    items = []
    for entry in data:
        if not isinstance(entry, Mapping):
            continue
        state, word = _state_of(_member(entry, "Status"))
        items.append(
            TransactionItem(
                external_id=_text_or_none(_member(entry, "ExternalId")),
                state=state,
                status=word,
                message=_text_or_none(_member(entry, "Message")),
            )
        )
    status = TransactionStatus(transaction_id, _overall(items), tuple(items), repaired, False)
    return status, False


def client_from_settings(settings: Settings) -> PingClient:
    """The configured PING deployment's client; ``ConfigurationError`` names what is missing."""
    settings.require_ping()

    def value(name: str) -> str:
        setting = getattr(settings, name)
        return str(setting.get_secret_value() if isinstance(setting, SecretStr) else setting)

    return PingClient(
        value("ping_url"),
        token_url=value("ping_token_url"),
        token_path=value("ping_token_path"),
        client_id=value("ping_client_id"),
        username=value("ping_username"),
        password=value("ping_password"),
        scope=value("ping_scope"),
        subscription_key=value("ping_subscription_key"),
        partner_id=value("ping_partner_id"),
        interop_id=value("ping_interop_id"),
        shipping_processes=ShippingProcesses(
            **{key.name: value(f"ping_shp_{key.name}") for key in fields(ShippingProcesses)}
        ),
        timeout=settings.ping_timeout_seconds,
        token_margin=settings.ping_token_margin_seconds,
        token_geo=settings.ping_token_geo or None,
    )
