"""The whole system on loopback: the simulated peers and the bridge, wired as in production.

The demo runs it, and the end-to-end tests drive it. ``gateway`` chooses the
way to proGres, as ``PRIMERO_PROGRES_UNHCR_GATEWAY`` does: the DTP simulator
(which calls the bridge's inbox) or the PING simulator (which the bridge
polls). The simulators run in their own threads; the bridge (uvicorn) runs in
the caller's event loop, and its worker is driven explicitly (``settle``) so
that a test or the demo decides when work happens and can wait for it to be
finished. A test that should hold for both gateways takes ``gateway`` as a
parameter and drives the UNHCR side through ``unhcr`` and ``set_faults("unhcr", ...)``.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any, Literal

import uvicorn

from . import demo_data, flows
from .alerts import Alerter
from .profiles import load_profile
from .settings import Settings
from .sim import dtp as dtp_sim
from .sim import ping as ping_sim
from .sim import primero as primero_sim
from .sim.common import ServerThread, listening_socket
from .sim.control import SimControl
from .sim.ping_state import DEFAULT_SHIPPING_PROCESSES
from .sim.primero_config import PrimeroSimConfig, profile_users
from .sim.primero_state import API_ROLE_UNIQUE_ID
from .store import Flow, Store
from .web import create_app
from .worker import Worker

#: fast retries so that transient faults resolve within a test or the demo
FAST_RETRY = {"retry_base_seconds": 0.05, "retry_cap_seconds": 0.4, "retry_max_attempts": 5}


Gateway = Literal["dtp", "ping"]


def ping_settings(url: str) -> dict[str, Any]:
    """The bridge's settings for the PING simulator at ``url`` (B2C and APIM on the same port)."""
    return {
        "unhcr_gateway": "ping",
        "ping_url": url,
        "ping_token_url": url,
        "ping_token_path": ping_sim.DEFAULT_TOKEN_PATH,
        "ping_client_id": demo_data.PING_CLIENT_ID,
        "ping_username": demo_data.PING_USERNAME,
        "ping_password": demo_data.PING_PASSWORD,
        "ping_scope": ping_sim.DEFAULT_SCOPE,
        "ping_subscription_key": demo_data.PING_SUBSCRIPTION_KEY,
        "ping_partner_id": demo_data.PING_PARTNER_ID,
        "ping_interop_id": demo_data.PING_INTEROP_ID,
        **{f"ping_shp_{name}": shp for name, shp in DEFAULT_SHIPPING_PROCESSES.items()},
    }


