"""The tables, as typed SQLAlchemy 2 models. The migrations in connector/migrations create them.

fingerprints   the dedup log: one row per distinct delivery content (and webhook-id)
deliveries     the queue: every accepted delivery, as received, with its sync status
nc_links       NC id -> Jira issue key, the source of truth for "one issue per NC"
comment_links  NC comment -> Jira comment, so a comment is posted once
throttles      "send nothing to X before T", shared by every worker (Jira's Retry-After, Qualio's 429)
budgets        a request budget per time window shared by every process (Qualio's 200 requests a minute)
reconcile_state  the installation's reconcile watermark and the lease that keeps one reconcile at a time
reconcile_marks  per NC, the Qualio modified_at that reconcile last saw and queued
reconcile_runs   one row per reconcile pass, with its figures
workers        one heartbeat row per sync worker process
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a bigint identity.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class DeliveryStatus(StrEnum):
    """Where a delivery is in the queue. A StrEnum: stored as its value and equal to it."""

    QUEUED = "queued"          # waiting for its next attempt (next_attempt_at)
    PROCESSING = "processing"  # claimed by a worker under a lease
    DONE = "done"              # synced to Jira
    IGNORED = "ignored"        # nothing to do: an unsupported event type, or nothing newer than Jira has
    DEAD = "dead"              # a dead letter: waits for `nc-connector replay`


WAITING = (DeliveryStatus.QUEUED, DeliveryStatus.PROCESSING)  # not synced yet


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in Python, naive UTC in the database (SQLite keeps no zone)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention={
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ix": "ix_%(table_name)s_%(column_0_name)s",
    })


class Fingerprint(Base):
    __tablename__ = "fingerprints"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    fingerprint: Mapped[str] = mapped_column(String(64), unique=True)  # sha-256 hex of canonical JSON
    webhook_id: Mapped[str | None] = mapped_column(String(256), unique=True)  # "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"
    nc_id: Mapped[str] = mapped_column(String(64))  # "NC-2025-001"
    event_type: Mapped[str] = mapped_column(String(64))  # "nc.updated"
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)  # prune key
    times_seen: Mapped[int] = mapped_column(Integer, default=1)


class Delivery(Base):
    __tablename__ = "deliveries"
    __table_args__ = (
        Index("ix_deliveries_due", "status", "next_attempt_at"),
        Index("ix_deliveries_nc", "nc_id", "status"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    webhook_id: Mapped[str | None] = mapped_column(String(256))
    nc_id: Mapped[str] = mapped_column(String(64))
    event_type: Mapped[str] = mapped_column(String(64))
    event_timestamp: Mapped[datetime] = mapped_column(UTCDateTime)  # the payload's "timestamp"
    payload: Mapped[str] = mapped_column(Text)  # the body exactly as received (UTF-8 JSON)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # queued -> processing -> done | ignored | dead (replay: dead -> queued); a claim takes all of an NC
    status: Mapped[str] = mapped_column(String(16), default=DeliveryStatus.QUEUED)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    claimed_by: Mapped[str | None] = mapped_column(String(128))  # "host:pid:uuid" of the worker
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    jira_key: Mapped[str | None] = mapped_column(String(32))  # "QA-17" once synced
    failed_step: Mapped[str | None] = mapped_column(String(32))  # "transition": the step a dead letter failed at
    source: Mapped[str] = mapped_column(String(16), default="webhook", server_default="webhook")  # or "reconcile"


class NcLink(Base):
    __tablename__ = "nc_links"

    nc_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    jira_key: Mapped[str | None] = mapped_column(String(32), unique=True)  # None while being created
    # reserved: row exists, no create sent; creating: a create was sent, outcome unknown; linked
    state: Mapped[str] = mapped_column(String(16), default="reserved")
    create_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_event_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # newest event applied
    fields_hash: Mapped[str | None] = mapped_column(String(64))  # hash of the fields last sent
    jira_status: Mapped[str | None] = mapped_column(String(64))  # status last seen in Jira ("Resolved")
    jira_status_id: Mapped[str | None] = mapped_column(String(32))  # its id ("5")
    jira_status_category: Mapped[str | None] = mapped_column(String(16))  # its category key ("done")
    remote_link_hash: Mapped[str | None] = mapped_column(String(64))  # hash of the remote link last sent
    duplicate_keys: Mapped[str | None] = mapped_column(String(500))  # "QA-7 QA-9": others with our marker label
    nc_state: Mapped[str] = mapped_column(Text, default="{}")  # {"fields": merged NC record, "setAt": {field: time}}


class CommentLink(Base):
    __tablename__ = "comment_links"
    __table_args__ = (UniqueConstraint("nc_id", "comment_key", name="uq_comment_links_nc_comment"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    nc_id: Mapped[str] = mapped_column(String(64))
    comment_key: Mapped[str] = mapped_column(String(64))  # NC comment id, or hash of author+time+body
    jira_comment_id: Mapped[str | None] = mapped_column(String(32))  # None while being posted
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Throttle(Base):
    __tablename__ = "throttles"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)  # "jira", "jira-careful", "installation"
    not_before: Mapped[datetime] = mapped_column(UTCDateTime)
    reason: Mapped[str | None] = mapped_column(Text)  # why, for a fault of the installation ("Jira refused ...")
    strikes: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # failed probes in a row


class Budget(Base):
    __tablename__ = "budgets"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)  # "qualio"
    # GCRA (connector.budgets): when the budget is whole again; each request adds 60/limit s (DB clock)
    free_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used: Mapped[int] = mapped_column(Integer, default=0)  # requests granted so far, by every process


class ReconcileState(Base):
    __tablename__ = "reconcile_state"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)  # "qualio"
    watermark: Mapped[datetime | None] = mapped_column(UTCDateTime)  # set by the first run: "installed at"
    lease_owner: Mapped[str | None] = mapped_column(String(128))  # "host:pid:uuid" of the running reconcile
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ReconcileMark(Base):
    __tablename__ = "reconcile_marks"

    nc_id: Mapped[str] = mapped_column(String(64), primary_key=True)  # Qualio's event code, "NCR-12"
    modified_at: Mapped[datetime] = mapped_column(UTCDateTime)  # the summary's modified_at last queued or seen
    status: Mapped[str] = mapped_column(String(16))  # the Qualio status it was seen under ("open")
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ReconcileRun(Base):
    __tablename__ = "reconcile_runs"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    trigger: Mapped[str] = mapped_column(String(16))  # "cli" or "periodic"
    dry_run: Mapped[bool] = mapped_column(Boolean, default=False)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    outcome: Mapped[str] = mapped_column(String(16), default="running")  # running, completed, failed
    scanned: Mapped[int] = mapped_column(Integer, default=0)
    changed: Mapped[int] = mapped_column(Integer, default=0)
    new: Mapped[int] = mapped_column(Integer, default=0)
    backfilled: Mapped[int] = mapped_column(Integer, default=0)
    unchanged: Mapped[int] = mapped_column(Integer, default=0)
    requests: Mapped[int] = mapped_column(Integer, default=0)  # Qualio requests made
    throttled: Mapped[int] = mapped_column(Integer, default=0)  # 429s received
    error: Mapped[str | None] = mapped_column(Text)


class Worker(Base):
    __tablename__ = "workers"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)  # "host:pid:uuid", as deliveries.claimed_by
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    supervisor: Mapped[str | None] = mapped_column(String(128))  # the `serve` that runs it, if any
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    beat_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)  # last heartbeat (DB clock)
    claim: Mapped[str | None] = mapped_column(String(64))  # the NC it is syncing now
