"""POST /webhooks/qualio: receive -> verify -> parse -> fingerprint -> store -> answer."""

from __future__ import annotations

import logging

from flask import Blueprint, Response, current_app, jsonify, request
from sqlalchemy.exc import DBAPIError

from connector import metrics
from connector.events import PayloadError, parse_event
from connector.fingerprint import fingerprint
from connector.problems import problem
from connector.signing import AuthError, Verifier
from connector.store import Accepted, record_delivery

log = logging.getLogger(__name__)
blueprint = Blueprint("webhook", __name__)
DB_RETRY_AFTER_SECONDS = "5"


@blueprint.post("/webhooks/qualio")
def receive() -> Response | tuple[Response, int]:
    settings = current_app.config["NC_SETTINGS"]
    verifier: Verifier = current_app.config["NC_VERIFIER"]

    too_large = f"body is larger than the {settings.max_body_bytes}-byte limit"
    if request.content_length is not None and request.content_length > settings.max_body_bytes:
        return _refuse("too_large", 413, "Payload Too Large", too_large)
    if request.mimetype != "application/json" and not request.mimetype.endswith("+json"):
        return _refuse("unsupported_media_type", 415, "Unsupported Media Type",
                       f"Content-Type must be application/json, got {request.mimetype or 'none'!r}")
    body = read_body(settings.max_body_bytes)
    if body is None:
        return _refuse("too_large", 413, "Payload Too Large", too_large)
    try:
        verified = verifier.verify({k.lower(): v for k, v in request.headers.items()}, body)
    except AuthError as exc:
        return _refuse("unauthorized", 401, "Unauthorized", str(exc))
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

    if isinstance(outcome, Accepted):
        metrics.DELIVERIES.labels("accepted").inc()
        log.info("delivery accepted", extra={"delivery_id": outcome.delivery_id, "nc_id": event.nc_id,
                                             "event_type": event.event_type})
        return jsonify(status="accepted", deliveryId=outcome.delivery_id, fingerprint=fp), 202
    metrics.DELIVERIES.labels("duplicate").inc()
    log.info("duplicate dropped", extra={"nc_id": event.nc_id, "fingerprint": fp})
    return jsonify(status="duplicate", fingerprint=fp,
                   firstSeenAt=outcome.first_seen_at.isoformat().replace("+00:00", "Z")), 200


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
