"""The operator console: accounts and sessions, peer status, and the links and indexes its
pages read (who acted in the audit trail, which step wrote an entry, which job queued a job).

Revision ID: 0003_operator_console
Revises: 0002_fingerprint_key
"""

import sqlalchemy as sa
from alembic import op

from primero_progres.store.schema import UTCDateTime

revision = "0003_operator_console"
down_revision = "0002_fingerprint_key"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "operator_accounts",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("disabled", sa.Boolean, nullable=False),
        sa.Column("failed_logins", sa.Integer, nullable=False),
        sa.Column("locked_until", UTCDateTime, nullable=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.Column("last_login_at", UTCDateTime, nullable=True),
    )
    op.create_table(
        "operator_sessions",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column(
            "account", sa.String(64), sa.ForeignKey("operator_accounts.name"), nullable=False
        ),
        sa.Column("csrf_token", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("last_seen_at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_operator_sessions_account", "operator_sessions", ["account"])
    op.create_table(
        "peer_status",
        sa.Column("peer", sa.String(16), primary_key=True),
        sa.Column("last_success_at", UTCDateTime, nullable=True),
        sa.Column("last_failure_at", UTCDateTime, nullable=True),
        sa.Column("last_failure_class", sa.String(32), nullable=True),
        sa.Column("last_failure_reason", sa.String(64), nullable=True),
        sa.Column("consecutive_failures", sa.Integer, nullable=False),
    )
    with op.batch_alter_table("audit_events") as batch:
        batch.add_column(sa.Column("account", sa.String(64), nullable=True))
        batch.add_column(sa.Column("job_id", sa.String(36), nullable=True))
    op.create_index("ix_audit_events_account", "audit_events", ["account"])
    op.create_index("ix_audit_events_job_id", "audit_events", ["job_id"])
    op.create_index("ix_audit_events_event_id", "audit_events", ["event", "id"])
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("parent_id", sa.String(36), nullable=True))
        batch.add_column(sa.Column("first_failed_at", UTCDateTime, nullable=True))
    op.create_index("ix_jobs_parent_id", "jobs", ["parent_id"])
    op.create_index("ix_jobs_state_updated_at", "jobs", ["state", "updated_at"])
    # the console's per-kind figures (last poll, received per day) read these in index order
    op.drop_index("ix_jobs_kind_state", "jobs")
    op.create_index("ix_jobs_kind_state_updated_at", "jobs", ["kind", "state", "updated_at"])
    op.create_index("ix_jobs_kind_created_at", "jobs", ["kind", "created_at"])
    op.create_index("ix_inbound_messages_received_at", "inbound_messages", ["received_at"])
    op.create_index("ix_exchange_events_at_event", "exchange_events", ["at", "event"])


def downgrade() -> None:
    op.drop_index("ix_exchange_events_at_event", "exchange_events")
    op.drop_index("ix_inbound_messages_received_at", "inbound_messages")
    op.drop_index("ix_jobs_kind_created_at", "jobs")
    op.drop_index("ix_jobs_kind_state_updated_at", "jobs")
    op.create_index("ix_jobs_kind_state", "jobs", ["kind", "state"])
    op.drop_index("ix_jobs_state_updated_at", "jobs")
    op.drop_index("ix_jobs_parent_id", "jobs")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("first_failed_at")
        batch.drop_column("parent_id")
    op.drop_index("ix_audit_events_event_id", "audit_events")
    op.drop_index("ix_audit_events_job_id", "audit_events")
    op.drop_index("ix_audit_events_account", "audit_events")
    with op.batch_alter_table("audit_events") as batch:
        batch.drop_column("job_id")
        batch.drop_column("account")
    for table in ("peer_status", "operator_sessions", "operator_accounts"):
        op.drop_table(table)
