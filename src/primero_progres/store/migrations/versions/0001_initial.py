"""The initial durable state: inbox, jobs, ledger, cursors, leases, audit.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

from primero_progres.store.schema import UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

ID_COLUMNS = (
    "progres_interventionnumber",
    "case_record_id",
    "case_id",
    "service_unique_id",
    "referral_id",
    "org_referral_id",
)


def upgrade() -> None:
    op.create_table(
        "inbound_messages",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("request_type", sa.String(64), nullable=False),
        sa.Column("flow", sa.String(32), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False, unique=True),
        sa.Column("intervention_numbers", sa.JSON, nullable=False),
        sa.Column("org_referral_ids", sa.JSON, nullable=False),
        sa.Column("received_at", UTCDateTime, nullable=False),
        sa.Column("payload", sa.Text, nullable=True),
    )
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("key", sa.String(255), nullable=True, unique=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", UTCDateTime, nullable=False),
        sa.Column("lease_owner", sa.String(128), nullable=True),
        sa.Column("lease_expires_at", UTCDateTime, nullable=True),
        sa.Column("dead_reason", sa.JSON, nullable=True),
        sa.Column("payload", sa.Text, nullable=True),
        sa.Column("message_id", sa.String(36), nullable=True),
        sa.Column("refs", sa.JSON, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_jobs_message_id", "jobs", ["message_id"])
    op.create_index("ix_jobs_state_next_attempt_at", "jobs", ["state", "next_attempt_at"])
    op.create_index("ix_jobs_kind_state", "jobs", ["kind", "state"])
    op.create_table(
        "exchanges",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("flow", sa.String(32), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        *(sa.Column(name, sa.String(128), nullable=True) for name in ID_COLUMNS),
        sa.Column("content_fingerprint", sa.String(64), nullable=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.UniqueConstraint("flow", "key", name="uq_exchanges_flow_key"),
    )
    for name in ID_COLUMNS:
        op.create_index(f"ix_exchanges_{name}", "exchanges", [name])
    op.create_table(
        "exchange_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("exchange_id", sa.String(36), sa.ForeignKey("exchanges.id"), nullable=False),
        sa.Column("at", UTCDateTime, nullable=False),
        sa.Column("event", sa.String(64), nullable=False),
        sa.Column("direction", sa.String(16), nullable=True),
        sa.Column("detail", sa.JSON, nullable=False),
    )
    op.create_index("ix_exchange_events_exchange_id", "exchange_events", ["exchange_id"])
    op.create_table(
        "cursors",
        sa.Column("flow", sa.String(64), primary_key=True),
        sa.Column("value", sa.String(255), nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
    )
    op.create_table(
        "leases",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("owner", sa.String(128), nullable=False),
        sa.Column("expires_at", UTCDateTime, nullable=False),
    )
    op.create_table(
        "audit_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", UTCDateTime, nullable=False),
        sa.Column("event", sa.String(64), nullable=False),
        sa.Column("flow", sa.String(32), nullable=True),
        sa.Column("ids", sa.JSON, nullable=False),
    )
    op.create_index("ix_audit_events_at", "audit_events", ["at"])


def downgrade() -> None:
    for table in (
        "audit_events",
        "leases",
        "cursors",
        "exchange_events",
        "exchanges",
        "jobs",
        "inbound_messages",
    ):
        op.drop_table(table)
