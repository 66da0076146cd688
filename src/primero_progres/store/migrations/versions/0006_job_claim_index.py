"""The claim's index: the pending jobs in the order they are due, so a claim reads the first
due one instead of sorting every due job (each claim grew slower with the backlog).

Revision ID: 0006_job_claim_index
Revises: 0005_alert_state
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_job_claim_index"
down_revision = "0005_alert_state"
branch_labels = None
depends_on = None

PENDING = sa.text("state = 'pending'")


def upgrade() -> None:
    op.create_index(
        "ix_jobs_pending_due",
        "jobs",
        ["next_attempt_at", "created_at"],
        postgresql_where=PENDING,
        sqlite_where=PENDING,
    )


def downgrade() -> None:
    op.drop_index("ix_jobs_pending_due", table_name="jobs")
