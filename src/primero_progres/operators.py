"""Operator accounts, as the console and the ``admin`` commands share them: the rules for names
and passwords, Argon2 hashing, and logging in with the lockout.

The store keeps the accounts (``store.accounts``); this module is the only one that sees a
password, and only long enough to hash or verify it.
"""

from __future__ import annotations

import functools
import getpass
import re
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from .errors import InvalidInputError
from .store import Role, Store
from .store.accounts import Account, Session

MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024
MAX_FAILURES = 5
LOCK_FOR = timedelta(minutes=15)
#: letters, digits and ``. _ @ -``, starting with a letter or digit (an email address fits)
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{1,63}$")
#: the same words for an unknown account, a wrong password, a locked or disabled account:
#: the login form says nothing about which accounts exist
LOGIN_REFUSED = "Wrong account name or password (or the account is locked for a while)."

_hasher = PasswordHasher()


@functools.cache
def dummy_hash() -> str:
    """Verified against when the account does not exist, so both answers take as long.

    Made once, when first needed (the console makes it as it is built): an Argon2 hash takes
    64 MiB and a good part of a second, which a command that never logs anyone in (``poll``,
    ``repair``) must not pay on import.
    """
    return _hasher.hash("not a password of anyone")


class AccountRuleError(InvalidInputError):
    """A name, role or password an account cannot have."""


def check_name(name: str) -> str:
    if not NAME.match(name):
        raise AccountRuleError(
            "an account name is 2 to 64 letters, digits or . _ @ -, starting with a letter or "
            "digit",
            reason="bad_account_name",
        )
    return name


def check_role(role: str) -> Role:
    try:
        return Role(role)
    except ValueError:
        roles = ", ".join(r.value for r in Role)
        raise AccountRuleError(
            f"no role {role[:20]!r}: one of {roles}", reason="bad_role"
        ) from None


def hash_password(password: str) -> str:
    """The Argon2 hash of an acceptable password (``AccountRuleError`` for a weak one)."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountRuleError(
            f"the password is too short: at least {MIN_PASSWORD_LENGTH} characters",
            reason="weak_password",
        )
    if len(password) > MAX_PASSWORD_LENGTH:
        raise AccountRuleError("the password is too long", reason="weak_password")
    return _hasher.hash(password)


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


async def log_in(store: Store, name: str, password: str) -> tuple[str, Session] | None:
    """A new session (its token and the session) when ``name`` and ``password`` are right and
    the account is enabled and not locked; None otherwise, whatever the cause. Each wrong
    password of an existing account counts; the fifth in a row locks it for 15 minutes."""
    account: Account | None = await store.accounts.get(name) if NAME.match(name) else None
    if account is None:
        _verify(dummy_hash(), password)
        return None
    right = _verify(account.password_hash, password)
    if account.disabled or account.locked(store.now()):
        return None
    if not right:
        await store.accounts.login_failed(name, max_failures=MAX_FAILURES, lock_for=LOCK_FOR)
        return None
    return await store.accounts.open_session(name)


def command_line_account() -> str:
    """How an action taken with the command line is signed in the audit trail."""
    try:
        user = getpass.getuser()
    except Exception:
        user = "unknown"
    return f"cli:{user}"[:64]
