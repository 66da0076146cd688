"""The writes a flow step asks for, as typed values the store applies in one transaction.

A step does its network calls outside any transaction and records what should be written
as commands; the store applies them together with "job done" (``store.jobs.commit_step``),
or outside a job (``store.apply``). Personal data is cut out when a command is built, so a
command never holds more than its row will.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .models import DeadReason
from .safe import safe_ids
from .schema import ID_COLUMNS
from .sizes import fit_id, fit_key
from .vocabulary import AuditEvent, Flow, LedgerEvent, LedgerState


@dataclass(frozen=True)
class Enqueue:
    """Add a job; a ``key`` already used (ever) makes this a no-op.

    With ``dead_reason`` the job is added as a dead letter (with its ``job.dead`` audit entry):
    work that must wait for an operator, who replays it once the cause is fixed.
    """

    kind: str
    payload: Mapping[str, Any] | None = None
    key: str | None = None
    refs: Mapping[str, Any] = field(default_factory=dict)
    delay: float = 0.0
    message_id: str | None = None
    dead_reason: DeadReason | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "refs", safe_ids(self.refs, what="job refs"))
        if self.key is not None:
            object.__setattr__(self, "key", fit_key(self.key))


@dataclass(frozen=True)
class LedgerRecord:
    """Upsert the exchange ``(flow, key)`` and append ``event`` (else ``state``) to its history."""

    flow: Flow
    key: str
    state: LedgerState
    event: LedgerEvent | None = None
    fingerprint: str | None = None
    direction: str | None = None
    #: ID columns of the exchange row (``progres_interventionnumber``, ``case_id``...)
    ids: Mapping[str, str] = field(default_factory=dict)
    #: allow-listed IDs and codes kept with the event
    detail: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = set(self.ids) - set(ID_COLUMNS)
        if unknown:
            raise ValueError(f"ledger: unknown ID column(s) {sorted(unknown)}")
        object.__setattr__(self, "key", fit_key(self.key))
        object.__setattr__(self, "ids", {name: fit_id(v) for name, v in self.ids.items()})
        object.__setattr__(self, "detail", safe_ids(self.detail, what="ledger event detail"))

    @classmethod
    def of(
        cls,
        flow: Flow,
        key: str,
        *,
        state: LedgerState,
        event: LedgerEvent | None = None,
        fingerprint: str | None = None,
        direction: str | None = None,
        detail: Mapping[str, Any] | None = None,
        **ids: object,
    ) -> LedgerRecord:
        """Keyword IDs that are ledger columns go on the row (None dropped), others in the
        event's detail."""
        columns = {k: str(v) for k, v in ids.items() if k in ID_COLUMNS and v is not None}
        extra = {k: v for k, v in ids.items() if k not in ID_COLUMNS}
        return cls(
            flow, key, state, event, fingerprint, direction, columns, {**extra, **(detail or {})}
        )


@dataclass(frozen=True)
class AuditRecord:
    event: AuditEvent
    flow: Flow | None = None
    ids: Mapping[str, Any] = field(default_factory=dict)
    #: the operator account that acted (None: the bridge itself)
    account: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "ids", safe_ids(self.ids, what="audit event"))


@dataclass(frozen=True)
class CursorMove:
    """Set a polling flow's watermark."""

    flow: Flow
    value: str


Command = Enqueue | LedgerRecord | AuditRecord | CursorMove
