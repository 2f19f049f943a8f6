"""Scenario 5, hostile input: whatever arrives, never a 5xx, always a 4xx naming the problem, nothing stored.

Every test runs on SQLite and on PostgreSQL: PostgreSQL enforces column lengths and refuses NUL in text,
so what SQLite stores, PostgreSQL may answer with a 503 (database unavailable), forever.
"""

from __future__ import annotations

import io
import json
import time
from datetime import datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from connector.mapping.load import default_mapping_path, load_mapping
from connector.mapping.render import render_comment, render_fields
from connector.models import Delivery, Fingerprint
from connector.ops.app import create_app
from connector.receive.events import parse_event
from tests.conftest import empty_database, fixture_bytes, make_settings
from tests.helpers import signed
from tests.reliability.figures import Figures, report

pytestmark = pytest.mark.filterwarnings("ignore::hypothesis.errors.NonInteractiveExampleWarning")
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
SIGNED_BODY = fixture_bytes("nc_created")


TOKEN = "tok-hostile"
LIMIT = {"NC_CONNECTOR_MAX_BODY_BYTES": "65536"}


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def hostile_db(request, tmp_path_factory) -> str:
    """A migrated, empty database for this module: a SQLite file, or this run's PostgreSQL database."""
    return empty_database(request, tmp_path_factory.mktemp("hostile"))


@pytest.fixture(scope="module")
def app_and_engine(hostile_db):
    app = create_app(make_settings(hostile_db, **LIMIT))
    yield app, app.config["NC_ENGINE"]
    app.config["NC_ENGINE"].dispose()


@pytest.fixture(scope="module")
def bearer_and_unsigned(hostile_db, app_and_engine):
    """Apps on the same database that take a bearer token, and unsigned deliveries (no signature to check)."""
    _, engine = app_and_engine
    bearer = create_app(make_settings(hostile_db, NC_CONNECTOR_WEBHOOK_SECRET="", NC_CONNECTOR_WEBHOOK_TOKEN=TOKEN,
                                      **LIMIT), engine)
    unsigned = create_app(make_settings(hostile_db, NC_CONNECTOR_WEBHOOK_SECRET="", NC_CONNECTOR_ALLOW_UNSIGNED="true",
                                        **LIMIT), engine)
    return bearer, unsigned


@pytest.fixture(scope="module")
def tally():
    figures = Figures(scenario="hostile input")
    started = time.monotonic()
    yield figures
    figures.seconds = time.monotonic() - started
    report(figures)


def stored(engine) -> tuple[int, int]:
    with engine.connect() as conn:
        return (conn.execute(select(func.count()).select_from(Delivery)).scalar_one(),
                conn.execute(select(func.count()).select_from(Fingerprint)).scalar_one())


def refusal(app_and_engine, tally, body: bytes, headers: dict[str, str], method: str = "POST",
            environ: dict[str, str] | None = None, app=None) -> tuple[int, dict]:
    """Posts; asserts a 4xx problem+json and nothing stored; returns the status and the problem. `environ`
    carries header values the test client's headers= refuses (CR, LF), as a server hands them over (latin-1)."""
    default_app, engine = app_and_engine
    before = stored(engine)
    response = (app or default_app).test_client().open("/webhooks/qualio", method=method, data=body, headers=headers,
                                                       environ_overrides=environ)
    tally.sent += 1
    assert 400 <= response.status_code < 500, (response.status_code, response.get_data()[:300])
    problem = response.get_json()
    assert problem["title"] and problem["detail"], problem
    assert "Traceback" not in response.get_data(as_text=True)
    assert stored(engine) == before
    return int(response.status_code), problem


def assert_refused(app_and_engine, tally, body: bytes, headers: dict[str, str], method: str = "POST") -> int:
    return refusal(app_and_engine, tally, body, headers, method)[0]


