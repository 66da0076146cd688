"""The peer ports, each call timed, classified and recorded: the one place the bridge watches
its peers.

Every call a flow makes to Primero or to the UNHCR gateway goes through ``ObservedPrimero``,
``ObservedGateway`` (DTP) or ``ObservedPing``. The process's :class:`PeerObserver` counts it in
the metrics (duration, failures by kind) and records it in ``store.peers``, which the operator
console's peer panel and the peer-down alert both read. What counts:

* a failure is a typed peer error, classified once (``peers.errors.call_failure``); an error
  of the bridge's own (a mapping problem) says nothing about the peer;
* a refusal of one request (a 404, a 422: ``ANSWERED``) is the peer answering, so it counts
  as a success here; the request itself shows in the dead letters;
* a call the client recovers from inside (a Primero token renewed after a 401) is one
  successful call.

The clients know HTTP and nothing of this: the wiring is in ``flows.runtime``. Observing never
fails a call: a record the database refused is kept and merged into the next one.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal, Protocol, TypeVar

from ..errors import BridgeError
from ..logging import get_logger
from ..peers.errors import ANSWERED, CallFailure, PeerError, call_failure
from ..peers.ping import IngestionReceipt, PingPage, ShippingProcesses, TransactionStatus
from ..peers.primero import CasePosition, CaseWindow
from ..runtime.metrics import observe_peer_call
from ..store import PeerOutcomes
from ..store.step import PeerRecorder
from .ports import GatewayReceipt, PingApi, PrimeroApi, ProgresGateway

T = TypeVar("T")
log = get_logger(__name__)

#: a success is written at most this often per peer and process while nothing fails (a poll
#: makes many calls), so ``last_success_at`` may lag by that much
SUCCESS_EVERY = 5.0


@dataclass(frozen=True, slots=True)
class PeerCall:
    """One call to a peer: who, how long it waited for the peer, and how it failed (None: it
    worked). Codes only: never a URL, a header or a body."""

    peer: str
    seconds: float
    failure: CallFailure | None = None
    #: the error's failure class (transient, permanent) and reason code (``http_503``)
    failure_class: str | None = None
    reason: str | None = None

    @classmethod
    def failed(cls, peer: str, seconds: float, exc: PeerError) -> PeerCall:
        bridge_error = exc if isinstance(exc, BridgeError) else None
        return cls(
            peer,
            seconds,
            call_failure(exc),
            bridge_error.failure_class.value if bridge_error else None,
            bridge_error.reason if bridge_error else None,
        )

    @property
    def healthy(self) -> bool:
        """Whether the peer did its part (answered, even if it refused this one request)."""
        return self.failure is None or self.failure in ANSWERED


class CallObserver(Protocol):
    async def observe(self, call: PeerCall) -> None: ...


def outcomes(call: PeerCall, at: datetime) -> PeerOutcomes:
    """``call`` as a report of what was seen of its peer at ``at``."""
    if call.healthy:
        return PeerOutcomes(call.peer, succeeded_at=at)
    assert call.failure is not None
    return PeerOutcomes(
        call.peer,
        first_failed_at=at,
        failed_at=at,
        failure=call.failure.value,
        failure_class=call.failure_class,
        reason=call.reason,
        failures=1,
    )


def combine(older: PeerOutcomes, newer: PeerOutcomes) -> PeerOutcomes:
    """Two consecutive reports of one peer as one."""
    if newer.succeeded_at is not None:
        if newer.failed_at is None and older.failed_at is not None:
            # no longer in a row, but still the latest failure
            return replace(
                newer,
                failed_at=older.failed_at,
                failure=older.failure,
                failure_class=older.failure_class,
                reason=older.reason,
            )
        return newer
    return replace(
        newer,
        succeeded_at=older.succeeded_at,
        first_failed_at=older.first_failed_at or newer.first_failed_at,
        failures=older.failures + newer.failures,
    )


class PeerObserver:
    """What one process sees of the peers: into the metrics, and into ``store.peers``."""

    def __init__(self, recorder: PeerRecorder, *, clock: Callable[[], datetime]) -> None:
        self._recorder = recorder
        self._clock = clock
        #: peer -> what could not be written yet
        self._pending: dict[str, PeerOutcomes] = {}
        #: peer -> monotonic time of this process's last written success
        self._written: dict[str, float] = {}

    async def observe(self, call: PeerCall) -> None:
        observe_peer_call(call.peer, call.seconds, call.failure)
        seen = outcomes(call, self._clock())
        pending = self._pending.pop(call.peer, None)
        if pending is not None:
            seen = combine(pending, seen)
        elif seen.failed_at is None and self._recently_written(call.peer):
            return
        try:
            await self._recorder.record([seen])
        except Exception as exc:
            log.warning("peer_status.not_recorded", peer=call.peer, error=type(exc).__name__)
            self._pending[call.peer] = seen
            self._written.pop(call.peer, None)
            return
        if seen.failed_at is None:
            self._written[call.peer] = time.monotonic()
        else:
            self._written.pop(call.peer, None)

    def _recently_written(self, peer: str) -> bool:
        last = self._written.get(peer)
        return last is not None and time.monotonic() - last < SUCCESS_EVERY


class _Watch:
    def __init__(self, peer: str, observer: CallObserver) -> None:
        self.peer = peer
        self._observer = observer

    async def call(self, pending: Awaitable[T]) -> T:
        started = time.monotonic()
        try:
            result = await pending
        except PeerError as exc:
            await self.failed(time.monotonic() - started, exc)
            raise
        await self.succeeded(time.monotonic() - started)
        return result

    async def succeeded(self, seconds: float) -> None:
        await self._report(PeerCall(self.peer, seconds))

    async def failed(self, seconds: float, exc: PeerError) -> None:
        await self._report(PeerCall.failed(self.peer, seconds, exc))

    async def _report(self, call: PeerCall) -> None:
        try:
            await self._observer.observe(call)
        except Exception as exc:
            log.warning("peer_call.not_observed", peer=self.peer, error=type(exc).__name__)


class ObservedPrimero:
    """``PrimeroApi`` whose every call is observed (peer ``primero``)."""

    def __init__(self, inner: PrimeroApi, observer: CallObserver) -> None:
        self._inner = inner
        self._watch = _Watch("primero", observer)

    async def iter_cases(
        self,
        *,
        filters: Mapping[str, str | Sequence[str]] | None = None,
        updated_since: datetime | None = None,
        ids: Sequence[str] | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        """One call, however many pages: its time is what the reader waited for Primero, not
        what the flow did with each case in between."""
        pages = self._inner.iter_cases(filters=filters, updated_since=updated_since, ids=ids)
        waited = 0.0
        while True:
            started = time.monotonic()
            try:
                case = await anext(pages)
            except StopAsyncIteration:
                waited += time.monotonic() - started
                break
            except PeerError as exc:
                await self._watch.failed(waited + time.monotonic() - started, exc)
                raise
            waited += time.monotonic() - started
            yield case
        await self._watch.succeeded(waited)

    async def case_window(
        self,
        position: CasePosition,
        *,
        filters: Mapping[str, str | Sequence[str]] | None = None,
        ids: Sequence[str] | None = None,
    ) -> CaseWindow:
        return await self._watch.call(
            self._inner.case_window(position, filters=filters, ids=ids)
        )

    async def find_cases(self, field: str, value: str) -> list[dict[str, Any]]:
        return await self._watch.call(self._inner.find_cases(field, value))

    async def get_case(self, record_id: str) -> dict[str, Any]:
        return await self._watch.call(self._inner.get_case(record_id))

    async def create_case(self, data: dict[str, Any]) -> dict[str, Any]:
        return await self._watch.call(self._inner.create_case(data))

    async def patch_case(self, record_id: str, data: dict[str, Any]) -> dict[str, Any]:
        return await self._watch.call(self._inner.patch_case(record_id, data))

    async def list_referrals(self, record_id: str) -> list[dict[str, Any]]:
        return await self._watch.call(self._inner.list_referrals(record_id))

    async def update_referral(
        self,
        record_id: str,
        referral_id: str,
        *,
        status: str,
        rejected_reason: str | None = None,
    ) -> dict[str, Any]:
        return await self._watch.call(
            self._inner.update_referral(
                record_id, referral_id, status=status, rejected_reason=rejected_reason
            )
        )

    async def get_user(self, user_name: str) -> dict[str, Any] | None:
        return await self._watch.call(self._inner.get_user(user_name))

    async def own_user(self) -> dict[str, Any]:
        return await self._watch.call(self._inner.own_user())

    async def mark_synced(
        self, record_id: str, *, url: str, status: Literal["synced", "failed"] = "synced"
    ) -> dict[str, Any]:
        return await self._watch.call(self._inner.mark_synced(record_id, url=url, status=status))

    async def aclose(self) -> None:
        await self._inner.aclose()


class ObservedGateway:
    """``ProgresGateway`` whose every call is observed under ``peer`` (``dtp``, ``ping``)."""

    def __init__(self, inner: ProgresGateway, observer: CallObserver, *, peer: str) -> None:
        self._inner = inner
        self._watch = _Watch(peer, observer)

    async def send_referral(
        self, message: dict[str, Any], *, idempotency_key: str | None = None
    ) -> GatewayReceipt:
        return await self._watch.call(
            self._inner.send_referral(message, idempotency_key=idempotency_key)
        )

    async def send_decision(
        self, message: dict[str, Any], *, idempotency_key: str | None = None
    ) -> GatewayReceipt:
        return await self._watch.call(
            self._inner.send_decision(message, idempotency_key=idempotency_key)
        )

    async def aclose(self) -> None:
        await self._inner.aclose()


class ObservedPing:
    """``PingApi`` whose every call is observed (peer ``ping``); a token fetched or renewed
    inside a call is part of that call."""

    def __init__(self, inner: PingApi, observer: CallObserver) -> None:
        self._inner = inner
        self._watch = _Watch("ping", observer)

    @property
    def shipping_processes(self) -> ShippingProcesses:
        return self._inner.shipping_processes

    async def retrieve_page(
        self,
        shipping_process_id: str,
        *,
        record_ids: str | Sequence[str] | None = None,
        page_number: int = 1,
        paging_cookie: str | None = None,
    ) -> PingPage:
        return await self._watch.call(
            self._inner.retrieve_page(
                shipping_process_id,
                record_ids=record_ids,
                page_number=page_number,
                paging_cookie=paging_cookie,
            )
        )

    async def referral_detail(self, lp_intervention_id: str) -> list[dict[str, Any]]:
        return await self._watch.call(self._inner.referral_detail(lp_intervention_id))

    async def update_intervention(self, item: Mapping[str, Any]) -> IngestionReceipt:
        return await self._watch.call(self._inner.update_intervention(item))

    async def create_referral(self, item: Mapping[str, Any]) -> IngestionReceipt:
        return await self._watch.call(self._inner.create_referral(item))

    async def referral_create_status(self, transaction_id: str) -> TransactionStatus:
        return await self._watch.call(self._inner.referral_create_status(transaction_id))

    async def decision_detail(self, referral_id: str) -> list[dict[str, Any]]:
        return await self._watch.call(self._inner.decision_detail(referral_id))

    async def update_referral(self, item: Mapping[str, Any]) -> IngestionReceipt:
        return await self._watch.call(self._inner.update_referral(item))

    async def aclose(self) -> None:
        await self._inner.aclose()
