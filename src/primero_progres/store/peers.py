"""How each peer answered lately: last success, last failure and its class, failures in a row.

Recorded in the database, so every worker process contributes and the console shows the
same figures whichever process serves it. A success is written at most once every
``SUCCESS_EVERY`` seconds per process while nothing failed in between (a poll makes many
calls), so ``last_success_at`` may lag by that much.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from .database import Database
from .dialect import upsert_insert
from .schema import peer_status

SUCCESS_EVERY = 5.0


@dataclass(frozen=True)
class PeerStatus:
    peer: str
    last_success_at: datetime | None
    last_failure_at: datetime | None
    last_failure_class: str | None
    last_failure_reason: str | None
    consecutive_failures: int


class PeerLog:
    """``store.peers``."""

    def __init__(self, db: Database) -> None:
        self._db = db
        #: peer -> monotonic time of this process's last written success
        self._written: dict[str, float] = {}

    async def record(
        self, peer: str, *, failure_class: str | None = None, reason: str | None = None
    ) -> None:
        """A call to ``peer`` succeeded (``failure_class`` None) or failed."""
        if failure_class is None:
            last = self._written.get(peer)
            if last is not None and time.monotonic() - last < SUCCESS_EVERY:
                return
            self._written[peer] = time.monotonic()
            changes: dict[str, object] = {
                "last_success_at": self._db.now(),
                "consecutive_failures": 0,
            }
        else:
            self._written.pop(peer, None)
            changes = {
                "last_failure_at": self._db.now(),
                "last_failure_class": failure_class,
                "last_failure_reason": (reason or "")[:64] or None,
                "consecutive_failures": peer_status.c.consecutive_failures + 1,
            }
        async with self._db.engine.begin() as conn:
            updated = await conn.execute(
                sa.update(peer_status).where(peer_status.c.peer == peer).values(**changes)
            )
            if updated.rowcount == 0:
                first = {
                    k: (1 if k == "consecutive_failures" and failure_class else v)
                    for k, v in changes.items()
                }
                first.setdefault("consecutive_failures", 0)
                await conn.execute(
                    upsert_insert(conn, peer_status)
                    .values(peer=peer, **first)
                    .on_conflict_do_nothing(index_elements=["peer"])
                )

    async def all(self) -> list[PeerStatus]:
        async with self._db.engine.connect() as conn:
            rows = (await conn.execute(sa.select(peer_status).order_by(peer_status.c.peer))).all()
        return [
            PeerStatus(
                r.peer,
                r.last_success_at,
                r.last_failure_at,
                r.last_failure_class,
                r.last_failure_reason,
                r.consecutive_failures,
            )
            for r in rows
        ]
