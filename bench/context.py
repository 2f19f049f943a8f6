"""What every section of the bench shares: configuration, the temp dir, the databases, starting the
services under test, one measured ingest run, and the rows of the report."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import procs
from bench.dbs import PgDatabase, SqliteDatabase
from bench.loadgen import LoadResult, LoadRun, RequestFactory, Window, window
from bench.payloads import SECRET, IngestFactory
from connector.ops.serving import resolve

HOST = "127.0.0.1"
REPO = Path(__file__).resolve().parent.parent
GUNICORN_THREADS = 4  # the baseline's threads under --baseline-worker-class gthread
# The baseline as the issue that set the targets ran it, and as a user would write it: gunicorn, sync workers.
BASELINE_WORKER_CLASS = "sync"


@dataclass
class Config:
    mode: str  # "full" or "quick"
    pg_admin_url: str
    senders: int = 16
    processes: int = 4  # load-generator processes (senders are split over them)
    workers: int | None = None  # web workers; None: sweep (full) or 4 (quick)
    sweep: tuple[int, ...] = (1, 2, 4, 8)
    rounds: int = 5  # ours/baseline pairs per database, alternating who goes first; medians are reported
    warmup: float = 2.0
    duration: float = 8.0
    sweep_duration: float = 6.0
    dedup_sizes: tuple[int, int] = (1_000_000, 10_000_000)  # the smaller one is expired, then pruned
    burst_ncs: int = 1000
    burst_per_nc: int = 10
    burst_workers: int = 2  # `nc-connector worker` processes draining the burst
    budget_ncs: int = 300  # the 429-budget + enrichment burst
    budget: tuple[int, float] = (20, 2.0)  # sandbox budget: writes per window (seconds)
    jira_latency: float = 0.05
    e2e_probes: int = 40
    drain_timeout: float = 900.0
    databases: tuple[str, ...] = ("postgresql", "sqlite")
    sections: tuple[str, ...] = ("ingest", "dedup", "burst", "e2e")
    baseline_worker_class: str = BASELINE_WORKER_CLASS  # gunicorn -k for the baseline: sync or gthread
    # Ours in section 0 traffic: web processes x request threads; None: serve's defaults (what a user runs).
    ours_shape: tuple[int, int] | None = None
    ours_server: str | None = None  # serve's --server in section 0 traffic; None: serve's default

    @classmethod
    def for_mode(cls, mode: str, pg_admin_url: str, **overrides: Any) -> Config:
        config = cls(mode=mode, pg_admin_url=pg_admin_url)
        if mode == "quick":
            config.rounds, config.warmup, config.duration = 2, 1.5, 5.0
            config.dedup_sizes = (100_000, 1_000_000)
            config.burst_ncs, config.budget_ncs, config.e2e_probes = 300, 100, 20
            config.drain_timeout = 400.0
        for key, value in overrides.items():
            if value is not None:
                setattr(config, key, value)
        return config


@dataclass
class Row:
    section: str
    figure: str
    ours: str
    reference: str = ""
    ratio: str = ""
    target: str = ""
    verdict: str = ""  # "ok", "MISS", "" (informational)


@dataclass
class IngestFigure:
    window: Window
    web_cpu_ms: float  # CPU of the web worker processes per acknowledged request
    result: LoadResult


@dataclass
class Context:
    config: Config
    tmp: Path
    pg: PgDatabase | None = None
    sqlite_dir: Path | None = None
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    details: list[str] = field(default_factory=list)
    chosen_workers: dict[str, int] = field(default_factory=dict)
    run_counter: int = 0
    _stores: dict[str, PgDatabase | SqliteDatabase] = field(default_factory=dict)

    @property
    def logs(self) -> Path:
        path = self.tmp / "logs"
        path.mkdir(exist_ok=True)
        return path

    def add(self, *args: Any, **kwargs: Any) -> None:
        row = Row(*args, **kwargs)
        self.rows.append(row)
        shown = " | ".join(x for x in (row.ours, row.reference, row.ratio, row.verdict) if x)
        print(f"  [{row.section}] {row.figure}: {shown}", flush=True)

    def note(self, text: str) -> None:
        self.notes.append(text)
        print(f"  note: {text}", flush=True)

    def tag(self, prefix: str) -> str:
        self.run_counter += 1
        return f"{prefix}{os.getpid()}x{self.run_counter}"

    def database(self, kind: str, store: str = "a") -> PgDatabase | SqliteDatabase:
        """A store with nc-connector's schema: a schema of the bench's PostgreSQL database, or an SQLite
        file. Two stores ("a", "b") let two table states be measured alternately."""
        key = f"{kind}:{store}"
        if key not in self._stores:
            if kind == "postgresql":
                assert self.pg is not None
                db: PgDatabase | SqliteDatabase = self.pg.with_schema(f"bench_{store}")
            else:
                assert self.sqlite_dir is not None
                db = SqliteDatabase(self.sqlite_dir, f"bench_{store}")
            db.create()
            self._stores[key] = db
        return self._stores[key]

    # -- the services under test ---------------------------------------------------------------

    def ours_env(self, db_url: str, **extra: str) -> dict[str, str]:
        return {"NC_CONNECTOR_DATABASE_URL": db_url, "NC_CONNECTOR_WEBHOOK_SECRET": SECRET, **extra}

    def start_ours(self, db_url: str, workers: int | None, name: str, extra_env: dict[str, str] | None = None,
                   server: str = "auto", threads: int | None = None) -> tuple[procs.Proc, int]:
        """`nc-connector serve --no-worker` under `server`, the shape not given as serve resolves it for the
        database (what a user runs); "gunicorn-sync" is the README's plain gunicorn invocation of the same app
        with sync workers (serve itself offers gthread only)."""
        port = procs.free_port()
        if server == "gunicorn-sync":
            workers = workers or 4
            args = procs.python("-m", "gunicorn", *gunicorn_options(workers, "sync"), "-b", f"{HOST}:{port}",
                                "connector.ops.app:create_app()")
        else:
            server, workers, threads = resolve(server, workers, threads, db_url)
            args = procs.python("-m", "connector", "serve", "--no-worker", "--host", HOST, "--port", str(port),
                                "--workers", str(workers), "--threads", str(threads), "--server", server)
        proc = procs.start(name, args, self.ours_env(db_url, **(extra_env or {})), self.logs, role="ours-web",
                           cwd=self.tmp)
        procs.wait_ready(proc, f"http://{HOST}:{port}/readyz")
        _wait_workers(proc, workers)
        return proc, port

    def start_baseline(self, db_url: str, workers: int, name: str) -> tuple[procs.Proc, int]:
        port = procs.free_port()
        options = gunicorn_options(workers, self.config.baseline_worker_class)
        args = procs.python("-m", "gunicorn", *options, "-b", f"{HOST}:{port}",
                            "bench.baseline_app:create_app()")
        proc = procs.start(name, args, {"BENCH_BASELINE_DB": db_url, "PYTHONPATH": str(REPO)}, self.logs,
                           role="baseline-web", cwd=REPO)
        procs.wait_ready(proc, f"http://{HOST}:{port}/healthz")
        _wait_workers(proc, workers)
        return proc, port

    # -- one measured ingest run ---------------------------------------------------------------

    def ingest(self, proc: procs.Proc, port: int, duration: float | None = None,
               factory: RequestFactory | None = None, rate: float | None = None) -> IngestFigure:
        """One measured run: closed loop, or `rate` requests/s on a fixed schedule (loadgen.Pace)."""
        duration = self.config.duration if duration is None else duration
        warmup = self.config.warmup
        factory = factory or IngestFactory(HOST, port, self.tag("i"))
        run = LoadRun(HOST, port, factory, senders=self.config.senders, processes=self.config.processes,
                      duration=warmup + duration, rate=rate).start()
        _sleep_until(run.t0 + warmup)
        cpu0 = tree_cpu(proc.pid)
        result = run.wait()
        cpu1 = tree_cpu(proc.pid)
        fig = window(result, result.t0 + warmup, result.t0 + warmup + duration)
        acked = sum(n for status, n in fig.statuses.items() if 200 <= status < 300)
        used = sum(cpu1.get(pid, 0.0) - before for pid, before in cpu0.items() if pid != proc.pid)
        return IngestFigure(fig, 1000 * used / max(1, acked), result)


def gunicorn_options(workers: int, worker_class: str = "gthread") -> list[str]:
    """The options `nc-connector serve --server gunicorn` gives gunicorn (connector/serving.py)."""
    threads = ["--threads", str(GUNICORN_THREADS)] if worker_class == "gthread" else []
    return ["-w", str(workers), "-k", worker_class, *threads, "--timeout", "30", "--graceful-timeout", "10"]


def _wait_workers(proc: procs.Proc, workers: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and len(procs.descendants(proc.pid)) < workers:
        time.sleep(0.1)
    time.sleep(0.5)  # let the last worker finish importing


def _sleep_until(moment: float) -> None:
    delay = moment - time.time()
    if delay > 0:
        time.sleep(delay)


def tree_cpu(pid: int) -> dict[int, float]:
    """CPU seconds (user + system) of pid and each descendant."""
    ticks = os.sysconf("SC_CLK_TCK")
    out: dict[int, float] = {}
    for p in [pid, *procs.descendants(pid)]:
        try:
            with open(f"/proc/{p}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            out[p] = (int(fields[11]) + int(fields[12])) / ticks
        except (OSError, IndexError, ValueError):
            continue
    return out