class Stack:
    """Primero simulator + the UNHCR gateway's simulator + the bridge, on loopback ports."""

    def __init__(
        self,
        workdir: Path,
        *,
        database_url: str | None = None,
        worker_concurrency: int = 2,
        primero_options: dict[str, Any] | None = None,
        gateway: Gateway = "dtp",
        ping_options: dict[str, Any] | None = None,
        **settings: Any,
    ) -> None:
        self.workdir = workdir
        self.database_url = database_url or f"sqlite:///{workdir / 'bridge.db'}"
        self.worker_concurrency = worker_concurrency
        self.primero_options = primero_options or {}
        self.gateway = gateway
        self.ping_options = ping_options or {}
        self.settings_overrides = settings
        self._tasks: list[asyncio.Task[Any]] = []
        self._servers: list[ServerThread] = []

    async def __aenter__(self) -> Stack:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        # the Primero of the profile: its lookups hold the profile's codes, its users exist
        profile = load_profile(self.settings_overrides.get("profile", "gambella"))
        sim_options = {"config": PrimeroSimConfig.for_profile(profile), **self.primero_options}
        self.primero = self._serve(
            primero_sim.create_app(
                users={demo_data.API_USER: demo_data.API_PASSWORD},
                seed={"users": [*profile_users(profile), *demo_data.PRIMERO_USERS]},
                **sim_options,
            )
        )
        # bound before the bridge app exists: its settings hold its own URL
        bridge_socket = listening_socket()
        self.bridge_port = int(bridge_socket.getsockname()[1])
        self.bridge_url = f"http://127.0.0.1:{self.bridge_port}"
        options: dict[str, Any] = {
            "database_url": self.database_url,
            "inbox_tokens": demo_data.INBOX_TOKEN,
            "primero_url": self.primero.url,
            "primero_username": demo_data.API_USER,
            "primero_password": demo_data.API_PASSWORD,
            "primero_timeout_seconds": 2.0,
            "lease_seconds": 30.0,
            # alerts link to this bridge's own console
            "public_url": self.bridge_url,
            **FAST_RETRY,
        }
        if self.gateway == "ping":
            options |= self._start_ping()
        else:
            self.dtp = self._serve(
                dtp_sim.create_app(subscription_key=demo_data.DTP_SUBSCRIPTION_KEY)
            )
            self.unhcr = self.dtp
            options |= {
                "dtp_url": self.dtp.url,
                "dtp_subscription_key": demo_data.DTP_SUBSCRIPTION_KEY,
                "dtp_timeout_seconds": 2.0,
            }
        options |= self.settings_overrides
        self.settings = Settings.for_tests(**options)
        self.store = await Store.open(self.settings.database_url, encryption=self.settings.cipher())
        await self.store.upgrade()
        self._start_worker()
        config = uvicorn.Config(
            create_app(self.settings, self.store),
            host="127.0.0.1",
            port=self.bridge_port,
            log_level="warning",
            access_log=False,
            lifespan="off",
        )
        self._bridge = uvicorn.Server(config)
        self._tasks.append(asyncio.create_task(self._bridge.serve(sockets=[bridge_socket])))
        while not self._bridge.started:
            await asyncio.sleep(0.01)
        self.control = SimControl(timeout=30.0)
        #: a plain HTTP client, to call the bridge as a peer would
        self.http = self.control.http
        if self.gateway == "dtp":
            await self.sim_call(
                "PUT",
                f"{self.dtp.url}/_sim/bridge",
                json={"inbox_url": self.inbox_url, "token": demo_data.INBOX_TOKEN},
            )

    def _start_ping(self) -> dict[str, Any]:
        """The PING simulator; the bridge's settings for it."""
        self.ping = self._serve(
            ping_sim.create_app(
                subscription_key=demo_data.PING_SUBSCRIPTION_KEY,
                client_id=demo_data.PING_CLIENT_ID,
                username=demo_data.PING_USERNAME,
                password=demo_data.PING_PASSWORD,
                partner_id=demo_data.PING_PARTNER_ID,
                interop_id=demo_data.PING_INTEROP_ID,
                **self.ping_options,
            )
        )
        self.unhcr = self.ping
        return {
            **ping_settings(self.ping.url),
            "ping_timeout_seconds": 2.0,
            "ping_status_check_seconds": 0.05,
        }

    async def switch_to_ping(self) -> None:
        """What an operator does once the DTP work is drained (docs/ping.md): the same database
        and Primero, ``UNHCR_GATEWAY=ping``, a new worker. The DTP simulator keeps running (its
        messages stay readable); the bridge's HTTP app is not rebuilt."""
        await self.handlers.aclose()
        self.gateway = "ping"
        options = {**self.settings.model_dump(), **self._start_ping(), **self.settings_overrides}
        self.settings = Settings.for_tests(**options)
        self._start_worker()

    def _start_worker(self) -> None:
        """The worker and the alert check, for the current settings."""
        self.handlers = flows.build_handlers(self.settings, self.store)
        # the alert check, driven by ``check_alerts``
        self.alerter = Alerter(self.store, self.settings, owner="stack")
        self.worker = Worker.from_settings(
            self.store,
            self.handlers,
            self.settings,
            worker_id="stack",
            concurrency=self.worker_concurrency,
        )

    def _serve(self, app: Any) -> ServerThread:
        server = ServerThread(app).start()
        self._servers.append(server)
        return server

    async def stop(self) -> None:
        self._bridge.should_exit = True
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.control.aclose()
        await self.handlers.aclose()
        await self.store.close()
        for server in reversed(self._servers):
            server.stop()

    @property
    def inbox_url(self) -> str:
        return f"{self.bridge_url}/api/v1/dtp/messages"

    @property
    def webhook_url(self) -> str:
        """Where Primero's webhooks reach the bridge (``web/webhook.py``)."""
        return f"{self.bridge_url}/api/v1/primero/webhook"

    async def primero_posts_webhooks(
        self, url: str | None = None, *, auth: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """What a Primero administrator does: webhooks authenticated by ``auth``
        (``/_sim/config`` ``webhook_auth``), then one for case updates to ``url``."""
        await self.sim_call(
            "PATCH", f"{self.primero.url}/_sim/config", json={"webhook_auth": auth or {}}
        )
        response = await self.http.post(
            f"{self.primero.url}/api/v2/webhooks",
            json={
                "data": {
                    "events": "case.update",
                    "url": url or self.webhook_url,
                    "role_unique_id": API_ROLE_UNIQUE_ID,
                }
            },
            auth=(demo_data.API_USER, demo_data.API_PASSWORD),
        )
        response.raise_for_status()
        webhook: dict[str, Any] = response.json()["data"]
        return webhook

    async def webhooks_delivered(self, timeout: float = 30.0) -> None:
        """Wait until the simulated Primero has posted every webhook it queued."""
        answer = await self.sim_call(
            "POST", f"{self.primero.url}/_sim/webhooks/wait", params={"timeout": timeout}
        )
        if answer != {"idle": True}:
            raise TimeoutError(f"Primero's webhooks still queued after {timeout} s")

    # ----------------------------------------------------------------- driving the bridge

    async def settle(self, timeout: float = 30.0) -> int:
        """Run the worker until no job is pending or running (waiting out retry delays)."""
        deadline = time.monotonic() + timeout
        total = 0
        while True:
            total += await self.worker.run_until_idle()
            counts = await self.store.jobs.counts()
            if not any(n for (_, state), n in counts.items() if state in ("pending", "running")):
                return total
            if time.monotonic() > deadline:
                raise TimeoutError(f"jobs still unfinished after {timeout} s: {counts}")
            await asyncio.sleep(0.02)

    async def check_alerts(self) -> bool:
        """One alert check, as the scheduler's process runs it every ``ALERT_CHECK_SECONDS``."""
        return await self.alerter.check()

    async def poll(self, flow: Flow | str, **options: Any) -> None:
        """One polling cycle of ``flow``, as the scheduler would start it, run to the end.

        The simulated Primero holds only what the test or the demo put in it, so a flow that
        has no cursor yet reads it from the beginning, on purpose.
        """
        await self.store.polls.run_now(Flow(flow), options, from_beginning=True)
        await self.settle()

    # ----------------------------------------------------------------- the peers' side

    async def sim_call(self, method: str, url: str, **kwargs: Any) -> Any:
        return await self.control.call(method, url, **kwargs)

    async def progres_sends_referral(self, message: dict[str, Any]) -> dict[str, Any]:
        """proGres (through DTP) posts a referral message to the bridge inbox."""
        return await self.sim_call("POST", f"{self.dtp.url}/_sim/send-referral", json=message)

    async def progres_sends_decision(self, message: dict[str, Any]) -> dict[str, Any]:
        return await self.sim_call("POST", f"{self.dtp.url}/_sim/send-decision", json=message)

    async def dtp_messages(self, endpoint: str | None = None) -> list[dict[str, Any]]:
        params = {"endpoint": endpoint} if endpoint else None
        return await self.sim_call("GET", f"{self.dtp.url}/_sim/messages", params=params)

    async def primero_cases(self) -> list[dict[str, Any]]:
        return await self.sim_call("GET", f"{self.primero.url}/_sim/cases")

    async def primero_referrals(self) -> list[dict[str, Any]]:
        return await self.sim_call("GET", f"{self.primero.url}/_sim/referrals")

    async def seed_primero(self, **payload: Any) -> dict[str, Any]:
        return await self.sim_call("POST", f"{self.primero.url}/_sim/seed", json=payload)

    async def focal_point_decides(
        self, case_record_id: str, service_unique_id: str, status: str, reason: str | None = None
    ) -> dict[str, Any]:
        body = {
            "case_record_id": case_record_id,
            "service_unique_id": service_unique_id,
            "status": status,
            "rejection_reason": reason,
        }
        return await self.sim_call(
            "POST", f"{self.primero.url}/_sim/actions/decide-service", json=body
        )

    async def caseworker_refers_to_unhcr(
        self, case_record_id: str, service: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        body = {
            "case_record_id": case_record_id,
            "transitioned_to": demo_data.UNHCR_CASEWORKER,
            "transitioned_by": demo_data.PRIMERO_CASEWORKER,
            "service": service or {"service_type": "alternative_care"},
        }
        return await self.sim_call(
            "POST", f"{self.primero.url}/_sim/actions/refer-to-unhcr", json=body
        )

    async def set_faults(self, peer: str, rules: list[dict[str, Any]]) -> None:
        """Fault rules of ``peer``: ``primero``, ``dtp``, ``ping``, or ``unhcr`` (the gateway's)."""
        base = {"primero": self.primero, "dtp": getattr(self, "dtp", None),
                "ping": getattr(self, "ping", None), "unhcr": self.unhcr}[peer]
        if base is None:
            raise ValueError(f"no {peer} simulator in a {self.gateway} stack")
        await self.sim_call("PUT", f"{base.url}/_sim/faults", json=rules)

    # ----------------------------------------------------------------- PING's side (proGres users)

    async def ping_sim(self, method: str, path: str, **kwargs: Any) -> Any:
        """A ``/_sim/`` route of the PING simulator."""
        return await self.sim_call(method, f"{self.ping.url}/_sim/{path}", **kwargs)

    async def seed_ping(
        self,
        interventions: list[dict[str, Any]] | None = None,
        referrals: list[dict[str, Any]] | None = None,
    ) -> dict[str, list[str]]:
        """Add proGres rows; answers their ids (``interventions``, ``referrals``)."""
        body = {"interventions": interventions or [], "referrals": referrals or []}
        return await self.ping_sim("POST", "seed", json=body)

    async def progres_flags(self, lp_intervention_id: str) -> dict[str, Any]:
        """A proGres user queues (or re-queues) an LP intervention for Primero."""
        return await self.ping_sim("POST", f"interventions/{lp_intervention_id}/flag")

    async def progres_decides(
        self, referral_id: str, decision: str, **reason: Any
    ) -> dict[str, Any]:
        """A proGres user accepts or rejects an interoperability referral."""
        body = {"decision": decision, **reason}
        return await self.ping_sim("POST", f"referrals/{referral_id}/decide", json=body)

    async def ping_intervention(self, lp_intervention_id: str) -> dict[str, Any]:
        return await self.ping_sim("GET", f"interventions/{lp_intervention_id}")

    async def ping_referrals(self) -> list[dict[str, Any]]:
        return await self.ping_sim("GET", "referrals")

    async def ping_ingestions(self, endpoint: str | None = None) -> list[dict[str, Any]]:
        """Every ingestion PING received (``data`` or ``asyncdata``), with its body."""
        found = await self.ping_sim("GET", "ingestions")
        return [i for i in found if endpoint is None or i["endpoint"] == endpoint]

    async def set_ping_modes(self, **changes: Any) -> dict[str, Any]:
        """Change some of the PING simulator's modes, keeping the others."""
        modes = {**await self.ping_sim("GET", "modes"), **changes}
        return await self.ping_sim("PUT", "modes", json=modes)
