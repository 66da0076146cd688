"""What every flow step needs: the store's reads, the profile, the peers and a clock.

One ``Runtime`` per process. The peer clients hold connection pools, so the
runtime is closed once, when the process stops. ``unhcr_gateway`` says which
way proGres is reached: DTP (``dtp``) or PING (``ping``); the other port is
left unconfigured and refuses to be used.
"""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import SecretStr

from ..errors import ConfigurationError
from ..peers.dtp import DTPClient, idempotency_key_for
from ..peers.ping import client_from_settings
from ..peers.primero import PrimeroClient
from ..profiles import Profile, load_profile
from ..settings import Settings
from ..store import Flow, FlowStore, StepContext
from ..worker import RetryPolicy
from .observed import ObservedGateway, ObservedPing, ObservedPrimero, PeerObserver
from .ports import GatewayReceipt, PingApi, PrimeroApi, ProgresGateway
from .primero_access import PrimeroRole

Gateway = Literal["dtp", "ping"]


def _utcnow() -> datetime:
    return datetime.now(UTC)


class UserDirectory:
    """Primero users by ``user_name``, each fetched once per ``ttl`` seconds per process.

    Flow 3 examines each case in its own job, and a poll's cases mostly share a few owners:
    concurrent lookups of one name wait for the first. A failed lookup is not kept.
    """

    def __init__(self, ttl: float = 300.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self._clock = clock
        self._users: dict[str, tuple[float, dict[str, Any] | None]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def get(self, primero: PrimeroApi, user_name: str) -> dict[str, Any] | None:
        async with self._locks.setdefault(user_name, asyncio.Lock()):
            known = self._users.get(user_name)
            if known is None or self._clock() - known[0] > self.ttl:
                known = (self._clock(), await primero.get_user(user_name))
                self._users[user_name] = known
            return copy.deepcopy(known[1])
class DtpNotConfigured:
    """The DTP port of a deployment that reaches proGres through PING."""

    async def send_referral(
        self, message: dict[str, Any], *, idempotency_key: str | None = None
    ) -> GatewayReceipt:
        raise _not_configured("dtp")

    async def send_decision(
        self, message: dict[str, Any], *, idempotency_key: str | None = None
    ) -> GatewayReceipt:
        raise _not_configured("dtp")

    async def aclose(self) -> None:
        return None


def _not_configured(gateway: str) -> ConfigurationError:
    return ConfigurationError(
        f"this step needs the {gateway} gateway, and PRIMERO_PROGRES_UNHCR_GATEWAY says otherwise",
        reason="gateway_not_configured",
    )


@dataclass
class Runtime:
    store: FlowStore
    profile: Profile
    primero: PrimeroApi
    dtp: ProgresGateway = field(default_factory=DtpNotConfigured)
    clock: Callable[[], datetime] = _utcnow
    #: how far back each poll re-reads before its watermark (clock skew, same-second writes)
    overlap: timedelta = timedelta(seconds=60)
    #: flow 2 reads every case updated since the cursor, not only those the ledger knows
    full_scan: bool = False
    #: flow 3's look-ups of the referring users
    users: UserDirectory = field(default_factory=UserDirectory)
    #: the API user's role in Primero (its scope is checked before flows 1 and 3 search)
    role: PrimeroRole = field(default_factory=PrimeroRole)
    #: which UNHCR gateway speaks for proGres (``PRIMERO_PROGRES_UNHCR_GATEWAY``)
    unhcr_gateway: Gateway = "dtp"
    ping_client: PingApi | None = None
    #: seconds to wait before asking PING again whether an async ingestion is done
    ping_status_check: float = 60.0
    #: the worker's retry delay for the n-th attempt (steps that retry by re-queueing use it)
    retry_delay: Callable[[int, float | None], float] = field(
        default_factory=lambda: RetryPolicy().delay
    )
    max_attempts: int = RetryPolicy.max_attempts
    #: write each flow-2/3 exchange's sync status on its Primero case (``MARK_SYNCED``)
    marks_sync: bool = False
    #: the ``mark_synced_url`` of each flow: where its messages go, without a secret
    sync_urls: dict[Flow, str] = field(default_factory=dict)

    def today(self) -> date:
        return self.clock().date()

    @property
    def ping(self) -> PingApi:
        """The PING port; a ``ConfigurationError`` on a DTP deployment."""
        if self.ping_client is None:
            raise _not_configured("ping")
        return self.ping_client

    async def aclose(self) -> None:
        await self.primero.aclose()
        await self.dtp.aclose()
        if self.ping_client is not None:
            await self.ping_client.aclose()

    @classmethod
    def from_settings(cls, settings: Settings, store: FlowStore) -> Runtime:
        primero_settings = ("primero_url", "primero_username", "primero_password")
        # every call to a peer: into the metrics and store.peers (the console, the alerts)
        observer = PeerObserver(store.peers, clock=store.now)
        dtp: ProgresGateway
        ping: PingApi | None = None
        if settings.unhcr_gateway == "ping":
            settings.require(*primero_settings)
            profile = load_profile(settings.profile)
            profile.ping_tables()  # a profile without its ``ping`` section stops the start here
            ping = ObservedPing(client_from_settings(settings), observer)
            dtp = DtpNotConfigured()
        else:
            settings.require(*primero_settings, "dtp_url", "dtp_subscription_key")
            profile = load_profile(settings.profile)
            dtp_client = DTPClient(
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
            dtp = ObservedGateway(dtp_client, observer, peer="dtp")
        primero = PrimeroClient(
            str(settings.primero_url),
            username=str(settings.primero_username),
            password=_secret(settings.primero_password),
            auth=settings.primero_auth,
            timeout=settings.primero_timeout_seconds,
        )
        retry = RetryPolicy.from_settings(settings)
        return cls(
            marks_sync=settings.mark_synced and settings.unhcr_gateway == "dtp",
            sync_urls=sync_urls(settings),
            store=store,
            profile=profile,
            primero=ObservedPrimero(primero, observer),
            dtp=dtp,
            overlap=timedelta(seconds=settings.poll_overlap_seconds),
            full_scan=settings.primero_decision_full_scan,
            unhcr_gateway=settings.unhcr_gateway,
            ping_client=ping,
            ping_status_check=settings.ping_status_check_seconds,
            retry_delay=retry.delay,
            max_attempts=retry.max_attempts,
        )


def sync_urls(settings: Settings) -> dict[Flow, str]:
    """The DTP endpoints flows 2 and 3 send to (``mark_synced_url``); none over PING."""
    if settings.unhcr_gateway != "dtp" or not settings.dtp_url:
        return {}
    parts = urlsplit(str(settings.dtp_url))
    # a URL may carry credentials (user:password@, a query key): Primero shows this one
    host = parts.netloc.rpartition("@")[2]
    base = urlunsplit((parts.scheme, host, parts.path, "", "")).rstrip("/")
    return {
        Flow.PRIMERO_DECISION: f"{base}/{settings.dtp_decision_path.lstrip('/')}",
        Flow.PRIMERO_REFERRAL: f"{base}/{settings.dtp_referral_path.lstrip('/')}",
    }


def idempotency_key(ctx: StepContext) -> str:
    """The ``Idempotency-Key`` of the message a job sends to proGres: the same on every retry
    (the job key is unique forever; a job without one is keyed by its id, as stable)."""
    return idempotency_key_for(ctx.job.key or ctx.job.id)


def _secret(value: SecretStr | None) -> str:
    """Unwrap a pydantic ``SecretStr`` (an unset one is the empty string)."""
    return value.get_secret_value() if value is not None else ""
