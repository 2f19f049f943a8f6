"""The Flask application factory: a table of contents of the web side."""

from __future__ import annotations

import logging
import os

from flask import Flask, Response, jsonify
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError
from werkzeug.exceptions import HTTPException

from connector import db, throttles
from connector.ops import console, gauges
from connector.ops.serving import THREADS
from connector.receive import webhook
from connector.receive.problems import problem
from connector.receive.signing import Verifier
from connector.settings import Settings, load_settings
from connector.sync import heartbeat

log = logging.getLogger(__name__)


# Connections a web process holds beside one per request thread: its sightings flush and its wake-up NOTIFY.
BACKGROUND_CONNECTIONS = 2


def create_app(settings: Settings | None = None, engine: Engine | None = None, threads: int = THREADS) -> Flask:
    """The app of one web process answering `threads` requests at once (serve's --threads)."""
    settings = settings or load_settings()
    app = Flask(__name__)
    app.config["NC_SETTINGS"] = settings
    # A connection for every request thread: past pool_size, SQLAlchemy closes a connection when it is
    # returned, so a busy process would open (and PostgreSQL fork a backend for) one connection per request.
    app.config["NC_ENGINE"] = engine = engine or db.make_engine(
        settings.database_url, pool_size=threads + BACKGROUND_CONNECTIONS)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    # Set by `serve` when it runs a worker: /readyz then also needs that worker's heartbeat.
    app.config["NC_SUPERVISOR"] = os.environ.get(heartbeat.SUPERVISOR_ENV) or None
    app.config["NC_VERIFIER"] = verifier = Verifier(settings.webhook_secret, settings.webhook_token,
                                                    settings.allow_unsigned, settings.signature_tolerance)
    # The webhook is answered in front of Flask (receive/webhook.py says why); everything else is Flask's.
    app.wsgi_app = webhook.WebhookEndpoint(app.wsgi_app, settings, verifier, engine)  # type: ignore[method-assign]
    console.register(app, settings)  # /console/: only when NC_CONNECTOR_CONSOLE_TOKEN is set
    app.add_url_rule("/healthz", "healthz", healthz)
    app.add_url_rule("/readyz", "readyz", readyz)
    app.add_url_rule("/metrics", "metrics", metrics_view)
    app.register_error_handler(HTTPException, http_error)
    app.register_error_handler(Exception, unexpected_error)
    return app


def healthz() -> Response:
    return jsonify(status="ok")


def readyz() -> Response | tuple[Response, int]:
    from flask import current_app

    engine: Engine = current_app.config["NC_ENGINE"]
    try:
        with db.reader(engine).connect() as conn:
            conn.execute(text("SELECT 1"))
        current = db.current_revision(engine)
    except DBAPIError as exc:
        log.warning("readiness: database unreachable", extra={"error": type(exc.orig).__name__})
        return problem(503, "Service Unavailable", "database unreachable", headers={"Retry-After": "5"}), 503
    head = db.head_revision()
    if current != head:
        detail = f"database schema at {current or 'nothing'}, expected {head}: run 'nc-connector db upgrade'"
        return problem(503, "Service Unavailable", detail), 503
    stalled = worker_problem(engine, current_app.config.get("NC_SUPERVISOR"),
                             current_app.config["NC_SETTINGS"].worker_heartbeat)
    if stalled:
        log.warning("readiness: %s", stalled)
        return problem(503, "Service Unavailable", stalled), 503
    fault = throttles.fault(engine)
    if fault is not None:
        # Still ready for webhooks (deliveries are stored and wait): the sync side is what is paused.
        return jsonify(status="degraded", schema=current, reason=fault.reason, paused_until=fault.until.isoformat(),
                       failed_probes=fault.strikes)
    return jsonify(status="ready", schema=current)


def worker_problem(engine: Engine, supervisor: str | None, interval: float) -> str | None:
    """Why the worker this serve runs is not syncing (no heartbeat yet, or a stale one); None when it beats
    or when this web runs no worker (serve --no-worker, plain gunicorn)."""
    if not supervisor:
        return None
    worker = heartbeat.supervised(engine, supervisor)
    if worker is None:
        return "the sync worker is not running: no heartbeat yet (starting, or restarting after it exited)"
    if worker.is_stale(interval):
        return (f"the sync worker (pid {worker.pid}) has not beaten for {worker.age_seconds:.1f}s "
                f"(limit {heartbeat.stale_after(interval):g}s: {heartbeat.STALE_BEATS} beats of "
                f"NC_CONNECTOR_WORKER_HEARTBEAT)")
    return None


def metrics_view() -> Response | tuple[Response, int]:
    from flask import current_app

    try:
        body = gauges.render(current_app.config["NC_ENGINE"])
    except DBAPIError:
        return problem(503, "Service Unavailable", "database unavailable", headers={"Retry-After": "5"}), 503
    return Response(body, mimetype=CONTENT_TYPE_LATEST)


def http_error(exc: HTTPException) -> Response:
    status = exc.code or 500
    detail = exc.description or exc.name
    if status == 413:
        detail = "body is larger than the configured limit (NC_CONNECTOR_MAX_BODY_BYTES)"
    response = problem(status, exc.name, detail)
    if status == 405 and exc.get_response().headers.get("Allow"):
        response.headers["Allow"] = exc.get_response().headers["Allow"]
    return response


def unexpected_error(exc: Exception) -> Response:
    if isinstance(exc, DBAPIError):
        log.error("database error", extra={"error": type(exc.orig).__name__})
        return problem(503, "Service Unavailable", "database unavailable; retry later",
                       headers={"Retry-After": "5"})
    log.exception("unexpected error")
    return problem(500, "Internal Server Error", "unexpected error; see the service log")
