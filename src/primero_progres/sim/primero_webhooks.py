"""Primero's outbound webhooks in the simulator: the admin API and the fire-and-forget POSTs.

Read from ``primeroIMS/primero``: ``Api::V2::WebhooksController`` and its views (the API),
``Webhook`` (``webhooks_for``: ``events @> "case.update"``), ``Webhookable`` (after every
create and update of a case whose module lists ``case`` in ``use_webhooks_for``, a
``WebhookJob``), ``ApiConnector::WebhookConnector`` (the body, the audit entries) and
``ApiConnector::Connection`` (the auth headers).

What the real API does that a client must expect, reproduced here:

* ``webhook_params`` permits ``events`` as a scalar only: an array is dropped by strong
  parameters, and the webhook then fails validation (422 ``can't be blank`` on
  ``events``). One webhook therefore carries one event, e.g. ``"case.update"``;
* ``url`` is unique (409), a client ``id`` is ignored and answered with 204, no body;
* ``auth_type``/``auth_secret`` cannot be set through the API (``webhook_auth`` of the
  simulator's configuration stands for an administrator setting them in the database);
* the POST is sent once, never retried; its body is JSON, but Primero sets no content type:
  Ruby's ``Net::HTTP`` supplied ``application/x-www-form-urlencoded`` until net-http 0.7
  (Primero v2.14 and earlier), and sends none since (v2.15): ``webhook_content_type``.

Deliveries run on a small thread pool with their own blocking HTTP client, never on the
event loop that serves the API: an API answer never waits for a webhook, and a receiver
served in the same process (the bridge in a test) cannot deadlock with the simulator,
whichever thread or loop either runs in.
"""

from __future__ import annotations

import base64
import json
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx2 as httpx
import structlog

from .common import FaultInjector
from .primero_config import WebhookAction
from .primero_state import (
    API_ROLE_UNIQUE_ID,
    FAILED,
    SENDING,
    SENT,
    PrimeroState,
    SaveAction,
    SimError,
)

log = structlog.get_logger(__name__)

#: ``PERMITTED_CORE_FIELDS_SCHEMA`` less ``registry_record_id``: in every webhook body
WEBHOOK_CORE_FIELDS = frozenset(
    {
        "id",
        "status",
        "state",
        "case_status_reopened",
        "record_state",
        "incident_case_id",
        "family_id",
        "created_at",
        "source_case_display_id",
        "owned_by",
        "module_id",
    }
)
#: what ``webhooks_controller#webhook_params`` permits; the rest is dropped
_SCALAR_PARAMS = ("id", "events", "url", "role_unique_id")
#: the fault rule method that drops webhook POSTs (its ``path`` is a prefix of the URL)
DROP_METHOD = "WEBHOOK"
#: what Faraday (0.17, Primero up to v2.14) over ``Net::HTTP`` sends besides the body
WEBHOOK_HEADERS = {"User-Agent": "Faraday v0.17.6", "Accept": "*/*"}


def _blank(value: Any) -> bool:
    """Rails' ``blank?``: nil, false, whitespace-only strings, empty arrays and hashes."""
    if value is None or value is False:
        return True
    if isinstance(value, str):
        return not value.strip()
    return isinstance(value, list | dict) and not value


def _authorize(state: PrimeroState, user_name: str | None, *allowed: WebhookAction) -> None:
    """CanCan on ``Webhook``: ``manage`` allows everything, otherwise one of ``allowed``."""
    if user_name is None:
        return
    granted = set(state.config.webhook_permissions)
    if "manage" not in granted and not granted & set(allowed):
        raise SimError(403, "Forbidden")


def _render(webhook: dict[str, Any]) -> dict[str, Any]:
    """``_webhook.json.jbuilder``."""
    return {k: webhook[k] for k in ("id", "events", "url", "role_unique_id", "metadata")}


def list_webhooks(state: PrimeroState, user_name: str | None) -> dict[str, Any]:
    """``GET /api/v2/webhooks``: every webhook, unpaged, no metadata."""
    with state.lock:
        _authorize(state, user_name, "read")
        return {"data": [_render(w) for w in state.webhooks.values()]}


