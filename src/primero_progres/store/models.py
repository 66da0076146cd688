"""Plain records the store hands out. They carry IDs and statuses, never payloads in clear,
except ``Job.payload`` which the worker decrypts for the handler."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from ..errors import FailureClass


class JobState(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    DEAD = "dead"
    #: a dead letter an operator gave up on: payload purged, row and reason kept
    DISCARDED = "discarded"


UNFINISHED = (JobState.PENDING, JobState.RUNNING)


@dataclass(frozen=True)
class DeadReason:
    """Why a job was dead-lettered: failure class, machine code, and a safe message."""

    failure_class: FailureClass
    reason: str
    message: str

    @classmethod
    def from_json(cls, value: dict[str, str]) -> DeadReason:
        return cls(FailureClass(value["failure_class"]), value["reason"], value["message"])

    def as_json(self) -> dict[str, str]:
        return {
            "failure_class": self.failure_class.value,
            "reason": self.reason,
            "message": self.message,
        }


@dataclass(frozen=True)
class Job:
    id: str
    kind: str
    key: str | None
    state: JobState
    attempts: int
    next_attempt_at: datetime
    lease_owner: str | None
    lease_expires_at: datetime | None
    dead_reason: DeadReason | None
    message_id: str | None
    refs: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    has_payload: bool
    payload: dict[str, Any] | None = field(default=None, repr=False)
    #: the job whose step queued this one
    parent_id: str | None = None
    #: when an attempt first failed
    first_failed_at: datetime | None = None

    @property
    def flow(self) -> str:
        return self.kind.partition(".")[0]

    @property
    def step(self) -> str:
        return self.kind.partition(".")[2]


@dataclass(frozen=True)
class DeadLetterFilter:
    """Which dead letters an operator looks at, or replays all at once."""

    flow: str | None = None
    #: the typed reason (``http_401``, ``unknown_case``...)
    reason: str | None = None
    #: last failure at or after / before
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True)
class EnqueueResult:
    id: str
    created: bool


@dataclass(frozen=True)
class Exchange:
    id: str
    flow: str
    key: str
    state: str
    progres_interventionnumber: str | None
    case_record_id: str | None
    case_id: str | None
    service_unique_id: str | None
    referral_id: str | None
    org_referral_id: str | None
    lp_intervention_id: str | None
    business_unit_id: str | None
    interoperability_referral_id: str | None
    content_fingerprint: str | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class ExchangeEvent:
    id: int
    exchange_id: str
    at: datetime
    event: str
    direction: str | None
    detail: dict[str, Any]


@dataclass(frozen=True)
class InboundMessage:
    id: str
    request_type: str
    flow: str
    fingerprint: str
    intervention_numbers: list[str]
    org_referral_ids: list[str]
    received_at: datetime
    has_payload: bool


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: datetime
    event: str
    flow: str | None
    ids: dict[str, Any]
    #: the operator account that acted (None: the bridge itself)
    account: str | None = None
    #: the job whose step wrote it
    job_id: str | None = None


@dataclass(frozen=True)
class PurgeResult:
    jobs: int
    messages: int


@dataclass(frozen=True)
class WaitingJobs:
    """Unfinished jobs of one kind: how many, and when the oldest was queued."""

    count: int
    oldest_created_at: datetime


@dataclass(frozen=True)
class PeerOutcomes:
    """What one process saw of a peer since it last reported: its latest success, and the
    failures that came after it (how many, the first and the last, and how the last failed)."""

    peer: str
    succeeded_at: datetime | None = None
    first_failed_at: datetime | None = None
    failed_at: datetime | None = None
    #: how the last failure failed (``peers.errors.CallFailure``: timeout, unauthorized...)
    failure: str | None = None
    #: its failure class (transient, permanent) and reason code (``http_503``, ``timeout``)
    failure_class: str | None = None
    reason: str | None = None
    #: failures after the success (at least one when ``failed_at`` is set)
    failures: int = 0


@dataclass(frozen=True)
class PeerStatus:
    """How a peer answered lately, as every process together saw it (``store.peers``): the
    console's peer panel and the peer-down alert read this same row."""

    peer: str
    last_success_at: datetime | None = None
    last_failure_at: datetime | None = None
    last_failure_class: str | None = None
    last_failure_reason: str | None = None
    #: failures since the latest success (0 while the latest call worked)
    consecutive_failures: int = 0
    #: how the latest failure failed (``peers.errors.CallFailure``)
    last_failure_kind: str | None = None
    #: the first failure after the latest success; None while the latest call worked
    failing_since: datetime | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True)
class AlertState:
    """One alert condition (``key`` is ``<event>:<subject>``): whether it was announced and
    not yet recovered (``active``), since when it holds, when it was last notified, and what the
    check keeps about it between runs (``data``: counts and IDs only)."""

    key: str
    event: str
    active: bool = False
    since: datetime | None = None
    notified_at: datetime | None = None
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AlertNotice:
    """A notification to send: IDs, codes and counts only."""

    key: str
    event: str
    severity: str
    title: str
    body: str


@dataclass(frozen=True)
class OutboxEntry:
    """A notice some alert targets (``pending``, by fingerprint) have not taken yet."""

    id: int
    notice: AlertNotice
    pending: list[str]
    attempts: int
    created_at: datetime
