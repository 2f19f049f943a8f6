"""steps recorded as they complete: the status reached (id, category), the remote link sent, the failed step

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    with op.batch_alter_table("nc_links") as table:
        table.add_column(sa.Column("jira_status_id", sa.String(32), nullable=True))
        table.add_column(sa.Column("jira_status_category", sa.String(16), nullable=True))
        table.add_column(sa.Column("remote_link_hash", sa.String(64), nullable=True))
    with op.batch_alter_table("deliveries") as table:
        table.add_column(sa.Column("failed_step", sa.String(32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("deliveries") as table:
        table.drop_column("failed_step")
    with op.batch_alter_table("nc_links") as table:
        table.drop_column("remote_link_hash")
        table.drop_column("jira_status_category")
        table.drop_column("jira_status_id")