def _webhook(state: PrimeroState, webhook_id: str) -> dict[str, Any]:
    webhook = state.webhooks.get(webhook_id)
    if webhook is None:
        raise SimError(404, "Not Found", detail=f"Couldn't find Webhook with 'id'={webhook_id}")
    return webhook


def get_webhook(state: PrimeroState, webhook_id: str, user_name: str | None) -> dict[str, Any]:
    """``GET /api/v2/webhooks/:id`` (404 before 403, as ``load_webhook`` runs first)."""
    with state.lock:
        webhook = _webhook(state, webhook_id)
        _authorize(state, user_name, "read")
        return {"data": _render(webhook)}


def create_webhook(state: PrimeroState, data: Any, user_name: str | None) -> dict[str, Any] | None:
    """``POST /api/v2/webhooks``; None means 204 (the body named an ``id``, which is ignored).

    ``data`` is the body's ``data`` member, None when missing: checked after the permission,
    as ``params.require(:data)`` runs after ``authorize!``.
    """
    with state.lock:
        _authorize(state, user_name, "create")
        if not isinstance(data, dict):
            raise SimError(422, "param is missing or the value is empty: data")
        params = {
            k: data[k]
            for k in _SCALAR_PARAMS
            if k in data and (data[k] is None or isinstance(data[k], str | int | float | bool))
        }
        metadata = data.get("metadata")
        blank = [name for name in ("events", "url", "role_unique_id") if _blank(params.get(name))]
        if blank:  # ActiveRecord::RecordInvalid: one error per field
            raise SimError(
                422,
                ["can't be blank"],
                detail=blank[0],
                more=[(["can't be blank"], name) for name in blank[1:]],
            )
        if any(w["url"] == params["url"] for w in state.webhooks.values()):
            raise SimError(409, "Conflict: A record with this id already exists")
        webhook = {
            "id": str(uuid.uuid4()),
            "events": params["events"],
            "url": params["url"],
            "role_unique_id": params["role_unique_id"],
            "metadata": metadata if isinstance(metadata, dict) else {},
        }
        state.webhooks[webhook["id"]] = webhook
        return None if not _blank(data.get("id")) else {"data": _render(webhook)}


def delete_webhook(state: PrimeroState, webhook_id: str, user_name: str | None) -> dict[str, Any]:
    """``DELETE /api/v2/webhooks/:id``."""
    with state.lock:
        _webhook(state, webhook_id)
        _authorize(state, user_name, "write", "delete")
        del state.webhooks[webhook_id]
        return {"data": {"id": webhook_id}}


def _listens(webhook: dict[str, Any], event: str) -> bool:
    """``events @> '"case.update"'``: a scalar contains itself, an array its members."""
    events = webhook["events"]
    return events == event or (isinstance(events, list) and event in events)


def webhook_body(state: PrimeroState, case: dict[str, Any]) -> dict[str, Any]:
    """``WebhookConnector#post_params``: ids, hostname, and what the webhook's role may read."""
    data = {k: v for k, v in case.items() if k in WEBHOOK_CORE_FIELDS or state.access.can_read(k)}
    data["last_updated_at"] = case.get("last_updated_at")
    return {
        "data": {
            "record_id": case["id"],
            "record_type": "case",
            "hostname": state.config.hostname,
            **data,
        }
    }


