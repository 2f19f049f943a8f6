"""The ingest baseline: a minimal Flask app that does only the INSERTs nc-connector does per delivery.

One transaction per request: the fingerprint row (INSERT ... ON CONFLICT DO NOTHING RETURNING id)
and the queued delivery row, into the same tables (created by nc-connector's migration), with
psycopg or sqlite3 directly. No signature check, no schema validation, no canonical JSON (the
fingerprint is the SHA-256 of the raw body), no logging, no metrics, no pg_notify. SQLite gets
the same pragmas as nc-connector (WAL, synchronous=FULL, busy timeout, BEGIN IMMEDIATE).

    BENCH_BASELINE_DB=postgresql://postgres@127.0.0.1:5432/db   (or sqlite:////path/to/file.db)
    gunicorn -w 4 -k gthread --threads 4 'bench.baseline_app:create_app()'
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from datetime import UTC, datetime
from typing import Any

from flask import Flask, jsonify, request

FP_SQL = ("INSERT INTO fingerprints (fingerprint, webhook_id, nc_id, event_type, first_seen_at, last_seen_at, "
          "times_seen) VALUES ({p}, {p}, {p}, {p}, {p}, {p}, 1) ON CONFLICT DO NOTHING RETURNING id")
DELIVERY_SQL = ("INSERT INTO deliveries (fingerprint, webhook_id, nc_id, event_type, event_timestamp, payload, "
                "received_at, status, attempts, next_attempt_at) "
                "VALUES ({p}, {p}, {p}, {p}, {p}, {p}, {p}, 'queued', 0, {p}) RETURNING id")


def _pg_connect(url: str) -> Any:
    import psycopg

    return psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), connect_timeout=5)


def _sqlite_connect(path: str) -> Any:
    import sqlite3

    conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA busy_timeout=30000")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


def create_app() -> Flask:
    url = os.environ["BENCH_BASELINE_DB"]
    sqlite = url.startswith("sqlite")
    marker = "?" if sqlite else "%s"
    fp_sql, delivery_sql = FP_SQL.format(p=marker), DELIVERY_SQL.format(p=marker)
    local = threading.local()
    app = Flask(__name__)

    def connection() -> Any:
        conn = getattr(local, "conn", None)
        if conn is None:
            conn = _sqlite_connect(url.split("///", 1)[1]) if sqlite else _pg_connect(url)
            local.conn = conn
        return conn

    def store(body: bytes, data: dict[str, Any], fp: str, webhook_id: str | None) -> int | None:
        now = datetime.now(UTC).replace(tzinfo=None)
        event_ts = datetime.fromisoformat(data["timestamp"]).astimezone(UTC).replace(tzinfo=None)
        if sqlite:
            now_s, ts_s = now.isoformat(" "), event_ts.isoformat(" ")  # SQLAlchemy's SQLite format
            conn = connection()
            conn.execute("BEGIN IMMEDIATE")
            try:
                row = conn.execute(fp_sql, (fp, webhook_id, data["ncId"], data["eventType"], now_s, now_s)).fetchone()
                if row is None:
                    conn.execute("ROLLBACK")
                    return None
                (delivery_id,) = conn.execute(delivery_sql, (fp, webhook_id, data["ncId"], data["eventType"], ts_s,
                                                             body.decode(), now_s, now_s)).fetchone()
                conn.execute("COMMIT")
            except Exception:
                conn.execute("ROLLBACK")
                raise
            return int(delivery_id)
        conn = connection()
        try:
            with conn.transaction(), conn.cursor() as cur:
                cur.execute(fp_sql, (fp, webhook_id, data["ncId"], data["eventType"], now, now))
                if cur.fetchone() is None:
                    return None
                cur.execute(delivery_sql, (fp, webhook_id, data["ncId"], data["eventType"], event_ts,
                                           body.decode(), now, now))
                (delivery_id,) = cur.fetchone()
        except Exception:
            local.conn = None
            conn.close()
            raise
        return int(delivery_id)

    @app.post("/webhooks/qualio")
    def receive() -> Any:
        body = request.get_data()
        data = json.loads(body)
        fp = hashlib.sha256(body).hexdigest()
        delivery_id = store(body, data, fp, request.headers.get("webhook-id"))
        if delivery_id is None:
            return jsonify(status="duplicate", fingerprint=fp), 200
        return jsonify(status="accepted", deliveryId=delivery_id, fingerprint=fp), 202

    @app.get("/healthz")
    def healthz() -> Any:
        return jsonify(status="ok")

    return app
