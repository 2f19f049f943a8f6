"""Sync planning, pure: coalesce an NC's queued deliveries into one snapshot, then decide the Jira writes.

No I/O here: the worker feeds in deliveries, the link row and a field resolver, and gets
back what to send. Rules:
- deliveries apply in event-timestamp order, receipt order within one second, so two
  same-second changes both count and the later-received one wins a conflict;
- each field remembers the event time that set it: an older delivery never overwrites a newer
  value, but still fills fields no newer delivery has set (a dead letter replayed after newer
  events loses nothing), and its comment is still posted once;
- fields that render exactly as last sent make no Jira write;
- Qualio's record (enrichment) fills what the deliveries left out, and overwrites a delivery's value
  only where the record was modified after that delivery's event; an empty value never wipes one;
- an `nc.closed` without a status means status "closed".
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from connector.jira.workflow import StatusTarget
from connector.mapping.render import comment_key, remote_link, render_comment, render_fields, target_status
from connector.mapping.rules import Mapping, Resolver
from connector.receive.fingerprint import canonical_json

# Payload keys that describe one change rather than the NC's state: never merged into the snapshot.
CHANGE_ONLY_KEYS = frozenset({"comment", "changedFields"})
# An edit leaves these alone: Jira refuses project/issuetype in an edit, and labels may have been
# added by people in Jira (the marker label, set at creation, must survive).
NOT_EDITED = frozenset({"project", "issuetype", "labels"})


@dataclass
class Snapshot:
    """What the queued deliveries of one NC add up to."""

    state: dict[str, Any]
    set_at: dict[str, datetime]  # field -> event time of the value in `state`
    newest: datetime | None
    comments: list[dict[str, Any]] = field(default_factory=list)
    applied: list[int] = field(default_factory=list)  # delivery ids that were synced
    ignored: list[int] = field(default_factory=list)  # unknown event types


@dataclass(frozen=True)
class Delivered:
    """One delivery as the planner needs it."""

    id: int
    event_type: str
    timestamp: datetime
    payload: dict[str, Any]


def merge_state(snapshot: Snapshot, delivery: Delivered) -> None:
    for key, value in delivery.payload.items():
        if key in CHANGE_ONLY_KEYS:
            continue
        known = snapshot.set_at.get(key)
        if known is None or delivery.timestamp >= known:
            snapshot.state[key] = value
            snapshot.set_at[key] = delivery.timestamp


def merge_closed(snapshot: Snapshot, delivery: Delivered) -> None:
    """A thin close still closes: the event type stands for the status the payload does not carry."""
    payload = delivery.payload if "status" in delivery.payload else {**delivery.payload, "status": "closed"}
    merge_state(snapshot, Delivered(delivery.id, delivery.event_type, delivery.timestamp, payload))


def merge_comment(snapshot: Snapshot, delivery: Delivered) -> None:
    merge_state(snapshot, delivery)
    comment = delivery.payload.get("comment")
    if isinstance(comment, dict) and comment.get("body"):
        snapshot.comments.append(comment)


# The supported event types are exactly this table's keys (the manifest is tested against it).
HANDLERS: dict[str, Callable[[Snapshot, Delivered], None]] = {
    "nc.created": merge_state,
    "nc.updated": merge_state,
    "nc.status_changed": merge_state,
    "nc.closed": merge_closed,
    "nc.comment_added": merge_comment,
}


def coalesce(known_state: dict[str, Any], known_set_at: dict[str, datetime], last_event_at: datetime | None,
             deliveries: Sequence[Delivered]) -> Snapshot:
    """Fold the deliveries, oldest event first, into the NC's last known state."""
    snapshot = Snapshot(state=dict(known_state), set_at=dict(known_set_at), newest=last_event_at)
    for delivery in sorted(deliveries, key=lambda d: (d.timestamp, d.id)):
        handler = HANDLERS.get(delivery.event_type)
        if handler is None:
            snapshot.ignored.append(delivery.id)
            continue
        handler(snapshot, delivery)
        snapshot.applied.append(delivery.id)
        if snapshot.newest is None or delivery.timestamp > snapshot.newest:
            snapshot.newest = delivery.timestamp
    return snapshot


# When a record carries no modification time, its values only fill gaps: any delivery's value is newer.
UNDATED = datetime(1970, 1, 1, tzinfo=UTC)


def merge_record(snapshot: Snapshot, record: dict[str, Any]) -> None:
    """Fold Qualio's current record in: a value replaces the snapshot's only when the record was modified
    after the event that set it (or the snapshot has none); empty values (None, "", [], {}) never do."""
    modified = _parse_time(record.get("modifiedAt")) or UNDATED
    for key, value in record.items():
        if value is None or value == "" or value == [] or value == {}:
            continue
        known = snapshot.set_at.get(key)
        if key not in snapshot.state or known is None or modified > known:
            snapshot.state[key], snapshot.set_at[key] = value, modified


def _parse_time(raw: Any) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(str(raw).replace("Z", "+00:00")) if raw else None
    except ValueError:
        return None
    return parsed if parsed is None or parsed.tzinfo else parsed.replace(tzinfo=UTC)


@dataclass(frozen=True)
class PlannedComment:
    key: str
    body: str


@dataclass(frozen=True)
class SyncPlan:
    create_fields: dict[str, Any]  # everything, for a create
    edit_fields: dict[str, Any]  # what an edit may send
    fields_hash: str  # identity of what an edit would send
    fields_changed: bool
    link_hash: str | None  # identity of the remote link (None: no link)
    link_changed: bool
    target_status: StatusTarget | None
    comments: tuple[PlannedComment, ...]
    remote_link: dict[str, Any] | None


def comment_marker(key: str) -> str:
    """A line at the end of each posted comment: lets a retry find a comment whose post timed out."""
    return f"[qualio-comment:{key[:64]}]"


def plan_sync(mapping: Mapping, snapshot: Snapshot, last_fields_hash: str | None, last_link_hash: str | None,
              posted: dict[str, str | None], resolver: Resolver | None) -> SyncPlan:
    state = snapshot.state
    fields = render_fields(mapping, state, resolver)
    edit = {k: v for k, v in fields.items() if k not in NOT_EDITED}
    link = remote_link(mapping, state)
    link_hash = digest(link) if link else None
    comments: list[PlannedComment] = []
    for comment in snapshot.comments:
        key = comment_key(comment)
        if posted.get(key) is None and key not in {c.key for c in comments}:
            body = f"{render_comment(mapping, state, comment)}\n\n{comment_marker(key)}"
            comments.append(PlannedComment(key, body))
    fields_hash = digest(edit)
    return SyncPlan(create_fields=fields, edit_fields=edit, fields_hash=fields_hash,
                    fields_changed=fields_hash != last_fields_hash, link_hash=link_hash,
                    link_changed=link_hash is not None and link_hash != last_link_hash,
                    target_status=target_status(mapping, state), comments=tuple(comments), remote_link=link)


def digest(value: Any) -> str:
    """The identity of what is sent to Jira: SHA-256 of its canonical JSON."""
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()


def parse_payload(raw: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(raw)
    return data
