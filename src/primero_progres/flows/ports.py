"""What the flows need from each peer, as protocols the peer clients satisfy.

The flows call these and nothing else of a client, so another implementation of a port
(a second proGres gateway, an in-memory fake in the unit tests) plugs in without a change
to the flows.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import datetime
from typing import Any, Literal, Protocol

from ..peers.ping import IngestionReceipt, PingPage, ShippingProcesses, TransactionStatus
from ..peers.primero import CasePosition, CaseWindow


class PrimeroApi(Protocol):
    """The Primero v2 calls of the four flows (``peers.primero.PrimeroClient``)."""

    def iter_cases(
        self,
        *,
        filters: Mapping[str, str | Sequence[str]] | None = None,
        updated_since: datetime | None = None,
        ids: Sequence[str] | None = None,
    ) -> AsyncIterator[dict[str, Any]]: ...

    async def case_window(
        self,
        position: CasePosition,
        *,
        filters: Mapping[str, str | Sequence[str]] | None = None,
        ids: Sequence[str] | None = None,
    ) -> CaseWindow:
        """One page of the cases updated since ``position``, oldest first, and where the next
        page starts: a poll commits each page on its own."""
        ...

    async def find_cases(self, field: str, value: str) -> list[dict[str, Any]]: ...

    async def get_case(self, record_id: str) -> dict[str, Any]: ...

    async def create_case(self, data: dict[str, Any]) -> dict[str, Any]: ...

    async def patch_case(self, record_id: str, data: dict[str, Any]) -> dict[str, Any]: ...

    async def list_referrals(self, record_id: str) -> list[dict[str, Any]]: ...

    async def update_referral(
        self,
        record_id: str,
        referral_id: str,
        *,
        status: str,
        rejected_reason: str | None = None,
    ) -> dict[str, Any]: ...

    async def get_user(self, user_name: str) -> dict[str, Any] | None: ...

    async def mark_synced(
        self, record_id: str, *, url: str, status: Literal["synced", "failed"] = "synced"
    ) -> dict[str, Any]:
        """The case's sync status in Primero (its ``sync_external`` permission)."""
        ...

    async def own_user(self) -> dict[str, Any]:
        """The API user's record with its role (``role_group_permission``...)."""
        ...

    async def aclose(self) -> None: ...


class GatewayReceipt(Protocol):
    """What the gateway answered to an accepted message."""

    @property
    def request_id(self) -> str | None: ...


class ProgresGateway(Protocol):
    """The way to proGres through DTP: its two message kinds (``peers.dtp.DTPClient``).

    ``idempotency_key`` is the same on every retry of one message (the flows derive it from
    the job key): delivery is at-least-once, and the gateway deduplicates on it.
    """

    async def send_referral(
        self, message: dict[str, Any], *, idempotency_key: str | None = None
    ) -> GatewayReceipt:
        """Flow 3: a Primero referral to UNHCR."""
        ...

    async def send_decision(
        self, message: dict[str, Any], *, idempotency_key: str | None = None
    ) -> GatewayReceipt:
        """Flow 1 feedback and flow 2 decisions."""
        ...

    async def aclose(self) -> None: ...


class PingApi(Protocol):
    """The way to proGres through PING (``peers.ping.PingClient``): the flows page the two
    lists themselves (one committed page per job), read details, and write back."""

    @property
    def shipping_processes(self) -> ShippingProcesses: ...

    async def retrieve_page(
        self,
        shipping_process_id: str,
        *,
        record_ids: str | Sequence[str] | None = None,
        page_number: int = 1,
        paging_cookie: str | None = None,
    ) -> PingPage: ...

    async def referral_detail(self, lp_intervention_id: str) -> list[dict[str, Any]]:
        """Flow 1: the rows of one LP intervention."""
        ...

    async def update_intervention(self, item: Mapping[str, Any]) -> IngestionReceipt:
        """Flows 1 and 2: an LP intervention's transfer status."""
        ...

    async def create_referral(self, item: Mapping[str, Any]) -> IngestionReceipt:
        """Flow 3: ``/asyncdata``; PING keeps no duplicate guard."""
        ...

    async def referral_create_status(self, transaction_id: str) -> TransactionStatus: ...

    async def decision_detail(self, referral_id: str) -> list[dict[str, Any]]:
        """Flow 4: the rows of one interoperability referral."""
        ...

    async def update_referral(self, item: Mapping[str, Any]) -> IngestionReceipt:
        """Flow 4: "synced"."""
        ...

    async def aclose(self) -> None: ...
