"""serve's RSGI app driven in-process with a stand-in for granian's protocol, on a real SQLite file and a real
PostgreSQL database: the webhook answers every request as the WSGI endpoint does, stores once under concurrent
copies, and the Flask app's paths come through the bridge."""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from connector.models import Delivery, Fingerprint
from connector.ops import wsgi_bridge
from connector.ops.app import create_app
from connector.ops.rsgi import RsgiApp
from connector.receive.sightings import flush_all
from tests.conftest import fixture_bytes, make_settings
from tests.helpers import signed

LIMIT = 4096


class Protocol:
    """granian's RSGI HTTP protocol, as far as the app uses it: the body whole or its chunks, one response."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks
        self.answer: tuple[int, list[tuple[str, str]], bytes] | None = None
        self.read: list[bytes] = []  # what the app took, chunk by chunk or whole

    async def __call__(self) -> bytes:
        await asyncio.sleep(0)
        self.read.append(b"".join(self.chunks))
        return self.read[-1]

    async def _stream(self) -> Any:
        for chunk in self.chunks:
            await asyncio.sleep(0)
            self.read.append(chunk)
            yield chunk

    def __aiter__(self) -> Any:
        return self._stream()

    def response_bytes(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        assert self.answer is None, "answered twice"
        self.answer = (status, headers, body)


def scope(method: str, path: str, headers: dict[str, str], query: str = "") -> SimpleNamespace:
    return SimpleNamespace(proto="http", http_version="1.1", server="127.0.0.1:8000", client="127.0.0.1:50000",
                           scheme="http", method=method, path=path, query_string=query,
                           headers={name.lower(): value for name, value in headers.items()})


@pytest.fixture
def served(db_url: str, engine: Engine) -> Iterator[tuple[asyncio.AbstractEventLoop, RsgiApp, Any]]:
    settings = make_settings(db_url, NC_CONNECTOR_MAX_BODY_BYTES=str(LIMIT))
    app = RsgiApp(functools.partial(create_app, settings, engine), threads=4)
    loop = asyncio.new_event_loop()
    app.__rsgi_init__(loop)
    try:
        yield loop, app, create_app(settings, engine).test_client()
    finally:
        app.__rsgi_del__(loop)
        loop.close()


Answered = tuple[int, dict[str, str], bytes]


async def request(app: RsgiApp, method: str, path: str, headers: dict[str, str], chunks: list[bytes],
                  protocol: Protocol | None = None) -> Answered:
    protocol = protocol or Protocol(chunks)
    await app.__rsgi__(scope(method, path, headers), protocol)
    assert protocol.answer is not None
    status, answer_headers, body = protocol.answer
    return status, {name.lower(): value for name, value in answer_headers}, body


def call(loop: asyncio.AbstractEventLoop, app: RsgiApp, method: str, path: str, headers: dict[str, str],
         chunks: list[bytes]) -> Answered:
    return loop.run_until_complete(request(app, method, path, headers, chunks))


def pieces(body: bytes, n: int = 3) -> list[bytes]:
    step = len(body) // n + 1
    return [body[i:i + step] for i in range(0, len(body), step)]


def count(engine: Engine, model: type) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(model)).scalar_one())


def test_a_delivery_is_accepted_once_and_its_copy_is_a_duplicate(served, engine):
    loop, app, _ = served
    body = fixture_bytes("seed_nc_updated")
    status, headers, first = call(loop, app, "POST", "/webhooks/qualio", signed(body), pieces(body))
    assert status == 202 and headers["content-type"] == "application/json"
    assert json.loads(first)["status"] == "accepted"
    status, _, again = call(loop, app, "POST", "/webhooks/qualio", signed(body), [body])
    assert status == 200 and json.loads(again)["status"] == "duplicate"
    assert json.loads(again)["firstSeenAt"].endswith("Z")
    flush_all()
    with engine.connect() as conn:
        assert conn.execute(select(Fingerprint.times_seen)).scalars().all() == [2]
    assert count(engine, Delivery) == 1


def test_a_body_with_its_length_is_read_whole_and_a_chunked_one_stops_past_the_limit(served, engine):
    loop, app, _ = served
    body = fixture_bytes("seed_nc_updated")
    whole = Protocol(pieces(body))
    answer = loop.run_until_complete(request(app, "POST", "/webhooks/qualio",
                                             {**signed(body), "Content-Length": str(len(body))}, [], whole))
    assert answer[0] == 202 and whole.read == [body]  # one read, not one per chunk
    big = json.dumps({"eventType": "nc.updated", "ncId": "NC-1", "timestamp": "2025-01-05T10:15:32Z",
                      "description": "x" * 4 * LIMIT}).encode()
    chunked = Protocol(pieces(big, 8))  # 2,061 bytes each: over the limit in its second
    answer = loop.run_until_complete(request(app, "POST", "/webhooks/qualio", signed(big), [], chunked))
    assert answer[0] == 413 and len(chunked.read) == 2


def wrong_requests() -> list[tuple[str, str, dict[str, str], list[bytes]]]:
    body = fixture_bytes("seed_nc_updated")
    good = signed(body)
    big = json.dumps({"eventType": "nc.updated", "ncId": "NC-1", "timestamp": "2025-01-05T10:15:32Z",
                      "description": "x" * LIMIT}).encode()
    return [
        ("no signature", "POST", {"Content-Type": "application/json"}, [body]),
        ("tampered body", "POST", good, [body.replace(b"NC", b"NX", 1)]),
        ("not JSON", "POST", {**good, "Content-Type": "text/plain"}, [body]),
        ("malformed JSON", "POST", signed(b"{nope"), [b"{nope"]),
        ("too large by its length", "POST", {**signed(big), "Content-Length": str(len(big))}, [big]),
        ("too large, chunked", "POST", signed(big), pieces(big, 4)),
        ("shorter than its length", "POST", {**good, "Content-Length": str(len(body) + 5)}, [body]),
        ("a length that is not a number", "POST", {**good, "Content-Length": "12a"}, [body]),
        ("OPTIONS", "OPTIONS", {}, []),
        ("GET", "GET", {}, []),
    ]


@pytest.mark.parametrize("case", wrong_requests(), ids=lambda case: case[0])
def test_every_refusal_is_the_wsgi_endpoints_answer_and_stores_nothing(served, engine, case):
    loop, app, client = served
    _, method, headers, chunks = case
    status, answer_headers, body = call(loop, app, method, "/webhooks/qualio", headers, chunks)
    # The same request to the WSGI endpoint (a length the body does not fit cannot be sent through Flask's
    # client, which sets its own: that case is checked against webhook.py's own test of it).
    wsgi_headers = {name: value for name, value in headers.items() if name != "Content-Length"}
    if "Content-Length" in headers and method == "POST" and headers["Content-Length"] != str(len(b"".join(chunks))):
        assert status == 400 and json.loads(body)["status"] == 400
    else:
        expected = client.open("/webhooks/qualio", method=method, data=b"".join(chunks), headers=wsgi_headers)
        assert status == expected.status_code
        assert body == expected.get_data()
        assert answer_headers.get("allow") == expected.headers.get("Allow")
    assert count(engine, Fingerprint) == 0 and count(engine, Delivery) == 0


@pytest.mark.postgres
def test_concurrent_copies_on_one_loop_store_one_delivery(served, engine):
    loop, app, _ = served
    body = fixture_bytes("nc_created")

    async def copies() -> list[int]:
        answers = await asyncio.gather(*(request(app, "POST", "/webhooks/qualio", signed(body), [body])
                                         for _ in range(12)))
        return sorted(status for status, _, _ in answers)

    statuses = loop.run_until_complete(copies())
    assert statuses == [200] * 11 + [202]
    assert count(engine, Delivery) == 1


@pytest.mark.parametrize("url", ["postgresql+psycopg://postgres@127.0.0.1:1/none",
                                 "sqlite:////nonexistent-dir/nc.db"])
def test_database_down_is_503_and_says_no_more(url):
    app = RsgiApp(functools.partial(create_app, make_settings(url)), threads=2)
    loop = asyncio.new_event_loop()
    app.__rsgi_init__(loop)
    try:
        body = fixture_bytes("nc_created")
        status, headers, answer = call(loop, app, "POST", "/webhooks/qualio", signed(body), [body])
        assert status == 503 and headers["retry-after"].isdigit()
        assert headers["content-type"] == "application/problem+json"
        assert b"Traceback" not in answer and b"127.0.0.1:1" not in answer
    finally:
        app.__rsgi_del__(loop)
        loop.close()


def test_the_flask_paths_come_through_the_bridge(served):
    loop, app, _ = served
    status, headers, body = call(loop, app, "GET", "/healthz", {}, [])
    assert (status, json.loads(body)) == (200, {"status": "ok"})
    status, _, body = call(loop, app, "GET", "/readyz", {}, [])
    assert status == 200 and json.loads(body)["status"] == "ready"
    status, headers, body = call(loop, app, "GET", "/no%20such", {}, [])
    assert status == 404 and headers["content-type"] == "application/problem+json"
    status, _, body = call(loop, app, "GET", "/metrics", {}, [])
    assert status == 200 and b"nc_connector_deliveries_total" in body
    status, _, body = call(loop, app, "POST", "/healthz", {"Content-Type": "text/plain"}, [b"x" * (LIMIT + 1)])
    assert status == 413


def test_the_environ_follows_pep_3333():
    request = scope("POST", "/console/caf%C3%A9", {"Content-Type": "text/plain", "X-A": "1", "Host": "h:1"},
                    query="a=1&b=%20")
    request.headers = {"content-type": "text/plain", "x-a": "1", "host": "h:1"}
    environ = wsgi_bridge.environ_of(request, b"body")
    assert environ["PATH_INFO"] == "/console/café".encode().decode("latin-1")
    assert environ["QUERY_STRING"] == "a=1&b=%20"
    assert environ["CONTENT_TYPE"] == "text/plain" and "HTTP_CONTENT_TYPE" not in environ
    assert environ["CONTENT_LENGTH"] == "4"  # a chunked body, read whole
    assert environ["HTTP_X_A"] == "1" and environ["HTTP_HOST"] == "h:1"
    assert (environ["SERVER_NAME"], environ["SERVER_PORT"], environ["REMOTE_ADDR"]) == ("127.0.0.1", "8000",
                                                                                         "127.0.0.1")
    assert environ["wsgi.input"].read() == b"body" and environ["wsgi.input_terminated"] is True
