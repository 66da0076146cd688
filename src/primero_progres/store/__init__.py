"""The durable state: schema, migrations, job queue, ledger, cursors, leases, audit, crypto,
the store's own keys.

Nothing outside this package opens a connection or names a table: everything goes through
``Store`` and its parts, and a flow step's writes are typed commands (``step.py``).
"""

from .backup import BackupResult, BackupTargetExists, BackupUnsupported, backup_sqlite
from .commands import AuditRecord, Command, CursorMove, Enqueue, LedgerRecord
from .crypto import Cipher, PayloadUnreadable, generate_key
from .jobs import UnreadableJob
from .keys import FingerprintKeyUnreadable, KeyUsage, RotationResult
from .leases import LeaseBusy
from .messages import Receipt
from .models import (
    AuditEntry,
    DeadReason,
    EnqueueResult,
    Exchange,
    ExchangeEvent,
    InboundMessage,
    Job,
    JobState,
    PurgeResult,
)
from .step import FlowStore, Handler, StepBuffer, StepContext
from .store import Store
from .vocabulary import (
    AuditEvent,
    Flow,
    LedgerEvent,
    LedgerState,
    decision_key,
    flow_of,
    job_kind,
    poll_kind,
)

__all__ = [
    "AuditEntry",
    "AuditEvent",
    "AuditRecord",
    "BackupResult",
    "BackupTargetExists",
    "BackupUnsupported",
    "Cipher",
    "Command",
    "CursorMove",
    "DeadReason",
    "Enqueue",
    "EnqueueResult",
    "Exchange",
    "ExchangeEvent",
    "FingerprintKeyUnreadable",
    "Flow",
    "FlowStore",
    "Handler",
    "InboundMessage",
    "Job",
    "JobState",
    "KeyUsage",
    "LeaseBusy",
    "LedgerEvent",
    "LedgerRecord",
    "LedgerState",
    "PayloadUnreadable",
    "PurgeResult",
    "Receipt",
    "RotationResult",
    "StepBuffer",
    "StepContext",
    "Store",
    "UnreadableJob",
    "backup_sqlite",
    "decision_key",
    "flow_of",
    "generate_key",
    "job_kind",
    "poll_kind",
]
