"""The NC -> Jira mapping table and the comment table: the source of truth for "exactly once".

An NC's row moves reserved -> creating -> linked. `creating` is committed *before* the create
call, so after a crash or a timeout the next attempt knows a create may already exist in Jira
and looks for it (by marker label) instead of blindly creating another.

Each step of a sync records what it applied as soon as it has applied it: the NC's merged state
(before any Jira call: it is what the deliveries say, whatever Jira makes of it), the hash of the
fields Jira was sent, the remote link's hash, the status reached, each comment. So a step that
fails costs only itself, and a retry or a replay repeats only what is still missing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, delete, select, update

from connector import db
from connector.clock import utcnow
from connector.jira.workflow import StatusRef
from connector.models import CommentLink, Delivery, NcLink
from connector.sync.errors import LeaseLost
from connector.sync.queue import Claim, held


@dataclass(frozen=True)
class Link:
    nc_id: str
    jira_key: str | None
    state: str  # reserved | creating | linked
    create_started_at: datetime | None
    last_event_at: datetime | None
    fields_hash: str | None
    jira_status: StatusRef | None  # the status last reached or seen
    remote_link_hash: str | None
    nc_state: dict[str, Any]  # the NC's merged fields
    field_times: dict[str, datetime]  # field -> event time that set it


def _load_state(raw: str | None) -> tuple[dict[str, Any], dict[str, datetime]]:
    data = json.loads(raw or "{}")
    times = {k: datetime.fromisoformat(v) for k, v in data.get("setAt", {}).items()}
    return data.get("fields", {}), times


def dump_state(fields: dict[str, Any], set_at: dict[str, datetime]) -> str:
    return json.dumps({"fields": fields, "setAt": {k: v.isoformat() for k, v in set_at.items()}},
                      sort_keys=True, default=str)


def _to_link(row: Any) -> Link:
    fields, times = _load_state(row.nc_state)
    status = StatusRef(row.jira_status_id or "", row.jira_status, row.jira_status_category or "") \
        if row.jira_status else None
    return Link(row.nc_id, row.jira_key, row.state, row.create_started_at, row.last_event_at, row.fields_hash,
                status, row.remote_link_hash, fields, times)


def reserve(engine: Engine, nc_id: str) -> Link:
    """The NC's row, created (reserved, no Jira issue yet) if this is its first sync."""
    now = utcnow()
    with engine.begin() as conn:
        db.insert_ignore(conn, NcLink, nc_id=nc_id, state="reserved", created_at=now, updated_at=now, nc_state="{}")
        row = conn.execute(select(NcLink).where(NcLink.nc_id == nc_id)).one()
        return _to_link(row)


def get(engine: Engine, nc_id: str) -> Link | None:
    with db.reader(engine).connect() as conn:
        row = conn.execute(select(NcLink).where(NcLink.nc_id == nc_id)).one_or_none()
        return _to_link(row) if row else None


def mark_creating(engine: Engine, nc_id: str, claim: Claim | None = None) -> None:
    """Committed before the create call: from now on a create may exist in Jira."""
    _update(engine, nc_id, claim, state="creating", create_started_at=db.now(engine))  # search-lag deadline


def mark_not_created(engine: Engine, nc_id: str) -> None:
    """Jira answered the create with an error: certainly nothing was created."""
    with engine.begin() as conn:
        conn.execute(update(NcLink).where(NcLink.nc_id == nc_id, NcLink.state == "creating")
                     .values(state="reserved", create_started_at=None, updated_at=utcnow()))


def mark_linked(engine: Engine, nc_id: str, jira_key: str, claim: Claim | None = None) -> None:
    """The NC's issue is `jira_key` (just created, adopted, or found under a new key after a move)."""
    _update(engine, nc_id, claim, state="linked", jira_key=jira_key)


def record_duplicates(engine: Engine, nc_id: str, others: list[str], claim: Claim | None = None) -> None:
    """Other issues carry this NC's marker label too (a create repeated after a lost answer, a copy by
    hand): kept so that `status` and /metrics say so until a person resolves it."""
    _update(engine, nc_id, claim, duplicate_keys=" ".join(others)[:500] or None)


def duplicated(engine: Engine) -> dict[str, str]:
    """NC id -> the other issues that carry its marker label."""
    with db.reader(engine).connect() as conn:
        rows = conn.execute(select(NcLink.nc_id, NcLink.duplicate_keys).where(NcLink.duplicate_keys.is_not(None)))
        return {nc_id: keys or "" for nc_id, keys in rows}


def record_state(engine: Engine, nc_id: str, nc_state: dict[str, Any], field_times: dict[str, datetime],
                 last_event_at: datetime | None, claim: Claim | None = None) -> None:
    """The NC's merged state and each field's event time: what later deliveries are compared against."""
    _update(engine, nc_id, claim, nc_state=dump_state(nc_state, field_times), last_event_at=last_event_at)