class WebhookDispatcher:
    """Posts each case save to the matching webhooks, off the API's thread and loop."""

    def __init__(
        self,
        state: PrimeroState,
        faults: FaultInjector,
        *,
        timeout: float = 30.0,
        workers: int = 4,
    ) -> None:
        self.state = state
        self.faults = faults
        self.timeout = timeout
        self._workers = workers
        self._executor: ThreadPoolExecutor | None = None
        self._http: httpx.Client | None = None
        self._pending = 0
        self._idle = threading.Condition()

    def notify(self, record_id: str, action: SaveAction) -> None:
        """Queue a ``WebhookJob`` for this save; never blocks (called under the state lock)."""
        if not self.state.webhooks:  # the job would find none: spare the threads
            return
        with self._idle:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self._workers, "primero-sim-webhook")
                self._http = httpx.Client(
                    timeout=self.timeout, trust_env=False, follow_redirects=False
                )
            self._pending += 1
            self._executor.submit(self._job, record_id, action, self.state.generation)

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Whether every queued job finished within ``timeout`` (for in-process tests)."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    def close(self) -> None:
        """Drop the jobs not yet started (the simulator is stopping)."""
        with self._idle:
            executor, self._executor = self._executor, None
            http, self._http = self._http, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)
        if http is not None:
            http.close()

    def _job(self, record_id: str, action: SaveAction, generation: int) -> None:
        """``WebhookJob#perform``: the record as it is now, each webhook for the event."""
        try:
            for webhook, body, entry in self._prepare(record_id, action, generation):
                self._post(webhook, body, entry, record_id, action, generation)
        except Exception as exc:  # as WebhookJob: logged, never retried
            log.error("primero_sim_webhook_job_failed", error=type(exc).__name__)
        finally:
            with self._idle:
                self._pending -= 1
                self._idle.notify_all()

    def _prepare(
        self, record_id: str, action: SaveAction, generation: int
    ) -> list[tuple[dict[str, Any], dict[str, Any] | None, dict[str, Any]]]:
        state = self.state
        with state.lock:
            case = state.cases.get(record_id)
            if case is None or generation != state.generation:
                return []
            if not any(  # Webhookable#webhook_configured?
                module == case.get("module_id") and "case" in record_types
                for module, record_types in state.config.use_webhooks_for.items()
            ):
                return []
            prepared = []
            for webhook in state.webhooks.values():
                if not _listens(webhook, f"case.{action}"):
                    continue
                entry = state.record_audit(record_id, webhook["url"], SENDING)  # log_send
                known_role = webhook["role_unique_id"] == API_ROLE_UNIQUE_ID
                body = webhook_body(state, case) if known_role else None
                prepared.append((dict(webhook), body, entry))
            return prepared

    def _post(
        self,
        webhook: dict[str, Any],
        body: dict[str, Any] | None,
        entry: dict[str, Any],
        record_id: str,
        action: SaveAction,
        generation: int,
    ) -> None:
        url = str(webhook["url"])
        delivery: dict[str, Any] = {
            "webhook_id": webhook["id"],
            "url": url,
            "record_id": record_id,
            "event": f"case.{action}",
            "outcome": None,
            "status_code": None,
            "error": None,
        }
        if body is None:  # Role.find_by(unique_id:) is nil: post_params raises
            delivery.update(outcome="error", error="unknown_role")
        elif self._dropped(url):
            delivery["outcome"] = "dropped"
        else:
            self._send(url, body, delivery)
        with self.state.lock:
            if generation != self.state.generation:
                return
            if delivery["outcome"] in (SENT, FAILED):
                entry["webhook_status"] = delivery["outcome"]  # log_response
            delivery["at"] = self.state.clock.after(None)
            self.state.deliveries.append(delivery)
        # a delivery is a line per request: only the ones that went wrong are news
        (log.debug if delivery["outcome"] == SENT else log.info)(
            "primero_sim_webhook",
            outcome=delivery["outcome"],
            status_code=delivery["status_code"],
            webhook_id=webhook["id"],
        )

    def _dropped(self, url: str) -> bool:
        _latency, rule = self.faults.pick(DROP_METHOD, url)
        return rule is not None

    def _send(self, url: str, body: dict[str, Any], delivery: dict[str, Any]) -> None:
        http = self._http
        if http is None:  # closed meanwhile
            delivery.update(outcome="error", error="closed")
            return
        config = self.state.config
        auth = config.webhook_auth
        headers = dict(WEBHOOK_HEADERS)
        if config.webhook_content_type is not None:
            headers["Content-Type"] = config.webhook_content_type
        if auth.type == "api_key" and auth.secret:
            headers["x-api-key"] = auth.secret
        elif auth.type == "basic_auth" and auth.secret:
            parts = auth.secret.split(":")
            pair = f"{parts[0]}:{parts[1] if len(parts) > 1 else ''}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        content = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        try:
            response = http.post(url, content=content, headers=headers)
        except httpx.HTTPError as exc:  # Faraday raises: the log stays "sending"
            delivery.update(outcome="error", error=type(exc).__name__)
            return
        delivery["status_code"] = response.status_code
        delivery["outcome"] = SENT if response.status_code < 400 else FAILED
