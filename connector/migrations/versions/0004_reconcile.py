"""reconcile: where each delivery came from, the shared Qualio budget, the watermark and lease, what each NC
looked like when reconcile last saw it, and one row per run

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

from connector.models import BigId, UTCDateTime

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    with op.batch_alter_table("deliveries") as table:
        table.add_column(sa.Column("source", sa.String(16), nullable=False, server_default="webhook"))
    op.create_table(
        "budgets",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("free_at", UTCDateTime(), nullable=False),
        sa.Column("used", sa.Integer(), nullable=False),
    )
    op.create_table(
        "reconcile_state",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("watermark", UTCDateTime(), nullable=True),
        sa.Column("lease_owner", sa.String(128), nullable=True),
        sa.Column("lease_expires_at", UTCDateTime(), nullable=True),
    )
    op.create_table(
        "reconcile_marks",
        sa.Column("nc_id", sa.String(64), primary_key=True),
        sa.Column("modified_at", UTCDateTime(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("seen_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "reconcile_runs",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("trigger", sa.String(16), nullable=False),
        sa.Column("dry_run", sa.Boolean(), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("scanned", sa.Integer(), nullable=False),
        sa.Column("changed", sa.Integer(), nullable=False),
        sa.Column("new", sa.Integer(), nullable=False),
        sa.Column("backfilled", sa.Integer(), nullable=False),
        sa.Column("unchanged", sa.Integer(), nullable=False),
        sa.Column("requests", sa.Integer(), nullable=False),
        sa.Column("throttled", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
    )
    op.create_index("ix_reconcile_runs_started_at", "reconcile_runs", ["started_at"])


def downgrade() -> None:
    op.drop_index("ix_reconcile_runs_started_at", "reconcile_runs")
    for name in ("reconcile_runs", "reconcile_marks", "reconcile_state", "budgets"):
        op.drop_table(name)
    with op.batch_alter_table("deliveries") as table:
        table.drop_column("source")
