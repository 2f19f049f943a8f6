"""The NC -> Jira mapping table and the comment table: the source of truth for "exactly once".

An NC's row moves reserved -> creating -> linked. `creating` is committed *before* the create
call, so after a crash or a timeout the next attempt knows a create may already exist in Jira
and looks for it (by marker label) instead of blindly creating another.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite

from connector.clock import utcnow
from connector.models import CommentLink, NcLink


@dataclass(frozen=True)
class Link:
    nc_id: str
    jira_key: str | None
    state: str  # reserved | creating | linked
    create_started_at: datetime | None
    last_event_at: datetime | None
    fields_hash: str | None
    jira_status: str | None
    nc_state: dict[str, Any]  # the NC's merged fields
    field_times: dict[str, datetime]  # field -> event time that set it


def _load_state(raw: str | None) -> tuple[dict[str, Any], dict[str, datetime]]:
    data = json.loads(raw or "{}")
    times = {k: datetime.fromisoformat(v) for k, v in data.get("setAt", {}).items()}
    return data.get("fields", {}), times


def dump_state(fields: dict[str, Any], set_at: dict[str, datetime]) -> str:
    return json.dumps({"fields": fields, "setAt": {k: v.isoformat() for k, v in set_at.items()}},
                      sort_keys=True, default=str)


def _insert_ignore(conn: Connection, model: type, **values: Any) -> None:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    conn.execute(dialect.insert(model).values(**values).on_conflict_do_nothing())


def _to_link(row: Any) -> Link:
    fields, times = _load_state(row.nc_state)
    return Link(row.nc_id, row.jira_key, row.state, row.create_started_at, row.last_event_at, row.fields_hash,
                row.jira_status, fields, times)


def reserve(engine: Engine, nc_id: str) -> Link:
    """The NC's row, created (reserved, no Jira issue yet) if this is its first sync."""
    now = utcnow()
    with engine.begin() as conn:
        _insert_ignore(conn, NcLink, nc_id=nc_id, state="reserved", created_at=now, updated_at=now, nc_state="{}")
        row = conn.execute(select(NcLink).where(NcLink.nc_id == nc_id)).one()
        return _to_link(row)


def get(engine: Engine, nc_id: str) -> Link | None:
    with engine.connect() as conn:
        row = conn.execute(select(NcLink).where(NcLink.nc_id == nc_id)).one_or_none()
        return _to_link(row) if row else None


def mark_creating(engine: Engine, nc_id: str) -> None:
    """Committed before the create call: from now on a create may exist in Jira."""
    with engine.begin() as conn:
        conn.execute(update(NcLink).where(NcLink.nc_id == nc_id)
                     .values(state="creating", create_started_at=utcnow(), updated_at=utcnow()))


def mark_not_created(engine: Engine, nc_id: str) -> None:
    """Jira answered the create with an error: certainly nothing was created."""
    with engine.begin() as conn:
        conn.execute(update(NcLink).where(NcLink.nc_id == nc_id, NcLink.state == "creating")
                     .values(state="reserved", create_started_at=None, updated_at=utcnow()))


def mark_linked(engine: Engine, nc_id: str, jira_key: str, fields_hash: str | None = None) -> None:
    with engine.begin() as conn:
        conn.execute(update(NcLink).where(NcLink.nc_id == nc_id)
                     .values(state="linked", jira_key=jira_key, fields_hash=fields_hash, updated_at=utcnow()))


def record_sync(conn: Connection, nc_id: str, *, fields_hash: str, jira_status: str | None,
                last_event_at: datetime | None, nc_state: dict[str, Any], field_times: dict[str, datetime]) -> None:
    """After a successful sync, inside the transaction that also finishes the deliveries."""
    conn.execute(update(NcLink).where(NcLink.nc_id == nc_id).values(
        fields_hash=fields_hash, jira_status=jira_status, last_event_at=last_event_at,
        nc_state=dump_state(nc_state, field_times), updated_at=utcnow()))


def posted_comment_keys(engine: Engine, nc_id: str) -> dict[str, str | None]:
    """comment key -> Jira comment id (None: a post was started and its outcome is unknown)."""
    with engine.connect() as conn:
        rows = conn.execute(select(CommentLink.comment_key, CommentLink.jira_comment_id)
                            .where(CommentLink.nc_id == nc_id)).all()
    return {key: comment_id for key, comment_id in rows}


def uncertain_comments(engine: Engine, nc_id: str) -> dict[str, datetime]:
    """comment key -> when its post was started, for posts whose outcome we never learned."""
    with engine.connect() as conn:
        rows = conn.execute(select(CommentLink.comment_key, CommentLink.created_at)
                            .where(CommentLink.nc_id == nc_id, CommentLink.jira_comment_id.is_(None))).all()
    return {key: started for key, started in rows}


def reserve_comment(engine: Engine, nc_id: str, key: str) -> None:
    """Committed before the comment is posted (like mark_creating, for comments); stamps when."""
    now = utcnow()
    with engine.begin() as conn:
        _insert_ignore(conn, CommentLink, nc_id=nc_id, comment_key=key, created_at=now)
        conn.execute(update(CommentLink).where(CommentLink.nc_id == nc_id, CommentLink.comment_key == key,
                                               CommentLink.jira_comment_id.is_(None)).values(created_at=now))


def record_comment(engine: Engine, nc_id: str, key: str, jira_comment_id: str) -> None:
    with engine.begin() as conn:
        conn.execute(update(CommentLink).where(CommentLink.nc_id == nc_id, CommentLink.comment_key == key)
                     .values(jira_comment_id=jira_comment_id))


def forget_comment(engine: Engine, nc_id: str, key: str) -> None:
    """Jira refused the post: nothing was created, so the next attempt may post again."""
    with engine.begin() as conn:
        conn.execute(delete(CommentLink).where(
            CommentLink.nc_id == nc_id, CommentLink.comment_key == key, CommentLink.jira_comment_id.is_(None)))
