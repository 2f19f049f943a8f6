"""The NC event contract (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from connector.receive.events import PayloadError, parse_event, parse_timestamp, validate_event
from tests.conftest import FIXTURES, fixture_bytes


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("*.json")), ids=lambda p: p.stem)
def test_every_fixture_is_a_valid_event(path):
    event = parse_event(path.read_bytes())
    assert event.nc_id and event.event_type and event.timestamp.tzinfo is UTC


def test_seed_example():
    event = parse_event(fixture_bytes("seed_nc_updated"))
    assert (event.event_type, event.nc_id) == ("nc.updated", "NC-2025-001")
    assert event.timestamp == datetime(2025, 1, 5, 10, 15, 32, tzinfo=UTC)


@pytest.mark.parametrize("nc_id", ["NC-2025-001", "NCR-12", "CAPA-7", "nc-1"])
def test_accepted_nc_ids(nc_id):
    assert validate_event({"eventType": "nc.updated", "ncId": nc_id, "timestamp": "2025-01-05T10:15:32Z"})


@pytest.mark.parametrize("nc_id", ["", "NC", "NC 1", "-12", "NC-1;DROP", "N" * 70 + "-1", 12])
def test_rejected_nc_ids(nc_id):
    with pytest.raises(PayloadError) as err:
        validate_event({"eventType": "nc.updated", "ncId": nc_id, "timestamp": "2025-01-05T10:15:32Z"})
    assert [e.field for e in err.value.errors] == ["ncId"]


def test_timestamps_with_offsets_are_utc():
    assert parse_timestamp("2025-02-10T16:30:00+01:00") == datetime(2025, 2, 10, 15, 30, tzinfo=UTC)
    assert parse_timestamp("2025-02-10T16:30:00.123456789Z").microsecond == 123456


@pytest.mark.parametrize("raw", ["2025-02-10", "2025-02-10T16:30:00", "1736072132", "2025-13-01T00:00:00Z",
                                 "2025-02-10T25:00:00Z", 1736072132, None])
def test_bad_timestamps(raw):
    with pytest.raises(ValueError):
        parse_timestamp(raw)


def test_every_problem_is_reported_at_once():
    with pytest.raises(PayloadError) as err:
        validate_event({"eventType": "NC UPDATED", "timestamp": "soon"})
    assert [e.field for e in err.value.errors] == ["eventType", "ncId", "timestamp"]


def test_extra_fields_are_kept_as_they_came():
    event = parse_event(fixture_bytes("same_second_comment_added"))
    assert event.payload["comment"]["id"] == "c-1001"
    assert event.payload["changedFields"] == ["comments"]
