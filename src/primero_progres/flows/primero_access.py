"""What the flows need of the API user's role in Primero, checked before it can do harm.

Primero answers a search with only the cases the role's scope covers, without a word: under
the ``self`` scope flow 1 would not find a child's existing case and would create a second one,
and flow 3 would see no referral. The role is read from Primero (the API user's own record,
which needs the users permission when the bridge logs in with Basic auth) and kept a few
minutes per process; what is missing stops the step with a ``PrimeroAccessError`` that names
the permission, a dead letter an operator replays once the role is fixed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from ..errors import PermanentError
from ..peers.primero import ForbiddenError
from ..store import Flow
from .ports import PrimeroApi

#: the role field Primero renders with the API user (``_user.json.jbuilder``)
SCOPE_FIELD = "role_group_permission"
SELF_SCOPE = "self"

SCOPE_SELF = "primero_scope_self"
USERS_FORBIDDEN = "primero_users_forbidden"


class PrimeroAccessError(PermanentError):
    """The API user's role lacks a permission a flow needs; the message names it."""


def scope_too_narrow(flow: Flow) -> PrimeroAccessError:
    harm = {
        Flow.PROGRES_REFERRAL: "it would not find a child's existing case and would create "
        "a duplicate",
        Flow.PRIMERO_REFERRAL: "it would see no referral to UNHCR and send nothing",
    }.get(flow, "it would not see the cases it needs")
    return PrimeroAccessError(
        f"{flow.value}: the API user's role has the 'self' scope (group permission), so "
        f"{harm}: give the role the 'all' scope in Primero, then replay",
        reason=SCOPE_SELF,
    )


def users_forbidden(flow: Flow, need: str) -> PrimeroAccessError:
    return PrimeroAccessError(
        f"{flow.value}: the API user's role lacks the users permission ('index User', "
        f"Users > View): {need}; give the role that permission in Primero, then replay",
        reason=USERS_FORBIDDEN,
    )


class PrimeroRole:
    """The API user's role, read once per ``ttl`` seconds per process (a failure, or a scope
    that stops the flows, is not kept: a replay after the fix reads the role again)."""

    def __init__(self, ttl: float = 300.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self._clock = clock
        self._role: tuple[float, dict[str, Any]] | None = None
        self._lock = asyncio.Lock()

    async def get(self, primero: PrimeroApi) -> dict[str, Any]:
        """The API user's record with its role; ``ForbiddenError`` if it cannot be read."""
        async with self._lock:
            if self._role is None or self._clock() - self._role[0] > self.ttl:
                self._role = (self._clock(), await primero.own_user())
            return self._role[1]

    async def scope(self, primero: PrimeroApi) -> str | None:
        """The role's scope (group permission), ``""`` when Primero does not say; None when the
        role cannot be read because the API user lacks the users permission."""
        try:
            role = await self.get(primero)
        except ForbiddenError:
            return None
        scope = role.get(SCOPE_FIELD)
        if scope == SELF_SCOPE:
            self._role = None  # read again next time: the operator's fix counts at once
        return scope if isinstance(scope, str) else ""

    async def require_scope(self, primero: PrimeroApi, flow: Flow) -> None:
        """Stop ``flow`` unless the role is readable and its scope shows the cases it needs."""
        scope = await self.scope(primero)
        if scope is None:
            raise users_forbidden(
                flow,
                "the bridge reads its own role with it, to check the role's scope before it "
                "searches Primero",
            )
        if scope == SELF_SCOPE:
            raise scope_too_narrow(flow)
