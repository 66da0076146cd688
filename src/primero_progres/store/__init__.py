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
    AlertNotice,
    AlertState,
    AuditEntry,
    DeadLetterFilter,
    DeadReason,
    EnqueueResult,
    Exchange,
    ExchangeEvent,
    InboundMessage,
    Job,
    JobState,
    OutboxEntry,
    PeerOutcomes,
    PeerStatus,
    PurgeResult,
    WaitingJobs,
)
from .polls import BEGINNING, NoStartPoint, NotARewind, PollRun, PollStatus, parse_moment, watermark
from .step import FlowStore, Handler, StepBuffer, StepContext
from .store import Store
from .vocabulary import (
    AuditEvent,
    Flow,
    LedgerEvent,
    LedgerState,
    Role,
    decision_key,
    flow_of,
    job_kind,
    poll_kind,
)

__all__ = [
    "BEGINNING",
    "AlertNotice",
    "AlertState",
    "AuditEntry",
    "AuditEvent",
    "AuditRecord",
    "BackupResult",
    "BackupTargetExists",
    "BackupUnsupported",
    "Cipher",
    "Command",
    "CursorMove",
    "DeadLetterFilter",
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
    "NoStartPoint",
    "NotARewind",
    "OutboxEntry",
    "PayloadUnreadable",
    "PeerOutcomes",
    "PeerStatus",
    "PollRun",
    "PollStatus",
    "PurgeResult",
    "Receipt",
    "Role",
    "RotationResult",
    "StepBuffer",
    "StepContext",
    "Store",
    "UnreadableJob",
    "WaitingJobs",
    "backup_sqlite",
    "decision_key",
    "flow_of",
    "generate_key",
    "job_kind",
    "parse_moment",
    "poll_kind",
    "watermark",
]
