"""The words the durable state is written in: flows, job kinds, ledger states and events,
audit events.

They are enums so that a flow cannot write a state or event no reader knows. Their values are
what the database holds and what operators read: add members, never rename one.
"""

from __future__ import annotations

from enum import StrEnum


class Flow(StrEnum):
    """The four flows; a job kind is ``<flow>.<step>`` and the ledger is keyed by flow."""

    PROGRES_REFERRAL = "progres-referral"
    PRIMERO_DECISION = "primero-decision"
    PRIMERO_REFERRAL = "primero-referral"
    PROGRES_DECISION = "progres-decision"


class LedgerState(StrEnum):
    """Where an exchange (one referral or decision crossing the bridge) stands."""

    #: flow 1: the case is written in Primero and its feedback queued
    DELIVERED = "delivered"
    #: flow 1: the intervention was refused and its ``Delivery Fail`` queued
    REFUSED = "refused"
    #: flow 1: DTP took the ``Pending Acknowledgement`` feedback
    FEEDBACK_SENT = "feedback_sent"
    #: flow 1: DTP took the ``Delivery Fail`` feedback
    REFUSED_REPORTED = "refused_reported"
    #: flows 2 and 3: the message to proGres is queued
    QUEUED = "queued"
    #: flows 2 and 3: the gateway took the message (over PING, flow 3: proGres created the
    #: referral, as check status says)
    SENT = "sent"
    #: flow 3: the referral cannot be mapped; looked at again by the next poll
    UNMAPPABLE = "unmappable"
    #: flow 4: the Primero referral now has this status
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    #: flow 1 over PING: PING took the transfer status "pending acknowledgement"
    WRITTEN_BACK = "written_back"
    #: flow 1 over PING: PING took the transfer status "delivery failed"
    FAILURE_WRITTEN_BACK = "failure_written_back"
    #: flow 1 over PING: the focal point's decision (flow 2) reached PING first; "pending
    #: acknowledgement" is not written over it: the decision acknowledges the delivery
    SUPERSEDED_BY_DECISION = "superseded_by_decision"
    #: flow 3 over PING: PING queued the referral (an ``SPHTransactionId``); not yet processed
    INGESTING = "ingesting"
    #: flow 3 over PING: PING says the ingestion failed; a dead letter holds it for replay
    INGESTION_FAILED = "ingestion_failed"
    #: flow 4 over PING: PING took "synced" once the Primero referral was updated
    SYNCED = "synced"


#: flow-1 states after which no decision can follow (flow 2 stops watching the case)
REFUSED_STATES = (
    LedgerState.REFUSED,
    LedgerState.REFUSED_REPORTED,
    LedgerState.FAILURE_WRITTEN_BACK,
)


class LedgerEvent(StrEnum):
    """What happened to an exchange; its history is a list of these."""

    CASE_CREATED = "case_created"
    CASE_UPDATED = "case_updated"
    INTERVENTION_REFUSED = "intervention_refused"
    FEEDBACK_SENT = "feedback_sent"
    DECISION_QUEUED = "decision_queued"
    DECISION_SENT = "decision_sent"
    REFERRAL_NOT_MAPPABLE = "referral_not_mappable"
    REFERRAL_QUEUED = "referral_queued"
    REFERRAL_SENT = "referral_sent"
    REFERRAL_PATCHED = "referral_patched"
    #: over PING: a transfer status or referral status written back (flows 1 and 4)
    STATUS_WRITTEN_BACK = "status_written_back"
    #: flow 1 over PING: the write-back found flow 2's decision already written in PING
    ACKNOWLEDGEMENT_SUPERSEDED = "acknowledgement_superseded"
    #: over PING: the item was listed again with nothing new for Primero; only its write-back
    #: is repeated (a lost write-back, or a stale list)
    REDELIVERED = "redelivered"
    #: flow 3 over PING: ``/asyncdata`` took the referral (detail: its transaction id)
    REFERRAL_INGESTED = "referral_ingested"
    REFERRAL_INGESTION_FAILED = "referral_ingestion_failed"


