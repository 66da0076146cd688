"""The ledger keeps the ids PING write-backs are addressed by.

An LP intervention is written back by ``progres_lpinterventionid`` and
``progres_businessunit``, an interoperability referral by its
``progres_interoperabilityreferralid``; flow 1 records them (over DTP too, when
the intervention carries them) so that flow 2 can address a decision through
PING whichever gateway delivered the referral.

Revision ID: 0004_ping_ledger_ids
Revises: 0003_operator_console
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_ping_ledger_ids"
down_revision = "0003_operator_console"
branch_labels = None
depends_on = None

ID_COLUMNS = ("lp_intervention_id", "business_unit_id", "interoperability_referral_id")


def upgrade() -> None:
    with op.batch_alter_table("exchanges") as batch:
        for name in ID_COLUMNS:
            batch.add_column(sa.Column(name, sa.String(128), nullable=True))
    for name in ID_COLUMNS:
        op.create_index(f"ix_exchanges_{name}", "exchanges", [name])


def downgrade() -> None:
    for name in ID_COLUMNS:
        op.drop_index(f"ix_exchanges_{name}", table_name="exchanges")
    with op.batch_alter_table("exchanges") as batch:
        for name in ID_COLUMNS:
            batch.drop_column(name)
