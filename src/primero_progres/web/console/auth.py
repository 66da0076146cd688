"""Who is asking: the console's session cookie, roles and CSRF tokens.

The cookie carries a random session token, signed (itsdangerous) with a key derived from the
bridge's keyed fingerprint, HttpOnly, SameSite=Strict, ``Secure`` when the public URL is
https. The database holds only the token's SHA-256 (``store.accounts``), so a logout, a
disabled account, a new password or ``ADMIN_SESSION_IDLE_MINUTES`` without a request ends it.
Every form POST carries the session's CSRF token (the login form: a double-submit cookie).
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import quote

from fastapi import Request
from itsdangerous import BadSignature, Signer
from starlette.datastructures import FormData
from starlette.responses import Response

from ...settings import Settings
from ...store import Role, Store
from ...store.accounts import Session

SESSION_COOKIE = "pp_console"
LOGIN_COOKIE = "pp_console_login"
PATH = "/admin"


class LoginRequired(Exception):
    """No live session: the answer is a 303 to the login page."""

    def __init__(self, next_url: str) -> None:
        super().__init__("login required")
        self.next_url = next_url


class Forbidden(Exception):
    """The session's role may not do this, or the CSRF token is missing or wrong: 403."""


@dataclass(frozen=True)
class Operator:
    """The request's account, and what its forms need."""

    session: Session
    form: FormData | None = None

    @property
    def name(self) -> str:
        return self.session.account.name

    @property
    def role(self) -> Role:
        return self.session.account.role

    @property
    def csrf(self) -> str:
        return self.session.csrf_token

    def may(self, role: Role | str) -> bool:
        return self.role.allows(Role(role))


class Sessions:
    """Cookies in, sessions out."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self._store = store
        self._key: Signer | None = None
        self.idle = timedelta(minutes=settings.admin_session_idle_minutes)
        self.secure = bool(settings.public_url and settings.public_url.startswith("https://"))

    async def _signer(self) -> Signer:
        """Signs with a key derived from the store's fingerprint key (kept in the database,
        unchanged by an encryption-key rotation), so every process signs alike."""
        if self._key is None:
            secret = await self._store.fingerprint({"purpose": "operator-console-session"})
            self._key = Signer(secret, salt="pp-console")
        return self._key

    async def current(self, request: Request) -> Session | None:
        token = await self.token(request)
        if token is None:
            return None
        return await self._store.accounts.session(token, idle=self.idle)

    async def token(self, request: Request) -> str | None:
        raw = request.cookies.get(SESSION_COOKIE)
        if not raw:
            return None
        try:
            return (await self._signer()).unsign(raw).decode()
        except BadSignature:
            return None

    async def open(self, response: Response, token: str) -> None:
        signed = (await self._signer()).sign(token).decode()
        response.set_cookie(
            SESSION_COOKIE,
            signed,
            path=PATH,
            httponly=True,
            samesite="strict",
            secure=self.secure,
        )

    def close(self, response: Response) -> None:
        response.delete_cookie(
            SESSION_COOKIE, path=PATH, httponly=True, samesite="strict", secure=self.secure
        )

    def set_login_cookie(self, response: Response, token: str) -> None:
        """The login form's double-submit token (the same value is in its hidden field)."""
        response.set_cookie(
            LOGIN_COOKIE, token, path=PATH, httponly=True, samesite="strict", secure=self.secure
        )

    def clear_login_cookie(self, response: Response) -> None:
        response.delete_cookie(
            LOGIN_COOKIE, path=PATH, httponly=True, samesite="strict", secure=self.secure
        )

    @staticmethod
    def login_token_valid(request: Request, form: FormData) -> bool:
        return _same(request.cookies.get(LOGIN_COOKIE), form.get("csrf"))


def _same(expected: object, given: object) -> bool:
    if not isinstance(expected, str) or not isinstance(given, str) or not expected:
        return False
    return hmac.compare_digest(expected.encode(), given.encode())


def next_url(request: Request) -> str:
    target = request.url.path
    if request.url.query:
        target += "?" + request.url.query
    return quote(target, safe="/?=&-_.")


def viewer(
    sessions: Sessions, role: Role = Role.VIEWER
) -> Callable[[Request], Awaitable[Operator]]:
    """A dependency: the operator of a GET (303 to login without a session, 403 below ``role``)."""

    async def dependency(request: Request) -> Operator:
        session = await sessions.current(request)
        if session is None:
            raise LoginRequired(next_url(request))
        operator = Operator(session)
        if not operator.may(role):
            raise Forbidden()
        return operator

    return dependency


def actor(sessions: Sessions, role: Role) -> Callable[[Request], Awaitable[Operator]]:
    """A dependency for a form POST: a session (else 303 to login), ``role`` at least and the
    session's CSRF token in the form (else 403)."""

    async def dependency(request: Request) -> Operator:
        session = await sessions.current(request)
        if session is None:
            raise LoginRequired(PATH + "/")
        form = await request.form()
        if not _same(session.csrf_token, form.get("csrf")):
            raise Forbidden()
        operator = Operator(session, form)
        if not operator.may(role):
            raise Forbidden()
        return operator

    return dependency