class AuditEvent(StrEnum):
    """Entries of the audit trail (each with allow-listed IDs only)."""

    INBOX_RECEIVED = "inbox.received"
    JOB_DEAD = "job.dead"
    JOB_REPLAYED = "job.replayed"
    PAYLOADS_PURGED = "payloads.purged"
    #: ``rotate-key`` moved payloads onto the current encryption key
    PAYLOADS_RESEALED = "payloads.resealed"
    FINGERPRINT_KEY_CREATED = "fingerprint_key.created"
    #: its encryption key was lost: duplicate detection restarted
    FINGERPRINT_KEY_REPLACED = "fingerprint_key.replaced"
    MESSAGE_FANNED_OUT = "message_fanned_out"
    SEVERAL_CASES_MATCHED = "several_cases_matched"
    INTERVENTION_REFUSED = "intervention_refused"
    FEEDBACK_SENT = "feedback_sent"
    DECISION_NOT_MAPPABLE = "decision_not_mappable"
    DECISION_SENT = "decision_sent"
    REFERRAL_NOT_MAPPABLE = "referral_not_mappable"
    REFERRAL_SENT = "referral_sent"
    #: flow 3 sent a referral with the profile's default contact: Primero's users were forbidden
    CONTACT_DEFAULTED = "contact_defaulted"
    DECISION_APPLIED = "decision_applied"
    #: the case's sync status written to Primero (``MARK_SYNCED``: ``synced`` or ``failed``)
    SYNC_MARKED = "sync_marked"
    POLL_FINISHED = "poll_finished"
    #: a polling flow was due but has no start point: it does not poll (once per flow)
    POLL_NO_START_POINT = "poll.no_start_point"
    #: a polling flow's start point was set (``source``: ``setting`` or ``operator``)
    CURSOR_SET = "cursor.set"
    CURSOR_REWOUND = "cursor.rewound"
    POLL_REQUESTED = "poll.requested"
    JOB_DISCARDED = "job.discarded"
    ACCOUNT_CREATED = "account.created"
    ACCOUNT_ROLE_CHANGED = "account.role_changed"
    ACCOUNT_DISABLED = "account.disabled"
    ACCOUNT_PASSWORD_RESET = "account.password_reset"
    ACCOUNT_LOCKED = "account.locked"
    LOGIN_SUCCEEDED = "login.succeeded"
    LOGIN_FAILED = "login.failed"
    LOGGED_OUT = "logout"

    #: over PING: a list row without the ids its item needs (skipped; the others go on)
    PING_ROW_UNREADABLE = "ping_row_unreadable"
    STATUS_WRITTEN_BACK = "status_written_back"
    REFERRAL_INGESTION_FAILED = "referral_ingestion_failed"


class Role(StrEnum):
    """What an operator account may do in the console; each role includes the one before."""

    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"

    def allows(self, needed: Role) -> bool:
        order = list(Role)
        return order.index(self) >= order.index(needed)


def job_kind(flow: Flow, step: str) -> str:
    """``<flow>.<step>``: the kind of a job, which names its handler."""
    return f"{flow.value}.{step}"


def poll_kind(flow: Flow) -> str:
    return job_kind(flow, "poll")


def flow_of(kind: str) -> Flow | None:
    """The flow a job kind belongs to (None for kinds outside the four flows)."""
    try:
        return Flow(kind.split(".", 1)[0])
    except ValueError:
        return None


DECISION_KEY_SEPARATOR = ":"


def decision_key(service_unique_id: str, status: str) -> str:
    """The ledger key of a flow-2 exchange: one decision per (service, status), ever (a row
    without a ``unique_id`` is never keyed: flow 2 skips it)."""
    return f"{service_unique_id}{DECISION_KEY_SEPARATOR}{status}"
