"""POST /webhooks/qualio: receive -> verify -> parse -> fingerprint -> store -> answer.

The endpoint is a WSGI layer in front of the Flask app (`WebhookEndpoint`), not a Flask view: Flask's request
and app contexts, routing and response object cost about 50 us per request, a tenth of a delivery's CPU in a
web process, and a webhook needs none of them. Every other path goes on to Flask.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from connector import metrics
from connector.receive import signing
from connector.receive.events import FieldError, NcEvent, PayloadError, parse_event
from connector.receive.fingerprint import fingerprint
from connector.receive.problems import problem
from connector.receive.signing import AuthError, HeaderError, Verifier
from connector.receive.store import Accepted, Duplicate, record_delivery
from connector.settings import Settings

log = logging.getLogger(__name__)
WEBHOOK_PATH = "/webhooks/qualio"  # where Qualio posts; the manifest and the demo read it from here
DB_RETRY_AFTER_SECONDS = "5"
ALLOW = "OPTIONS, POST"
ACCEPTED = metrics.DELIVERIES.labels("accepted")
DUPLICATES = metrics.DELIVERIES.labels("duplicate")
# The environ keys of the headers the verifier reads ("webhook-id" -> "HTTP_WEBHOOK_ID").
_HEADER_KEYS = tuple((name, "HTTP_" + name.upper().replace("-", "_")) for name in signing.HEADERS)

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class Answer:
    """A response as WSGI wants it: status line, headers, body."""

    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body


class WebhookEndpoint:
    """POST WEBHOOK_PATH answered here (OPTIONS too, and any other method there is a 405, as Flask's route
    answered them); every other path goes to `app`."""

    def __init__(self, app: WsgiApp, settings: Settings, verifier: Verifier, engine: Engine) -> None:
        self.app = app
        self.settings = settings
        self.verifier = verifier
        self.engine = engine

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != WEBHOOK_PATH:
            return self.app(environ, start_response)
        answer = method_answer(environ.get("REQUEST_METHOD", ""))
        if answer is None:
            try:
                answer = self.receive(environ)
            except Exception as exc:  # as the Flask app's unexpected_error: a problem, never a stack trace
                answer = unexpected(exc)
        phrase = HTTPStatus(answer.status).phrase
        start_response(f"{answer.status} {phrase}", [*answer.headers, ("Content-Length", str(len(answer.body)))])
        return [answer.body]

    def receive(self, environ: dict[str, Any]) -> Answer:
        limit = self.settings.max_body_bytes
        length = environ.get("CONTENT_LENGTH") or None
        refused = check_head(length, environ.get("CONTENT_TYPE", ""), limit)
        if refused is not None:
            return refused
        expected = None if length is None else int(length)
        body = read_body(environ, expected, limit)
        refused = check_body(body, expected, limit)
        if refused is not None:
            return refused
        assert body is not None
        headers = {name: value for name, key in _HEADER_KEYS if (value := environ.get(key)) is not None}
        admitted = admit(self.verifier, self.settings, headers, body)
        if isinstance(admitted, Answer):
            return admitted
        try:
            outcome = record_delivery(self.engine, admitted.event, body, admitted.fingerprint, admitted.webhook_id,
                                      requeue_thin=bool(self.settings.qualio_api_key))
        except DBAPIError as exc:
            return unavailable(exc, admitted.event)
        return stored(outcome, admitted.event)


@dataclass(frozen=True)
class Admitted:
    """A delivery that passed every check before the database: verified, parsed, fingerprinted."""

    event: NcEvent
    fingerprint: str
    webhook_id: str | None


# The steps of a delivery that do not depend on the server's interface, shared by the WSGI endpoint above and
# the asyncio one (webhook_async.py), so both answer every request alike.

def method_answer(method: str) -> Answer | None:
    """OPTIONS and any method but POST answered as Flask's route did; None for a POST (a delivery)."""
    if method == "OPTIONS":
        return Answer(200, [("Allow", ALLOW)], b"")
    if method != "POST":  # not a delivery: neither counted nor logged as a refused one
        return _problem(405, "Method Not Allowed", f"{WEBHOOK_PATH} takes POST only", headers={"Allow": ALLOW})
    return None


def check_head(length: str | None, content_type: str, limit: int) -> Answer | None:
    """The refusal the headers alone decide (a bad or too large Content-Length, not JSON), or None."""
    if length is not None and not (length.isascii() and length.isdigit()):
        return _refuse("invalid", 400, "Bad Request", "Content-Length must be a number of bytes")
    if length is not None and int(length) > limit:
        return _too_large(limit)
    mimetype = content_type.split(";", 1)[0].strip().lower()
    if mimetype != "application/json" and not mimetype.endswith("+json"):
        return _refuse("unsupported_media_type", 415, "Unsupported Media Type",
                       f"Content-Type must be application/json, got {mimetype or 'none'!r}")
    return None


