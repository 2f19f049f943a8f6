"""POST /webhooks/qualio against a real SQLite file and a real PostgreSQL database."""

from __future__ import annotations

import json
import time

import pytest
from sqlalchemy import Engine, func, select

from connector.models import Delivery, Fingerprint
from connector.ops.app import create_app
from connector.receive.fingerprint import fingerprint
from connector.receive.sightings import flush_all
from tests.conftest import fixture_bytes, load_fixture, make_settings
from tests.helpers import body_of, post, signed


def count(engine: Engine, model: type) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(model)).scalar_one())


def assert_nothing_stored(engine: Engine) -> None:
    assert count(engine, Fingerprint) == 0
    assert count(engine, Delivery) == 0


def test_new_delivery_is_accepted_after_commit(client, engine):
    response = post(client, fixture_bytes("seed_nc_updated"))
    assert response.status_code == 202
    body = response.get_json()
    assert body["status"] == "accepted"
    assert body["fingerprint"] == fingerprint(load_fixture("seed_nc_updated"))
    with engine.connect() as conn:
        stored = conn.execute(select(Delivery)).one()
    assert stored.id == body["deliveryId"]
    assert stored.status == "queued" and stored.nc_id == "NC-2025-001" and stored.event_type == "nc.updated"
    assert stored.payload == fixture_bytes("seed_nc_updated").decode()  # kept exactly as received


def test_redelivery_is_a_duplicate_and_bumps_the_log(client, engine):
    first = post(client, fixture_bytes("seed_nc_updated"))
    again = post(client, fixture_bytes("seed_nc_updated"))  # a new webhook-id: the sender's retry
    assert (first.status_code, again.status_code) == (202, 200)
    body = again.get_json()
    assert body["status"] == "duplicate"
    assert body["fingerprint"] == first.get_json()["fingerprint"]
    assert body["firstSeenAt"].endswith("Z")
    flush_all()
    with engine.connect() as conn:
        row = conn.execute(select(Fingerprint)).one()
    assert row.times_seen == 2 and row.last_seen_at >= row.first_seen_at
    assert count(engine, Delivery) == 1


def test_reserialised_duplicate_is_caught(client, engine):
    payload = load_fixture("same_second_comment_added")
    compact = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    pretty = json.dumps(dict(reversed(list(payload.items()))), indent=4, ensure_ascii=True).encode()
    assert post(client, compact).status_code == 202
    assert post(client, pretty).status_code == 200
    assert count(engine, Delivery) == 1


def test_same_second_distinct_changes_both_get_through(client, engine):
    a, b = load_fixture("same_second_pair_a"), load_fixture("same_second_pair_b")
    assert (a["ncId"], a["timestamp"]) == (b["ncId"], b["timestamp"])
    assert post(client, a).status_code == 202
    assert post(client, b).status_code == 202
    assert post(client, fixture_bytes("same_second_status_changed")).status_code == 202
    assert post(client, fixture_bytes("same_second_comment_added")).status_code == 202
    assert count(engine, Delivery) == 4


