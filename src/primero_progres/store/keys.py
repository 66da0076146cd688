"""The store's own keys, and moving every stored payload onto the current encryption key.

Fingerprints (inbox duplicate detection, the job keys of flows 1 and 4, the ledger's content
fingerprint) must not change when the encryption key does, so their HMAC key is kept once in
``store_keys``, sealed under the encryption key like a payload: a rotation re-seals it and
leaves its value alone. A database with no message yet gets a random one; a database that
already holds messages keeps the key its fingerprints were made with (earlier versions derived
it from the encryption key current at the time: the ring key whose derivation gives a stored
message's fingerprint again, else the current key).

``rotate`` re-seals payloads in batches, each one short transaction over rows nobody else
holds (``FOR UPDATE SKIP LOCKED``, as a claim does; SQLite serialises writers anyway), and
replaces a token only while it is still the one read, so a worker finishing or purging the
same row wins and nothing is lost. It keeps no progress of its own: what is left is whatever
is not yet under the current key, so an interrupted rotation is simply run again.
"""

from __future__ import annotations

import asyncio
import base64
import os
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from ..errors import ConfigurationError
from .audit import AuditLog
from .commands import AuditRecord
from .crypto import PayloadUnreadable, fingerprint, key_id, token_prefix
from .database import Database
from .dialect import upsert_insert
from .schema import SEALED_TABLES, inbound_messages, store_keys
from .vocabulary import AuditEvent

FINGERPRINT = "fingerprint"
#: the newest stored messages tried when finding the key an existing deployment used
_SAMPLE = 20
DEFAULT_BATCH_SIZE = 100
#: passes over the tables at most (a pass skips rows other transactions hold at that moment)
_MAX_PASSES = 5


class FingerprintKeyUnreadable(ConfigurationError):
    """No key of the ring opens the stored fingerprint key: the key that sealed it was removed
    (put it back) or lost (``rotate-key --replace-lost-fingerprint-key``)."""


@dataclass(frozen=True)
class KeyUsage:
    """How many stored payloads each key of the ring seals, per table."""

    current: str
    #: every key of the ring
    key_ids: tuple[str, ...]
    #: table -> key id -> payloads sealed with it (every key of the ring, zeros included)
    by_table: dict[str, dict[str, int]]
    #: table -> payloads sealed with a key id the ring does not hold (unreadable)
    unknown: dict[str, int]
    #: until it is, the fingerprint key may still have to be derived from a retired key
    fingerprint_key_stored: bool

    def payloads(self, kid: str) -> int:
        return sum(counts.get(kid, 0) for counts in self.by_table.values())

    @property
    def retired(self) -> dict[str, int]:
        """Every key of the ring but the current one, with the payloads only it opens."""
        return {kid: self.payloads(kid) for kid in self.key_ids if kid != self.current}

    @property
    def removable(self) -> list[str]:
        """Retired keys no stored payload needs any more."""
        if not self.fingerprint_key_stored:
            return []
        return [kid for kid, count in self.retired.items() if count == 0]

    @property
    def done(self) -> bool:
        """No retired key is needed any more: nothing stored is readable only by one, and the
        fingerprint key is stored."""
        return self.fingerprint_key_stored and not any(self.retired.values())

    def as_json(self) -> dict[str, Any]:
        return {
            "current_key_id": self.current,
            "payloads_by_key_id": {t: dict(c) for t, c in self.by_table.items()},
            "payloads_with_unknown_key_id": dict(self.unknown),
            "retired_key_ids_in_use": {k: n for k, n in self.retired.items() if n},
            "removable_key_ids": self.removable,
            "fingerprint_key_stored": self.fingerprint_key_stored,
        }


@dataclass(frozen=True)
class RotationResult:
    #: table -> payloads re-sealed under the current key by this run
    resealed: dict[str, int]
    #: table -> payloads left as they are because no key of the ring opens them
    unreadable: dict[str, int]
    usage: KeyUsage

    def as_json(self) -> dict[str, Any]:
        return {"resealed": self.resealed, "unreadable": self.unreadable, **self.usage.as_json()}


