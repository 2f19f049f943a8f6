"""The drift decision (pure): a summary against what was applied, what was marked and the watermark."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from connector.qualio.drift import Known, Summary, Verdict, decide, parse_time, summary_from_item
from tests.qualio.support import fixture

WATERMARK = datetime(2026, 11, 1, tzinfo=UTC)
BEFORE, AFTER = WATERMARK - timedelta(days=30), WATERMARK + timedelta(days=1)


def summary(modified: datetime, created: datetime | None = None, status: str = "open") -> Summary:
    return Summary("NCR-12", status, modified, created or modified)


@pytest.mark.parametrize(("summary_", "known", "backfill", "verdict", "event_type"), [
    # seen, not newer than what was applied or queued: unchanged
    (summary(AFTER), Known(applied=AFTER), frozenset(), Verdict.UNCHANGED, "nc.updated"),
    (summary(AFTER), Known(applied=AFTER + timedelta(seconds=5)), frozenset(), Verdict.UNCHANGED, "nc.updated"),
    (summary(AFTER), Known(marked=AFTER), frozenset(), Verdict.UNCHANGED, "nc.updated"),
    (summary(AFTER), Known(applied=BEFORE, marked=AFTER), frozenset(), Verdict.UNCHANGED, "nc.updated"),
    # seen and newer: a missed change, before or after the watermark alike
    (summary(AFTER), Known(applied=AFTER - timedelta(seconds=1)), frozenset(), Verdict.CHANGED, "nc.updated"),
    (summary(BEFORE), Known(marked=BEFORE - timedelta(days=1)), frozenset(), Verdict.CHANGED, "nc.updated"),
    # never seen, created or modified after the watermark: a missed create (whatever its status)
    (summary(AFTER), Known(), frozenset(), Verdict.NEW, "nc.created"),
    (summary(AFTER, created=BEFORE, status="closed"), Known(), frozenset(), Verdict.NEW, "nc.created"),
    # never seen, modified before: left alone, unless its status is backfilled
    (summary(BEFORE), Known(), frozenset(), Verdict.PRE_INSTALL, "nc.updated"),
    (summary(BEFORE), Known(), frozenset({"open"}), Verdict.BACKFILL, "nc.created"),
    (summary(BEFORE, status="closed"), Known(), frozenset({"open"}), Verdict.PRE_INSTALL, "nc.updated"),
    (summary(BEFORE, status="closed"), Known(), frozenset({"open", "closed"}), Verdict.BACKFILL, "nc.created"),
    (summary(WATERMARK), Known(), frozenset(), Verdict.PRE_INSTALL, "nc.updated"),  # at it: not after it
])
def test_rules(summary_: Summary, known: Known, backfill: frozenset[str], verdict: Verdict, event_type: str) -> None:
    decision = decide(summary_, known, WATERMARK, backfill)
    assert decision.verdict is verdict and decision.event_type == event_type
    assert decision.verdict.queues == (verdict in (Verdict.CHANGED, Verdict.NEW, Verdict.BACKFILL))
    assert "Z" in decision.why


def test_the_table_says_what_differs() -> None:
    decision = decide(summary(AFTER), Known(applied=BEFORE), WATERMARK, frozenset())
    assert decision.why == "modified 2026-11-02T00:00:00Z, last synced 2026-10-02T00:00:00Z"


def test_summaries_from_the_spec_shaped_list() -> None:
    items = fixture("events_open")["items"]
    parsed = [summary_from_item(item) for item in items]
    assert [s.code for s in parsed if s] == ["NCR-12", "NCR-14", "NCR-15"]
    assert parsed[1] == Summary("NCR-14", "open", datetime(2026, 11, 30, 9, 15, tzinfo=UTC),
                                datetime(2020, 1, 1, tzinfo=UTC))


@pytest.mark.parametrize("item", [None, {}, {"code": "NCR-1"}, {"code": "", "modified_at": "2020-01-01T00:00:00Z"},
                                  {"code": "NCR-1", "modified_at": "yesterday"},
                                  {"code": "NCR-1", "modified_at": "2020-01-01T00:00:00"}])  # no zone
def test_unreadable_items_are_skipped(item: object) -> None:
    assert summary_from_item(item) is None


def test_times_keep_their_zone() -> None:
    assert parse_time("2026-12-01T10:00:00+02:00") == datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    assert parse_time(None) is None
