"""initial schema: fingerprints, deliveries, nc_links, comment_links, throttles

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

from connector.models import BigId, UTCDateTime

revision = "0001"
down_revision = None


def upgrade() -> None:
    op.create_table(
        "fingerprints",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("webhook_id", sa.String(256), nullable=True),
        sa.Column("nc_id", sa.String(64), nullable=False),
        sa.Column("event_type", sa.String(64), nullable=False),
        sa.Column("first_seen_at", UTCDateTime(), nullable=False),
        sa.Column("last_seen_at", UTCDateTime(), nullable=False),
        sa.Column("times_seen", sa.Integer(), nullable=False),
        sa.UniqueConstraint("fingerprint", name="uq_fingerprints_fingerprint"),
        sa.UniqueConstraint("webhook_id", name="uq_fingerprints_webhook_id"),
    )
    op.create_index("ix_fingerprints_last_seen_at", "fingerprints", ["last_seen_at"])
    op.create_table(
        "deliveries",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("webhook_id", sa.String(256), nullable=True),
        sa.Column("nc_id", sa.String(64), nullable=False),
        sa.Column("event_type", sa.String(64), nullable=False),
        sa.Column("event_timestamp", UTCDateTime(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UTCDateTime(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("claimed_by", sa.String(128), nullable=True),
        sa.Column("lease_expires_at", UTCDateTime(), nullable=True),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.Column("jira_key", sa.String(32), nullable=True),
    )
    op.create_index("ix_deliveries_due", "deliveries", ["status", "next_attempt_at"])
    op.create_index("ix_deliveries_nc", "deliveries", ["nc_id", "status"])
    op.create_index("ix_deliveries_finished_at", "deliveries", ["finished_at"])
    op.create_table(
        "nc_links",
        sa.Column("nc_id", sa.String(64), primary_key=True),
        sa.Column("jira_key", sa.String(32), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("create_started_at", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("last_event_at", UTCDateTime(), nullable=True),
        sa.Column("fields_hash", sa.String(64), nullable=True),
        sa.Column("jira_status", sa.String(64), nullable=True),
        sa.Column("nc_state", sa.Text(), nullable=False),
        sa.UniqueConstraint("jira_key", name="uq_nc_links_jira_key"),
    )
    op.create_table(
        "comment_links",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("nc_id", sa.String(64), nullable=False),
        sa.Column("comment_key", sa.String(64), nullable=False),
        sa.Column("jira_comment_id", sa.String(32), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("nc_id", "comment_key", name="uq_comment_links_nc_comment"),
    )
    op.create_table(
        "throttles",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("not_before", UTCDateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("throttles")
    op.drop_table("comment_links")
    op.drop_table("nc_links")
    op.drop_table("deliveries")
    op.drop_table("fingerprints")
