"""The bench's databases: its own PostgreSQL database and SQLite files, reset, pre-filled, measured.

PostgreSQL: one database `ncc_bench_<pid>` on the server given by --pg (created at the start,
dropped WITH (FORCE) at the end). SQLite: files in the bench's temporary directory.
Both get nc-connector's schema from its own migration (connector.db.upgrade).
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import shutil
import sqlite3
import subprocess
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from bench.loadgen import percentile
from connector.models import Base

TABLES = tuple(table.name for table in Base.metadata.sorted_tables)  # every table the migrations create


@dataclass(frozen=True)
class QueueState:
    counts: dict[str, int]  # deliveries by status
    last_finished: float | None  # epoch seconds of the newest finished_at (done/ignored/dead)

    @property
    def pending(self) -> int:
        return self.counts.get("queued", 0) + self.counts.get("processing", 0)


def pg_conninfo(url: str) -> str:
    """postgresql+psycopg://... -> a libpq URL."""
    return re.sub(r"^postgresql\+\w+://", "postgresql://", url)


class PgDatabase:
    """The bench's own database, or (with `schema`) one schema inside it with its own copy of the tables:
    side-by-side stores (e.g. an empty and a pre-filled fingerprint log) in the one database."""

    def __init__(self, admin_url: str, name: str, schema: str | None = None) -> None:
        self.admin_url = admin_url
        self.name = name
        self.schema = schema
        base = pg_conninfo(admin_url).rsplit("/", 1)[0]
        self.conninfo = f"{base}/{name}" + (f"?options=-csearch_path%3D{schema}" if schema else "")
        self.url = "postgresql+psycopg://" + self.conninfo.split("://", 1)[1]
        self.created = False

    def with_schema(self, schema: str) -> PgDatabase:
        return PgDatabase(self.admin_url, self.name, schema)

    def create(self) -> None:
        if self.schema is None:
            with psycopg.connect(pg_conninfo(self.admin_url), autocommit=True, connect_timeout=5) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
                conn.execute(f'CREATE DATABASE "{self.name}"')
            self.created = True
        else:
            with self.connect() as conn:
                conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
        from connector import db

        engine = db.make_engine(self.url)
        db.upgrade(engine)
        engine.dispose()

    def drop(self) -> None:
        if not self.created or self.schema is not None:
            return
        with psycopg.connect(pg_conninfo(self.admin_url), autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        self.created = False

    def connect(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.conninfo, autocommit=True, connect_timeout=5)

    def reset(self) -> None:
        """Empty every table and leave no dead rows or dirty buffers behind (a level start)."""
        with self.connect() as conn:
            conn.execute(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY")
            conn.execute("VACUUM ANALYZE fingerprints")
            conn.execute("VACUUM ANALYZE deliveries")
            conn.execute("CHECKPOINT")

    def settle(self) -> None:
        with self.connect() as conn:
            conn.execute("VACUUM ANALYZE fingerprints")
            conn.execute("VACUUM ANALYZE deliveries")
            conn.execute("CHECKPOINT")

    def scalar(self, sql: str, *params: Any) -> Any:
        with self.connect() as conn:
            row = conn.execute(sql, params).fetchone()  # type: ignore[call-overload]
            return None if row is None else row[0]

    def prefill(self, rows: int, *, expired: bool, salt: str) -> float:
        """Add `rows` fingerprints with random-looking keys (md5-based, as spread as SHA-256 hex).

        Fast path: the two unique constraints and the last_seen index are dropped, the rows inserted
        with one INSERT ... SELECT generate_series, and the constraints re-created with the same
        names (an index build sorts, which is much faster than 10 M random B-tree inserts).
        `expired`: last seen 30 days ago (prune removes them); else within the last 6 days."""
        age = "interval '30 days'" if expired else "interval '1 day'"
        started = time.monotonic()
        with self.connect() as conn:
            conn.execute("SET maintenance_work_mem = '512MB'")
            conn.execute("ALTER TABLE fingerprints DROP CONSTRAINT uq_fingerprints_fingerprint, "
                         "DROP CONSTRAINT uq_fingerprints_webhook_id")
            conn.execute("DROP INDEX ix_fingerprints_last_seen_at")
            conn.execute(
                "INSERT INTO fingerprints (fingerprint, webhook_id, nc_id, event_type, first_seen_at, last_seen_at, "
                "times_seen) SELECT md5(%(salt)s || g) || md5(g || %(salt)s), 'msg_prefill_' || %(salt)s || '_' || g, "
                "'NC-PRE-' || (g %% 100000), 'nc.updated', "
                f"(now() AT TIME ZONE 'UTC') - {age} - (g %% 432000) * interval '1 second', "
                f"(now() AT TIME ZONE 'UTC') - {age} - (g %% 432000) * interval '1 second', 1 "
                "FROM generate_series(1, %(rows)s) AS g", {"salt": salt, "rows": rows})
            conn.execute("ALTER TABLE fingerprints ADD CONSTRAINT uq_fingerprints_fingerprint UNIQUE (fingerprint), "
                         "ADD CONSTRAINT uq_fingerprints_webhook_id UNIQUE (webhook_id)")
            conn.execute("CREATE INDEX ix_fingerprints_last_seen_at ON fingerprints (last_seen_at)")
        self.settle()
        return time.monotonic() - started

    def fingerprint_rows(self) -> int:
        return int(self.scalar("SELECT count(*) FROM fingerprints"))

    def queue_state(self) -> QueueState:
        with self.connect() as conn:
            counts = dict(conn.execute("SELECT status, count(*) FROM deliveries GROUP BY status").fetchall())
            last = conn.execute("SELECT extract(epoch FROM max(finished_at)) FROM deliveries").fetchone()
        return QueueState(counts, float(last[0]) if last and last[0] is not None else None)

    def version(self) -> str:
        return str(self.scalar("SHOW server_version"))

    def settings(self) -> dict[str, str]:
        names = ("shared_buffers", "synchronous_commit", "fsync", "max_connections", "wal_level")
        with self.connect() as conn:
            return {n: str(conn.execute(f"SHOW {n}").fetchone()[0]) for n in names}  # type: ignore[index]


class SqliteDatabase:
    def __init__(self, directory: Path, name: str) -> None:
        self.path = directory / f"{name}.db"
        self.url = f"sqlite:///{self.path}"

    def create(self) -> None:
        self.remove()
        from connector import db

        engine = db.make_engine(self.url)
        db.upgrade(engine)
        engine.dispose()

    def remove(self) -> None:
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(f"{self.path}{suffix}")

    def connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        conn.execute("PRAGMA busy_timeout=60000")
        return conn

    def reset(self) -> None:
        self.create()

    def settle(self) -> None:
        conn = self.connect()
        try:
            conn.execute("ANALYZE")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            conn.close()

    def prefill(self, rows: int, *, expired: bool, salt: str) -> float:
        """Add `rows` fingerprints (random 64-hex keys from randomblob) with one recursive-CTE INSERT,
        in one transaction, with a large page cache for this connection only. webhook ids and
        timestamps ascend, so only the fingerprint index takes random inserts (as in production)."""
        days = 30 if expired else 1
        started = time.monotonic()
        conn = self.connect()
        try:
            conn.execute("PRAGMA cache_size=-3000000")  # 3 GB, this connection only
            conn.execute("PRAGMA synchronous=OFF")
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(
                "INSERT INTO fingerprints (fingerprint, webhook_id, nc_id, event_type, first_seen_at, last_seen_at, "
                "times_seen) "
                "WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < ?) "
                "SELECT lower(hex(randomblob(32))), printf('msg_prefill_%s_%012d', ?, i), 'NC-PRE-' || (i % 100000), "
                "'nc.updated', "
                "strftime('%Y-%m-%d %H:%M:%S', 'now', ?, printf('+%d seconds', i % 432000)) || '.000000', "
                "strftime('%Y-%m-%d %H:%M:%S', 'now', ?, printf('+%d seconds', i % 432000)) || '.000000', 1 "
                "FROM g",
                (rows, salt, f"-{days + 5} days", f"-{days + 5} days"))
            conn.execute("COMMIT")
        finally:
            conn.close()
        self.settle()
        return time.monotonic() - started

    def fingerprint_rows(self) -> int:
        conn = self.connect()
        try:
            return int(conn.execute("SELECT count(*) FROM fingerprints").fetchone()[0])
        finally:
            conn.close()

    def queue_state(self) -> QueueState:
        conn = self.connect()
        try:
            counts = dict(conn.execute("SELECT status, count(*) FROM deliveries GROUP BY status").fetchall())
            last = conn.execute("SELECT max(finished_at) FROM deliveries").fetchone()[0]
        finally:
            conn.close()
        when = None
        if last:
            when = datetime.fromisoformat(str(last)).replace(tzinfo=UTC).timestamp()
        return QueueState(counts, when)

    def size_mb(self) -> float:
        total = sum(os.path.getsize(p) for p in glob.glob(f"{self.path}*") if os.path.exists(p))
        return total / 1e6


# -- the database's own ceiling ---------------------------------------------------------------------

PGBENCH_SCRIPT = """\
\\set n random(1, 1000000000)
BEGIN;
INSERT INTO fingerprints (fingerprint, webhook_id, nc_id, event_type, first_seen_at, last_seen_at, times_seen) \
VALUES (md5(random()::text || :client_id) || md5(:n::text || random()::text), 'msg_pgb_' || md5(random()::text), \
'NC-2026-' || (:n % 1000), 'nc.updated', now() AT TIME ZONE 'UTC', now() AT TIME ZONE 'UTC', 1) \
ON CONFLICT DO NOTHING RETURNING id;
INSERT INTO deliveries (fingerprint, webhook_id, nc_id, event_type, event_timestamp, payload, received_at, status, \
attempts, next_attempt_at) VALUES (md5(random()::text), 'msg_pgb_' || :n, 'NC-2026-' || (:n % 1000), 'nc.updated', \
now() AT TIME ZONE 'UTC', :payload, now() AT TIME ZONE 'UTC', 'queued', 0, now() AT TIME ZONE 'UTC') RETURNING id;
{notify}END;
"""


@dataclass(frozen=True)
class PgbenchResult:
    tps: float
    p50_ms: float
    p99_ms: float
    transactions: int
    command: str


def find_pgbench() -> str | None:
    found = shutil.which("pgbench")
    if found:
        return found
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pgbench"))
    return candidates[-1] if candidates else None


def run_pgbench(db: PgDatabase, payload: str, clients: int, seconds: float, notify: bool = False,
                threads: int = 2) -> PgbenchResult:
    """pgbench with a custom script: the same two-INSERT transaction (optionally + pg_notify)."""
    exe = find_pgbench()
    if exe is None:
        raise RuntimeError("pgbench not found (postgresql-client)")
    with tempfile.TemporaryDirectory(prefix="ncc-pgbench-") as tmp:
        script = Path(tmp) / "ingest.sql"
        notify_sql = "SELECT pg_notify('nc_connector_deliveries', '');\n" if notify else ""
        script.write_text(PGBENCH_SCRIPT.format(notify=notify_sql))
        info = pg_conninfo(db.conninfo)
        match = re.match(r"postgresql://(?:([^@:/]+)@)?([^:/]+)(?::(\d+))?/([^?]+)", info)
        if not match:
            raise RuntimeError(f"cannot parse {info}")
        user, host, port, name = match.groups()
        cmd = [exe, "-n", "-M", "prepared", "-c", str(clients), "-j", str(threads), "-T", str(int(seconds)),
               "-D", f"payload={payload}", "-f", str(script), "-l", "--log-prefix", str(Path(tmp) / "log"),
               "-h", host, "-p", port or "5432", "-U", user or "postgres", name]
        env = {**os.environ, **({"PGOPTIONS": f"-c search_path={db.schema}"} if db.schema else {})}
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 120, env=env)
        if out.returncode != 0:
            raise RuntimeError(f"pgbench failed: {out.stderr.strip()[-500:]}")
        tps_match = re.search(r"tps = ([\d.]+) \(without initial connection time\)", out.stdout)
        latencies: list[float] = []
        for path in glob.glob(str(Path(tmp) / "log*")):
            with open(path) as handle:
                for line in handle:
                    parts = line.split()
                    if len(parts) >= 3:
                        latencies.append(int(parts[2]) / 1e6)
        shown = " ".join(a if not a.startswith("payload=") else "payload=<~500 bytes>" for a in cmd[1:])
        shown = shown.replace(str(script), "ingest.sql").replace(str(Path(tmp) / "log"), "log")
        return PgbenchResult(tps=float(tps_match.group(1)) if tps_match else float("nan"),
                             p50_ms=percentile(latencies, 50) * 1000, p99_ms=percentile(latencies, 99) * 1000,
                             transactions=len(latencies), command="pgbench " + shown)
