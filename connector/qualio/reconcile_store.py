"""Reconcile's tables: the watermark and the lease (`reconcile_state`), the marks, the runs; and what the
connector applied of each NC (read from `nc_links`). Times are the database's clock (``db.now``)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, and_, func, or_, select, update

from connector import db
from connector.models import WAITING, Delivery, Fingerprint, NcLink, ReconcileMark, ReconcileRun, ReconcileState
from connector.qualio.drift import Known, parse_time

__all__ = ["LeaseLost", "RunFigures", "finish_run", "known", "last_run", "put_marks", "release", "renew",
           "start_run", "take_lease", "watermark"]

NAME = "qualio"


class LeaseLost(RuntimeError):
    """Another reconcile holds the lease (or took it over after ours expired)."""


@dataclass
class RunFigures:
    scanned: int = 0
    changed: int = 0
    new: int = 0
    backfilled: int = 0
    unchanged: int = 0
    pre_install: int = 0
    requests: int = 0
    throttled: int = 0


def _ensure_state(conn: Connection) -> None:
    conn.execute(db.dialect_insert(conn)(ReconcileState).values(name=NAME).on_conflict_do_nothing())


def take_lease(engine: Engine, owner: str, seconds: float) -> None:
    """Hold the one reconcile lease of the installation for ``seconds``; LeaseLost names its holder if taken."""
    with engine.begin() as conn:
        _ensure_state(conn)
        now = db.now(conn)
        free = or_(ReconcileState.lease_owner.is_(None), ReconcileState.lease_owner == owner,
                   ReconcileState.lease_expires_at < now)
        taken = conn.execute(update(ReconcileState).where(ReconcileState.name == NAME, free)
                             .values(lease_owner=owner, lease_expires_at=now + timedelta(seconds=seconds))).rowcount
        if not taken:
            holder = conn.execute(select(ReconcileState.lease_owner, ReconcileState.lease_expires_at)
                                  .where(ReconcileState.name == NAME)).one()
            until = holder.lease_expires_at.isoformat().replace("+00:00", "Z")
            raise LeaseLost(f"another reconcile is running ({holder.lease_owner}, lease until {until})")


def renew(engine: Engine, owner: str, seconds: float) -> None:
    with engine.begin() as conn:
        now = db.now(conn)
        kept = conn.execute(update(ReconcileState)
                            .where(ReconcileState.name == NAME, ReconcileState.lease_owner == owner)
                            .values(lease_expires_at=now + timedelta(seconds=seconds))).rowcount
    if not kept:
        raise LeaseLost("the reconcile lease was taken over (this run was too slow to renew it)")


def release(engine: Engine, owner: str) -> None:
    with engine.begin() as conn:
        conn.execute(update(ReconcileState).where(ReconcileState.name == NAME, ReconcileState.lease_owner == owner)
                     .values(lease_owner=None, lease_expires_at=None))


def watermark(engine: Engine, record: bool) -> tuple[datetime, bool]:
    """The installation's watermark and whether it was set just now (first run; not stored unless ``record``).

    The first run sets it to the moment the connector first heard of any NC (its oldest link, delivery or
    fingerprint), or now for a fresh installation: NCs last modified before it predate the install.
    """
    with engine.begin() as conn:
        _ensure_state(conn)
        stored = conn.execute(select(ReconcileState.watermark).where(ReconcileState.name == NAME)).scalar_one()
        if stored is not None:
            return stored, False
        candidates = [db.now(conn)]
        for column in (NcLink.created_at, Delivery.received_at, Fingerprint.first_seen_at):
            oldest = conn.execute(select(func.min(column))).scalar_one()
            if oldest is not None:
                candidates.append(_aware(oldest))
        mark = min(candidates)
        if record:
            conn.execute(update(ReconcileState).where(ReconcileState.name == NAME,
                                                      ReconcileState.watermark.is_(None)).values(watermark=mark))
        return mark, True


def known(engine: Engine, codes: Iterable[str]) -> dict[str, Known]:
    """What the connector applied and reconcile last queued of each NC, for one page of codes."""
    wanted = list(dict.fromkeys(codes))
    if not wanted:
        return {}
    with db.reader(engine).connect() as conn:
        links = conn.execute(select(NcLink.nc_id, NcLink.last_event_at, NcLink.nc_state)
                             .where(NcLink.nc_id.in_(wanted))).all()
        marks = dict(conn.execute(select(ReconcileMark.nc_id, ReconcileMark.modified_at)
                                  .where(ReconcileMark.nc_id.in_(wanted))).all())
        # A delivery not synced yet (a webhook still queued) counts as heard of: its sync will fetch the NC.
        pending = dict(conn.execute(select(Delivery.nc_id, func.max(Delivery.event_timestamp))
                                    .where(Delivery.nc_id.in_(wanted), Delivery.status.in_(WAITING))
                                    .group_by(Delivery.nc_id)).all())
    applied = {row.nc_id: _applied(row.last_event_at, row.nc_state) for row in links}
    return {code: Known(applied=_latest(applied.get(code), pending.get(code)), marked=marks.get(code))
            for code in wanted if code in applied or code in marks or code in pending}


def _latest(*moments: datetime | None) -> datetime | None:
    found = [m for m in moments if m is not None]
    return max(found) if found else None


def _applied(last_event_at: datetime | None, nc_state: str | None) -> datetime | None:
    """The later of the newest applied event time and the merged record's ``modifiedAt``."""
    try:
        fields = json.loads(nc_state or "{}").get("fields", {})
    except (ValueError, AttributeError):
        fields = {}
    times = [t for t in (last_event_at, parse_time(fields.get("modifiedAt"))) if t is not None]
    return max(times) if times else None


