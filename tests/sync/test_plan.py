"""Sync planning, pure: coalescing, ordering, stale updates, comment dedup, no-op updates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from connector.jira.workflow import StatusTarget
from connector.mapping.load import default_mapping_path, load_mapping
from connector.mapping.render import comment_key
from connector.sync.plan import HANDLERS, Delivered, coalesce, plan_sync
from tests.conftest import load_fixture

T0 = datetime(2025, 1, 5, 10, 15, 32, tzinfo=UTC)


@pytest.fixture(scope="module")
def mapping():
    return load_mapping(default_mapping_path(), project_override="QA")


def delivered(i: int, payload: dict, at: datetime = T0) -> Delivered:
    return Delivered(i, payload["eventType"], at, payload)


def test_same_second_changes_both_apply_in_receipt_order():
    a, b = load_fixture("same_second_pair_a"), load_fixture("same_second_pair_b")
    snapshot = coalesce({}, {}, None, [delivered(2, b), delivered(1, a)])
    assert snapshot.applied == [1, 2]
    assert snapshot.state["severity"] == "major"  # b was received later
    assert snapshot.newest == T0


def test_an_older_state_never_overwrites_a_newer_one():
    known = {"status": "closed", "title": "T"}
    known_at = {"status": T0, "title": T0}
    older = {"eventType": "nc.updated", "ncId": "NC-1-1", "status": "open", "severity": "minor",
             "comment": {"id": "c-9", "body": "late but real"}}
    snapshot = coalesce(known, known_at, T0, [delivered(5, older, T0 - timedelta(minutes=1))])
    assert snapshot.state["status"] == "closed"
    assert snapshot.state["severity"] == "minor"  # no newer value known: the late delivery still counts
    assert snapshot.applied == [5] and snapshot.newest == T0
    older_comment = {**older, "eventType": "nc.comment_added"}
    assert coalesce(known, known_at, T0, [delivered(6, older_comment, T0 - timedelta(1))]).comments  # posted


def test_unknown_event_types_are_ignored():
    snapshot = coalesce({}, {}, None, [delivered(1, load_fixture("unknown_event_type"))])
    assert snapshot.ignored == [1] and snapshot.applied == []


def test_change_only_keys_are_not_part_of_the_state():
    snapshot = coalesce({}, {}, None, [delivered(1, load_fixture("same_second_comment_added"))])
    assert "comment" not in snapshot.state and "changedFields" not in snapshot.state
    assert snapshot.comments[0]["id"] == "c-1001"


def test_plan_marks_unchanged_fields_and_skips_posted_comments(mapping):
    snapshot = coalesce({}, {}, None, [delivered(1, load_fixture("same_second_comment_added"))])
    first = plan_sync(mapping, snapshot, None, None, {}, None)
    assert first.fields_changed and len(first.comments) == 1
    assert first.create_fields["project"] == {"key": "QA"}
    assert "qualio-nc-NC-2025-002" in first.create_fields["labels"]
    assert "project" not in first.edit_fields and "labels" not in first.edit_fields
    key = comment_key(snapshot.comments[0])
    again = plan_sync(mapping, snapshot, first.fields_hash, first.link_hash, {key: "10001"}, None)
    assert not again.fields_changed and not again.link_changed and again.comments == ()
    uncertain = plan_sync(mapping, snapshot, first.fields_hash, first.link_hash, {key: None}, None)
    assert len(uncertain.comments) == 1  # a post whose answer was lost is checked again


def test_status_maps_to_a_jira_status(mapping):
    snapshot = coalesce({}, {}, None, [delivered(1, load_fixture("nc_closed"))])
    assert plan_sync(mapping, snapshot, None, None, {}, None).target_status == StatusTarget(category="done")


def test_every_supported_event_type_has_a_fixture():
    import json

    from tests.conftest import FIXTURES

    seen = {json.loads(p.read_text())["eventType"] for p in FIXTURES.glob("*.json")}
    assert set(HANDLERS) <= seen
