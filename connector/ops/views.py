"""Operator views behind the CLI: status, delivery listings, mapping checks (formatting kept here)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select

from connector import db, throttles
from connector.clock import utcnow
from connector.models import Delivery, DeliveryStatus, NcLink
from connector.ops import reconcile_views
from connector.settings import Settings
from connector.sync import heartbeat, links
from connector.sync.queue import queue_figures


def list_deliveries(engine: Engine, nc_id: str | None = None, status: str | None = None,
                    limit: int = 50) -> list[Delivery]:
    query = select(Delivery).order_by(Delivery.id.desc()).limit(limit)
    if nc_id:
        query = query.where(Delivery.nc_id == nc_id)
    if status:
        query = query.where(Delivery.status == status)
    with db.reader(engine).connect() as conn:
        return list(conn.execute(query).all())  # type: ignore[arg-type]


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "-"


def format_deliveries(rows: list[Any]) -> str:
    header = (f"{'id':>8}  {'nc':<16} {'event':<18} {'source':<9} {'status':<10} {'tries':>5}  {'received':<19}  "
              f"{'jira':<10} error")
    lines = [header]
    for r in rows:
        error = (r.last_error or "").splitlines()[0][:80] if r.last_error else ""
        lines.append(f"{r.id:>8}  {r.nc_id:<16} {r.event_type:<18} {r.source:<9} {r.status:<10} {r.attempts:>5}  "
                     f"{_when(r.received_at):<19}  {r.jira_key or '-':<10} {error}")
    return "\n".join(lines)


def show_delivery(engine: Engine, delivery_id: int) -> str | None:
    with db.reader(engine).connect() as conn:
        row = conn.execute(select(Delivery).where(Delivery.id == delivery_id)).first()
    if row is None:
        return None
    fields = {c.key: getattr(row, c.key) for c in Delivery.__table__.columns if c.key != "payload"}
    lines = [f"{k:>16}: {_when(v) if isinstance(v, datetime) else v}" for k, v in fields.items()]
    lines.append(f"{'payload':>16}: {json.dumps(json.loads(row.payload), indent=2, ensure_ascii=False)}")
    return "\n".join(lines)


def status(engine: Engine, heartbeat_interval: float = 2.0) -> dict[str, Any]:
    figures = queue_figures(engine)
    with db.reader(engine).connect() as conn:
        last_sync = conn.execute(select(func.max(Delivery.finished_at))
                                 .where(Delivery.status == DeliveryStatus.DONE)).scalar()
        linked = conn.execute(select(func.count()).where(NcLink.state == "linked")).scalar_one()
    return {**figures, "last_sync_at": last_sync, "linked_ncs": linked, "fault": throttles.fault(engine),
            "duplicates": links.duplicated(engine), "workers": heartbeat.list_workers(engine),
            "heartbeat_interval": heartbeat_interval, "reconcile": reconcile_views.last_run(engine)}


LABELS = {DeliveryStatus.DEAD: "dead letters:"}


def format_status(figures: dict[str, Any]) -> str:
    counts = figures["counts"]
    oldest = figures["oldest_queued_at"]
    age = f"{(utcnow() - oldest).total_seconds():.0f}s" if oldest else "-"
    return "\n".join([
        *(f"{LABELS.get(status, status + ':'):<13} {counts.get(status, 0)}" for status in DeliveryStatus),
        f"oldest waiting delivery: {age}",
        f"NCs linked to Jira: {figures['linked_ncs']}",
        f"last sync: {_when(figures['last_sync_at'])}",
        *_fault_lines(figures.get("fault")),
        *_worker_lines(figures.get("workers", []), figures.get("heartbeat_interval", 2.0)),
        *(reconcile_views.status_lines(figures["reconcile"]) if "reconcile" in figures else []),
        *(f"SEVERAL ISSUES carry the label of {nc_id}: linked to one, also {keys} (merge or delete them)"
          for nc_id, keys in figures.get("duplicates", {}).items()),
    ])


def _worker_lines(workers: list[heartbeat.WorkerInfo], interval: float) -> list[str]:
    lines = [f"workers: {len(workers)}"]
    for w in workers:
        state = (f"STALE: no heartbeat for {w.age_seconds:.0f}s" if w.is_stale(interval)
                 else f"last beat {w.age_seconds:.1f}s ago")
        doing = f", syncing {w.claim}" if w.claim else ", idle"
        owner = f" (run by serve {w.supervisor})" if w.supervisor else ""
        lines.append(f"  {w.id}  since {_when(w.started_at)}  {state}{doing}{owner}")
    return lines


def _fault_lines(fault: throttles.Fault | None) -> list[str]:
    if fault is None:
        return []
    return [f"PAUSED (a fault of the installation, {fault.strikes} failed probe(s)): {fault.reason}",
            f"next probe: {_when(fault.until)}"]


def check_mapping(settings: Settings, path: str | None, payload_path: str | None,
                  live: bool) -> tuple[str, list[str]]:
    """Validate a mapping; render a payload with it; optionally check it against the live Jira."""
    from connector.mapping.load import default_mapping_path, load_mapping
    from connector.mapping.rules import MappingError

    target = Path(path) if path else Path(settings.mapping_file or default_mapping_path())
    try:
        mapping = load_mapping(target, project_override=settings.jira_project)
    except MappingError as exc:
        return "", [str(exc)]
    except OSError as exc:
        raise ValueError(f"cannot read {target}: {exc.strerror}") from None
    out = [f"{target}: valid (project {mapping.project or '(unset: NC_CONNECTOR_JIRA_PROJECT)'}, "
           f"issue type {mapping.issue_type})"]
    problems: list[str] = []
    resolver = None
    if live:
        from connector.jira.gateway import JiraError, gateway_from_settings
        from connector.jira.resolver import CachedResolver

        gateway = gateway_from_settings(settings)
        try:
            problems.extend(gateway.check_project(mapping.project, mapping.issue_type))
        except JiraError as exc:
            problems.append(f"Jira: {exc.message}")
        resolver = CachedResolver(gateway)
        problems.extend(unknown_fields(mapping, resolver))
        problems.extend(screen_problems(gateway, mapping, resolver))
    if payload_path:
        try:
            preview = preview_payload(mapping, Path(payload_path).read_bytes(), resolver)
        except ValueError as exc:
            raise ValueError(f"{payload_path}: {exc}") from None
        if preview.problem:
            return "\n".join(out), [preview.problem]
        out.append("Jira fields that would be sent:")
        out.append(json.dumps(preview.fields, indent=2, ensure_ascii=False, default=str))
        out.append(f"target status: {preview.status}")
        if preview.comment is not None:
            out.append("comment that would be posted:")
            out.append(preview.comment)
    return "\n".join(out), problems


@dataclass(frozen=True)
class PayloadPreview:
    """What a mapping makes of one payload: `mappings check --payload` and the console's mapping preview."""

    fields: dict[str, Any]
    status: str  # the target status, or "(unchanged)"
    comment: str | None  # the Jira comment, when the payload carries one
    problem: str | None = None  # the mapping could not render it (the other values are then empty)


