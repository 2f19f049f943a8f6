"""Webhook bodies for the bench: distinct ingest deliveries and the burst of section 3.

Every request is built whole (request line, headers, body) by a picklable factory, signed with
Standard Webhooks at the moment it is sent (``connector.receive.signing`` semantics, re-implemented
here with a pre-decoded key so signing costs microseconds).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import random
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

SECRET = "whsec_" + base64.b64encode(b"nc-connector-bench-secret-0123456789").decode()
PATH = "/webhooks/qualio"
STATUSES = ("open", "under_investigation", "closed")
SEVERITIES = ("minor", "major", "critical")
JIRA_STATUS = {"open": "To Do", "under_investigation": "In Progress", "closed": "Done"}
JIRA_PRIORITY = {"minor": "Low", "major": "High", "critical": "Highest"}


def _key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix("whsec_"))


def http_request(host: str, port: int, body: bytes, webhook_id: str | None, key: bytes | None,
                 path: str = PATH) -> bytes:
    """A whole HTTP/1.1 POST; signed when key is given (webhook_id is then required)."""
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}", "Content-Type: application/json",
             f"Content-Length: {len(body)}"]
    if key is not None and webhook_id is not None:
        ts = int(time.time())
        digest = hmac.new(key, f"{webhook_id}.{ts}.".encode() + body, hashlib.sha256).digest()
        lines += [f"webhook-id: {webhook_id}", f"webhook-timestamp: {ts}",
                  "webhook-signature: v1," + base64.b64encode(digest).decode()]
    elif webhook_id is not None:
        lines.append(f"webhook-id: {webhook_id}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def nc_payload(nc_id: str, event_type: str, timestamp: str, revision: int, *, status: str = "open",
               severity: str = "minor", title: str | None = None, comment: dict[str, Any] | None = None,
               changed: tuple[str, ...] = ("status",), extra: str = "") -> dict[str, Any]:
    """A realistic NC payload (~500 bytes); `revision` is written into the description so that a
    Jira write can be traced back to the newest delivery it reflects."""
    number = sum(map(ord, nc_id)) * 7919 % 1_000_000
    payload: dict[str, Any] = {
        "eventType": event_type, "ncId": nc_id, "timestamp": timestamp,
        "title": title or f"Non Compliance: procedure was not followed ({nc_id})",
        "description": f"Cleaning log for line 3 was not signed off. Batch 24-117 quarantined. "
                       f"(revision {revision}){extra}",
        "status": status, "severity": severity, "owner": "dana@example.com",
        "dueAt": "2026-02-15T00:00:00Z", "url": f"https://app.qualio.com/quality-events/events/{number}",
        "changedFields": list(changed),
    }
    if comment is not None:
        payload["comment"] = comment
    return payload


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class IngestFactory:
    """Distinct signed nc.updated deliveries: body and webhook-id unique per (tag, index)."""

    host: str
    port: int
    tag: str
    secret: str = SECRET
    signed: bool = True
    ncs: int = 1000
    _key: bytes = field(default=b"", repr=False)
    _template: str = field(default="", repr=False)

    def __post_init__(self) -> None:
        self._key = _key(self.secret)
        base = nc_payload("NC-2026-XXXXXX", "nc.updated", "TIMESTAMP", 0, extra=" [bench TAGIDX]")
        self._template = json.dumps(base)

    def build(self, index: int) -> bytes:
        body = (self._template.replace("NC-2026-XXXXXX", f"NC-2026-{index % self.ncs:06d}")
                .replace("TIMESTAMP", rfc3339(datetime.now(UTC)))
                .replace("TAGIDX", f"{self.tag}-{index}")).encode()
        webhook_id = f"msg_{self.tag}_{index}"
        return http_request(self.host, self.port, body, webhook_id, self._key if self.signed else None)


@dataclass
class ListFactory:
    """A fixed sequence of (body, webhook_id) items, signed when sent."""

    host: str
    port: int
    items: list[tuple[bytes, str]]
    secret: str = SECRET
    _key: bytes = field(default=b"", repr=False)

    def __post_init__(self) -> None:
        self._key = _key(self.secret)

    def build(self, index: int) -> bytes:
        body, webhook_id = self.items[index % len(self.items)]
        return http_request(self.host, self.port, body, webhook_id, self._key)


# -- the burst -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BurstItem:
    nc_id: str
    body: bytes
    webhook_id: str
    revision: int  # per NC; duplicates repeat their original's
    timestamp: str
    duplicate_of: int | None  # index of the original in the sequence (true duplicates)
    kind: str  # created, updated, same_second, status, comment, retry (same webhook-id), resend (new id)


@dataclass
class Burst:
    items: list[BurstItem]
    ncs: list[str]
    comments_per_nc: int
    final: dict[str, dict[str, Any]]  # placeholder: computed from the receipt order after the run

    @property
    def distinct(self) -> int:
        return sum(1 for i in self.items if i.duplicate_of is None)


def make_burst(ncs: int, per_nc: int = 10, seed: int = 7, tag: str = "b") -> Burst:
    """`ncs * per_nc` deliveries: per NC 6 distinct changes (created; an update; a same-second pair
    that differs only in severity; a status change; a comment) and `per_nc - 6` true duplicates
    (half re-sent with the original webhook-id, as a sender retry; half with a new one, as an
    at-least-once re-delivery). NCs are interleaved at random, each NC's changes keep their order,
    duplicates follow their original within a few hundred positions."""
    if per_nc < 6:
        raise ValueError("per_nc must be at least 6 (the distinct changes of one NC)")
    rng = random.Random(seed)
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)
    streams: list[list[tuple[str, dict[str, Any], str]]] = []
    # Qualio event codes (LETTERS-DIGITS, qualio.client.is_event_code): the enrichment run fetches each NC's
    # record by its code, and the enricher does not ask Qualio for an id that cannot be one.
    nc_ids = [f"NC{tag.upper()}-{n:05d}" for n in range(ncs)]
    for n, nc_id in enumerate(nc_ids):
        t0 = base + timedelta(seconds=n % 600)
        ts = [rfc3339(t0 + timedelta(seconds=k)) for k in range(5)]
        status_final = STATUSES[1 + n % 2]  # under_investigation or closed
        sev_a, sev_b = SEVERITIES[n % 3], SEVERITIES[(n + 1) % 3]
        comment = {"id": f"c-{tag}-{n}", "author": "sam@example.com", "createdAt": ts[4],
                   "body": f"Root cause for {nc_id}: firmware 2.3 on printer P-4."}
        events = [
            ("created", nc_payload(nc_id, "nc.created", ts[0], 1, changed=())),
            ("updated", nc_payload(nc_id, "nc.updated", ts[1], 2, title=f"Label printer misprints lots ({nc_id})",
                                   changed=("title",))),
            ("same_second", nc_payload(nc_id, "nc.updated", ts[2], 3, severity=sev_a, changed=("severity",),
                                       title=f"Label printer misprints lots ({nc_id})")),
            ("same_second", nc_payload(nc_id, "nc.updated", ts[2], 4, severity=sev_b, changed=("severity",),
                                       title=f"Label printer misprints lots ({nc_id})")),
            ("status", nc_payload(nc_id, "nc.status_changed", ts[3], 5, status=status_final, severity=sev_b,
                                  title=f"Label printer misprints lots ({nc_id})")),
            ("comment", nc_payload(nc_id, "nc.comment_added", ts[4], 6, status=status_final, severity=sev_b,
                                   title=f"Label printer misprints lots ({nc_id})", comment=comment,
                                   changed=("comments",))),
        ]
        streams.append([(kind, payload, f"msg_{tag}_{n}_{k}") for k, (kind, payload) in enumerate(events)])
    # Random interleave that keeps each NC's order.
    order: list[int] = [n for n, s in enumerate(streams) for _ in s]
    rng.shuffle(order)
    cursor = [0] * ncs
    originals: list[BurstItem] = []
    for n in order:
        kind, payload, webhook_id = streams[n][cursor[n]]
        cursor[n] += 1
        originals.append(BurstItem(nc_ids[n], json.dumps(payload).encode(), webhook_id,
                                   int(payload["description"].split("(revision ")[1].split(")")[0]),
                                   payload["timestamp"], None, kind))
    # Duplicates: each placed after its original.
    dup_count = ncs * (per_nc - 6)
    sequence: list[BurstItem | None] = list(originals)
    placements: list[tuple[int, BurstItem]] = []
    for d in range(dup_count):
        src = rng.randrange(len(originals))
        original = originals[src]
        retry = d % 2 == 0
        dup = BurstItem(original.nc_id, original.body, original.webhook_id if retry else f"{original.webhook_id}_r{d}",
                        original.revision, original.timestamp, src, "retry" if retry else "resend")
        placements.append((min(len(originals), src + 1 + rng.randrange(300)), dup))
    placements.sort(key=lambda p: p[0])
    merged: list[BurstItem] = []
    p = 0
    for pos, item in enumerate(sequence):
        while p < len(placements) and placements[p][0] <= pos:
            merged.append(placements[p][1])
            p += 1
        assert item is not None
        merged.append(item)
    merged.extend(dup for _, dup in placements[p:])
    # Re-point duplicate_of at positions in the merged sequence.
    position = {id(item): k for k, item in enumerate(merged) if item.duplicate_of is None}
    fixed = [item if item.duplicate_of is None else
             BurstItem(item.nc_id, item.body, item.webhook_id, item.revision, item.timestamp,
                       position[id(originals[item.duplicate_of])], item.kind) for item in merged]
    return Burst(fixed, nc_ids, 1, {})


def expected_final(burst: Burst, delivery_ids: dict[int, int]) -> dict[str, dict[str, Any]]:
    """Per NC, the payload that must win: the newest event time, receipt order (delivery id) within one
    second (the connector's documented rule); `delivery_ids` maps sequence index -> deliveryId of every
    202. A duplicate sent close behind its original can be the one that commits first (and gets the
    202), so every accepted item counts, original or not: both carry the same body."""
    best: dict[str, tuple[str, int, dict[str, Any]]] = {}
    for index, delivery_id in delivery_ids.items():
        item = burst.items[index]
        key = (item.timestamp, delivery_id)
        current = best.get(item.nc_id)
        if current is None or key > current[:2]:
            best[item.nc_id] = (item.timestamp, delivery_id, json.loads(item.body))
    return {nc: payload for nc, (_, _, payload) in best.items()}


def qualio_record(payload: dict[str, Any]) -> dict[str, Any]:
    """An `eventDetailed` record (shape of the example in Qualio's OpenAPI spec) holding this NC state."""
    return {
        "code": payload["ncId"], "title": payload["title"], "description": payload["description"],
        "status": payload["status"], "url": payload["url"], "owner_user_id": 1,
        "created_at": "2026-01-01T00:00:00Z", "due_at": payload.get("dueAt", "2026-02-15T00:00:00Z"),
        "modified_at": payload["timestamp"], "closed_at": None, "risk": "1+ Acceptable",
        "escalated_from": [], "escalated_to": [], "tag_ids": [21, 92],
        "steps": [
            {"label": "Introduction", "type": "content", "order": 0,
             "sections": [{"label": "Overview", "order": 0, "section_id": 1,
                           "content": "This Non-Compliance Report (NCR) template is used to document and track "
                                      "non-conformances in your quality management system."}],
             "content_status": "effective", "owner_user_id": 1, "created_at": "2026-01-01T00:00:00Z",
             "modified_at": "2026-01-01T00:00:00Z", "approvers": [{"user_id": 5, "action_done": True}],
             "reviewers": [{"user_id": 4, "action_done": True}]},
            {"label": "Non Compliance Details", "type": "form", "order": 1,
             "fields": [{"label": "Description", "type": "text", "order": 0, "mandatory": True, "multi": False,
                         "values": ["Procedure was not followed"]},
                        {"label": "Severity", "type": "dropdown", "order": 1, "mandatory": True, "multi": False,
                         "values": [payload.get("severity", "minor").capitalize()]}]},
        ],
    }
