"""Authentication of the Primero simulator: Basic auth, JWT-era token login, lockout, throttle.

Follows PRIMERO-API.md §1: Devise 401s are ``{"error": ...}`` with
``WWW-Authenticate: Bearer realm="Primero" charset="UTF8"``, six failed attempts
lock the account, more than six ``POST /api/v2/tokens`` a minute per user get 429.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field

WWW_AUTHENTICATE = 'Bearer realm="Primero" charset="UTF8"'
INVALID_CREDENTIALS = "Invalid User name or password."
NOT_SIGNED_IN = "You need to sign in or sign up before continuing."
ACCOUNT_LOCKED = "Your account is locked."
MAX_FAILED_ATTEMPTS = 6
LOCK_SECONDS = 30 * 60
TOKEN_SECONDS = 60 * 60
TOKEN_LOGINS_PER_MINUTE = 6


class AuthFailure(Exception):
    """A Devise/Warden failure: answered as 401 ``{"error": message}``."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Throttled(Exception):
    """Rack::Attack refused a token login."""


@dataclass
class _Account:
    password: str
    failed_attempts: int = 0
    locked_until: float = 0.0
    logins: deque[float] = field(default_factory=deque)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Authenticator:
    """Holds API users' passwords and issued tokens; thread-safe."""

    def __init__(self, users: dict[str, str], *, token_login: bool = True) -> None:
        self.token_login = token_login
        self._initial = dict(users)
        self._accounts = {name: _Account(password) for name, password in users.items()}
        self._tokens: dict[str, float] = {}  # jti -> expiry (monotonic)
        self._secret = secrets.token_bytes(32)
        self._lock = threading.Lock()

    def add_user(self, user_name: str, password: str) -> None:
        with self._lock:
            self._accounts[user_name] = _Account(password)

    def reset(self) -> None:
        """Back to the API users given at start: no lockouts, tokens or seeded logins."""
        with self._lock:
            self._accounts = {name: _Account(password) for name, password in self._initial.items()}
            self._tokens.clear()

    def expire_tokens(self) -> None:
        """Make every issued token invalid, as if an hour had passed."""
        with self._lock:
            self._tokens.clear()

    def check_password(self, user_name: str, password: str) -> None:
        now = time.monotonic()
        with self._lock:
            account = self._accounts.get(user_name)
            if account is None:
                raise AuthFailure(INVALID_CREDENTIALS)
            if account.locked_until > now:
                raise AuthFailure(ACCOUNT_LOCKED)
            if not hmac.compare_digest(account.password.encode(), password.encode()):
                account.failed_attempts += 1
                if account.failed_attempts >= MAX_FAILED_ATTEMPTS:
                    account.locked_until = now + LOCK_SECONDS
                    account.failed_attempts = 0
                raise AuthFailure(INVALID_CREDENTIALS)
            account.failed_attempts = 0

    def throttle_login(self, user_name: str) -> None:
        now = time.monotonic()
        with self._lock:
            account = self._accounts.get(user_name)
            if account is None:
                return
            while account.logins and account.logins[0] < now - 60:
                account.logins.popleft()
            account.logins.append(now)
            if len(account.logins) > TOKEN_LOGINS_PER_MINUTE:
                raise Throttled()

    def issue_token(self, user_name: str) -> str:
        """A HS256 JWT valid for one hour (devise-jwt, v2.0 to v2.10)."""
        jti = secrets.token_hex(16)
        expiry = int(time.time()) + TOKEN_SECONDS
        header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
        payload = _b64(
            json.dumps(
                {"sub": user_name, "jti": jti, "exp": expiry}, separators=(",", ":")
            ).encode()
        )
        signature = _b64(
            hmac.new(self._secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
        )
        with self._lock:
            self._tokens[jti] = time.monotonic() + TOKEN_SECONDS
        return f"{header}.{payload}.{signature}"

    def user_for_token(self, token: str) -> str:
        try:
            header, payload, signature = token.split(".")
            expected = _b64(
                hmac.new(self._secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
            )
            if not hmac.compare_digest(expected, signature):
                raise AuthFailure(NOT_SIGNED_IN)
            claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        except (ValueError, binascii.Error) as exc:
            raise AuthFailure(NOT_SIGNED_IN) from exc
        with self._lock:
            expiry = self._tokens.get(str(claims.get("jti")))
            if expiry is None or expiry < time.monotonic():
                raise AuthFailure(NOT_SIGNED_IN)
        return str(claims["sub"])

    def revoke(self, token: str) -> None:
        try:
            payload = token.split(".")[1]
            claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        except (ValueError, IndexError, binascii.Error):
            return
        with self._lock:
            self._tokens.pop(str(claims.get("jti")), None)

    def authenticate(self, authorization: str | None) -> str:
        """The user name behind an ``Authorization`` header, or AuthFailure."""
        if not authorization:
            raise AuthFailure(NOT_SIGNED_IN)
        scheme, _, credentials = authorization.partition(" ")
        if scheme.lower() == "basic":
            try:
                decoded = base64.b64decode(credentials, validate=True).decode()
            except (ValueError, binascii.Error) as exc:
                raise AuthFailure(INVALID_CREDENTIALS) from exc
            user_name, _, password = decoded.partition(":")
            self.check_password(user_name, password)
            return user_name
        if scheme.lower() == "bearer" and self.token_login:
            return self.user_for_token(credentials.strip())
        raise AuthFailure(NOT_SIGNED_IN)