def preview_payload(mapping: Any, raw: bytes, resolver: Any = None) -> PayloadPreview:
    """Render a payload (checked against the webhook contract: ValueError names the problem) with a mapping."""
    from connector.mapping.render import render_comment, render_fields, target_status
    from connector.mapping.rules import MappingError
    from connector.receive.events import PayloadError, parse_event

    try:
        event = parse_event(raw)
    except PayloadError as exc:
        raise ValueError(exc.detail) from None
    nc = {k: v for k, v in event.payload.items() if k != "comment"}
    try:
        fields = render_fields(mapping, nc, resolver)
        comment = event.payload.get("comment")
        text = render_comment(mapping, nc, comment) if isinstance(comment, dict) else None
    except MappingError as exc:
        return PayloadPreview({}, "", None, str(exc))
    return PayloadPreview(fields, str(target_status(mapping, nc) or "(unchanged)"), text)


def screen_problems(gateway: Any, mapping: Any, resolver: Any) -> list[str]:
    """Required fields of transition screens the mapping cannot fill, as seen from the project's newest issue.

    Jira shows only the transitions open from an issue's status, so this covers those of one status;
    a sync meeting another such screen still tries (Jira accepts when the issue has a value) and names
    the field in the dead letter if Jira refuses.
    """
    from connector.jira.field_shapes import SYSTEM_FIELDS
    from connector.jira.gateway import JiraError
    from connector.jira.workflow import unfillable

    if mapping.status is None or not mapping.project:
        return []
    try:
        key = gateway.newest_issue(mapping.project)
        issue = gateway.get_issue(key) if key else None
    except JiraError as exc:
        return [f"cannot read a transition screen of {mapping.project!r}: {exc}"]
    if issue is None:
        return []
    filled = {rule.name if rule.name in SYSTEM_FIELDS else getattr(resolver.field(rule.name), "id", rule.name)
              for rule in mapping.fields}
    return [f"transition {t.name!r} (from {issue.status.name!r}, seen on {issue.key}) requires {f.name} ({f.id}), "
            f"which the mapping does not fill: a sync through it fails unless the issue has a value"
            for t in issue.transitions for f in unfillable(t) if f.id not in filled]


def unknown_fields(mapping: Any, resolver: Any) -> list[str]:
    """Fields the mapping sets by name or id that this Jira does not have."""
    from connector.jira.field_shapes import SYSTEM_FIELDS

    return [f"{mapping.path}: fields.{rule.name}: no such field in this Jira (GET /rest/api/2/field)"
            for rule in mapping.fields
            if rule.name not in SYSTEM_FIELDS and resolver.field(rule.name) is None]
