"""POST /webhooks/qualio: receive -> verify -> parse -> fingerprint -> store -> answer."""

from __future__ import annotations

import json
import logging

from flask import Blueprint, Response, current_app, request
from sqlalchemy.exc import DBAPIError

from connector import metrics
from connector.receive import signing
from connector.receive.events import FieldError, PayloadError, parse_event
from connector.receive.fingerprint import fingerprint
from connector.receive.problems import problem
from connector.receive.signing import AuthError, HeaderError, Verifier
from connector.receive.store import Accepted, record_delivery

log = logging.getLogger(__name__)
WEBHOOK_PATH = "/webhooks/qualio"  # where Qualio posts; the manifest and the demo read it from here
blueprint = Blueprint("webhook", __name__)
DB_RETRY_AFTER_SECONDS = "5"
ACCEPTED = metrics.DELIVERIES.labels("accepted")
DUPLICATES = metrics.DELIVERIES.labels("duplicate")


@blueprint.post(WEBHOOK_PATH)
def receive() -> Response:
    settings = current_app.config["NC_SETTINGS"]
    verifier: Verifier = current_app.config["NC_VERIFIER"]

    if request.content_length is not None and request.content_length > settings.max_body_bytes:
        return _too_large(settings.max_body_bytes)
    if request.mimetype != "application/json" and not request.mimetype.endswith("+json"):
        return _refuse("unsupported_media_type", 415, "Unsupported Media Type",
                       f"Content-Type must be application/json, got {request.mimetype or 'none'!r}")
    body = read_body(settings.max_body_bytes)
    if body is None:
        return _too_large(settings.max_body_bytes)
    headers = {name: value for name in signing.HEADERS if (value := request.headers.get(name)) is not None}
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

    fp = fingerprint(event.payload, settings.fingerprint_exclude)
    try:
        outcome = record_delivery(current_app.config["NC_ENGINE"], event, body, fp, verified.webhook_id,
                                  requeue_thin=bool(settings.qualio_api_key))
    except DBAPIError as exc:
        log.error("database unavailable, delivery not acknowledged",
                  extra={"nc_id": event.nc_id, "error": type(exc.orig).__name__})
        return _refuse("database_unavailable", 503, "Service Unavailable",
                       "the delivery could not be stored; retry later",
                       headers={"Retry-After": DB_RETRY_AFTER_SECONDS})

    # DEBUG, not INFO: the stored row is the record of a delivery (`nc-connector deliveries list`), and
    # a log line per delivery was the largest CPU cost of an ingest after the database (bench/README.md).
    if isinstance(outcome, Accepted):
        ACCEPTED.inc()
        log.debug("delivery accepted", extra={"delivery_id": outcome.delivery_id, "nc_id": event.nc_id,
                                              "event_type": event.event_type})
        return _answer(202, status="accepted", deliveryId=outcome.delivery_id, fingerprint=fp)
    DUPLICATES.inc()
    log.debug("duplicate dropped", extra={"nc_id": event.nc_id, "fingerprint": fp})
    return _answer(200, status="duplicate", fingerprint=fp,
                   firstSeenAt=outcome.first_seen_at.isoformat().replace("+00:00", "Z"))


def _answer(http_status: int, /, **fields: object) -> Response:
    """A JSON answer, without jsonify's per-call lookups (this is the hot path)."""
    return Response(json.dumps(fields), http_status, mimetype="application/json")


def _too_large(limit: int) -> Response:
    return _refuse("too_large", 413, "Payload Too Large", f"body is larger than the {limit}-byte limit")


def read_body(limit: int) -> bytes | None:
    """The whole body, or None when it is over `limit` bytes.

    A chunked upload has no Content-Length, and werkzeug would silently cut it at the limit;
    reading one byte past the limit from the server's (de-chunked) input tells the two apart.
    """
    if request.content_length is not None:
        return request.get_data(cache=False)
    if not request.environ.get("wsgi.input_terminated"):
        return b""  # no length and no end marker: WSGI gives us nothing safe to read
    data: bytes = request.environ["wsgi.input"].read(limit + 1)
    return None if len(data) > limit else data


def _refuse(outcome: str, status: int, title: str, detail: str, errors: tuple = (),  # type: ignore[type-arg]
            headers: dict[str, str] | None = None) -> Response:
    metrics.DELIVERIES.labels(outcome).inc()
    log.info("delivery refused", extra={"status": status, "detail": detail})
    return problem(status, title, detail, errors, headers)
