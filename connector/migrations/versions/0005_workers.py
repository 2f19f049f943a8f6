"""workers: one heartbeat row per sync worker process

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

from connector.models import UTCDateTime

revision = "0005"
down_revision = "0004"


def upgrade() -> None:
    op.create_table(
        "workers",
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("supervisor", sa.String(128), nullable=True),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("beat_at", UTCDateTime(), nullable=False),
        sa.Column("claim", sa.String(64), nullable=True),
    )
    op.create_index("ix_workers_beat_at", "workers", ["beat_at"])


def downgrade() -> None:
    op.drop_index("ix_workers_beat_at", "workers")
    op.drop_table("workers")
