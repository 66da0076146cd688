"""The tables of the durable state. Migrations in ``migrations/`` create the same schema.

Rows hold system IDs, codes and statuses in clear; anything personal lives only in
the ``payload`` columns, encrypted (see ``crypto.py``), and so do the store's own keys
(``store_keys``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC on both databases (SQLite stores naive text)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


metadata = sa.MetaData()
ID = sa.String(36)
#: job and ledger keys; IDs in the ledger's columns (``keys.fit`` makes longer values fit)
KEY_LENGTH = 255
ID_LENGTH = 128

inbound_messages = sa.Table(
    "inbound_messages",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("request_type", sa.String(64), nullable=False),
    sa.Column("flow", sa.String(32), nullable=False),
    sa.Column("fingerprint", sa.String(64), nullable=False, unique=True),
    sa.Column("intervention_numbers", sa.JSON, nullable=False),
    sa.Column("org_referral_ids", sa.JSON, nullable=False),
    sa.Column("received_at", UTCDateTime, nullable=False, index=True),
    sa.Column("payload", sa.Text, nullable=True),
)

jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("key", sa.String(KEY_LENGTH), nullable=True, unique=True),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_attempt_at", UTCDateTime, nullable=False),
    sa.Column("lease_owner", sa.String(128), nullable=True),
    sa.Column("lease_expires_at", UTCDateTime, nullable=True),
    sa.Column("dead_reason", sa.JSON, nullable=True),
    sa.Column("payload", sa.Text, nullable=True),
    sa.Column("message_id", ID, nullable=True, index=True),
    sa.Column("refs", sa.JSON, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    #: the job whose step queued this one (None: queued by the inbox, a trigger, an operator)
    sa.Column("parent_id", ID, nullable=True, index=True),
    #: when an attempt first failed (kept through replays)
    sa.Column("first_failed_at", UTCDateTime, nullable=True),
    sa.Index("ix_jobs_state_next_attempt_at", "state", "next_attempt_at"),
    sa.Index("ix_jobs_kind_state_updated_at", "kind", "state", "updated_at"),
    sa.Index("ix_jobs_kind_created_at", "kind", "created_at"),
    sa.Index("ix_jobs_state_updated_at", "state", "updated_at"),
    #: the claim walks it in order and takes the first due job (migration 0006)
    sa.Index(
        "ix_jobs_pending_due",
        "next_attempt_at",
        "created_at",
        postgresql_where=sa.text("state = 'pending'"),
        sqlite_where=sa.text("state = 'pending'"),
    ),
)

_ID_COLUMNS = (
    "progres_interventionnumber",
    "case_record_id",
    "case_id",
    "service_unique_id",
    "referral_id",
    "org_referral_id",
    # PING (migration 0004_ping_ledger_ids): what addresses the proGres row of a write-back
    "lp_intervention_id",
    "business_unit_id",
    "interoperability_referral_id",
)

exchanges = sa.Table(
    "exchanges",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("flow", sa.String(32), nullable=False),
    sa.Column("key", sa.String(KEY_LENGTH), nullable=False),
    sa.Column("state", sa.String(32), nullable=False),
    *(sa.Column(name, sa.String(ID_LENGTH), nullable=True, index=True) for name in _ID_COLUMNS),
    sa.Column("content_fingerprint", sa.String(64), nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("flow", "key", name="uq_exchanges_flow_key"),
)

exchange_events = sa.Table(
    "exchange_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("exchange_id", ID, sa.ForeignKey("exchanges.id"), nullable=False, index=True),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("event", sa.String(64), nullable=False),
    sa.Column("direction", sa.String(16), nullable=True),
    sa.Column("detail", sa.JSON, nullable=False),
    #: the console's figures count events by time and name from the index alone
    sa.Index("ix_exchange_events_at_event", "at", "event"),
)

cursors = sa.Table(
    "cursors",
    metadata,
    sa.Column("flow", sa.String(64), primary_key=True),
    sa.Column("value", sa.String(255), nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

leases = sa.Table(
    "leases",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("owner", sa.String(128), nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False),
)

audit_events = sa.Table(
    "audit_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", UTCDateTime, nullable=False, index=True),
    sa.Column("event", sa.String(64), nullable=False),
    sa.Column("flow", sa.String(32), nullable=True),
    sa.Column("ids", sa.JSON, nullable=False),
    #: the operator account that acted (None: the bridge itself)
    sa.Column("account", sa.String(64), nullable=True, index=True),
    #: the job whose step wrote the entry
    sa.Column("job_id", ID, nullable=True, index=True),
    sa.Index("ix_audit_events_event_id", "event", "id"),
)

operator_accounts = sa.Table(
    "operator_accounts",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("role", sa.String(16), nullable=False),
    #: Argon2 (PHC string); never the password
    sa.Column("password_hash", sa.String(255), nullable=False),
    sa.Column("disabled", sa.Boolean, nullable=False),
    sa.Column("failed_logins", sa.Integer, nullable=False),
    sa.Column("locked_until", UTCDateTime, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("last_login_at", UTCDateTime, nullable=True),
)

operator_sessions = sa.Table(
    "operator_sessions",
    metadata,
    #: SHA-256 of the session token the cookie carries (a database leak opens no session)
    sa.Column("token_hash", sa.String(64), primary_key=True),
    sa.Column(
        "account",
        sa.String(64),
        sa.ForeignKey("operator_accounts.name"),
        nullable=False,
        index=True,
    ),
    sa.Column("csrf_token", sa.String(64), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("last_seen_at", UTCDateTime, nullable=False),
)

#: how each peer answered lately (``store.peers``), merged from every process: the console's
#: peer panel and the peer-down alert read it
peer_status = sa.Table(
    "peer_status",
    metadata,
    sa.Column("peer", sa.String(16), primary_key=True),
    sa.Column("last_success_at", UTCDateTime, nullable=True),
    sa.Column("last_failure_at", UTCDateTime, nullable=True),
    sa.Column("last_failure_class", sa.String(32), nullable=True),
    sa.Column("last_failure_reason", sa.String(64), nullable=True),
    sa.Column("consecutive_failures", sa.Integer, nullable=False),
    #: how the latest failure failed (``peers.errors.CallFailure``: timeout, unauthorized...)
    sa.Column("last_failure_kind", sa.String(32), nullable=True),
    #: the first failure after the latest success; null while the latest call worked
    sa.Column("failing_since", UTCDateTime, nullable=True),
    sa.Column("updated_at", UTCDateTime, nullable=True),
)

store_keys = sa.Table(
    "store_keys",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

#: one row per alert condition (``<event>:<key>``): announced or not, since when, when last told
alert_state = sa.Table(
    "alert_state",
    metadata,
    sa.Column("key", sa.String(160), primary_key=True),
    sa.Column("event", sa.String(32), nullable=False),
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("since", UTCDateTime, nullable=True),
    sa.Column("notified_at", UTCDateTime, nullable=True),
    sa.Column("data", sa.JSON, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

#: notifications decided but not yet taken by every alert target (IDs, codes, counts only)
alert_outbox = sa.Table(
    "alert_outbox",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("key", sa.String(160), nullable=False),
    sa.Column("event", sa.String(32), nullable=False),
    sa.Column("severity", sa.String(16), nullable=False),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    #: fingerprints of the alert URLs that have not taken it yet
    sa.Column("pending", sa.JSON, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("attempted_at", UTCDateTime, nullable=True),
)

ID_COLUMNS = _ID_COLUMNS

#: every table with an encrypted ``payload`` column (the tokens' context is the table's name,
#: their row id the primary key): ``rotate-key`` re-seals exactly these
SEALED_TABLES = (inbound_messages, jobs, store_keys)
