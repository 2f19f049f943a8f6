"""The drift decision (pure): one Qualio event summary against what the connector knows of that NC.

What the connector knows of an NC, ``Known``:

- ``applied``: the newest Qualio state it applied or is about to, the latest of the NC's merged
  ``modifiedAt`` (set by enrichment from the detail record), its newest applied event time (``nc_links``)
  and the newest event time of its deliveries still waiting (their sync fetches the NC anyway); None if
  it never heard of the NC;
- ``marked``: the summary ``modified_at`` the last reconcile queued (``reconcile_marks``); None if none.

The rules, first match wins:

1. seen (applied or marked) and ``modified_at`` is not newer than both: **unchanged** (no detail fetch,
   nothing queued);
2. seen and ``modified_at`` newer: **changed** (a missed update);
3. never seen, created or modified after the installation's ``watermark``: **new** (a missed create, or
   a missed first change of an NC created before the install);
4. never seen, last modified before the watermark (it predates the install): **backfill** when the run
   backfills that status, else **pre-install** (left alone).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

__all__ = ["STATUSES", "Decision", "Known", "Summary", "Verdict", "decide", "parse_time", "summary_from_item"]


STATUSES = ("open", "closed", "imported", "rejected", "cancelled")  # Qualio's eventStatus, all of them


class Verdict(StrEnum):
    UNCHANGED = "unchanged"
    CHANGED = "changed"
    NEW = "new"
    BACKFILL = "backfill"
    PRE_INSTALL = "pre-install"

    @property
    def queues(self) -> bool:
        return self in (Verdict.CHANGED, Verdict.NEW, Verdict.BACKFILL)


@dataclass(frozen=True)
class Summary:
    """What reconcile reads of an event in Qualio's list (``eventQueryResponse.items``)."""

    code: str
    status: str
    modified_at: datetime
    created_at: datetime | None = None


@dataclass(frozen=True)
class Known:
    applied: datetime | None = None
    marked: datetime | None = None

    @property
    def last_seen(self) -> datetime | None:
        seen = [t for t in (self.applied, self.marked) if t is not None]
        return max(seen) if seen else None


@dataclass(frozen=True)
class Decision:
    summary: Summary
    verdict: Verdict
    why: str  # what differs, for the drift table

    @property
    def event_type(self) -> str:
        """The webhook event type reconcile queues: a create for an NC it never saw, else an update."""
        return "nc.created" if self.verdict in (Verdict.NEW, Verdict.BACKFILL) else "nc.updated"


def decide(summary: Summary, known: Known, watermark: datetime, backfill: frozenset[str]) -> Decision:
    """Rules 1-4 of the module docstring. ``backfill`` holds the statuses this run backfills (empty: none)."""
    last_seen = known.last_seen
    modified = _iso(summary.modified_at)
    if last_seen is not None:
        if summary.modified_at <= last_seen:
            return Decision(summary, Verdict.UNCHANGED, f"modified {modified}, as last synced")
        return Decision(summary, Verdict.CHANGED, f"modified {modified}, last synced {_iso(last_seen)}")
    created = summary.created_at
    if summary.modified_at > watermark or (created is not None and created > watermark):
        return Decision(summary, Verdict.NEW, f"never synced; modified {modified}, after the watermark")
    if summary.status in backfill:
        return Decision(summary, Verdict.BACKFILL, f"never synced; modified {modified}, before the watermark")
    return Decision(summary, Verdict.PRE_INSTALL, f"never synced; modified {modified}, before the watermark")


def parse_time(raw: Any) -> datetime | None:
    """An RFC 3339 time from Qualio (``2020-01-01T00:00:00Z``) as an aware datetime; None when absent or bad."""
    if not isinstance(raw, str) or not raw:
        return None
    try:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def summary_from_item(item: Any) -> Summary | None:
    """A list item as a ``Summary``; None for one without a code or a readable ``modified_at`` (skipped)."""
    if not isinstance(item, dict):
        return None
    code, modified = item.get("code"), parse_time(item.get("modified_at"))
    if not isinstance(code, str) or not code or modified is None:
        return None
    return Summary(code=code, status=str(item.get("status") or ""), modified_at=modified,
                   created_at=parse_time(item.get("created_at")))


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")
