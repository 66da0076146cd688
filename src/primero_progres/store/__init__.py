"""The durable state: schema, migrations, job queue, ledger, cursors, leases, crypto."""

from .crypto import Cipher, PayloadUnreadable, generate_key
from .messages import Receipt
from .models import (
    AuditEvent,
    DeadReason,
    EnqueueResult,
    Exchange,
    ExchangeEvent,
    InboundMessage,
    Job,
    JobState,
    PurgeResult,
)
from .store import Store

__all__ = [
    "AuditEvent",
    "Cipher",
    "DeadReason",
    "EnqueueResult",
    "Exchange",
    "ExchangeEvent",
    "InboundMessage",
    "Job",
    "JobState",
    "PayloadUnreadable",
    "PurgeResult",
    "Receipt",
    "Store",
    "generate_key",
]