def check_body(body: bytes | None, length: int | None, limit: int) -> Answer | None:
    """The refusal of a body read (None: it went over `limit`), or None when it is whole."""
    if body is None:
        return _too_large(limit)
    if length is not None and len(body) < length:
        return _refuse("invalid", 400, "Bad Request", "the body ended before its Content-Length")
    return None


def admit(verifier: Verifier, settings: Settings, headers: dict[str, str], body: bytes) -> Admitted | Answer:
    """Verify, parse and fingerprint: the delivery to store, or the 401/400 that refuses it."""
    try:
        verified = verifier.verify(headers, body)
    except AuthError as exc:
        return _refuse("unauthorized", 401, "Unauthorized", str(exc))
    except HeaderError as exc:
        return _refuse("invalid", 400, "Bad Request", str(exc), (FieldError(exc.header, exc.problem),))
    try:
        event = parse_event(body)
    except PayloadError as exc:
        return _refuse("invalid", 400, "Bad Request", exc.detail, exc.errors)
    return Admitted(event, fingerprint(event.payload, settings.fingerprint_exclude), verified.webhook_id)


def stored(outcome: Accepted | Duplicate, event: NcEvent) -> Answer:
    """The answer to a delivery the database took: 202 accepted, or 200 for a duplicate."""
    # DEBUG, not INFO: the stored row is the record of a delivery (`nc-connector deliveries list`), and
    # a log line per delivery was the largest CPU cost of an ingest after the database (bench/README.md).
    if isinstance(outcome, Accepted):
        ACCEPTED.inc()
        log.debug("delivery accepted", extra={"delivery_id": outcome.delivery_id, "nc_id": event.nc_id,
                                              "event_type": event.event_type})
        return _json(202, status="accepted", deliveryId=outcome.delivery_id, fingerprint=outcome.fingerprint)
    DUPLICATES.inc()
    log.debug("duplicate dropped", extra={"nc_id": event.nc_id, "fingerprint": outcome.fingerprint})
    return _json(200, status="duplicate", fingerprint=outcome.fingerprint,
                 firstSeenAt=outcome.first_seen_at.isoformat().replace("+00:00", "Z"))


def unavailable(exc: DBAPIError, event: NcEvent) -> Answer:
    """The 503 of a delivery the database could not take: not acknowledged, so the sender retries it."""
    log.error("database unavailable, delivery not acknowledged",
              extra={"nc_id": event.nc_id, "error": type(exc.orig).__name__})
    return _refuse("database_unavailable", 503, "Service Unavailable", "the delivery could not be stored; retry later",
                   headers={"Retry-After": DB_RETRY_AFTER_SECONDS})


def read_body(environ: dict[str, Any], length: int | None, limit: int) -> bytes | None:
    """The whole body, or None when it is over `limit` bytes.

    A chunked upload has no Content-Length; reading one byte past the limit from the server's (de-chunked)
    input tells a body at the limit from one over it.
    """
    stream = environ["wsgi.input"]
    if length is not None:
        return _read_exactly(stream, length)
    if not environ.get("wsgi.input_terminated"):
        return b""  # no length and no end marker: WSGI gives us nothing safe to read
    data: bytes = stream.read(limit + 1)
    return None if len(data) > limit else data


def _read_exactly(stream: Any, length: int) -> bytes:
    """`length` bytes, or fewer only when the body ends first (a read may return less than it was asked)."""
    data = stream.read(length) if length else b""
    while len(data) < length:
        more = stream.read(length - len(data))
        if not more:
            break
        data += more
    return data  # type: ignore[no-any-return]


def _json(status: int, /, **fields: object) -> Answer:
    return Answer(status, [("Content-Type", "application/json")], json.dumps(fields).encode())


def _too_large(limit: int) -> Answer:
    return _refuse("too_large", 413, "Payload Too Large", f"body is larger than the {limit}-byte limit")


def _refuse(outcome: str, status: int, title: str, detail: str, errors: tuple[FieldError, ...] = (),
            headers: dict[str, str] | None = None) -> Answer:
    metrics.DELIVERIES.labels(outcome).inc()
    log.info("delivery refused", extra={"status": status, "detail": detail})
    return _problem(status, title, detail, errors, headers)


def _problem(status: int, title: str, detail: str, errors: tuple[FieldError, ...] = (),
             headers: dict[str, str] | None = None) -> Answer:
    response = problem(status, title, detail, errors, headers)
    return Answer(status, [(name, value) for name, value in response.headers.items() if name != "Content-Length"],
                  response.get_data())


def unexpected(exc: Exception) -> Answer:
    """An error nothing above expected: a 503 for the database, else a 500 (logged with its trace)."""
    if isinstance(exc, DBAPIError):
        log.error("database error", extra={"error": type(exc.orig).__name__})
        return _problem(503, "Service Unavailable", "database unavailable; retry later",
                        headers={"Retry-After": DB_RETRY_AFTER_SECONDS})
    log.exception("unexpected error")
    return _problem(500, "Internal Server Error", "unexpected error; see the service log")