def put_marks(engine: Engine, marks: Mapping[str, tuple[datetime, str]]) -> None:
    """code -> (modified_at, status): what reconcile queued (or found already queued), upserted."""
    if not marks:
        return
    with engine.begin() as conn:
        now = db.now(conn)
        insert = db.dialect_insert(conn)
        for code, (modified, status) in marks.items():
            statement = insert(ReconcileMark).values(nc_id=code, modified_at=modified, status=status[:16],
                                                     seen_at=now)
            conn.execute(statement.on_conflict_do_update(
                index_elements=[ReconcileMark.nc_id],
                set_={"modified_at": statement.excluded.modified_at, "status": statement.excluded.status,
                      "seen_at": statement.excluded.seen_at}))


def start_run(engine: Engine, trigger: str, dry_run: bool) -> int:
    with engine.begin() as conn:
        return int(conn.execute(db.dialect_insert(conn)(ReconcileRun).values(
            trigger=trigger, dry_run=dry_run, started_at=db.now(conn), outcome="running", scanned=0, changed=0,
            new=0, backfilled=0, unchanged=0, requests=0, throttled=0).returning(ReconcileRun.id)).scalar_one())


def finish_run(engine: Engine, run_id: int, figures: RunFigures, outcome: str, error: str | None = None) -> None:
    with engine.begin() as conn:
        conn.execute(update(ReconcileRun).where(ReconcileRun.id == run_id).values(
            finished_at=db.now(conn), outcome=outcome, scanned=figures.scanned, changed=figures.changed,
            new=figures.new, backfilled=figures.backfilled, unchanged=figures.unchanged,
            requests=figures.requests, throttled=figures.throttled, error=error[:2000] if error else None))


def last_run(bind: Engine | Connection, finished_only: bool = False) -> dict[str, Any] | None:
    """The latest reconcile run (not a dry run) as a dict, for `status` and `/metrics`; None before the first."""
    query = select(ReconcileRun).where(ReconcileRun.dry_run.is_(False))
    if finished_only:
        query = query.where(and_(ReconcileRun.finished_at.is_not(None)))
    query = query.order_by(ReconcileRun.started_at.desc(), ReconcileRun.id.desc()).limit(1)
    if isinstance(bind, Connection):
        row = bind.execute(query).first()
    else:
        with db.reader(bind).connect() as conn:
            row = conn.execute(query).first()
    if row is None:
        return None
    names = ("id", "trigger", "started_at", "finished_at", "outcome", "scanned", "changed", "new", "backfilled",
             "unchanged", "requests", "throttled", "error")
    found = {name: getattr(row, name) for name in names}
    found["duration"] = ((row.finished_at - row.started_at).total_seconds() if row.finished_at else None)
    return found


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