def test_replayed_webhook_id_with_altered_body_is_a_duplicate(client, engine):
    payload = load_fixture("nc_created")
    assert post(client, payload, webhook_id="msg_fixed").status_code == 202
    altered = {**payload, "title": "tampered within the tolerance window"}
    response = post(client, altered, webhook_id="msg_fixed")
    assert response.status_code == 200 and response.get_json()["status"] == "duplicate"
    assert count(engine, Delivery) == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b'{"ncId": "NC-1-2", "timestamp": "2025-01-05T10:15:32Z"}', "eventType"),
        (b'{"eventType": "nc.updated", "timestamp": "2025-01-05T10:15:32Z"}', "ncId"),
        (b'{"eventType": "nc.updated", "ncId": "NC-1-2"}', "timestamp"),
        (b'{"eventType": "nc.updated", "ncId": "NC-1-2", "timestamp": "2025-01-05 10:15"}', "timestamp"),
        (b'{"eventType": "nc.updated", "ncId": "NC-1-2", "timestamp": "2025-01-05T10:15:32"}', "timestamp"),
        (b'{"eventType": 7, "ncId": "NC-1-2", "timestamp": "2025-01-05T10:15:32Z"}', "eventType"),
        (b'{"eventType": "nc.updated", "ncId": ["NC"], "timestamp": "2025-01-05T10:15:32Z"}', "ncId"),
        # a UTC conversion that leaves the calendar: once an OverflowError (500)
        (b'{"eventType": "nc.updated", "ncId": "NC-1-2", "timestamp": "0001-01-01T00:00:00+01:00"}', "timestamp"),
        (b'{"eventType": "nc.updated", "ncId": "NC-1-2", "timestamp": "9999-12-31T23:59:59-01:00"}', "timestamp"),
        # `$` matched before a trailing newline: a second NC "NC-1-2\n"
        (b'{"eventType": "nc.updated", "ncId": "NC-1-2\\n", "timestamp": "2025-01-05T10:15:32Z"}', "ncId"),
        (b'{"eventType": "nc.updated\\n", "ncId": "NC-1-2", "timestamp": "2025-01-05T10:15:32Z"}', "eventType"),
        # longer than the 64-character columns
        (b'{"eventType": "nc.updated", "ncId": "NC-' + b"1" * 62 + b'", "timestamp": "2025-01-05T10:15:32Z"}', "ncId"),
        (b'{"eventType": "nc.' + b"x" * 62 + b'", "ncId": "NC-1-2", "timestamp": "2025-01-05T10:15:32Z"}', "eventType"),
        # numbers past int's 4300-digit limit, or a float a canonical spelling cannot write out: once a 500
        (b'{"eventType": "nc.updated", "ncId": "NC-1-2", "timestamp": "2025-01-05T10:15:32Z", "risk": '
         + b"9" * 4301 + b"}", "risk"),
        (b'{"eventType": "nc.updated", "ncId": "NC-1-2", "timestamp": "2025-01-05T10:15:32Z", '
         b'"fields": {"Lot": 1e5000}}', "fields.Lot"),
        (b'{"eventType": "nc.updated", "ncId": "NC-1-2", "timestamp": "2025-01-05T10:15:32Z", '
         b'"fields": {"Lot": 1e999999999}}', "fields.Lot"),
        # wrong-typed optional fields the sync could not read
        (b'{"eventType": "nc.updated", "ncId": "NC-1-2", "timestamp": "2025-01-05T10:15:32Z", "title": 5}', "title"),
        (b'{"eventType": "nc.comment_added", "ncId": "NC-1-2", "timestamp": "2025-01-05T10:15:32Z", '
         b'"comment": {"id": 5, "body": "x"}}', "comment.id"),
        (b'{"eventType": "nc.updated", "ncId": "NC-1-2", "timestamp": "2025-01-05T10:15:32Z", '
         b'"changedFields": "status"}', "changedFields"),
    ],
)
def test_schema_violation_names_each_bad_field(client, engine, body, field):
    response = post(client, body)
    assert response.status_code == 400
    assert response.mimetype == "application/problem+json"
    problem = response.get_json()
    assert [e["field"] for e in problem["errors"]] == [field]
    assert field in problem["detail"]
    assert_nothing_stored(engine)


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b'{"eventType": "nc.updated",', "malformed JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"a": 1, "a": 2}', "duplicate key"),
        (b"\xff\xfe{}", "UTF-8"),
        (b'{"x": NaN}', "NaN"),
        (b"[" * 5000 + b"]" * 5000, "nested"),
        (b'{"eventType": "nc.updated", "ncId": "NC-1-2", "timestamp": "2025-01-05T10:15:32Z", "t": "\\ud800"}',
         "surrogate"),
    ],
)
def test_malformed_json_is_400_with_a_reason(client, engine, body, words):
    response = post(client, body)
    assert response.status_code == 400
    assert words in response.get_json()["detail"]
    assert_nothing_stored(engine)


