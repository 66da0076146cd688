"""store_keys: keys the store keeps for itself, sealed under the encryption key (the
fingerprint key, so fingerprints survive an encryption-key rotation).

Revision ID: 0002_fingerprint_key
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

from primero_progres.store.schema import UTCDateTime

revision = "0002_fingerprint_key"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "store_keys",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("store_keys")