class Keys:
    """``store.keys``: the fingerprint key, and re-sealing payloads under the current key."""

    def __init__(self, db: Database, audit: AuditLog) -> None:
        self._db = db
        self._audit = audit
        self._fingerprint_key: bytes | None = None
        self._loading = asyncio.Lock()

    # ------------------------------------------------------------------ fingerprints

    async def fingerprint(self, obj: object) -> str:
        """Keyed content hash: equal content, equal fingerprint, under every encryption key."""
        return fingerprint(await self.fingerprint_key(), obj)

    async def fingerprint_key(self) -> bytes:
        """The stored key (made on first use). Raises ``FingerprintKeyUnreadable``."""
        if self._fingerprint_key is None:
            async with self._loading:
                if self._fingerprint_key is None:
                    self._fingerprint_key = await self._load_or_create()
        return self._fingerprint_key

    async def _load_or_create(self) -> bytes:
        token = await self._stored()
        if token is None:
            key, derived_from = await self._first_fingerprint_key()
            now = self._db.now()
            async with self._db.write() as conn:
                row = {"payload": self._seal(key), "created_at": now, "updated_at": now}
                inserted = await conn.execute(
                    upsert_insert(conn, store_keys)
                    .values(name=FINGERPRINT, **row)
                    .on_conflict_do_nothing(index_elements=["name"])
                    .returning(store_keys.c.name)
                )
                if inserted.first() is not None:
                    ids = {"derived_from_key_id": derived_from}
                    record = AuditRecord(AuditEvent.FINGERPRINT_KEY_CREATED, None, ids)
                    await self._audit.write(conn, now, record)
            # another process may have stored its own first: everyone uses the one stored
            token = await self._stored()
            assert token is not None
        return self._open(token)

    async def _first_fingerprint_key(self) -> tuple[bytes, str | None]:
        """(key, the ring key it is derived from): random for a database with no message yet,
        else the derivation that reproduces the stored messages' fingerprints."""
        cipher = self._db.cipher
        async with self._db.read() as conn:
            any_message = await conn.scalar(sa.select(sa.exists().select_from(inbound_messages)))
            rows = (
                await conn.execute(
                    sa.select(
                        inbound_messages.c.id,
                        inbound_messages.c.fingerprint,
                        inbound_messages.c.payload,
                    )
                    .where(inbound_messages.c.payload.is_not(None))
                    .order_by(inbound_messages.c.received_at.desc())
                    .limit(_SAMPLE)
                )
            ).all()
        if not any_message:
            return os.urandom(32), None
        samples = []
        for row in rows:
            try:
                message = cipher.decrypt(row.payload, context=inbound_messages.name, row_id=row.id)
            except PayloadUnreadable:
                continue
            samples.append((message, row.fingerprint))
        for kid in cipher.key_ids:
            derived = cipher.derived_fingerprint_key(kid)
            if any(fingerprint(derived, message) == known for message, known in samples):
                return derived, kid
        return cipher.derived_fingerprint_key(cipher.current), cipher.current

    async def replace_lost_fingerprint_key(self) -> bool:
        """Store a new random fingerprint key, but only if no key of the ring opens the stored
        one (its key is lost): duplicate detection restarts from here. False if nothing was lost."""
        now = self._db.now()
        async with self._db.write() as conn:
            token = await conn.scalar(
                sa.select(store_keys.c.payload)
                .where(store_keys.c.name == FINGERPRINT)
                .with_for_update()
            )
            if token is None or self._opens(token):
                return False
            await conn.execute(
                sa.update(store_keys)
                .where(store_keys.c.name == FINGERPRINT)
                .values(payload=self._seal(os.urandom(32)), updated_at=now)
            )
            ids = {"lost_key_id": key_id(token)}
            await self._audit.write(
                conn, now, AuditRecord(AuditEvent.FINGERPRINT_KEY_REPLACED, None, ids)
            )
        self._fingerprint_key = None
        return True

    async def _stored(self) -> str | None:
        async with self._db.read() as conn:
            token: str | None = await conn.scalar(
                sa.select(store_keys.c.payload).where(store_keys.c.name == FINGERPRINT)
            )
        return token

    def _seal(self, key: bytes) -> str:
        value = {"key": base64.urlsafe_b64encode(key).decode("ascii")}
        return self._db.cipher.encrypt(value, context=store_keys.name, row_id=FINGERPRINT)

    def _open(self, token: str) -> bytes:
        try:
            value = self._db.cipher.decrypt(token, context=store_keys.name, row_id=FINGERPRINT)
        except PayloadUnreadable as exc:
            raise FingerprintKeyUnreadable(
                f"the fingerprint key in the database is sealed with key id {key_id(token)!r}, "
                "which PRIMERO_PROGRES_ENCRYPTION_KEY does not open: put that key back (after "
                "the current one); if it is lost, see 'fingerprint key' in docs/operate.md",
                reason="fingerprint_key_unreadable",
            ) from exc
        return base64.urlsafe_b64decode(value["key"])

    def _opens(self, token: str) -> bool:
        try:
            self._open(token)
        except FingerprintKeyUnreadable:
            return False
        return True

    # ------------------------------------------------------------------ rotation

    async def usage(self) -> KeyUsage:
        """Stored payloads per table and key id (one counting query per table)."""
        cipher = self._db.cipher
        by_table: dict[str, dict[str, int]] = {}
        unknown: dict[str, int] = {}
        async with self._db.read() as conn:
            for table in SEALED_TABLES:
                column = table.c.payload
                per_key = [_count_sealed_with(column, kid) for kid in cipher.key_ids]
                query = sa.select(sa.func.count(column), *per_key)
                total, *counts = (await conn.execute(query)).one()
                by_key = {kid: int(n) for kid, n in zip(cipher.key_ids, counts, strict=True)}
                by_table[table.name] = by_key
                unknown[table.name] = int(total) - sum(by_key.values())
        stored = await self._stored() is not None
        return KeyUsage(cipher.current, cipher.key_ids, by_table, unknown, stored)

    async def rotate(self, *, batch_size: int = DEFAULT_BATCH_SIZE) -> RotationResult:
        """Re-seal every payload not under the current key, ``batch_size`` rows a transaction.
        Raises ``FingerprintKeyUnreadable`` (and re-seals nothing) if the fingerprint key's
        encryption key is missing from the ring.

        Rows another transaction held are skipped by a pass, so passes repeat while one makes
        progress (a few at most); the last pass's unreadable rows are left as they are and
        reported, and ``usage`` says what, if anything, a retired key still seals.
        """
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        # settled first, while every key its derivation may need is still in the ring
        await self.fingerprint_key()
        names = [table.name for table in SEALED_TABLES]
        resealed = dict.fromkeys(names, 0)
        for _ in range(_MAX_PASSES):
            progress = 0
            unreadable = dict.fromkeys(names, 0)
            for table in SEALED_TABLES:
                after: str | None = None
                while True:
                    done, refused, after = await self._reseal_batch(table, after, batch_size)
                    resealed[table.name] += done
                    unreadable[table.name] += refused
                    progress += done
                    if after is None:
                        break
            if not progress:
                break
        if any(resealed.values()):
            await self._record_rotation(resealed)
        return RotationResult(resealed, unreadable, await self.usage())

    async def _reseal_batch(
        self, table: sa.Table, after: str | None, limit: int
    ) -> tuple[int, int, str | None]:
        """(re-sealed, unreadable, the last row id read or None at the end) for one batch."""
        cipher = self._db.cipher
        (row_key,) = table.primary_key.columns
        column = table.c.payload
        query = (
            sa.select(row_key, column)
            .where(
                column.is_not(None),
                ~column.startswith(token_prefix(cipher.current), autoescape=True),
            )
            .order_by(row_key)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        if after is not None:
            query = query.where(row_key > after)
        # the token read is the fence: a row finished or purged meanwhile is left alone
        update = (
            sa.update(table)
            .where(row_key == sa.bindparam("row_id"), column == sa.bindparam("token"))
            .values(payload=sa.bindparam("sealed"))
        )
        resealed = unreadable = 0
        async with self._db.write() as conn:
            rows = (await conn.execute(query)).all()
            changes = []
            for row_id, token in rows:
                try:
                    sealed = cipher.reseal(token, context=table.name, row_id=row_id)
                except PayloadUnreadable:
                    unreadable += 1
                    continue
                if sealed is not None:
                    changes.append({"row_id": row_id, "token": token, "sealed": sealed})
            if changes:
                resealed = (await conn.execute(update, changes)).rowcount
        last: str | None = rows[-1][0] if rows else None
        return resealed, unreadable, last

    async def _record_rotation(self, resealed: dict[str, int]) -> None:
        now = self._db.now()
        ids: dict[str, Any] = {"key_id": self._db.cipher.current}
        ids.update({f"{table}_count": count for table, count in resealed.items()})
        async with self._db.write() as conn:
            await self._audit.write(
                conn, now, AuditRecord(AuditEvent.PAYLOADS_RESEALED, None, ids)
            )


def _count_sealed_with(column: sa.Column[Any], kid: str) -> sa.ColumnElement[Any]:
    sealed = column.startswith(token_prefix(kid), autoescape=True)
    return sa.func.coalesce(sa.func.sum(sa.case((sealed, 1), else_=0)), 0)
