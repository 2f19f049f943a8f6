"""Why a large fingerprint log slows SQLite's ingest: WAL frames (pages written) and time per new delivery.

Stores new deliveries with the connector's own SQLite statements, in batches as its group commit writes
them, into an empty database and into one pre-filled with N fingerprints (as the dedup section does),
alternating; prints per delivery the WAL frames written and the time, and the B-tree depth of the
fingerprint index. No HTTP: the database's share alone. Three ways of writing, each on both databases:
- one connection with SQLite's default page cache (2 MB), as each of the connector's connections has;
- one connection with a 256 MB page cache: what a warm cache would save;
- two connections with 256 MB caches taking turns, batch by batch, as two web processes' group commits do.
  In a WAL database a connection drops its whole page cache when another connection has committed since
  its last transaction, so if the large cache helps only a connection that writes alone, that is why.

    python -m bench.sqlite_pages --rows 10000000 --deliveries 20000 --batch 8
"""

from __future__ import annotations

import argparse
import json
import secrets
import sqlite3
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.dbs import SqliteDatabase
from connector.db import begin_immediate
from connector.receive import store

SECOND = "%Y-%m-%d %H:%M:%S.%f"


def deliveries(count: int, tag: str) -> list[dict[str, object]]:
    now = datetime.now(UTC).replace(tzinfo=None).strftime(SECOND)
    body = json.dumps({"eventType": "nc.updated", "ncId": "NC-2026-000001", "timestamp": now, "pad": "x" * 400})
    return [{"fingerprint": secrets.token_hex(32), "webhook_id": f"msg_{tag}_{i:09d}", "nc_id": f"NC-{i % 5000:06d}",
             "event_type": "nc.updated", "event_timestamp": now, "payload": body, "now": now, "source": "webhook"}
            for i in range(count)]


def write(conns: list[sqlite3.Connection], items: list[dict[str, object]], batch: int) -> tuple[float, int]:
    """Seconds and WAL frames for storing `items` as new deliveries, `batch` per transaction, the connections
    taking turns."""
    conns[0].execute("PRAGMA wal_checkpoint(TRUNCATE)")
    started = time.perf_counter()
    for n, k in enumerate(range(0, len(items), batch)):
        conn = conns[n % len(conns)]
        begin_immediate(conn)
        for params in items[k:k + batch]:
            if conn.execute(store._SQLITE_FINGERPRINT, params).fetchone() is not None:
                conn.execute(store._SQLITE_DELIVERY, params).fetchone()
        conn.execute("COMMIT")
    seconds = time.perf_counter() - started
    _, frames, _ = conns[0].execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    return seconds, int(frames)


def depth(conn: sqlite3.Connection) -> int:
    """Levels of the fingerprint index's B-tree (dbstat is compiled in Debian's SQLite)."""
    name = conn.execute("SELECT il.name FROM pragma_index_list('fingerprints') il "
                        "JOIN pragma_index_info(il.name) ii WHERE ii.name = 'fingerprint'").fetchone()[0]
    try:
        row = conn.execute("SELECT max(length(path) - length(replace(path, '/', ''))) - 1 FROM dbstat "
                           "WHERE name = ?", (name,)).fetchone()
    except sqlite3.OperationalError:  # an SQLite built without dbstat
        return -1
    return int(row[0]) + 1


def connect(db: SqliteDatabase, cache_mb: int | None) -> sqlite3.Connection:
    conn = db.connect()
    # As the connector's connections (db.py), but the WAL is never checkpointed by itself: its frames are the count.
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA wal_autocheckpoint=0")
    if cache_mb is not None:
        conn.execute(f"PRAGMA cache_size=-{cache_mb * 1024}")
    return conn


WAYS = {"1 connection, 2 MB cache": (1, None), "1 connection, 256 MB cache": (1, 256),
        "2 connections in turn, 256 MB caches": (2, 256)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sqlite_pages")
    parser.add_argument("--rows", type=int, default=10_000_000, help="fingerprints in the pre-filled database")
    parser.add_argument("--deliveries", type=int, default=20_000, help="new deliveries per round")
    parser.add_argument("--batch", type=int, default=8, help="deliveries per transaction (group commit)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ncc-pages-") as tmp:
        empty, full = SqliteDatabase(Path(tmp), "empty"), SqliteDatabase(Path(tmp), "full")
        full.create()
        print(f"pre-filled {args.rows:,} fingerprints in {full.prefill(args.rows, expired=False, salt='pages'):.0f} s")
        sides = {"empty": empty, f"{args.rows:,}": full}
        results: dict[tuple[str, str], list[tuple[float, int]]] = {}
        runs = 0
        for k in range(args.rounds):
            for way, (count, cache_mb) in WAYS.items():
                for name, db in (sides.items() if k % 2 == 0 else reversed(sides.items())):
                    if db is empty:
                        db.create()  # empty at the start of every run
                    conns = [connect(db, cache_mb) for _ in range(count)]
                    try:
                        runs += 1
                        items = deliveries(args.deliveries, f"run{runs}")  # webhook-ids new in every run
                        results.setdefault((way, name), []).append(write(conns, items, args.batch))
                    finally:
                        for conn in conns:
                            conn.close()
        conn = full.connect()
        print(f"fingerprint index depth: {depth(conn)} levels at {args.rows:,} rows "
              f"(batch {args.batch}, {args.deliveries:,} deliveries per run, median of {args.rounds})")
        conn.close()
        for (way, name), runs in results.items():
            ms = statistics.median(s for s, _ in runs) * 1000 / args.deliveries
            frames = statistics.median(f for _, f in runs) / args.deliveries
            print(f"{way:>38}, {name:>10} fingerprints: {frames:.2f} WAL frames, {ms:.3f} ms per delivery")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
