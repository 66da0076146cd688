"""Alerting: when each peer started failing and how (on the console's ``peer_status``), the state
of each alert, the alert outbox.

Revision ID: 0005_alert_state
Revises: 0004_ping_ledger_ids
"""

import sqlalchemy as sa
from alembic import op

from primero_progres.store.schema import UTCDateTime

revision = "0005_alert_state"
down_revision = "0004_ping_ledger_ids"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("peer_status") as batch:
        batch.add_column(sa.Column("last_failure_kind", sa.String(32), nullable=True))
        batch.add_column(sa.Column("failing_since", UTCDateTime, nullable=True))
        batch.add_column(sa.Column("updated_at", UTCDateTime, nullable=True))
    op.create_table(
        "alert_state",
        sa.Column("key", sa.String(160), primary_key=True),
        sa.Column("event", sa.String(32), nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("since", UTCDateTime, nullable=True),
        sa.Column("notified_at", UTCDateTime, nullable=True),
        sa.Column("data", sa.JSON, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
    )
    op.create_table(
        "alert_outbox",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(160), nullable=False),
        sa.Column("event", sa.String(32), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("pending", sa.JSON, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("attempted_at", UTCDateTime, nullable=True),
    )


def downgrade() -> None:
    for table in ("alert_outbox", "alert_state"):
        op.drop_table(table)
    with op.batch_alter_table("peer_status") as batch:
        batch.drop_column("updated_at")
        batch.drop_column("failing_since")
        batch.drop_column("last_failure_kind")