def record_fields(engine: Engine, nc_id: str, fields_hash: str, claim: Claim | None = None) -> None:
    """Jira now has exactly these fields (after a create, or an edit of what it accepted)."""
    _update(engine, nc_id, claim, fields_hash=fields_hash)


def record_remote_link(engine: Engine, nc_id: str, link_hash: str, claim: Claim | None = None) -> None:
    _update(engine, nc_id, claim, remote_link_hash=link_hash)


def record_status(engine: Engine, nc_id: str, status: StatusRef, claim: Claim | None = None) -> None:
    """The issue's status, as reached by a transition or read back from Jira."""
    _update(engine, nc_id, claim, jira_status=status.name[:64], jira_status_id=status.id[:32] or None,
            jira_status_category=status.category[:16] or None)


def unlink(engine: Engine, nc_id: str) -> bool:
    """Forget the NC's issue (deleted in Jira, say): the next sync finds it by label or creates one, and
    posts the NC's comments again. The NC's own state stays, so an older delivery still cannot win."""
    with engine.begin() as conn:
        conn.execute(delete(CommentLink).where(CommentLink.nc_id == nc_id))
        done = conn.execute(update(NcLink).where(NcLink.nc_id == nc_id).values(
            state="reserved", jira_key=None, create_started_at=None, **_UNKNOWN_ISSUE, updated_at=utcnow()))
    return bool(done.rowcount)


def relink(engine: Engine, nc_id: str, jira_key: str) -> bool:
    """Tie the NC to another issue: its fields are sent again at the next sync; posted comments stay posted."""
    with engine.begin() as conn:
        done = conn.execute(update(NcLink).where(NcLink.nc_id == nc_id).values(
            state="linked", jira_key=jira_key, create_started_at=None, **_UNKNOWN_ISSUE, updated_at=utcnow()))
    return bool(done.rowcount)


# What the connector knew of an issue it no longer links to.
_UNKNOWN_ISSUE: dict[str, Any] = {"fields_hash": None, "remote_link_hash": None, "jira_status": None,
                                  "jira_status_id": None, "jira_status_category": None}


def _update(engine: Engine, nc_id: str, claim: Claim | None, **values: Any) -> None:
    with engine.begin() as conn:
        _hold(conn, claim)
        conn.execute(update(NcLink).where(NcLink.nc_id == nc_id).values(**values, updated_at=utcnow()))


def _hold(conn: Connection, claim: Claim | None) -> None:
    """Inside a recording transaction: the claim must still be ours, else nothing is recorded (LeaseLost).

    On PostgreSQL the claimed rows stay locked until the record commits, so a take-over waits for it.
    """
    if claim is None:
        return
    query = select(Delivery.id).where(held(claim)).limit(1)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    if conn.execute(query).first() is None:
        raise LeaseLost(f"lost the claim on {claim.nc_id} to another worker; recording nothing")


def posted_comment_keys(engine: Engine, nc_id: str) -> dict[str, str | None]:
    """comment key -> Jira comment id (None: a post was started and its outcome is unknown)."""
    with db.reader(engine).connect() as conn:
        rows = conn.execute(select(CommentLink.comment_key, CommentLink.jira_comment_id)
                            .where(CommentLink.nc_id == nc_id)).all()
    return {key: comment_id for key, comment_id in rows}


def uncertain_comments(engine: Engine, nc_id: str) -> dict[str, datetime]:
    """comment key -> when its post was started, for posts whose outcome we never learned."""
    with db.reader(engine).connect() as conn:
        rows = conn.execute(select(CommentLink.comment_key, CommentLink.created_at)
                            .where(CommentLink.nc_id == nc_id, CommentLink.jira_comment_id.is_(None))).all()
    return {key: started for key, started in rows}


def reserve_comment(engine: Engine, nc_id: str, key: str, claim: Claim | None = None) -> None:
    """Committed before the comment is posted (like mark_creating, for comments); stamps when."""
    with engine.begin() as conn:
        _hold(conn, claim)
        now = db.now(conn)  # a search-lag deadline: the database's clock
        db.insert_ignore(conn, CommentLink, nc_id=nc_id, comment_key=key, created_at=now)
        conn.execute(update(CommentLink).where(CommentLink.nc_id == nc_id, CommentLink.comment_key == key,
                                               CommentLink.jira_comment_id.is_(None)).values(created_at=now))


def record_comment(engine: Engine, nc_id: str, key: str, jira_comment_id: str, claim: Claim | None = None) -> None:
    with engine.begin() as conn:
        _hold(conn, claim)
        conn.execute(update(CommentLink).where(CommentLink.nc_id == nc_id, CommentLink.comment_key == key)
                     .values(jira_comment_id=jira_comment_id))


def forget_comment(engine: Engine, nc_id: str, key: str) -> None:
    """Jira refused the post: nothing was created, so the next attempt may post again."""
    with engine.begin() as conn:
        conn.execute(delete(CommentLink).where(
            CommentLink.nc_id == nc_id, CommentLink.comment_key == key, CommentLink.jira_comment_id.is_(None)))
