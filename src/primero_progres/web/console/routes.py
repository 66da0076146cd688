"""The console's pages and actions (see the package docstring)."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from pydantic import SecretStr
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ... import __version__, flows
from ...alerts.monitoring import certificate_expiry
from ...errors import BridgeError
from ...operators import (
    LOGIN_REFUSED,
    check_name,
    check_role,
    dummy_hash,
    hash_password,
    log_in,
)
from ...profiles import ProfileError, profile_sha256
from ...settings import SECRET_FIELDS, Settings, env_name
from ...store import AuditEvent, DeadLetterFilter, Flow, Role, Store, parse_moment
from .auth import (
    PATH,
    Forbidden,
    LoginRequired,
    Operator,
    Sessions,
    actor,
    viewer,
)

HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"
PAGE_SIZE = 50
MAX_REASON = 200
MASK = "••••"
#: what the notice codes of a redirect say (never free text from the request)
NOTICES = {
    "replayed": "Queued again: {count} job(s). The ledger drops what was already delivered.",
    "not_dead": "Nothing done: that job is not a dead letter (any more).",
    "discarded": "Discarded: the payload is deleted; the row and your reason are kept.",
    "missing_reason": "Give a reason (IDs and causes, no names).",
    "reason_too_long": f"The reason is longer than {MAX_REASON} characters.",
    "poll_queued": "Poll queued: the worker runs it within seconds.",
    "rewound": "Cursor moved back: the next poll re-reads from there.",
    "account_created": "Account created.",
    "role_changed": "Role changed.",
    "account_disabled": "Account disabled; its sessions have ended.",
    "password_reset": "Password set; the account's sessions have ended.",
    "not_a_polling_flow": "That is not a polling flow.",
}
#: store and rule refusals, by their reason code
ERRORS = {
    "no_start_point": "This flow has no start point yet: set PRIMERO_PROGRES_POLL_START_AT or "
    "run `primero-progres cursor set FLOW --to DATE-TIME` (see docs/cutover.md).",
    "not_a_rewind": "A rewind only moves the cursor back; to skip ahead, set a new start point "
    "with `primero-progres cursor set`.",
    "invalid_date_time": "Not a date-time: use 2026-11-30T08:00:00Z (UTC unless an offset is "
    "given).",
    "account_exists": "An account with that name exists.",
    "unknown_account": "No such account.",
    "bad_account_name": "An account name is 2 to 64 letters, digits or . _ @ -.",
    "bad_role": "The role is viewer, operator or admin.",
    "weak_password": "The password must have at least 12 characters.",
}
NAV = [
    ("/admin/", "Overview"),
    ("/admin/dead-letters", "Dead letters"),
    ("/admin/trace", "Trace"),
    ("/admin/messages", "Messages"),
    ("/admin/polls", "Polls"),
    ("/admin/audit", "Audit"),
    ("/admin/settings", "Settings"),
    ("/admin/accounts", "Accounts"),
]
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
    "img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def _when(value: datetime | None) -> str:
    if value is None:
        return "—"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _age(value: datetime | None, now: datetime) -> str:
    if value is None:
        return "—"
    seconds = int((now - value).total_seconds())
    if seconds < 0:
        return "in " + _duration(-seconds)
    return _duration(seconds)


def _duration(seconds: int) -> str:
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    if seconds < 172800:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} d"


def _day(text: str | None) -> datetime | None:
    """The start of a YYYY-MM-DD day (UTC), or None for an empty or malformed one."""
    if not text:
        return None
    try:
        return datetime.combine(date.fromisoformat(text), datetime.min.time(), tzinfo=UTC)
    except ValueError:
        return None


def _until(text: str | None) -> datetime | None:
    """The end of a YYYY-MM-DD day given as "to" (the next day's start), or None."""
    day = _day(text)
    return day + timedelta(days=1) if day else None


def _paged(name: str, rows: Sequence[Any], page: int) -> dict[str, Any]:
    """A page's rows (fetched one over ``PAGE_SIZE``, to know whether more follow)."""
    return {name: rows[:PAGE_SIZE], "more": len(rows) > PAGE_SIZE, "page": page}


def _filtered(params: Mapping[str, str], keys: Sequence[str]) -> dict[str, Any]:
    """A list's filter: the form's values, and the query string that keeps them on paging."""
    return {
        "filter": {k: params.get(k, "") for k in keys},
        "filter_query": urlencode({k: params[k] for k in keys if params.get(k)}),
    }


def _page(value: str | None) -> int:
    try:
        return max(1, int(value or 1))
    except ValueError:
        return 1


def _back(value: object, default: str) -> str:
    """A redirect target inside the console only."""
    if isinstance(value, str) and value.startswith(PATH + "/") and "//" not in value:
        return value
    return default


def _redirect(target: str, **params: object) -> RedirectResponse:
    shown = {k: str(v) for k, v in params.items() if v is not None}
    if shown:
        target += ("&" if "?" in target else "?") + urlencode(shown)
    return RedirectResponse(target, status_code=303)


async def _done(
    back: str, notice: str, action: Callable[[], Awaitable[object]]
) -> RedirectResponse:
    """Run an operator's action: 303 back with ``notice``, or with the refusal's reason code
    (a rule or store refusal: no start point, not a rewind, a weak password...)."""
    try:
        await action()
    except BridgeError as exc:
        return _redirect(back, error=exc.reason)
    return _redirect(back, notice=notice)


def _text(form: Any, name: str) -> str:
    value = form.get(name) if form is not None else None
    return " ".join(value.split()) if isinstance(value, str) else ""


def _reason(form: Any, *, required: bool) -> tuple[str | None, str | None]:
    """(reason, error code)."""
    reason = _text(form, "reason")
    if required and not reason:
        return None, "missing_reason"
    if len(reason) > MAX_REASON:
        return None, "reason_too_long"
    return reason or None, None


def _setting_rows(settings: Settings) -> list[tuple[str, str]]:
    rows = []
    for name in Settings.model_fields:
        value = getattr(settings, name)
        if (
            name in SECRET_FIELDS
            or isinstance(value, SecretStr)
            or (isinstance(value, list) and not value)
            or (isinstance(value, list) and any(isinstance(v, SecretStr) for v in value))
        ):
            shown = MASK if value not in (None, "", []) else "not set"
        elif value is None:
            shown = "—"
        else:
            shown = str(value)
        rows.append((env_name(name), shown))
    return rows


def build_console(settings: Settings, store: Store) -> APIRouter:
    """The ``/admin`` router (and, through ``install``, its error handlers)."""
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.filters["when"] = _when
    sessions = Sessions(settings, store)
    triggers = flows.poll_triggers(settings)
    start_points = flows.start_points(settings)
    polling = {flow.value for flow in triggers}
    router = APIRouter(prefix=PATH, include_in_schema=False)
    can_view = Depends(viewer(sessions))
    can_administer = Depends(viewer(sessions, Role.ADMIN))
    can_act = Depends(actor(sessions, Role.OPERATOR))
    can_manage = Depends(actor(sessions, Role.ADMIN))
    any_session = Depends(actor(sessions, Role.VIEWER))

    def render(
        request: Request,
        template: str,
        operator: Operator | None,
        status_code: int = 200,
        **context: Any,
    ) -> HTMLResponse:
        notice = request.query_params.get("notice")
        error = request.query_params.get("error")
        count = request.query_params.get("count", "")
        now = store.now()
        response = templates.TemplateResponse(
            request,
            template,
            {
                "operator": operator,
                "nav": NAV,
                "path": request.url.path,
                "here": str(request.url.path)
                + ("?" + request.url.query if request.url.query else ""),
                "notice": NOTICES[notice].format(count=count[:8]) if notice in NOTICES else None,
                "error": ERRORS.get(error or "") or NOTICES.get(error or ""),
                "now": now,
                "age": lambda value: _age(value, now),
                "version": __version__,
                **context,
            },
            status_code=status_code,
        )
        return response

    # ------------------------------------------------------------------ login, logout

    def login_form(request: Request, error: str | None, status: int) -> Response:
        csrf = secrets.token_urlsafe(32)
        response = render(
            request,
            "login.html",
            None,
            status_code=status,
            csrf=csrf,
            login_error=error,
            next=_back(request.query_params.get("next"), PATH + "/"),
        )
        sessions.set_login_cookie(response, csrf)
        return response

    @router.get("/login")
    async def login_page(request: Request) -> Response:
        if await sessions.current(request) is not None:
            return RedirectResponse(PATH + "/", status_code=303)
        return login_form(request, None, 200)

    @router.post("/login")
    async def login(request: Request) -> Response:
        form = await request.form()
        if not sessions.login_token_valid(request, form):
            raise Forbidden()
        password = form.get("password")
        opened = await log_in(
            store, _text(form, "name"), password if isinstance(password, str) else ""
        )
        if opened is None:
            return login_form(request, LOGIN_REFUSED, 401)
        token, _session = opened
        response = RedirectResponse(_back(form.get("next"), PATH + "/"), status_code=303)
        await sessions.open(response, token)
        sessions.clear_login_cookie(response)
        return response

    @router.post("/logout")
    async def logout(request: Request, operator: Operator = any_session) -> Response:
        token = await sessions.token(request)
        if token is not None:
            await store.accounts.close_session(token, account=operator.name)
        response = RedirectResponse(PATH + "/login", status_code=303)
        sessions.close(response)
        return response

    # ------------------------------------------------------------------ overview

    async def overview_context() -> dict[str, Any]:
        peers = {p.peer: p for p in await store.peers.all()}
        shown = ["primero", "ping" if settings.unhcr_gateway == "ping" else "dtp"]
        return {
            "figures": await store.reports.overview(),
            "peers": [(name, peers.get(name)) for name in shown],
            "polls": await store.polls.status(triggers, start_points=start_points),
        }

    @router.get("/")
    async def overview(request: Request, operator: Operator = can_view) -> Response:
        return render(request, "overview.html", operator, **await overview_context())

    @router.get("/fragments/overview")
    async def overview_fragment(request: Request, operator: Operator = can_view) -> Response:
        return render(request, "_overview.html", operator, **await overview_context())

    # ------------------------------------------------------------------ dead letters

    def dead_filter(params: Mapping[str, Any]) -> DeadLetterFilter:
        flow = params.get("flow") or None
        return DeadLetterFilter(
            flow=flow if flow in {f.value for f in Flow} else None,
            reason=(params.get("reason") or None),
            since=_day(params.get("since")),
            until=_until(params.get("until")),
        )

    @router.get("/dead-letters")
    async def dead_letters(request: Request, operator: Operator = can_view) -> Response:
        params = request.query_params
        page = _page(params.get("page"))
        where = dead_filter(params)
        rows = await store.jobs.dead_letters(
            where, limit=PAGE_SIZE + 1, offset=(page - 1) * PAGE_SIZE
        )
        return render(
            request,
            "dead_letters.html",
            operator,
            flows=[f.value for f in Flow],
            reasons=await store.jobs.dead_reasons(),
            **_paged("jobs", rows, page),
            **_filtered(params, ("flow", "reason", "since", "until")),
        )

    @router.post("/dead-letters/replay")
    async def replay(operator: Operator = can_act) -> Response:
        back = _back(operator.form and operator.form.get("back"), PATH + "/dead-letters")
        note, problem = _reason(operator.form, required=False)
        if problem:
            return _redirect(back, error=problem)
        job_id = _text(operator.form, "job_id")
        done = await store.jobs.replay(job_id, account=operator.name, reason=note)
        return _redirect(
            back,
            notice="replayed" if done else None,
            count=1 if done else None,
            error=None if done else "not_dead",
        )

    @router.post("/dead-letters/replay-all")
    async def replay_all(operator: Operator = can_act) -> Response:
        back = _back(operator.form and operator.form.get("back"), PATH + "/dead-letters")
        note, problem = _reason(operator.form, required=False)
        if problem:
            return _redirect(back, error=problem)
        where = dead_filter(operator.form or {})
        ids = await store.jobs.replay_matching(where, account=operator.name, reason=note)
        return _redirect(back, notice="replayed", count=len(ids))

    @router.post("/dead-letters/discard")
    async def discard(operator: Operator = can_act) -> Response:
        back = _back(operator.form and operator.form.get("back"), PATH + "/dead-letters")
        reason, problem = _reason(operator.form, required=True)
        if problem or reason is None:
            return _redirect(back, error=problem or "missing_reason")
        job_id = _text(operator.form, "job_id")
        done = await store.jobs.discard(job_id, account=operator.name, reason=reason)
        return _redirect(
            back, notice="discarded" if done else None, error=None if done else "not_dead"
        )

    # ------------------------------------------------------------------ trace, messages

    @router.get("/trace")
    async def trace(request: Request, operator: Operator = can_view) -> Response:
        query = request.query_params.get("q", "")[:200]
        found = await store.reports.trace(query) if query.strip() else None
        return render(request, "trace.html", operator, q=query, trace=found)

    @router.get("/messages")
    async def messages(request: Request, operator: Operator = can_view) -> Response:
        page = _page(request.query_params.get("page"))
        rows = await store.reports.messages(limit=PAGE_SIZE + 1, offset=(page - 1) * PAGE_SIZE)
        return render(
            request,
            "messages.html",
            operator,
            **_paged("messages", rows, page),
        )

    # ------------------------------------------------------------------ polls

    @router.get("/polls")
    async def polls(request: Request, operator: Operator = can_view) -> Response:
        statuses = await store.polls.status(triggers, start_points=start_points)
        runs = {status.flow: await store.polls.runs(Flow(status.flow)) for status in statuses}
        return render(
            request,
            "polls.html",
            operator,
            statuses=statuses,
            runs=runs,
        )

    async def on_polling_flow(
        flow: str,
        operator: Operator,
        notice: str,
        action: Callable[[Flow, str | None], Awaitable[object]],
    ) -> RedirectResponse:
        back = PATH + "/polls"
        if flow not in polling:
            return _redirect(back, error="not_a_polling_flow")
        note, problem = _reason(operator.form, required=False)
        if problem:
            return _redirect(back, error=problem)
        return await _done(back, notice, lambda: action(Flow(flow), note))

    @router.post("/polls/{flow}/poll-now")
    async def poll_now(flow: str, operator: Operator = can_act) -> Response:
        return await on_polling_flow(
            flow,
            operator,
            "poll_queued",
            lambda chosen, note: store.polls.run_now(
                chosen,
                start_at=flows.start_at(settings, chosen),
                account=operator.name,
                reason=note,
            ),
        )

    @router.post("/polls/{flow}/rewind")
    async def rewind(flow: str, operator: Operator = can_act) -> Response:
        async def move(chosen: Flow, note: str | None) -> object:
            moment = parse_moment(_text(operator.form, "to"))
            return await store.polls.rewind(chosen, moment, account=operator.name, reason=note)

        return await on_polling_flow(flow, operator, "rewound", move)

    # ------------------------------------------------------------------ audit, settings

    @router.get("/audit")
    async def audit(request: Request, operator: Operator = can_view) -> Response:
        params = request.query_params
        page = _page(params.get("page"))
        entries = await store.audit.list(
            event=params.get("event") or None,
            account=params.get("account") or None,
            since=_day(params.get("since")),
            until=_until(params.get("until")),
            limit=PAGE_SIZE + 1,
            offset=(page - 1) * PAGE_SIZE,
        )
        return render(
            request,
            "audit.html",
            operator,
            events=[e.value for e in AuditEvent],
            **_paged("entries", entries, page),
            **_filtered(params, ("event", "account", "since", "until")),
        )

    @router.get("/settings")
    async def settings_page(request: Request, operator: Operator = can_view) -> Response:
        try:
            digest = profile_sha256(settings.profile)
        except (ProfileError, OSError):
            digest = "unreadable"
        return render(
            request,
            "settings.html",
            operator,
            rows=_setting_rows(settings),
            profile=settings.profile,
            profile_sha256=digest,
            revision=await store.revision(),
            head=Store.head(),
            # what the certificate-expiry alert reads
            certificate_expires=certificate_expiry(settings),
            unhcr_gateway=settings.unhcr_gateway,
        )

    # ------------------------------------------------------------------ accounts

    @router.get("/accounts")
    async def accounts(request: Request, operator: Operator = can_administer) -> Response:
        return render(
            request,
            "accounts.html",
            operator,
            accounts=await store.accounts.list(),
            roles=[r.value for r in Role],
        )

    def password(operator: Operator) -> str:
        value = operator.form.get("password") if operator.form else None
        return hash_password(value if isinstance(value, str) else "")

    @router.post("/accounts")
    async def add_account(operator: Operator = can_manage) -> Response:
        async def add() -> None:
            name = check_name(_text(operator.form, "name"))
            role = check_role(_text(operator.form, "role"))
            await store.accounts.add(name, role, password(operator), account=operator.name)

        return await _done(PATH + "/accounts", "account_created", add)

    @router.post("/accounts/{name}/role")
    async def change_role(name: str, operator: Operator = can_manage) -> Response:
        async def change() -> None:
            role = check_role(_text(operator.form, "role"))
            await store.accounts.set_role(name, role, account=operator.name)

        return await _done(PATH + "/accounts", "role_changed", change)

    @router.post("/accounts/{name}/disable")
    async def disable_account(name: str, operator: Operator = can_manage) -> Response:
        return await _done(
            PATH + "/accounts",
            "account_disabled",
            lambda: store.accounts.disable(name, account=operator.name),
        )

    @router.post("/accounts/{name}/password")
    async def reset_password(name: str, operator: Operator = can_manage) -> Response:
        async def reset() -> None:
            await store.accounts.set_password(name, password(operator), account=operator.name)

        return await _done(PATH + "/accounts", "password_reset", reset)

    # ------------------------------------------------------------------ assets

    assets = {p.name: p for p in STATIC.iterdir() if p.is_file()}

    @router.get("/static/{name}")
    async def static(name: str) -> Response:
        path = assets.get(name)
        if path is None:
            return Response(status_code=404)
        kind = {
            ".js": "text/javascript",
            ".css": "text/css",
        }.get(path.suffix, "text/plain")
        return FileResponse(path, media_type=kind, headers={"Cache-Control": "max-age=3600"})

    return router


def install(app: FastAPI, settings: Settings, store: Store) -> None:
    """Mount the console on ``app``: its routes, error answers and security headers."""
    # now, so that the first login to an unknown account takes as long as the next ones
    dummy_hash()
    app.include_router(build_console(settings, store))

    @app.get(PATH, include_in_schema=False)
    async def console_root() -> Response:
        return RedirectResponse(PATH + "/", status_code=303)

    @app.exception_handler(LoginRequired)
    async def login_required(_request: Request, exc: LoginRequired) -> Response:
        return RedirectResponse(f"{PATH}/login?{urlencode({'next': exc.next_url})}", 303)

    @app.exception_handler(Forbidden)
    async def forbidden(_request: Request, _exc: Forbidden) -> Response:
        return HTMLResponse(
            "<!doctype html><title>Forbidden</title><h1>403 Forbidden</h1>"
            '<p>Your account may not do this, or the form has expired. <a href="/admin/">Back'
            "</a></p>",
            status_code=403,
        )

    app.add_middleware(SecurityHeaders)


#: ``SECURITY_HEADERS`` as ASGI header pairs, with their lowercase names
_SECURITY_PAIRS = tuple(
    (name.lower().encode("latin-1"), value.encode("latin-1"))
    for name, value in SECURITY_HEADERS.items()
)


class SecurityHeaders:
    """Adds ``SECURITY_HEADERS`` to every console answer, unless the page set its own.

    Plain ASGI, not ``@app.middleware``: starlette's ``BaseHTTPMiddleware`` runs every request
    (the inbox's too) in a task group with memory streams, which cost the inbox more CPU than
    its own handler."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if path != PATH and not path.startswith(PATH + "/"):
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                present = {name.lower() for name, _value in headers}
                headers.extend(pair for pair in _SECURITY_PAIRS if pair[0] not in present)
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
