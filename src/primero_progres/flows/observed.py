"""The peer ports, with each call's outcome recorded in the store (``store.peers``).

The operator console shows, per peer, the last success, the last failure with its class and
the failures in a row; every worker process contributes through the database. A failure is a
typed peer error (connection, timeout, a refusal); an error of the bridge's own (a mapping
problem) says nothing about the peer. Recording never fails a call.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

from ..errors import BridgeError, FailureClass
from ..logging import get_logger
from ..peers.errors import PeerError
from ..peers.ping import IngestionReceipt, PingPage, ShippingProcesses, TransactionStatus
from ..store.step import PeerRecorder
from .ports import GatewayReceipt, PingApi, PrimeroApi, ProgresGateway

T = TypeVar("T")
log = get_logger(__name__)


class _Observer:
    def __init__(self, peer: str, recorder: PeerRecorder) -> None:
        self.peer = peer
        self._recorder = recorder

    async def call(self, pending: Awaitable[T]) -> T:
        try:
            result = await pending
        except PeerError as exc:
            await self.failed(exc)
            raise
        await self.succeeded()
        return result

    async def succeeded(self) -> None:
        await self._record()

    async def failed(self, exc: PeerError) -> None:
        if isinstance(exc, BridgeError):
            await self._record(failure_class=exc.failure_class.value, reason=exc.reason)
        else:
            await self._record(failure_class=FailureClass.TRANSIENT.value, reason=None)

    async def _record(self, **outcome: str | None) -> None:
        try:
            await self._recorder.record(self.peer, **outcome)
        except Exception as exc:
            log.warning("peer_status.not_recorded", peer=self.peer, error=type(exc).__name__)


class ObservedPrimero:
    """``PrimeroApi`` that records each call's outcome."""

    def __init__(self, inner: PrimeroApi, recorder: PeerRecorder) -> None:
        self._inner = inner
        self._observe = _Observer("primero", recorder)

    async def iter_cases(
        self,
        *,
        filters: Mapping[str, str | Sequence[str]] | None = None,
        updated_since: datetime | None = None,
        ids: Sequence[str] | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        pages = self._inner.iter_cases(filters=filters, updated_since=updated_since, ids=ids)
        try:
            async for case in pages:
                yield case
        except PeerError as exc:
            await self._observe.failed(exc)
            raise
        await self._observe.succeeded()

    async def find_cases(self, field: str, value: str) -> list[dict[str, Any]]:
        return await self._observe.call(self._inner.find_cases(field, value))

    async def create_case(self, data: dict[str, Any]) -> dict[str, Any]:
        return await self._observe.call(self._inner.create_case(data))

    async def patch_case(self, record_id: str, data: dict[str, Any]) -> dict[str, Any]:
        return await self._observe.call(self._inner.patch_case(record_id, data))

    async def list_referrals(self, record_id: str) -> list[dict[str, Any]]:
        return await self._observe.call(self._inner.list_referrals(record_id))

    async def update_referral(
        self,
        record_id: str,
        referral_id: str,
        *,
        status: str,
        rejected_reason: str | None = None,
    ) -> dict[str, Any]:
        return await self._observe.call(
            self._inner.update_referral(
                record_id, referral_id, status=status, rejected_reason=rejected_reason
            )
        )

    async def get_user(self, user_name: str) -> dict[str, Any] | None:
        return await self._observe.call(self._inner.get_user(user_name))

    async def aclose(self) -> None:
        await self._inner.aclose()


class ObservedGateway:
    """``ProgresGateway`` that records each call's outcome under ``peer`` (``dtp``, ``ping``)."""

    def __init__(self, inner: ProgresGateway, recorder: PeerRecorder, *, peer: str) -> None:
        self._inner = inner
        self._observe = _Observer(peer, recorder)

    async def send_referral(self, message: dict[str, Any]) -> GatewayReceipt:
        return await self._observe.call(self._inner.send_referral(message))

    async def send_decision(self, message: dict[str, Any]) -> GatewayReceipt:
        return await self._observe.call(self._inner.send_decision(message))

    async def aclose(self) -> None:
        await self._inner.aclose()


class ObservedPing:
    """``PingApi`` that records each call's outcome under ``ping``."""

    def __init__(self, inner: PingApi, recorder: PeerRecorder) -> None:
        self._inner = inner
        self._observe = _Observer("ping", recorder)

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
        return await self._observe.call(
            self._inner.retrieve_page(
                shipping_process_id,
                record_ids=record_ids,
                page_number=page_number,
                paging_cookie=paging_cookie,
            )
        )

    async def referral_detail(self, lp_intervention_id: str) -> list[dict[str, Any]]:
        return await self._observe.call(self._inner.referral_detail(lp_intervention_id))

    async def update_intervention(self, item: Mapping[str, Any]) -> IngestionReceipt:
        return await self._observe.call(self._inner.update_intervention(item))

    async def create_referral(self, item: Mapping[str, Any]) -> IngestionReceipt:
        return await self._observe.call(self._inner.create_referral(item))

    async def referral_create_status(self, transaction_id: str) -> TransactionStatus:
        return await self._observe.call(self._inner.referral_create_status(transaction_id))

    async def decision_detail(self, referral_id: str) -> list[dict[str, Any]]:
        return await self._observe.call(self._inner.decision_detail(referral_id))

    async def update_referral(self, item: Mapping[str, Any]) -> IngestionReceipt:
        return await self._observe.call(self._inner.update_referral(item))

    async def aclose(self) -> None:
        await self._inner.aclose()
