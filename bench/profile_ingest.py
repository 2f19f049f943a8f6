"""Profile the ingest hot path in one process: signed distinct deliveries straight into the WSGI app.

No HTTP and no load generator, so the profile shows only nc-connector's own work per delivery
(verify, parse, fingerprint, store, answer). Also prints the CPU per delivery, and the same for the
bench's minimal baseline app on the same database, measured alternately in this run.

    python -m bench.profile_ingest --db sqlite              # pyinstrument tree + CPU per delivery
    python -m bench.profile_ingest --db postgresql --requests 5000 --no-tree
    python -m bench.profile_ingest --db postgresql --traffic duplicates   # re-sends of stored deliveries

Needs pyinstrument (`pip install -e '.[bench]'`) for the tree. PostgreSQL: a database of its own
(`ncc_profile_<pid>`) on the bench's server, dropped at the end.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from bench.__main__ import DEFAULT_PG
from bench.payloads import SECRET, nc_payload
from connector.receive.signing import signed_headers

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Any]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.profile_ingest", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--pg", default=DEFAULT_PG, help="PostgreSQL server (a database is created on it)")
    parser.add_argument("--requests", type=int, default=3000, help="deliveries per measured pass")
    parser.add_argument("--rounds", type=int, default=3, help="alternating passes of ours and the baseline")
    parser.add_argument("--no-tree", action="store_true", help="CPU figures only, no pyinstrument profile")
    parser.add_argument("--traffic", choices=("new", "duplicates"), default="new",
                        help="distinct deliveries, or re-sends (fresh webhook-id) of deliveries stored before")
    return parser.parse_args(argv)


@contextmanager
def database(kind: str, pg_server: str) -> Iterator[str]:
    """A fresh, empty database URL for this run, removed afterwards."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory(prefix="ncc-profile-") as tmp:
            yield f"sqlite:///{tmp}/profile.db"
        return
    import psycopg

    admin_url = pg_server.replace("postgresql+psycopg://", "postgresql://")
    name = f"ncc_profile_{os.getpid()}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        yield f"{pg_server.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def deliveries(count: int, tag: str) -> list[tuple[dict[str, Any], bytes]]:
    """WSGI environs and bodies of `count` distinct signed deliveries (built before any timing)."""
    return signed([json.dumps(nc_payload(f"NC-{tag}-{i}", "nc.updated", "2025-01-05T10:15:32Z", i)).encode()
                   for i in range(count)])


def signed(bodies: list[bytes]) -> list[tuple[dict[str, Any], bytes]]:
    """Each body as a signed delivery with a webhook-id of its own (a re-send of a body is a duplicate)."""
    made = []
    for body in bodies:
        environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/webhooks/qualio", "SERVER_NAME": "127.0.0.1",
                   "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.url_scheme": "http",
                   "CONTENT_TYPE": "application/json", "CONTENT_LENGTH": str(len(body)), "wsgi.errors": sys.stderr}
        for name, value in signed_headers(SECRET, f"msg_{uuid.uuid4().hex}", body).items():
            environ["HTTP_" + name.upper().replace("-", "_")] = value
        made.append((environ, body))
    return made


def send_all(app: WsgiApp, items: list[tuple[dict[str, Any], bytes]]) -> None:
    statuses: list[str] = []
    for environ, body in items:
        answer = app(environ | {"wsgi.input": io.BytesIO(body)},
                     lambda status, headers, exc=None: statuses.append(status))
        b"".join(answer)
        if statuses[-1][:3] not in ("200", "202"):
            raise SystemExit(f"unexpected answer {statuses[-1]}")


def cpu_per_request(app: WsgiApp, items: list[tuple[dict[str, Any], bytes]]) -> float:
    started = time.process_time()
    send_all(app, items)
    return (time.process_time() - started) / len(items) * 1000


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with database(args.db, args.pg) as url:
        os.environ.update(NC_CONNECTOR_DATABASE_URL=url, NC_CONNECTOR_WEBHOOK_SECRET=SECRET, BENCH_BASELINE_DB=url)
        from bench.baseline_app import create_app as create_baseline
        from connector import db, logs
        from connector.ops.app import create_app
        from connector.settings import load_settings

        settings = load_settings()
        logs.configure(settings.log_level, [SECRET])  # as `serve` does: INFO, JSON lines on stderr
        handler = logging.getLogger().handlers[0]
        assert isinstance(handler, logging.StreamHandler)
        handler.setStream(open(os.devnull, "w"))  # noqa: SIM115 - lives as long as the run
        ours = create_app(settings)
        db.upgrade(ours.config["NC_ENGINE"])
        baseline = create_baseline()
        send_all(ours.wsgi_app, deliveries(200, "warm-ours"))
        send_all(baseline.wsgi_app, deliveries(200, "warm-base"))
        figures: dict[str, list[float]] = {"nc-connector": [], "baseline": []}
        stored: dict[str, list[bytes]] = {}
        if args.traffic == "duplicates":  # both sides store one set first; the passes re-send it
            for name, app in (("nc-connector", ours.wsgi_app), ("baseline", baseline.wsgi_app)):
                first = deliveries(args.requests, f"dup-{name[:4]}")
                send_all(app, first)
                stored[name] = [body for _, body in first]

        def batch(name: str, tag: str) -> list[tuple[dict[str, Any], bytes]]:
            return signed(stored[name]) if stored else deliveries(args.requests, tag)

        for round_ in range(args.rounds):
            pair = [("nc-connector", ours.wsgi_app), ("baseline", baseline.wsgi_app)]
            for name, app in pair if round_ % 2 == 0 else reversed(pair):
                figures[name].append(cpu_per_request(app, batch(name, f"{name[:4]}{round_}")))
        for name, values in figures.items():
            median = sorted(values)[len(values) // 2]
            shown = ", ".join(f"{v:.3f}" for v in values)
            print(f"{args.db} {args.traffic}: {name:13} CPU per delivery (ms): median {median:.3f} ({shown})")
        if not args.no_tree:
            from pyinstrument import Profiler

            items = batch("nc-connector", "tree")
            profiler = Profiler(interval=0.0005)
            profiler.start()
            send_all(ours.wsgi_app, items)
            profiler.stop()
            print(profiler.output_text(unicode=False, color=False))
        ours.config["NC_ENGINE"].dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
