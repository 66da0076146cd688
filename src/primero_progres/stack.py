"""The whole system on loopback: both simulated peers and the bridge, wired as in production.

The demo runs it, and the end-to-end tests drive it. The simulators run in
their own threads; the bridge's inbox (uvicorn) runs in the caller's event
loop, and its worker is driven explicitly (``settle``) so that a test or the
demo decides when work happens and can wait for it to be finished.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import uvicorn

from . import demo_data, flows
from .alerts import Alerter
from .profiles import load_profile
from .settings import Settings
from .sim import dtp as dtp_sim
from .sim import primero as primero_sim
from .sim.common import ServerThread, free_port
from .sim.control import SimControl
from .sim.primero_config import PrimeroSimConfig, profile_users
from .store import Flow, Store
from .web import create_app
from .worker import Worker

#: fast retries so that transient faults resolve within a test or the demo
FAST_RETRY = {"retry_base_seconds": 0.05, "retry_cap_seconds": 0.4, "retry_max_attempts": 5}


class Stack:
    """Primero simulator + DTP simulator + the bridge, on free loopback ports."""

    def __init__(
        self,
        workdir: Path,
        *,
        database_url: str | None = None,
        worker_concurrency: int = 2,
        primero_options: dict[str, Any] | None = None,
        **settings: Any,
    ) -> None:
        self.workdir = workdir
        self.database_url = database_url or f"sqlite:///{workdir / 'bridge.db'}"
        self.worker_concurrency = worker_concurrency
        self.primero_options = primero_options or {}
        self.settings_overrides = settings
        self._tasks: list[asyncio.Task[Any]] = []

    async def __aenter__(self) -> Stack:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        # the Primero of the profile: its lookups hold the profile's codes, its users exist
        profile = load_profile(self.settings_overrides.get("profile", "gambella"))
        sim_options = {"config": PrimeroSimConfig.for_profile(profile), **self.primero_options}
        self.primero = ServerThread(
            primero_sim.create_app(
                users={demo_data.API_USER: demo_data.API_PASSWORD},
                seed={"users": [*profile_users(profile), *demo_data.PRIMERO_USERS]},
                **sim_options,
            )
        ).start()
        self.dtp = ServerThread(
            dtp_sim.create_app(subscription_key=demo_data.DTP_SUBSCRIPTION_KEY)
        ).start()
        self.bridge_port = free_port()
        self.bridge_url = f"http://127.0.0.1:{self.bridge_port}"
        options: dict[str, Any] = {
            "database_url": self.database_url,
            "inbox_tokens": demo_data.INBOX_TOKEN,
            "primero_url": self.primero.url,
            "primero_username": demo_data.API_USER,
            "primero_password": demo_data.API_PASSWORD,
            "primero_timeout_seconds": 2.0,
            "dtp_url": self.dtp.url,
            "dtp_subscription_key": demo_data.DTP_SUBSCRIPTION_KEY,
            "dtp_timeout_seconds": 2.0,
            "lease_seconds": 30.0,
            # alerts link to this bridge's own console
            "public_url": self.bridge_url,
            **FAST_RETRY,
            **self.settings_overrides,
        }
        self.settings = Settings.for_tests(**options)
        self.store = await Store.open(self.settings.database_url, encryption=self.settings.cipher())
        await self.store.upgrade()
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
        config = uvicorn.Config(
            create_app(self.settings, self.store),
            host="127.0.0.1",
            port=self.bridge_port,
            log_level="warning",
            access_log=False,
            lifespan="off",
        )
        self._bridge = uvicorn.Server(config)
        self._tasks.append(asyncio.create_task(self._bridge.serve()))
        while not self._bridge.started:
            await asyncio.sleep(0.01)
        self.control = SimControl(timeout=30.0)
        #: a plain HTTP client, to call the bridge as a peer would
        self.http = self.control.http
        await self.sim_call(
            "PUT",
            f"{self.dtp.url}/_sim/bridge",
            json={"inbox_url": self.inbox_url, "token": demo_data.INBOX_TOKEN},
        )

    async def stop(self) -> None:
        self._bridge.should_exit = True
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.control.aclose()
        await self.handlers.aclose()
        await self.store.close()
        self.dtp.stop()
        self.primero.stop()

    @property
    def inbox_url(self) -> str:
        return f"{self.bridge_url}/api/v1/dtp/messages"

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
        base = self.primero.url if peer == "primero" else self.dtp.url
        await self.sim_call("PUT", f"{base}/_sim/faults", json=rules)