def test_missing_signature_is_401(client, engine):
    body = fixture_bytes("seed_nc_updated")
    response = client.post("/webhooks/qualio", data=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 401
    assert "webhook-signature" in response.get_json()["detail"]
    assert_nothing_stored(engine)


@pytest.mark.parametrize(
    ("tamper", "words"),
    [
        (lambda h: h.update({"webhook-signature": "v1,AAAA"}), "no webhook-signature entry matches"),
        (lambda h: h.update({"webhook-signature": "v1,***not base64***"}), "no well-formed v1 entry"),
        (lambda h: h.update({"webhook-signature": "garbage"}), "no well-formed v1 entry"),
        (lambda h: h.update({"webhook-timestamp": "yesterday"}), "integer seconds"),
        (lambda h: h.update({"webhook-timestamp": str(int(time.time()) - 301)}), "too old"),
        (lambda h: h.update({"webhook-timestamp": str(int(time.time()) + 301)}), "future"),
        (lambda h: h.pop("webhook-id"), "webhook-id"),
        (lambda h: h.update({"webhook-id": "other"}), "no webhook-signature entry matches"),
    ],
)
def test_bad_signature_headers_are_401_never_500(client, engine, tamper, words):
    body = fixture_bytes("seed_nc_updated")
    headers = signed(body)
    tamper(headers)
    response = client.post("/webhooks/qualio", data=body, headers=headers)
    assert response.status_code == 401
    assert words in response.get_json()["detail"]
    assert_nothing_stored(engine)


def test_tampered_body_is_401(client, engine):
    body = fixture_bytes("seed_nc_updated")
    headers = signed(body)
    response = client.post("/webhooks/qualio", data=body.replace(b"001", b"002"), headers=headers)
    assert response.status_code == 401
    assert_nothing_stored(engine)


def test_stale_signed_timestamp_is_401(client, engine):
    body = fixture_bytes("seed_nc_updated")
    response = client.post("/webhooks/qualio", data=body, headers=signed(body, timestamp=int(time.time()) - 600))
    assert response.status_code == 401 and "too old" in response.get_json()["detail"]
    assert_nothing_stored(engine)


def test_rotated_secrets_are_all_accepted(db_url, engine):
    old, new = "whsec_b2xkLXNlY3JldC1vbGQtb2xkLW9sZA==", "whsec_bmV3LXNlY3JldC1uZXctbmV3LW5ldw=="
    app = create_app(make_settings(db_url, NC_CONNECTOR_WEBHOOK_SECRET=f"{old}, {new}"), engine)
    client = app.test_client()
    assert post(client, load_fixture("nc_created"), secret=old).status_code == 202
    assert post(client, load_fixture("nc_closed"), secret=new).status_code == 202
    assert post(client, load_fixture("seed_nc_updated")).status_code == 401  # the test default secret


def test_bearer_token(db_url, engine):
    app = create_app(make_settings(db_url, NC_CONNECTOR_WEBHOOK_SECRET="",
                                   NC_CONNECTOR_WEBHOOK_TOKEN="tok-123"), engine)
    client = app.test_client()
    body = fixture_bytes("seed_nc_updated")
    ok = client.post("/webhooks/qualio", data=body,
                     headers={"Content-Type": "application/json", "Authorization": "Bearer tok-123"})
    bad = client.post("/webhooks/qualio", data=body,
                      headers={"Content-Type": "application/json", "Authorization": "Bearer tok-124"})
    assert (ok.status_code, bad.status_code) == (202, 401)
    assert "tok-12" not in bad.get_data(as_text=True)


def test_unsigned_allowed_only_when_configured(db_url, engine):
    app = create_app(make_settings(db_url, NC_CONNECTOR_WEBHOOK_SECRET="",
                                   NC_CONNECTOR_ALLOW_UNSIGNED="true"), engine)
    response = app.test_client().post("/webhooks/qualio", data=fixture_bytes("seed_nc_updated"),
                                      headers={"Content-Type": "application/json"})
    assert response.status_code == 202


def test_body_over_the_limit_is_413(db_url, engine):
    app = create_app(make_settings(db_url, NC_CONNECTOR_MAX_BODY_BYTES="200"), engine)
    payload = {**load_fixture("seed_nc_updated"), "description": "x" * 500}
    response = post(app.test_client(), payload)
    assert response.status_code == 413
    assert "limit" in response.get_json()["detail"]
    assert_nothing_stored(engine)


def test_not_json_is_415(client, engine):
    body = fixture_bytes("seed_nc_updated")
    headers = {**signed(body), "Content-Type": "text/plain"}
    response = client.post("/webhooks/qualio", data=body, headers=headers)
    assert response.status_code == 415
    assert "application/json" in response.get_json()["detail"]
    assert_nothing_stored(engine)


def test_wrong_method_is_405(client):
    response = client.get("/webhooks/qualio")
    assert response.status_code == 405
    assert response.mimetype == "application/problem+json"
    assert "POST" in response.headers["Allow"]
    options = client.options("/webhooks/qualio")
    assert options.status_code == 200 and options.headers["Allow"] == "OPTIONS, POST"


def raw_post(client, body: bytes, length: str) -> tuple[str, dict]:
    """The app called as a WSGI server would, with a Content-Length that werkzeug's client would not send."""
    import io

    answered: list[str] = []
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/webhooks/qualio", "CONTENT_TYPE": "application/json",
               "CONTENT_LENGTH": length, "wsgi.input": io.BytesIO(body), "SERVER_NAME": "127.0.0.1",
               "SERVER_PORT": "80", "wsgi.url_scheme": "http"}
    environ |= {"HTTP_" + name.upper().replace("-", "_"): value for name, value in signed(body).items()}
    chunks = client.application(environ, lambda status, headers, exc_info=None: answered.append(status))
    return answered[0], json.loads(b"".join(chunks))


