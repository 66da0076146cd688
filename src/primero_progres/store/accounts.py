"""Operator accounts of the console, and their sessions.

Only a password's Argon2 hash is stored (hashing is the caller's: ``primero_progres.operators``),
and only the SHA-256 of a session token, so the database alone opens no account and no
session. Every change is audited with the account that made it.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from ..errors import InvalidInputError
from .audit import AuditLog
from .commands import AuditRecord
from .database import Database
from .schema import operator_accounts, operator_sessions
from .vocabulary import AuditEvent, Role

#: a session's last request is written at most this often (every request would be a write)
TOUCH_EVERY = timedelta(seconds=30)


class AccountError(InvalidInputError):
    """An account command that cannot be done (unknown name, name taken)."""


@dataclass(frozen=True)
class Account:
    name: str
    role: Role
    disabled: bool
    failed_logins: int
    locked_until: datetime | None
    created_at: datetime
    last_login_at: datetime | None
    password_hash: str = field(repr=False, default="")

    def locked(self, now: datetime) -> bool:
        return self.locked_until is not None and self.locked_until > now


@dataclass(frozen=True)
class Session:
    account: Account
    csrf_token: str
    created_at: datetime
    last_seen_at: datetime


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _account(row: Any) -> Account:
    return Account(
        name=row.name,
        role=Role(row.role),
        disabled=row.disabled,
        failed_logins=row.failed_logins,
        locked_until=row.locked_until,
        created_at=row.created_at,
        last_login_at=row.last_login_at,
        password_hash=row.password_hash,
    )


class Accounts:
    """``store.accounts``."""

    def __init__(self, db: Database, audit: AuditLog) -> None:
        self._db = db
        self._audit = audit

    async def get(self, name: str) -> Account | None:
        async with self._db.read() as conn:
            row = (
                await conn.execute(
                    sa.select(operator_accounts).where(operator_accounts.c.name == name)
                )
            ).first()
        return _account(row) if row else None

    async def list(self) -> list[Account]:
        query = sa.select(operator_accounts).order_by(operator_accounts.c.name)
        async with self._db.read() as conn:
            return [_account(r) for r in (await conn.execute(query)).all()]

    async def add(
        self, name: str, role: Role, password_hash: str, *, account: str | None
    ) -> Account:
        now = self._db.now()
        async with self._db.write() as conn:
            taken = await conn.scalar(
                sa.select(operator_accounts.c.name).where(operator_accounts.c.name == name)
            )
            if taken is not None:
                raise AccountError(f"an account named {name!r} exists", reason="account_exists")
            await conn.execute(
                sa.insert(operator_accounts).values(
                    name=name,
                    role=Role(role).value,
                    password_hash=password_hash,
                    disabled=False,
                    failed_logins=0,
                    created_at=now,
                    updated_at=now,
                )
            )
            await self._write(conn, AuditEvent.ACCOUNT_CREATED, name, account, role=str(role))
        created = await self.get(name)
        assert created is not None
        return created

    async def set_role(self, name: str, role: Role, *, account: str | None) -> None:
        async with self._db.write() as conn:
            previous = await self._existing(conn, name, operator_accounts.c.role)
            await self._update(conn, name, role=Role(role).value)
            await self._write(
                conn,
                AuditEvent.ACCOUNT_ROLE_CHANGED,
                name,
                account,
                role=str(role),
                previous_role=previous,
            )

    async def disable(self, name: str, *, account: str | None) -> None:
        """The account can no longer log in; its open sessions end now."""
        async with self._db.write() as conn:
            await self._existing(conn, name, operator_accounts.c.name)
            await self._update(conn, name, disabled=True)
            await conn.execute(
                sa.delete(operator_sessions).where(operator_sessions.c.account == name)
            )
            await self._write(conn, AuditEvent.ACCOUNT_DISABLED, name, account)

    async def set_password(self, name: str, password_hash: str, *, account: str | None) -> None:
        """A new password (and the account enabled and unlocked); open sessions end now."""
        async with self._db.write() as conn:
            await self._existing(conn, name, operator_accounts.c.name)
            await self._update(
                conn,
                name,
                password_hash=password_hash,
                disabled=False,
                failed_logins=0,
                locked_until=None,
            )
            await conn.execute(
                sa.delete(operator_sessions).where(operator_sessions.c.account == name)
            )
            await self._write(conn, AuditEvent.ACCOUNT_PASSWORD_RESET, name, account)

    # ------------------------------------------------------------------ logging in

    async def login_failed(self, name: str, *, max_failures: int, lock_for: timedelta) -> None:
        """Count a wrong password for an existing account; the ``max_failures``-th in a row
        locks it for ``lock_for``."""
        now = self._db.now()
        async with self._db.write() as conn:
            failures = await conn.scalar(
                sa.update(operator_accounts)
                .where(operator_accounts.c.name == name)
                .values(failed_logins=operator_accounts.c.failed_logins + 1)
                .returning(operator_accounts.c.failed_logins)
            )
            if failures is None:
                return
            await self._write(conn, AuditEvent.LOGIN_FAILED, name, None, count=failures)
            if failures >= max_failures:
                await self._update(conn, name, failed_logins=0, locked_until=now + lock_for)
                await self._write(conn, AuditEvent.ACCOUNT_LOCKED, name, None, count=failures)

    async def open_session(self, name: str) -> tuple[str, Session]:
        """A successful login: failures forgotten, a new session; its token (for the cookie)
        and the session."""
        now = self._db.now()
        token = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        async with self._db.write() as conn:
            await self._update(conn, name, failed_logins=0, locked_until=None, last_login_at=now)
            await conn.execute(
                sa.insert(operator_sessions).values(
                    token_hash=token_hash(token),
                    account=name,
                    csrf_token=csrf,
                    created_at=now,
                    last_seen_at=now,
                )
            )
            await self._write(conn, AuditEvent.LOGIN_SUCCEEDED, name, name)
        account = await self.get(name)
        assert account is not None
        return token, Session(account, csrf, now, now)

    async def session(self, token: str, *, idle: timedelta) -> Session | None:
        """The live session of ``token``: None if unknown, idle longer than ``idle`` (then it
        is ended), or its account is disabled."""
        now = self._db.now()
        key = token_hash(token)
        query = (
            sa.select(
                operator_sessions.c.csrf_token,
                operator_sessions.c.created_at.label("session_created_at"),
                operator_sessions.c.last_seen_at,
                operator_accounts,
            )
            .select_from(operator_sessions)
            .join(operator_accounts, operator_accounts.c.name == operator_sessions.c.account)
            .where(operator_sessions.c.token_hash == key)
        )
        async with self._db.read() as conn:
            row = (await conn.execute(query)).first()
        if row is None:
            return None
        if row.disabled or row.last_seen_at + idle < now:
            await self.close_session(token)
            return None
        seen = row.last_seen_at
        if now - seen >= TOUCH_EVERY:
            seen = now
            async with self._db.write() as conn:
                await conn.execute(
                    sa.update(operator_sessions)
                    .where(operator_sessions.c.token_hash == key)
                    .values(last_seen_at=now)
                )
        return Session(_account(row), row.csrf_token, row.session_created_at, seen)

    async def close_session(self, token: str, *, account: str | None = None) -> None:
        """End a session (logout, or idle); ``account``: audit it as a logout by them."""
        async with self._db.write() as conn:
            await conn.execute(
                sa.delete(operator_sessions).where(
                    operator_sessions.c.token_hash == token_hash(token)
                )
            )
            if account is not None:
                await self._write(conn, AuditEvent.LOGGED_OUT, account, account)

    # ------------------------------------------------------------------ helpers

    async def _existing(self, conn: AsyncConnection, name: str, column: Any) -> Any:
        value = await conn.scalar(sa.select(column).where(operator_accounts.c.name == name))
        if value is None:
            raise AccountError(f"no account named {name!r}", reason="unknown_account")
        return value

    async def _update(self, conn: AsyncConnection, name: str, **values: Any) -> None:
        await conn.execute(
            sa.update(operator_accounts)
            .where(operator_accounts.c.name == name)
            .values(updated_at=self._db.now(), **values)
        )

    async def _write(
        self,
        conn: AsyncConnection,
        event: AuditEvent,
        name: str,
        by: str | None,
        **ids: Any,
    ) -> None:
        record = AuditRecord(event, None, {"account": name, **ids}, by)
        await self._audit.write(conn, self._db.now(), record)
