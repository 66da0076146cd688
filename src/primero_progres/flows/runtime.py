"""What every flow step needs: the store's reads, the profile, the peers and a clock.

One ``Runtime`` per process. The peer clients hold connection pools, so the
runtime is closed once, when the process stops.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from pydantic import SecretStr

from ..peers.dtp import DTPClient
from ..peers.primero import PrimeroClient
from ..profiles import Profile, load_profile
from ..settings import Settings
from ..store import FlowStore
from .observed import ObservedGateway, ObservedPrimero, PeerObserver
from .ports import PrimeroApi, ProgresGateway


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Runtime:
    store: FlowStore
    profile: Profile
    primero: PrimeroApi
    dtp: ProgresGateway
    clock: Callable[[], datetime] = _utcnow
    #: how far back each poll re-reads before its watermark (clock skew, same-second writes)
    overlap: timedelta = timedelta(seconds=60)
    #: flow 2 reads every case updated since the cursor, not only those the ledger knows
    full_scan: bool = False

    def today(self) -> date:
        return self.clock().date()

    async def aclose(self) -> None:
        await self.primero.aclose()
        await self.dtp.aclose()

    @classmethod
    def from_settings(cls, settings: Settings, store: FlowStore) -> Runtime:
        settings.require(
            "primero_url", "primero_username", "primero_password", "dtp_url", "dtp_subscription_key"
        )
        primero = PrimeroClient(
            str(settings.primero_url),
            username=str(settings.primero_username),
            password=_secret(settings.primero_password),
            auth=settings.primero_auth,
            timeout=settings.primero_timeout_seconds,
        )
        dtp = DTPClient(
            str(settings.dtp_url),
            subscription_key=_secret(settings.dtp_subscription_key),
            client_cert=settings.dtp_client_cert,
            client_key=settings.dtp_client_key,
            pkcs12=settings.dtp_client_pkcs12,
            pkcs12_password=_secret(settings.dtp_client_pkcs12_password) or None,
            ca=settings.dtp_ca,
            timeout=settings.dtp_timeout_seconds,
            referral_path=settings.dtp_referral_path,
            decision_path=settings.dtp_decision_path,
        )
        # every call to a peer: into the metrics and store.peers (the console, the alerts)
        observer = PeerObserver(store.peers, clock=store.now)
        return cls(
            store=store,
            profile=load_profile(settings.profile),
            primero=ObservedPrimero(primero, observer),
            dtp=ObservedGateway(dtp, observer, peer="dtp"),
            overlap=timedelta(seconds=settings.poll_overlap_seconds),
            full_scan=settings.primero_decision_full_scan,
        )


def _secret(value: SecretStr | None) -> str:
    """Unwrap a pydantic ``SecretStr`` (an unset one is the empty string)."""
    return value.get_secret_value() if value is not None else ""