@pytest.mark.parametrize(("length", "status", "detail"), [
    ("12abc", "400 Bad Request", "Content-Length must be a number of bytes"),
    ("-5", "400 Bad Request", "Content-Length must be a number of bytes"),
    ("100000", "400 Bad Request", "the body ended before its Content-Length"),  # under the limit, over the body
])
def test_a_content_length_that_does_not_fit_the_body_is_a_400(client, engine, length, status, detail):
    answer, problem = raw_post(client, fixture_bytes("seed_nc_updated"), length)
    assert (answer, problem["detail"]) == (status, detail)
    assert_nothing_stored(engine)


def test_unknown_path_is_404_problem(client):
    response = client.get("/nope")
    assert response.status_code == 404 and response.get_json()["status"] == 404


def test_health_and_readiness(client):
    assert client.get("/healthz").get_json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.get_json()["status"] == "ready"


def test_readiness_reports_missing_migrations(tmp_path):
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    response = create_app(make_settings(url)).test_client().get("/readyz")
    assert response.status_code == 503 and "db upgrade" in response.get_json()["detail"]


@pytest.mark.parametrize("url", ["postgresql+psycopg://postgres@127.0.0.1:1/none",
                                 "sqlite:////nonexistent-dir/nc.db"])
def test_database_down_is_503_and_nothing_acknowledged(url):
    client = create_app(make_settings(url)).test_client()
    response = post(client, body_of(load_fixture("nc_created")))
    assert response.status_code == 503
    assert response.headers["Retry-After"].isdigit()
    assert response.mimetype == "application/problem+json"
    assert "Traceback" not in response.get_data(as_text=True)
    assert client.get("/readyz").status_code == 503


def metric(client, name: str) -> float:
    for line in client.get("/metrics").get_data(as_text=True).splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_metrics_move_as_deliveries_flow(client):
    accepted = 'nc_connector_deliveries_total{outcome="accepted"}'
    duplicate = 'nc_connector_deliveries_total{outcome="duplicate"}'
    queued = 'nc_connector_deliveries{status="queued"}'
    before = (metric(client, accepted), metric(client, duplicate), metric(client, queued))
    post(client, fixture_bytes("nc_created"))
    post(client, fixture_bytes("nc_created"))
    after = (metric(client, accepted), metric(client, duplicate), metric(client, queued))
    assert [b - a for a, b in zip(before, after, strict=True)] == [1, 1, 1]
    assert client.get("/metrics").mimetype == "text/plain"


def bearer_client(db_url: str, engine: Engine) -> object:
    app = create_app(make_settings(db_url, NC_CONNECTOR_WEBHOOK_SECRET="", NC_CONNECTOR_WEBHOOK_TOKEN="tok-123"),
                     engine)
    return app.test_client()


@pytest.mark.parametrize("webhook_id", ["m" * 257, "msg\x00", "msg_\u00e9", "msg_1\n"])
def test_bearer_path_refuses_a_malformed_webhook_id_with_400(db_url, engine, webhook_id):
    # Once stored as it came: over 256 characters (or with a NUL) PostgreSQL refused the row: a 503 forever
    response = bearer_client(db_url, engine).post(
        "/webhooks/qualio", data=fixture_bytes("seed_nc_updated"),
        headers={"Content-Type": "application/json", "Authorization": "Bearer tok-123"},
        environ_overrides={"HTTP_WEBHOOK_ID": webhook_id})  # the environ carries a newline, headers= does not
    assert response.status_code == 400, response.get_json()
    assert response.mimetype == "application/problem+json"
    assert [e["field"] for e in response.get_json()["errors"]] == ["webhook-id"]
    assert_nothing_stored(engine)


def test_bearer_path_keeps_a_webhook_id_that_fits(db_url, engine):
    client = bearer_client(db_url, engine)
    headers = {"Content-Type": "application/json", "Authorization": "Bearer tok-123", "webhook-id": "m" * 256}
    assert client.post("/webhooks/qualio", data=fixture_bytes("seed_nc_updated"), headers=headers).status_code == 202
    again = client.post("/webhooks/qualio", data=fixture_bytes("nc_created"), headers=headers)
    assert again.status_code == 200 and again.get_json()["status"] == "duplicate"  # the same webhook-id
    with engine.connect() as conn:
        assert conn.execute(select(Delivery.webhook_id)).scalar_one() == "m" * 256


def test_signed_path_refuses_a_webhook_id_with_a_newline(client, engine):
    body = fixture_bytes("seed_nc_updated")
    response = client.post("/webhooks/qualio", data=body, headers=signed(body, webhook_id="msg_1"),
                           environ_overrides={"HTTP_WEBHOOK_ID": "msg_1\n"})
    assert response.status_code == 401 and "webhook-id" in response.get_json()["detail"]
    assert_nothing_stored(engine)
