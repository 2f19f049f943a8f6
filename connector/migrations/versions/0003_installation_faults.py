"""installation faults: a pause with its reason and how many probes failed in a row; issues that share an
NC's marker label

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    with op.batch_alter_table("throttles") as table:
        table.add_column(sa.Column("reason", sa.Text(), nullable=True))
        table.add_column(sa.Column("strikes", sa.Integer(), nullable=False, server_default="0"))
    with op.batch_alter_table("nc_links") as table:
        table.add_column(sa.Column("duplicate_keys", sa.String(500), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("nc_links") as table:
        table.drop_column("duplicate_keys")
    with op.batch_alter_table("throttles") as table:
        table.drop_column("strikes")
        table.drop_column("reason")
