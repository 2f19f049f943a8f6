"""The NC event contract (pure)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from connector.receive.events import PayloadError, parse_event, parse_json, parse_timestamp, validate_event
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


VALID = {"eventType": "nc.updated", "ncId": "NC-2025-001", "timestamp": "2025-01-05T10:15:32Z"}


def errors_of(data: dict[str, object]) -> list[str]:
    with pytest.raises(PayloadError) as err:
        validate_event(data)
    assert err.value.errors, err.value.detail
    return [e.field for e in err.value.errors]


@pytest.mark.parametrize("raw", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00",
                                 "0001-01-01T00:59:59.999+01:00"])
def test_timestamps_that_leave_the_calendar_in_utc_are_refused(raw):
    # once an OverflowError from astimezone: a 500
    with pytest.raises(ValueError, match="out of range"):
        parse_timestamp(raw)
    assert errors_of({**VALID, "timestamp": raw}) == ["timestamp"]


def test_the_edges_of_the_calendar_that_fit_in_utc_are_kept():
    assert parse_timestamp("0001-01-01T00:00:00Z") == datetime(1, 1, 1, tzinfo=UTC)
    assert parse_timestamp("9999-12-31T23:59:59Z") == datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
    assert parse_timestamp("0001-01-01T01:00:00+01:00") == datetime(1, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(("field", "value"), [
    ("ncId", "NC-2025-001\n"), ("ncId", " NC-2025-001"), ("ncId", "NC-2025-001 "),
    ("eventType", "nc.updated\n"), ("eventType", "nc.updated "),
    ("timestamp", "2025-01-05T10:15:32Z\n"), ("timestamp", " 2025-01-05T10:15:32Z"),
])
def test_required_fields_with_surrounding_whitespace_are_refused(field, value):
    # `$` matched before a trailing newline: "NC-2025-001\n" was stored as an NC of its own
    assert errors_of({**VALID, field: value}) == [field]


@pytest.mark.parametrize(("field", "length"), [("ncId", 65), ("eventType", 65)])
def test_ids_longer_than_their_column_are_refused(field, length):
    value = ("N" * (length - 2) + "-1") if field == "ncId" else ("nc." + "x" * (length - 3))
    assert len(value) == length
    with pytest.raises(PayloadError) as err:
        validate_event({**VALID, field: value})
    assert [(e.field, "64 characters" in e.problem) for e in err.value.errors] == [(field, True)]
    shorter = value[1:]
    assert validate_event({**VALID, field: shorter})


GOOD_OPTIONALS = {
    "title": "Label printer", "description": "", "status": "open", "severity": "major", "owner": "dana@example.com",
    "dueAt": "2025-02-15", "url": "https://app.qualio.com/x", "risk": "1+ Acceptable", "tags": ["a", "b"],
    "fields": {"Root cause": "firmware", "Count": 3, "Areas": ["x"], "Checked": True, "Nothing": None},
    "changedFields": ["status"],
    "comment": {"id": "c-1001", "author": "dana@example.com", "createdAt": "2025-01-05T10:15:32Z", "body": "x",
                "extra": {"kept": 1}},
}


def test_every_documented_optional_field_of_the_right_type_passes():
    assert validate_event({**VALID, **GOOD_OPTIONALS}).payload["comment"]["extra"] == {"kept": 1}
    assert validate_event({**VALID, **dict.fromkeys(GOOD_OPTIONALS)})  # null: no value
    assert validate_event({**VALID, "risk": 4, "comment": {"body": "no id: keyed by a hash"}, "tags": []})


@pytest.mark.parametrize(("extra", "fields"), [
    ({"title": 5}, ["title"]), ({"description": ["x"]}, ["description"]), ({"status": True}, ["status"]),
    ({"severity": {"x": 1}}, ["severity"]), ({"owner": 7}, ["owner"]), ({"dueAt": 20250215}, ["dueAt"]),
    ({"url": False}, ["url"]), ({"risk": ["high"]}, ["risk"]), ({"risk": True}, ["risk"]),
    ({"tags": {}}, ["tags"]), ({"tags": "a"}, ["tags"]), ({"tags": ["a", 2]}, ["tags"]),
    ({"fields": []}, ["fields"]), ({"fields": "x"}, ["fields"]),
    ({"changedFields": "status"}, ["changedFields"]), ({"changedFields": [None]}, ["changedFields"]),
    ({"comment": "text"}, ["comment"]), ({"comment": ["x"]}, ["comment"]),
    ({"comment": {"id": 5}}, ["comment.id"]), ({"comment": {"id": "c-1\n"}}, ["comment.id"]),
    ({"comment": {"id": " c-1"}}, ["comment.id"]), ({"comment": {"id": ""}}, ["comment.id"]),
    ({"comment": {"id": "c\u00001"}}, ["comment.id"]),
    ({"comment": {"author": 1, "createdAt": 2, "body": {"t": 1}}}, ["comment.author", "comment.createdAt",
                                                                     "comment.body"]),
    ({"title": 5, "tags": {}, "comment": {"id": 5}}, ["title", "tags", "comment.id"]),
])
def test_wrong_typed_optional_fields_are_named(extra, fields):
    assert errors_of({**VALID, **extra}) == fields


def test_contract_errors_are_reported_together():
    assert errors_of({"eventType": "nc.updated", "title": 5}) == ["ncId", "timestamp", "title"]


@pytest.mark.parametrize(("body", "field"), [
    (b'{"risk": ' + b"1" * 5000 + b"}", "risk"),  # past int's 4300-digit limit: once a ValueError (500)
    (b'{"risk": ' + b"1" * 65 + b"}", "risk"),
    (b'{"risk": -' + b"1" * 64 + b"}", "risk"),
    (b'{"fields": {"Count": 1e5000}}', "fields.Count"),  # a float overflow; str(int()) of it was a 500
    (b'{"fields": {"Count": 1e999999999}}', "fields.Count"),  # a billion-digit int in the fingerprint
    (b'{"tags": [1, 2, 1e-999999999]}', "tags[2]"),
    (b'{"x": [{"y": 0e401}]}', "x[0].y"),
    (b'{"x": 0.' + b"1" * 70 + b"}", "x"),
])
def test_numbers_too_large_to_spell_are_refused_naming_the_path(body, field):
    started = time.perf_counter()
    with pytest.raises(PayloadError) as err:
        parse_json(body)
    assert time.perf_counter() - started < 0.5
    assert [e.field for e in err.value.errors] == [field]
    assert "number" in err.value.detail


def test_a_number_at_the_root_is_not_an_object():
    with pytest.raises(PayloadError, match="JSON object"):
        parse_json(b"1e999999999")


@pytest.mark.parametrize("literal", ["1" * 64, "-" + "1" * 63, "1.7976931348623157e+308", "5e-324", "1e400",
                                     "-1e-400", "0.5", "1E+2", "0e400"])
def test_numbers_any_json_library_writes_are_kept(literal):
    assert parse_json(b'{"x": ' + literal.encode() + b"}")["x"] == Decimal(literal)
