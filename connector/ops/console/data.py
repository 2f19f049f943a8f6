"""What the console's pages show, read from the tables (the figures `status` prints come from ops.views)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Engine, func, select

from connector import db, throttles
from connector.clock import utcnow
from connector.models import Budget, CommentLink, Delivery, DeliveryStatus, Fingerprint, NcLink
from connector.ops import views
from connector.ops.console.filters import PAGE_SIZE, BadInput, DeliveryFilter
from connector.sync.heartbeat import WorkerInfo

NC_PAGE_LIMIT = 500  # deliveries shown on one NC's page (the newest, in order)


def _escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _conditions(flt: DeliveryFilter) -> list[ColumnElement[bool]]:
    found: list[ColumnElement[bool]] = []
    if flt.nc:
        found.append(Delivery.nc_id.like(_escape_like(flt.nc) + "%", escape="\\"))
    if flt.status:
        found.append(Delivery.status == flt.status)
    if flt.event:
        found.append(Delivery.event_type == flt.event)
    if flt.source:
        found.append(Delivery.source == flt.source)
    if flt.step:
        found.append(Delivery.failed_step == flt.step)
    if flt.error:
        found.append(Delivery.last_error.like("%" + _escape_like(flt.error) + "%", escape="\\"))
    if flt.since:
        found.append(Delivery.received_at >= flt.since)
    if flt.until:
        found.append(Delivery.received_at < flt.until)
    if flt.upto:
        found.append(Delivery.id <= flt.upto)
    return found


@dataclass(frozen=True)
class Page:
    rows: list[Any]
    total: int
    number: int

    @property
    def last(self) -> int:
        return max(1, -(-self.total // PAGE_SIZE))


def search(engine: Engine, flt: DeliveryFilter, page: int) -> Page:
    """Newest first, PAGE_SIZE a page; a page past the last is a 404 naming the last."""
    conditions = _conditions(flt)
    query = select(Delivery.id, Delivery.nc_id, Delivery.event_type, Delivery.status, Delivery.attempts,
                   Delivery.received_at, Delivery.jira_key, Delivery.last_error, Delivery.failed_step,
                   Delivery.source).where(*conditions)
    count = select(func.count()).select_from(Delivery).where(*conditions)
    with db.reader(engine).connect() as conn:
        total = int(conn.execute(count).scalar_one())
        rows = list(conn.execute(query.order_by(Delivery.id.desc())
                                 .limit(PAGE_SIZE).offset((page - 1) * PAGE_SIZE)).all())
    found = Page(rows, total, page)
    if page > found.last:
        raise BadInput(f"page {page}: there are only {found.last} page(s) of {total} matching deliveries", 404)
    return found


def matching_dead_ids(engine: Engine, flt: DeliveryFilter) -> list[int]:
    """The dead letters a filter matches (what a replay of that filter re-queues)."""
    query = select(Delivery.id).where(Delivery.status == DeliveryStatus.DEAD, *_conditions(flt))
    with db.reader(engine).connect() as conn:
        return [int(i) for i in conn.execute(query.order_by(Delivery.id)).scalars()]


def delivery_status(engine: Engine, delivery_id: int) -> str | None:
    with db.reader(engine).connect() as conn:
        found = conn.execute(select(Delivery.status).where(Delivery.id == delivery_id)).scalar_one_or_none()
    return None if found is None else str(found)


@dataclass(frozen=True)
class NcView:
    nc_id: str
    link: Any  # the nc_links row, or None before the first sync
    deliveries: list[dict[str, Any]]
    total: int  # deliveries stored (the page shows the newest NC_PAGE_LIMIT)
    comments: list[Any]


def nc_view(engine: Engine, nc_id: str) -> NcView:
    """Everything stored about one NC; 404 when nothing is."""
    times = select(Fingerprint.times_seen).where(Fingerprint.fingerprint == Delivery.fingerprint) \
        .scalar_subquery()
    query = (select(Delivery, times.label("times_seen")).where(Delivery.nc_id == nc_id)
             .order_by(Delivery.id.desc()).limit(NC_PAGE_LIMIT))
    with db.reader(engine).connect() as conn:
        link = conn.execute(select(NcLink).where(NcLink.nc_id == nc_id)).first()
        total = int(conn.execute(select(func.count()).where(Delivery.nc_id == nc_id)).scalar_one())
        rows = conn.execute(query).all()
        comments = list(conn.execute(select(CommentLink).where(CommentLink.nc_id == nc_id)
                                     .order_by(CommentLink.id)).all())
    if link is None and total == 0:
        raise BadInput(f"no NC {nc_id!r} is known here: no delivery of it was received", 404)
    shown = [{**row._asdict(), "pretty_payload": _pretty(row.payload)} for row in reversed(rows)]
    return NcView(nc_id, link, shown, total, comments)


def _pretty(payload: str) -> str:
    try:
        return json.dumps(json.loads(payload), indent=2, ensure_ascii=False)
    except ValueError:  # stored as received: only a row changed by hand fails here
        return payload


@dataclass(frozen=True)
class Overview:
    figures: dict[str, Any]  # ops.views.status: counts, oldest waiting, last sync, fault, duplicates
    oldest_waiting_id: int | None
    jira_paused_until: datetime | None
    careful_until: datetime | None
    qualio_paused_until: datetime | None
    budget: Any  # the `budgets` row "qualio", or None
    last_reconcile: dict[str, Any] | None  # the newest reconcile run (not a dry run), or None
    workers: list[WorkerInfo]
    now: datetime


def overview(engine: Engine) -> Overview:
    figures = views.status(engine)
    now = utcnow()
    waits = throttles.throttled(engine, "jira", "jira-careful", "qualio")
    until = {name: now + timedelta(seconds=left) if left > 0 else None for name, left in waits.items()}
    with db.reader(engine).connect() as conn:
        oldest = conn.execute(select(Delivery.id).where(Delivery.status.in_(
            (DeliveryStatus.QUEUED, DeliveryStatus.PROCESSING))).order_by(Delivery.received_at, Delivery.id)
            .limit(1)).scalar_one_or_none()
        budget = conn.execute(select(Budget).where(Budget.name == "qualio")).first()
    # The workers (sync.heartbeat's reader, ages by the database's clock) and the last reconcile come with
    # the figures of `nc-connector status`, so both show the same.
    return Overview(figures, oldest, until["jira"], until["jira-careful"], until["qualio"], budget,
                    figures.get("reconcile"), list(figures.get("workers", [])), now)