def refused_fields(app_and_engine, tally, payload: dict | bytes, app=None, headers: dict[str, str] | None = None,
                   environ: dict[str, str] | None = None) -> list[str]:
    """Posts a signed (or, with `headers`, a bearer) delivery; asserts a 400, nothing stored; the fields named."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    status, problem = refusal(app_and_engine, tally, body, headers or signed(body), environ=environ, app=app)
    assert status == 400, problem
    return [e["field"] for e in problem["errors"]]


@FUZZ
@given(st.binary(max_size=2000))
def test_random_bytes(app_and_engine, tally, body):
    assert assert_refused(app_and_engine, tally, body, signed(body)) in (400, 413)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=50),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=30,
)


@FUZZ
@given(json_values)
def test_random_json_of_the_wrong_shape(app_and_engine, tally, value):
    if isinstance(value, dict) and {"eventType", "ncId", "timestamp"} <= value.keys():
        return  # could be valid
    body = json.dumps(value).encode()
    assert assert_refused(app_and_engine, tally, body, signed(body)) == 400


@FUZZ
@given(st.one_of(st.integers(), st.floats(allow_nan=False, allow_infinity=False), st.booleans(), st.none(),
                 st.lists(st.integers()), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
                 st.text(max_size=80)),
       st.sampled_from(["eventType", "ncId", "timestamp"]))
def test_wrong_types_in_required_fields(app_and_engine, tally, value, field):
    payload = {"eventType": "nc.updated", "ncId": "NC-1-1", "timestamp": "2025-01-05T10:15:32Z", field: value}
    try:
        parse_event(json.dumps(payload).encode())
        return  # the value happens to be valid (e.g. a well-formed id string)
    except ValueError:
        pass
    body = json.dumps(payload).encode()
    app, _ = app_and_engine
    response = app.test_client().post("/webhooks/qualio", data=body, headers=signed(body))
    tally.sent += 1
    assert response.status_code == 400
    assert field in [e["field"] for e in response.get_json()["errors"]]


@pytest.mark.parametrize("body", [
    b"[" * 100_000, b'{"a":' * 50_000 + b"1" + b"}" * 50_000,  # deep nesting
    b'{"eventType": "nc.updated", "ncId": "NC-1-1", "timestamp": "2025-01-05T10:15:32Z", "ncId": "NC-2-2"}',
    b'{"eventType": "nc.updated", "ncId": "NC-1-1", "timestamp": "2025-01-05T10:15:32Z", "x": "\\udc00"}',
    b'{"eventType": "nc.updated", "ncId": "NC-1-1", "timestamp": "2025-01-05T10:15:32Z", "x": "\xed\xa0\x80"}',
    b'{"eventType": "nc.updated", "ncId": "NC-1-1", "timestamp": "2025-01-05T10:15:32Z", "x": Infinity}',
    b'\xef\xbb\xbf{"eventType": "nc.updated"}', b"", b"null", b'"string"', b"1e999999",
    b'{"eventType": "nc.updated", "ncId": "' + b"N" * 60_000 + b'", "timestamp": "2025-01-05T10:15:32Z"}',
], ids=["deep-array", "deep-object", "duplicate-key", "lone-surrogate-escape", "surrogate-bytes", "infinity",
        "bom", "empty", "null", "string", "huge-exponent", "huge-string"])
def test_nasty_bodies(app_and_engine, tally, body):
    assert assert_refused(app_and_engine, tally, body, signed(body)) in (400, 413)


def test_oversized_body_declared_and_streamed(app_and_engine, tally):
    body = b'{"x": "' + b"a" * 70_000 + b'"}'
    assert assert_refused(app_and_engine, tally, body, signed(body)) == 413
    app, engine = app_and_engine
    before = stored(engine)
    headers = {**signed(body), "Transfer-Encoding": "chunked"}  # no Content-Length: a streamed upload
    response = app.test_client().post("/webhooks/qualio", input_stream=io.BytesIO(body), headers=headers)
    tally.sent += 1
    # the test client hands Flask no chunked body (401); over real HTTP see test_secrets: 413
    assert response.status_code in (401, 413) and stored(engine) == before


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data",
                                          "application/xml", ""])
def test_wrong_content_types(app_and_engine, tally, content_type):
    headers = {**signed(SIGNED_BODY), "Content-Type": content_type}
    assert assert_refused(app_and_engine, tally, SIGNED_BODY, headers) == 415


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
def test_wrong_methods(app_and_engine, tally, method):
    assert assert_refused(app_and_engine, tally, SIGNED_BODY, signed(SIGNED_BODY), method) == 405


def test_every_single_byte_change_of_a_signed_body_is_refused(app_and_engine, tally):
    headers = signed(SIGNED_BODY)
    app, engine = app_and_engine
    before = stored(engine)
    client = app.test_client()
    for position in range(len(SIGNED_BODY)):
        for flip in (0x01, 0x20, 0x80):
            body = bytearray(SIGNED_BODY)
            body[position] ^= flip
            response = client.post("/webhooks/qualio", data=bytes(body), headers=headers)
            tally.sent += 1
            assert response.status_code == 401, (position, flip, response.status_code)
    assert stored(engine) == before


@FUZZ
@given(st.dictionaries(st.sampled_from(["webhook-id", "webhook-timestamp", "webhook-signature", "authorization"]),
                       st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=120)))
def test_header_tampering(app_and_engine, tally, changes):
    headers = {**signed(SIGNED_BODY), **changes}
    if not changes:
        return
    app, engine = app_and_engine
    before = stored(engine)
    response = app.test_client().post("/webhooks/qualio", data=SIGNED_BODY, headers=headers)
    tally.sent += 1
    if response.status_code in (200, 202):  # only possible when the tampering left the signature intact
        assert all(headers[k] == v for k, v in signed(SIGNED_BODY, webhook_id=headers["webhook-id"],
                                                       timestamp=int(headers["webhook-timestamp"])).items()
                   if k.startswith("webhook-"))
        return
    assert response.status_code == 401 and stored(engine) == before


@pytest.mark.parametrize("offset", [-3600, -301, 301, 86400])
def test_timestamps_outside_tolerance(app_and_engine, tally, offset):
    headers = signed(SIGNED_BODY, timestamp=int(time.time()) + offset)
    assert assert_refused(app_and_engine, tally, SIGNED_BODY, headers) == 401


def test_replayed_webhook_id_is_a_duplicate_and_stores_nothing_new(app_and_engine, tally):
    app, engine = app_and_engine
    client = app.test_client()
    body = json.dumps({"eventType": "nc.updated", "ncId": "NC-9-9", "timestamp": "2025-01-05T10:15:32Z",
                       "title": "original"}).encode()
    assert client.post("/webhooks/qualio", data=body, headers=signed(body, webhook_id="msg_replay")).status_code == 202
    before = stored(engine)
    altered = body.replace(b"original", b"replayed")
    replay = client.post("/webhooks/qualio", data=altered, headers=signed(altered, webhook_id="msg_replay"))
    tally.sent += 2
    tally.acknowledged += 2
    tally.duplicates += 1
    assert replay.status_code == 200 and replay.get_json()["status"] == "duplicate"
    assert stored(engine) == before


VALID = {"eventType": "nc.updated", "ncId": "NC-1-1", "timestamp": "2025-01-05T10:15:32Z"}
JSON_ONLY = {"Content-Type": "application/json"}
ENVIRON = {"webhook-id": "HTTP_WEBHOOK_ID", "webhook-timestamp": "HTTP_WEBHOOK_TIMESTAMP",
           "webhook-signature": "HTTP_WEBHOOK_SIGNATURE", "authorization": "HTTP_AUTHORIZATION"}
# Header bytes as a server hands them over (latin-1), with one byte no valid value holds: a control
# character, DEL or non-ASCII (HTTP's space and tab around a value are stripped, so never those).
BAD_BYTE = st.integers(0, 255).filter(lambda b: not 0x20 <= b <= 0x7E and b != 0x09)
header_bytes = st.tuples(st.binary(max_size=30), BAD_BYTE, st.binary(max_size=30)).map(
    lambda t: (t[0] + bytes([t[1]]) + t[2]).decode("latin-1"))


@FUZZ
@given(st.sampled_from(["webhook-id", "webhook-timestamp", "webhook-signature"]), header_bytes)
def test_header_bytes_before_the_signature_is_checked(app_and_engine, tally, header, value):
    headers = {k: v for k, v in signed(SIGNED_BODY).items() if k != header}
    assert refusal(app_and_engine, tally, SIGNED_BODY, headers, environ={ENVIRON[header]: value})[0] == 401


@FUZZ
@given(header_bytes, header_bytes)
def test_header_bytes_on_the_bearer_and_unsigned_paths(app_and_engine, bearer_and_unsigned, tally, token, msg_id):
    bearer, unsigned = bearer_and_unsigned
    status, _ = refusal(app_and_engine, tally, SIGNED_BODY, JSON_ONLY, app=bearer,
                        environ={"HTTP_AUTHORIZATION": f"Bearer {token}"})
    assert status == 401
    for app, auth in ((bearer, {"HTTP_AUTHORIZATION": f"Bearer {TOKEN}"}), (unsigned, {})):
        assert refused_fields(app_and_engine, tally, SIGNED_BODY, app, JSON_ONLY,
                              {**auth, "HTTP_WEBHOOK_ID": msg_id}) == ["webhook-id"]


@st.composite
def overflowing_times(draw) -> str:
    """A valid RFC 3339 date-time whose UTC moment falls outside the years 0001-9999."""
    offset = draw(st.integers(1, 24 * 60 - 1))  # minutes
    first_day = draw(st.booleans())
    seconds = draw(st.integers(0, offset * 60 - 1) if first_day else st.integers(86400 - offset * 60, 86399))
    local = (datetime(1, 1, 1) if first_day else datetime(9999, 12, 31)) + timedelta(seconds=seconds)
    fraction = draw(st.sampled_from(["", ".5", ".999999999"]))
    sign = "+" if first_day else "-"
    return f"{local:%Y-%m-%dT%H:%M:%S}{fraction}{sign}{offset // 60:02d}:{offset % 60:02d}"


@FUZZ
@given(overflowing_times())
def test_times_that_overflow_utc(app_and_engine, tally, raw):
    assert refused_fields(app_and_engine, tally, {**VALID, "timestamp": raw}) == ["timestamp"]


big_numbers = st.one_of(
    st.integers(65, 5000).map(lambda n: "9" * n),  # past 64 characters, and int()'s 4300-digit limit
    st.integers(401, 999_999_999).map(lambda e: f"1e{e}"),  # a float's inf; a billion digits written out
    st.integers(401, 999_999_999).map(lambda e: f"-2.5E-{e}"),
    st.integers(63, 500).map(lambda n: "0." + "1" * n),
)
PLACES = [("risk", "{n}"), ("fields.Lot size", '{{"Lot size": {n}}}'), ("tags[2]", '["a", "b", {n}]'),
          ("extra.deep[0].x", '{{"deep": [{{"x": {n}}}]}}')]


@FUZZ
@given(big_numbers, st.sampled_from(PLACES))
def test_numbers_too_large_to_keep(app_and_engine, tally, literal, place):
    path, template = place
    body = json.dumps(VALID)[:-1] + f', "{path.split(".")[0].split("[")[0]}": {template.format(n=literal)}}}'
    assert refused_fields(app_and_engine, tally, body.encode()) == [path]


@FUZZ
@given(st.sampled_from(["eventType", "ncId", "timestamp", "comment.id"]),
       st.sampled_from([" ", "\t", "\n", "\r\n", "\x0b", "\x0c", "\x00", "\u00a0", "\u2028", "\u3000"]),
       st.booleans())
def test_whitespace_around_ids(app_and_engine, tally, field, space, trailing):
    payload: dict = {**VALID, "comment": {"id": "c-1", "body": "x"}}
    value = "c-1" if field == "comment.id" else payload[field]
    value = value + space if trailing else space + value
    if field == "comment.id":
        payload["comment"]["id"] = value
    else:
        payload[field] = value
    assert refused_fields(app_and_engine, tally, payload) == [field]


def _strings(value) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


ACCEPTS = {**dict.fromkeys(["title", "description", "status", "severity", "owner", "dueAt", "url",
                            "comment.author", "comment.createdAt", "comment.body"], lambda v: isinstance(v, str)),
           "risk": lambda v: isinstance(v, str | int | float) and not isinstance(v, bool),
           "tags": _strings, "changedFields": _strings, "fields": lambda v: isinstance(v, dict),
           "comment": lambda v: isinstance(v, dict), "comment.id": lambda v: isinstance(v, str)}
plain_json = st.recursive(
    st.booleans() | st.integers(-10**18, 10**18) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


@FUZZ
@given(st.sampled_from(sorted(ACCEPTS)), plain_json)
def test_wrong_typed_optional_fields(app_and_engine, tally, field, value):
    if ACCEPTS[field](value):
        return  # the right type
    head, _, sub = field.partition(".")
    payload = {**VALID, head: {sub: value} if sub else value}
    assert refused_fields(app_and_engine, tally, payload) == [field]


@FUZZ
@given(st.sampled_from(["ncId", "eventType", "webhook-id signed", "webhook-id bearer"]), st.integers(65, 3000))
def test_ids_longer_than_their_columns(app_and_engine, bearer_and_unsigned, tally, field, length):
    if field == "ncId":
        assert refused_fields(app_and_engine, tally, {**VALID, "ncId": "NC-" + "1" * (length - 3)}) == [field]
    elif field == "eventType":
        assert refused_fields(app_and_engine, tally, {**VALID, "eventType": "nc." + "x" * (length - 3)}) == [field]
    elif field == "webhook-id signed":  # the id is part of what is signed: a 401
        headers = signed(SIGNED_BODY, webhook_id="m" * (length + 192))
        assert refusal(app_and_engine, tally, SIGNED_BODY, headers)[0] == 401
    else:  # once stored as it came: PostgreSQL's String(256) refused it, a 503 for every retry
        headers = {**JSON_ONLY, "Authorization": f"Bearer {TOKEN}", "webhook-id": "m" * (length + 192)}
        assert refused_fields(app_and_engine, tally, SIGNED_BODY, bearer_and_unsigned[0], headers) == ["webhook-id"]


def test_template_syntax_in_payload_values_is_text(tally):
    mapping = load_mapping(default_mapping_path(), project_override="QA")
    nc = {"ncId": "NC-1-1", "title": "{{ 7*7 }} {% for x in range(3) %}x{% endfor %}",
          "description": "{{ ''.__class__.__mro__ }} {{ cycler.__init__.__globals__.os }}"}
    fields = render_fields(mapping, nc)
    assert "{{ 7*7 }}" in fields["summary"] and "49" not in fields["summary"]
    assert "__mro__" in fields["description"]
    comment = render_comment(mapping, nc, {"id": "c", "author": "{{ config }}", "body": "{% import 'os' as os %}"})
    assert "{% import 'os' as os %}" in comment and "{{ config }}" in comment
